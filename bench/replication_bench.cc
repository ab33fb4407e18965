// replication_bench: what server replication (PS_REPLICATION=k) costs, and how fast a job
// recovers from a dead primary.
//
//   replication_bench [--rounds R] [--kills N] [--max-keys K]
//
// Started without DMLC_ROLE it is the driver; every node is a copy of this program.
//  - throughput: 3 servers, 1 worker; for k = 1, 2, 3 (interleaved, R times) the worker times
//    ZPush and ZPushPull of 1e3, 1e5 and 1e6 keys spread over every server's range (the best of
//    a few transfers). Printed: the median of each, and its ratio to k = 1 (1.0: free).
//  - aggregation: 3 servers, 3 workers, k = 2, KVServerSyncHandle, 1e5 keys: the time of a
//    synchronous round when the handle replicates each round's sum once ("after aggregation")
//    and when each push is replicated ("replay", the handle wrapped in a lambda), next to k = 1.
//  - failover: 3 servers with k = 2, 1 worker pushing one key per range in a loop; the driver
//    kills (SIGKILL) the primary of rank 1 and the worker reports the time from the kill to the
//    completion of the first push issued after it (which went to the dead primary): median
//    and worst of N kills; then the same for a frozen primary (SIGSTOP), bounded by the heartbeat
//    timeout (PS_HEARTBEAT_TIMEOUT=1 here).
// Every line is JSON; the last ones are the summary.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
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

void Append(const std::string& path, const std::string& line) {
  std::ofstream(path, std::ios::app) << line << "\n";
}

// Keys spread evenly over the key space: every server's range gets n / servers of them.
ps::SArray<ps::Key> SpreadKeys(int n) {
  ps::SArray<ps::Key> keys(n);
  const ps::Key step = ps::kMaxKey / static_cast<ps::Key>(n);
  for (int i = 0; i < n; ++i) keys[i] = static_cast<ps::Key>(i) * step;
  return keys;
}

// ---- nodes ----------------------------------------------------------------------------------

int ThroughputWorker(const std::string& out, int max_keys) {
  ps::KVWorker<float> kv(0, 0);
  ps::Postoffice::Get()->Barrier(0, ps::kServerGroup + ps::kWorkerGroup);
  const std::string k = GetEnv("PS_REPLICATION", "1");
  for (int n : {1000, 100000, 1000000}) {
    if (n > max_keys) continue;
    ps::SArray<ps::Key> keys = SpreadKeys(n);
    ps::SArray<float> vals(n, 1.0f), got;
    const int reps = n >= 1000000 ? 3 : n >= 100000 ? 5 : 50;
    kv.Wait(kv.ZPush(keys, vals));  // the keys exist from here on
    for (const char* op : {"push", "pushpull"}) {
      double best = 1e9;
      for (int r = 0; r < reps; ++r) {
        double t0 = Now();
        if (op[4] == 0) {
          kv.Wait(kv.ZPush(keys, vals));
        } else {
          got.clear();
          kv.Wait(kv.ZPushPull(keys, vals, &got));
        }
        best = std::min(best, Now() - t0);
      }
      std::ostringstream line;
      line << "{\"case\": \"throughput\", \"k\": " << k << ", \"keys\": " << n << ", \"op\": \""
           << op << "\", \"ms\": " << best * 1e3 << "}";
      Append(out, line.str());
    }
  }
  ps::Postoffice::Get()->Barrier(0, ps::kServerGroup + ps::kWorkerGroup);
  return 0;
}

int SyncWorker(const std::string& out) {
  ps::KVWorker<float> kv(0, 0);
  ps::Postoffice::Get()->Barrier(0, ps::kServerGroup + ps::kWorkerGroup);
  const int n = 100000, rounds = 20;
  ps::SArray<ps::Key> keys = SpreadKeys(n);
  ps::SArray<float> vals(n, 1.0f);
  kv.Wait(kv.ZPush(keys, vals));
  std::vector<double> times;
  for (int r = 0; r < rounds; ++r) {
    double t0 = Now();
    kv.Wait(kv.ZPush(keys, vals));
    times.push_back(Now() - t0);
  }
  if (ps::MyRank() == 0) {
    std::ostringstream line;
    line << "{\"case\": \"sync\", \"mode\": \"" << GetEnv("BENCH_SYNC_MODE")
         << "\", \"ms\": " << Median(times) * 1e3 << "}";
    Append(out, line.str());
  }
  ps::Postoffice::Get()->Barrier(0, ps::kServerGroup + ps::kWorkerGroup);
  return 0;
}

