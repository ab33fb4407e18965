// python_bench: the slackline Python module's push and pull against C++ ZPush and ZPull, in the
// same job, against the same server, measured alternately.
//
//   python_bench [--rounds R]
//
// Started without DMLC_ROLE it runs bench/python_bench.py, the driver, with the interpreter
// the module is built for (PS_PYTHON, default /usr/bin/python3). The driver starts a job through
// tracker/launch.py of this program: a scheduler, one server and two workers. The second
// worker (the job's last task) replaces itself by the Python worker of bench/python_bench.py;
// the others are C++. The server answers pulls from a preallocated buffer and does no other
// work. For 1, 1e3, 1e5 and 1e6 keys and each op, the workers take turns (a barrier between
// turns): each turn one of them times the best of N requests (push: keys and values out; pull:
// keys out, values back into a new array, wait included); then the cost of issuing a one-key
// push (1000 back to back, best of 3, waited for afterwards). Each worker prints the median of
// its turns per case as one JSON line; the driver prints both and their ratio, and the extra
// cost per call of Python.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "common/programs.h"
#include "ps/ps.h"

namespace {

using ps::test::Median;

using Seconds = std::chrono::duration<double>;
constexpr int kIssued = 1000;  // one-key pushes per timing of the call cost

// Best of "reps" runs of "fn", in seconds.
double Best(int reps, const std::function<void()>& fn) {
  double best = 1e9;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, Seconds(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// The root of the checkout this program was built in (where tracker/launch.py is); sets
// "build" to the build folder, if given.
std::string Root(std::string* build = nullptr) {
  std::string launch;
  std::string b = ps::test::BuildDirAndLauncher("python_bench", &launch);
  if (build) *build = b;
  return ps::test::ParentDir(ps::test::ParentDir(launch));
}

const char* Python() {
  const char* p = std::getenv("PS_PYTHON");
  return p && *p ? p : "/usr/bin/python3";
}

void RunServer(size_t max_keys) {
  ps::KVServer<float> server(0);
  ps::SArray<float> answer(max_keys, 1.0f);
  server.set_request_handle(
      [&](const ps::KVMeta& meta, const ps::KVPairs<float>& data, ps::KVServer<float>* s) {
        ps::KVPairs<float> res;
        if (meta.pull) res.vals = answer.segment(0, data.keys.size());
        s->Response(meta, res);
      });
  ps::Postoffice::Get()->Barrier(0, ps::kServerGroup + ps::kWorkerGroup);
}

// The C++ side of the turns; bench/python_bench.py's worker follows the same schedule.
void RunWorker(int rounds) {
  ps::KVWorker<float> kv(0, 0);
  auto* po = ps::Postoffice::Get();
  for (size_t n : {1, 1000, 100000, 1000000}) {
    ps::SArray<ps::Key> keys(n);
    const ps::Key step = ps::kMaxKey / n;
    for (size_t i = 0; i < n; ++i) keys[i] = static_cast<ps::Key>(i) * step;
    ps::SArray<float> vals(n, 0.5f);
    const double bytes = n * (sizeof(ps::Key) + sizeof(float));
    const int reps = std::max(3, std::min(300, static_cast<int>(0.1 / (bytes / 4e9 + 5e-5))));
    for (const char* op : {"push", "pull"}) {
      const bool push = std::strcmp(op, "push") == 0;
      std::vector<double> turns;
      for (int r = 0; r < rounds; ++r) {
        po->Barrier(0, ps::kWorkerGroup);  // our turn
        turns.push_back(Best(reps, [&] {
          if (push) {
            kv.Wait(kv.ZPush(keys, vals));
          } else {
            ps::SArray<float> out;
            kv.Wait(kv.ZPull(keys, &out));
          }
        }));
        po->Barrier(0, ps::kWorkerGroup);  // the Python worker's turn
        po->Barrier(0, ps::kWorkerGroup);
      }
      std::printf(
          "{\"side\": \"cpp\", \"op\": \"%s\", \"keys\": %zu, \"reps\": %d, \"ms\": %.5f}\n", op, n,
          reps, Median(turns) * 1e3);
      std::fflush(stdout);
    }
  }
  // The cost of a call itself: kIssued one-key pushes issued back to back, waited for after
  // the clock stopped; per push.
  ps::SArray<ps::Key> key(1, 1);
  ps::SArray<float> val(1, 0.5f);
  std::vector<double> turns;
  for (int r = 0; r < rounds; ++r) {
    po->Barrier(0, ps::kWorkerGroup);
    for (int rep = 0; rep < 3; ++rep) {
      std::vector<int> ts(kIssued);
      const double t = Best(1, [&] {
        for (int& ts_i : ts) ts_i = kv.ZPush(key, val);
      });
      for (int ts_i : ts) kv.Wait(ts_i);
      if (rep == 0 || t / kIssued < turns.back()) {
        if (rep > 0) turns.pop_back();
        turns.push_back(t / kIssued);
      }
    }
    po->Barrier(0, ps::kWorkerGroup);
    po->Barrier(0, ps::kWorkerGroup);
  }
  std::printf("{\"side\": \"cpp\", \"op\": \"issue\", \"keys\": 1, \"reps\": %d, \"ms\": %.6f}\n",
              kIssued, Median(turns) * 1e3);
  std::fflush(stdout);
}

int RunNode(int argc, char** argv) {
  const int rounds = ps::test::IntFlag(argc, argv, "--rounds", 9);
  const char* task = std::getenv("DMLC_TASK_ID");
  const int servers = std::atoi(std::getenv("DMLC_NUM_SERVER"));
  const int workers = std::atoi(std::getenv("DMLC_NUM_WORKER"));
  if (task && std::atoi(task) == servers + workers) {
    // The last worker is the Python one.
    const std::string script = Root() + "/bench/python_bench.py";
    const std::string r = std::to_string(rounds);
    execl(Python(), Python(), script.c_str(), "--node", "--rounds", r.c_str(),
          static_cast<char*>(nullptr));
    std::perror(Python());
    return 127;
  }
  ps::Start(0, argv[0]);
  if (ps::IsServer()) {
    RunServer(1000000);
  } else if (ps::IsWorker()) {
    RunWorker(rounds);
    ps::Postoffice::Get()->Barrier(0, ps::kServerGroup + ps::kWorkerGroup);
  }
  ps::Finalize(0, true);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (std::getenv("DMLC_ROLE")) return RunNode(argc, argv);
  std::string build;
  const std::string script = Root(&build) + "/bench/python_bench.py";
  std::vector<char*> args = {const_cast<char*>(Python()), const_cast<char*>(script.c_str()),
                             const_cast<char*>("--build-dir"), &build[0]};
  for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
  args.push_back(nullptr);
  execv(Python(), args.data());
  std::perror(Python());
  return 127;
}
