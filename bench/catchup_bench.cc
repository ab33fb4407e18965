// catchup_bench: how long a replacement server takes to catch up (PS_REPLICATION=2), and what
// the workers' throughput is meanwhile.
//
//   catchup_bench [--runs R] [--max-keys K]
//
// Started without DMLC_ROLE it is the driver; every node is a copy of this program. For 1e6 and
// 1e7 keys (interleaved, R times each): 3 servers with k = 2 hold the keys (the default handle,
// one float per key, spread over every range); 2 workers push 1e4 of them in a loop. The driver
// kills server 1 (SIGKILL); once the failover is done it starts a replacement, which copies the
// two key ranges it replicates from the live servers while the workers keep pushing. Printed:
//  - catch_up_s: from the replacement's start to the configuration that counts it as a full
//    replica (process start, registration, both copies and what came meanwhile);
//  - copy_s: from its joining the job to that configuration;
//  - the workers' pushes per second in the second before the kill, during the catch-up, and in
//    the second after it, and their ratio to before;
//  - copied_mb: the bytes of the copies (keys and values).
// Every figure is the median over the runs; every line is JSON. Each run also checks the sums:
// after the workers stop, a pull of every loaded key must give exactly what was pushed.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/programs.h"
#include "common/test_util.h"
#include "ps/ps.h"