int FailoverWorker(const std::string& dir) {
  ps::KVWorker<float> kv(0, 0);
  ps::Postoffice::Get()->Barrier(0, ps::kServerGroup + ps::kWorkerGroup);
  ps::SArray<ps::Key> keys = SpreadKeys(ps::NumServers());
  ps::SArray<float> vals(keys.size(), 1.0f);
  std::vector<std::pair<double, double>> pushes;  // (issued, completed)
  Append(dir + "/started", "1");
  const double start = Now();
  double killed = 0;
  // Until a push issued after the driver's kill completed (or a deadline).
  while (Now() - start < 30) {
    const double issued = Now();
    kv.Wait(kv.ZPush(keys, vals));
    pushes.emplace_back(issued, Now());
    if (killed == 0 && Exists(dir + "/killed")) std::ifstream(dir + "/killed") >> killed;
    if (killed > 0 && pushes.back().first >= killed) break;
  }
  // Every push has a slice for the victim's range: the first one issued after the kill went
  // to the dead primary (or waited for the failover) and completed on the new one.
  double first = 0;
  for (const auto& p : pushes) {
    if (killed > 0 && p.first >= killed) {
      first = p.second;
      break;
    }
  }
  std::ostringstream line;
  line << "{\"case\": \"failover\", \"how\": \"" << GetEnv("BENCH_KILL")
       << "\", \"seconds\": " << (killed > 0 && first > 0 ? first - killed : -1) << "}";
  Append(dir + "/results", line.str());
  Append(dir + "/finished", "1");
  return 0;
}

int Server(const std::string& mode, const std::string& dir) {
  ps::KVServer<float> server(0);
  if (mode == "sync") {
    ps::KVServerSyncHandle<float> sync;
    if (GetEnv("BENCH_SYNC_MODE") == "replay") {
      // A lambda has no ReplicaUpdate: every push is replicated, not the round's sum.
      server.set_request_handle([sync](const ps::KVMeta& m, const ps::KVPairs<float>& d,
                                       ps::KVServer<float>* s) mutable { sync(m, d, s); });
    } else {
      server.set_request_handle(sync);
    }
  } else {
    server.set_request_handle(ps::KVServerDefaultHandle<float>());
  }
  if (!dir.empty()) {
    std::ostringstream pid;
    pid << getpid();
    Append(dir + "/server-" + std::to_string(ps::MyRank()), pid.str());
  }
  ps::Postoffice::Get()->Barrier(0, ps::kServerGroup + ps::kWorkerGroup);
  if (mode != "failover") ps::Postoffice::Get()->Barrier(0, ps::kServerGroup + ps::kWorkerGroup);
  ps::Finalize(0, true);
  return 0;
}

int Node() {
  const std::string mode = GetEnv("BENCH_MODE"), out = GetEnv("BENCH_OUT");
  ps::Start(0);
  int status = 0;
  if (ps::IsServer()) return Server(mode, mode == "failover" ? out : "");
  if (ps::IsWorker()) {
    if (mode == "throughput")
      status = ThroughputWorker(out, std::atoi(GetEnv("BENCH_MAX_KEYS").c_str()));
    if (mode == "sync") status = SyncWorker(out);
    if (mode == "failover") status = FailoverWorker(out);
  }
  ps::Finalize(0, true);
  return status;
}

// ---- driver ---------------------------------------------------------------------------------