namespace {

using ps::test::Exists;
using ps::test::GetEnv;
using ps::test::IntFlag;
using ps::test::Median;
using ps::test::Now;
using ps::test::SpawnSelf;
using Clock = std::chrono::steady_clock;

// Writes "text" to "path" whole: readers see the file only once it is complete.
void Publish(const std::string& path, const std::string& text) {
  std::ofstream(path + ".tmp") << text;
  rename((path + ".tmp").c_str(), path.c_str());
}

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Waits for "path" up to "seconds"; false when it did not appear.
bool WaitFor(const std::string& path, double seconds) {
  const double until = Now() + seconds;
  while (!Exists(path)) {
    if (Now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// "n" keys spread evenly over the key space.
ps::SArray<ps::Key> SpreadKeys(size_t n) {
  ps::SArray<ps::Key> keys(n);
  const ps::Key step = ps::kMaxKey / static_cast<ps::Key>(n);
  for (size_t i = 0; i < n; ++i) keys[i] = static_cast<ps::Key>(i) * step;
  return keys;
}

constexpr size_t kBatch = 10000;  // keys of each push in the loop

// ---- nodes ----------------------------------------------------------------------------------

int Worker(const std::string& dir, size_t num_keys) {
  ps::KVWorker<float> kv(0, 0);
  const int rank = ps::MyRank();
  if (!ps::Postoffice::Get()->is_recovery()) {
    ps::Postoffice::Get()->Barrier(0, ps::kServerGroup + ps::kWorkerGroup);
  }
  const ps::SArray<ps::Key> all = SpreadKeys(num_keys);
  // Worker 0 loads the keys (1 each), in pieces.
  if (rank == 0) {
    for (size_t at = 0; at < num_keys; at += 1000000) {
      const size_t n = std::min<size_t>(1000000, num_keys - at);
      ps::SArray<ps::Key> part(all.data() + at, n, false);
      kv.Wait(kv.ZPush(part, ps::SArray<float>(n, 1.0f)));
    }
  }
  ps::Postoffice::Get()->Barrier(0, ps::kWorkerGroup);
  if (rank == 0) Publish(dir + "/loaded", "1");
  // Every worker pushes the same batch of keys spread over every range, 1 each time.
  ps::SArray<ps::Key> batch(kBatch);
  for (size_t i = 0; i < kBatch; ++i) batch[i] = all[i * (num_keys / kBatch)];
  ps::SArray<float> ones(kBatch, 1.0f);
  std::ostringstream times;
  times.precision(17);
  while (!Exists(dir + "/stop")) {
    kv.Wait(kv.ZPush(batch, ones));
    times << Now() << "\n";
  }
  Publish(dir + "/times-" + std::to_string(rank), times.str());
  ps::Postoffice::Get()->Barrier(0, ps::kWorkerGroup);
  // The sums: every key 1, the batch's keys also 1 per push of every worker.
  std::vector<float> got;
  int wrong = 0;
  if (rank == 0) {
    kv.Wait(kv.Pull(std::vector<ps::Key>(all.begin(), all.end()), &got));
    std::vector<bool> in_batch(num_keys, false);
    for (size_t i = 0; i < kBatch; ++i) in_batch[i * (num_keys / kBatch)] = true;
    // Every push each worker timed (one line each) added 1 to the batch's keys.
    double batch_want = 1;
    for (int w = 0; w < ps::NumWorkers(); ++w) {
      std::ifstream in(dir + "/times-" + std::to_string(w));
      for (std::string line; std::getline(in, line);) batch_want += 1;
    }
    if (got.size() != num_keys) wrong = static_cast<int>(num_keys);
    for (size_t i = 0; i < got.size(); ++i) wrong += got[i] != (in_batch[i] ? batch_want : 1.0);
    Publish(dir + "/checked", std::to_string(wrong));
  }
  return 0;
}

int Server(const std::string& dir) {
  ps::KVServer<float> server(0);
  server.set_request_handle(ps::KVServerDefaultHandle<float>());
  Publish(dir + "/server-" + std::to_string(ps::MyRank()) +
              (ps::Postoffice::Get()->is_recovery() ? "-new" : ""),
          std::to_string(getpid()));
  if (ps::Postoffice::Get()->is_recovery()) {
    std::ostringstream joined;
    joined.precision(17);
    joined << Now();
    Publish(dir + "/joined", joined.str());
    ps::Van* van = ps::Postoffice::Get()->van();
    while (van->chains().syncing(ps::MyRank())) {
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    std::ostringstream synced;
    synced.precision(17);
    synced << Now();
    Publish(dir + "/synced", synced.str());
  } else {
    ps::Postoffice::Get()->Barrier(0, ps::kServerGroup + ps::kWorkerGroup);
  }
  ps::Finalize(0, true);
  return 0;
}

int Node() {
  const std::string dir = GetEnv("BENCH_OUT");
  ps::Start(0);
  int status = 0;
  if (ps::IsServer()) return Server(dir);
  if (ps::IsWorker()) {
    status = Worker(dir, std::strtoull(GetEnv("BENCH_KEYS").c_str(), nullptr, 10));
  }
  ps::Finalize(0, true);
  return status;
}

// ---- driver ---------------------------------------------------------------------------------

std::vector<double> Times(const std::string& path) {
  std::vector<double> t;
  std::ifstream in(path);
  for (double x; in >> x;) t.push_back(x);
  return t;
}

// Pushes per second of all workers completed in [a, b).
double Rate(const std::vector<std::vector<double>>& times, double a, double b) {
  if (b <= a) return 0;
  size_t n = 0;
  for (const auto& t : times) {
    n += std::lower_bound(t.begin(), t.end(), b) - std::lower_bound(t.begin(), t.end(), a);
  }
  return n / (b - a);
}

struct Run {
  double catch_up = -1, copy = -1, before = 0, during = 0, after = 0;
  bool exact = false;
};

Run OneRun(char** argv, const std::string& tmp, size_t keys, int index) {
  const std::string dir = tmp + "/run-" + std::to_string(index);
  mkdir(dir.c_str(), 0700);
  std::vector<std::string> base = {"DMLC_PS_ROOT_URI=127.0.0.1",
                                   "DMLC_PS_ROOT_PORT=" + std::to_string(ps::test::FreePort()),
                                   "DMLC_NUM_SERVER=3",
                                   "DMLC_NUM_WORKER=2",
                                   "PS_REPLICATION=2",
                                   "PS_HEARTBEAT_INTERVAL=0.2",
                                   "PS_HEARTBEAT_TIMEOUT=2",
                                   "BENCH_OUT=" + dir,
                                   "BENCH_KEYS=" + std::to_string(keys)};
  std::vector<pid_t> pids;
  auto spawn = [&](const char* role) {
    std::vector<std::string> env = base;
    env.push_back(std::string("DMLC_ROLE=") + role);
    pids.push_back(SpawnSelf(argv, env));
  };
  for (const char* role : {"scheduler", "server", "server", "server", "worker", "worker"}) {
    spawn(role);
  }
  Run run;
  if (WaitFor(dir + "/loaded", 300) && WaitFor(dir + "/server-1", 10)) {
    // A second of pushing first: the throughput before.
    std::this_thread::sleep_for(std::chrono::seconds(1));
    const pid_t victim = std::atoi(Read(dir + "/server-1").c_str());
    const double killed = Now();
    kill(victim, SIGKILL);
    waitpid(victim, nullptr, 0);
    // Started at once, as the launcher does: it waits as a spare until the death is known.
    const double started = Now();
    spawn("server");
    if (WaitFor(dir + "/synced", 300)) {
      const double joined = std::atof(Read(dir + "/joined").c_str());
      const double synced = std::atof(Read(dir + "/synced").c_str());
      std::this_thread::sleep_for(std::chrono::seconds(1));
      Publish(dir + "/stop", "1");
      WaitFor(dir + "/times-0", 60);
      WaitFor(dir + "/times-1", 60);
      std::vector<std::vector<double>> times = {Times(dir + "/times-0"), Times(dir + "/times-1")};
      run.catch_up = synced - started;
      run.copy = synced - joined;
      run.before = Rate(times, killed - 1, killed);
      run.during = Rate(times, joined, synced);
      run.after = Rate(times, synced, synced + 1);
      if (WaitFor(dir + "/checked", 120)) run.exact = Read(dir + "/checked") == "0";
    }
  }
  for (pid_t p : pids) kill(p, SIGKILL);
  for (pid_t p : pids) waitpid(p, nullptr, 0);
  if (run.catch_up < 0) std::fprintf(stderr, "run %d (%zu keys) gave no figure\n", index, keys);
  return run;
}

int Driver(char** argv, int runs, size_t max_keys) {
  // Authenticated, as a launched job is; the runs' files go in the key's private folder.
  std::string tmp;
  const std::string key = ps::test::WriteJobKey("catchup_bench", &tmp);
  if (!std::getenv("BENCH_INSECURE")) setenv("PS_KEY_FILE", key.c_str(), 1);
  std::map<size_t, std::vector<Run>> got;
  std::vector<size_t> sizes;
  for (size_t n : {size_t{1000000}, size_t{10000000}}) {
    if (n <= max_keys) sizes.push_back(n);
  }
  int index = 0;
  for (int r = 0; r < runs; ++r) {
    for (size_t n : sizes) got[n].push_back(OneRun(argv, tmp, n, index++));
  }
  int failed = 0;
  for (size_t n : sizes) {
    std::vector<double> catch_up, copy, before, during, after, ratio;
    int exact = 0;
    for (const Run& run : got[n]) {
      if (run.catch_up < 0) continue;
      catch_up.push_back(run.catch_up);
      copy.push_back(run.copy);
      before.push_back(run.before);
      during.push_back(run.during);
      after.push_back(run.after);
      ratio.push_back(run.before > 0 ? run.during / run.before : 0);
      exact += run.exact;
    }
    failed += static_cast<int>(got[n].size()) - exact;
    // Each replacement copies the two ranges it replicates: 2/3 of the keys, 12 bytes each.
    const double copied_mb = n * 2.0 / 3 * 12 / 1e6;
    std::printf(
        "{\"case\": \"catch_up\", \"keys\": %zu, \"runs\": %zu, \"exact_runs\": %d, "
        "\"catch_up_s\": %.3f, \"copy_s\": %.3f, \"copied_mb\": %.0f, \"pushes_per_s_before\": "
        "%.0f, \"pushes_per_s_during\": %.0f, \"pushes_per_s_after\": %.0f, "
        "\"during_vs_before\": %.3f}\n",
        n, catch_up.size(), exact, Median(catch_up), Median(copy), copied_mb, Median(before),
        Median(during), Median(after), Median(ratio));
  }
  std::fflush(stdout);
  std::string rm = std::getenv("BENCH_KEEP") ? "true" : "rm -rf " + tmp;
  if (std::system(rm.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", tmp.c_str());
  return failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (std::getenv("DMLC_ROLE")) return Node();
  return Driver(argv, IntFlag(argc, argv, "--runs", 3),
                static_cast<size_t>(IntFlag(argc, argv, "--max-keys", 10000000)));
}