std::vector<std::string> Lines(const std::string& path) {
  std::vector<std::string> lines;
  std::ifstream in(path);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

double Field(const std::string& line, const std::string& key) {
  size_t at = line.find("\"" + key + "\": ");
  return at == std::string::npos ? -1 : std::atof(line.c_str() + at + key.size() + 4);
}

std::string Text(const std::string& line, const std::string& key) {
  size_t at = line.find("\"" + key + "\": \"");
  if (at == std::string::npos) return "";
  at += key.size() + 5;
  return line.substr(at, line.find('"', at) - at);
}

// One failover run: returns the worker's figure (seconds), or -1.
double FailoverRun(char** argv, const std::string& tmp, int run, bool freeze) {
  const std::string dir = tmp + "/failover-" + std::to_string(run);
  mkdir(dir.c_str(), 0700);
  std::vector<std::string> base = {
      "DMLC_PS_ROOT_URI=127.0.0.1", "DMLC_PS_ROOT_PORT=" + std::to_string(ps::test::FreePort()),
      "DMLC_NUM_SERVER=3",          "DMLC_NUM_WORKER=1",
      "PS_REPLICATION=2",           "BENCH_MODE=failover",
      "BENCH_OUT=" + dir,           "BENCH_KILL=" + std::string(freeze ? "SIGSTOP" : "SIGKILL"),
      "PS_HEARTBEAT_INTERVAL=0.2",  "PS_HEARTBEAT_TIMEOUT=1"};
  std::vector<pid_t> pids;
  for (const char* role : {"scheduler", "server", "server", "server", "worker"}) {
    std::vector<std::string> env = base;
    env.push_back(std::string("DMLC_ROLE=") + role);
    pids.push_back(SpawnSelf(argv, env));
  }
  auto wait_for = [](const std::string& path) {
    for (int i = 0; i < 3000 && !Exists(path); ++i) usleep(10000);
    return Exists(path);
  };
  double figure = -1;
  if (wait_for(dir + "/started") && wait_for(dir + "/server-1")) {
    usleep(200000);  // let the worker run a while first
    pid_t victim = 0;
    std::ifstream(dir + "/server-1") >> victim;
    std::ofstream(dir + "/killed.tmp") << std::fixed << Now();
    kill(victim, freeze ? SIGSTOP : SIGKILL);
    rename((dir + "/killed.tmp").c_str(), (dir + "/killed").c_str());
    if (wait_for(dir + "/finished")) {
      for (const std::string& l : Lines(dir + "/results")) figure = Field(l, "seconds");
    }
    if (freeze) kill(victim, SIGKILL);
  }
  for (pid_t p : pids) kill(p, SIGKILL);
  for (pid_t p : pids) waitpid(p, nullptr, 0);
  if (figure < 0) std::fprintf(stderr, "failover run %d gave no figure (%s)\n", run, dir.c_str());
  return figure;
}

int Driver(char** argv, int rounds, int kills, int max_keys) {
  char tmpl[] = "/tmp/replication_bench.XXXXXX";
  const std::string tmp = mkdtemp(tmpl);
  const std::string results = tmp + "/results";
  // Throughput: k = 1, 2, 3 interleaved, "rounds" times.
  for (int r = 0; r < rounds; ++r) {
    for (int k : {1, 2, 3}) {
      ps::test::RunSelfJob(argv, 3,
                           {"PS_REPLICATION=" + std::to_string(k), "BENCH_MODE=throughput",
                            "BENCH_OUT=" + results, "BENCH_MAX_KEYS=" + std::to_string(max_keys)});
    }
    for (const char* mode : {"none", "after_aggregation", "replay"}) {
      std::string k = std::string(mode) == "none" ? "1" : "2";
      ps::test::RunSelfJob(argv, 3,
                           {"PS_REPLICATION=" + k, "BENCH_MODE=sync", "BENCH_OUT=" + results,
                            std::string("BENCH_SYNC_MODE=") + mode},
                           3);
    }
  }
  std::map<std::string, std::vector<double>> ms;
  for (const std::string& l : Lines(results)) {
    if (Text(l, "case") == "throughput") {
      ms[Text(l, "op") + " " + std::to_string(static_cast<int>(Field(l, "keys"))) +
         " k=" + std::to_string(static_cast<int>(Field(l, "k")))]
          .push_back(Field(l, "ms"));
    } else if (Text(l, "case") == "sync") {
      ms["sync " + Text(l, "mode")].push_back(Field(l, "ms"));
    }
  }
  for (const char* op : {"push", "pushpull"}) {
    for (int n : {1000, 100000, 1000000}) {
      if (n > max_keys) continue;
      const std::string key = std::string(op) + " " + std::to_string(n) + " k=";
      const double base = Median(ms[key + "1"]);
      for (int k : {1, 2, 3}) {
        const double m = Median(ms[key + std::to_string(k)]);
        std::printf(
            "{\"case\": \"throughput\", \"op\": \"%s\", \"keys\": %d, \"k\": %d, \"ms\": %.3f, "
            "\"keys_per_s\": %.0f, \"throughput_vs_k1\": %.3f, \"runs\": %zu}\n",
            op, n, k, m, m > 0 ? n / (m * 1e-3) : 0, m > 0 ? base / m : 0,
            ms[key + std::to_string(k)].size());
      }
    }
  }
  const double none = Median(ms["sync none"]);
  for (const char* mode : {"none", "after_aggregation", "replay"}) {
    const double m = Median(ms[std::string("sync ") + mode]);
    std::printf(
        "{\"case\": \"sync_round\", \"keys\": 100000, \"workers\": 3, \"replication\": \"%s\", "
        "\"round_ms\": %.3f, \"vs_unreplicated\": %.3f}\n",
        mode, m, none > 0 ? m / none : 0);
  }
  for (bool freeze : {false, true}) {
    std::vector<double> got;
    for (int i = 0; i < (freeze ? std::max(1, kills / 3) : kills); ++i) {
      double s = FailoverRun(argv, tmp, i + (freeze ? 1000 : 0), freeze);
      if (s >= 0) got.push_back(s);
    }
    double worst = got.empty() ? -1 : *std::max_element(got.begin(), got.end());
    std::printf(
        "{\"case\": \"failover\", \"how\": \"%s\", \"runs\": %zu, \"median_s\": %.3f, "
        "\"worst_s\": %.3f, \"paper_s\": 0.8}\n",
        freeze ? "SIGSTOP (heartbeat timeout 1 s)" : "SIGKILL", got.size(), Median(got), worst);
  }
  std::fflush(stdout);
  std::string rm = "rm -rf " + tmp;
  if (std::getenv("BENCH_KEEP")) rm = "true";
  if (std::system(rm.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", tmp.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (std::getenv("DMLC_ROLE")) return Node();
  return Driver(argv, IntFlag(argc, argv, "--rounds", 3), IntFlag(argc, argv, "--kills", 10),
                IntFlag(argc, argv, "--max-keys", 1000000));
}
