// A job whose nodes can be watched: run with PS_METRICS_PORT set, through tracker/launch.py.
//
// Workers push and pull the same keys, round after round, until the file --stop names exists
// (a deadline of 60 s ends them anyway); each round issues the push and the pull at once, so
// that a consistency model (--consistency) can hold the pull back. Servers run
// KVServerDefaultHandle. With --ssp-clocks N, every worker then runs N clocks of an SSP table
// (app 1, staleness 1): it reads 10 rows, adds 1 to each and clocks. With --recreate, each
// worker first builds and drops a KVWorker of app 2 twice, as a program that makes a worker
// for each phase would. Then every node meets in a barrier, prints one JSON line with its own
// traffic counters per peer, the rounds it ran, its consistency and SSP figures, and waits
// until the file --release names exists before it finalizes, so that a test can scrape the
// final figures while the node still serves them.
//
//   metrics_job --stop FILE --release FILE [--keys N] [--consistency MODEL] [--ssp-clocks N]
//               [--recreate]
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "common/programs.h"
#include "ps/ps.h"
#include "ps/ssp_table.h"

namespace {

constexpr int kSSPApp = 1, kSSPRows = 10;

std::string Flag(int argc, char** argv, const std::string& name) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == name) return argv[i + 1];
  }
  return "";
}

bool HasFlag(int argc, char** argv, const std::string& name) {
  for (int i = 1; i < argc; ++i) {
    if (argv[i] == name) return true;
  }
  return false;
}

// Waits until "path" exists, for at most 60 s. Returns whether it does.
bool WaitForFile(const std::string& path) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (access(path.c_str(), F_OK) != 0) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

std::string Number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

std::string ConsistencyJson(const ps::ConsistencyStats& s) {
  return "{\"requests\": " + std::to_string(s.requests) +
         ", \"max_in_flight\": " + std::to_string(s.max_in_flight) +
         ", \"held_back\": " + std::to_string(s.held_back) +
         ", \"held_back_seconds\": " + Number(s.held_back_seconds) +
         ", \"deferred\": " + std::to_string(s.deferred) + "}";
}

std::string SSPJson(const ps::SSPStats& s) {
  std::string staleness;
  for (uint64_t n : s.observed_staleness) {
    staleness += (staleness.empty() ? "" : ", ") + std::to_string(n);
  }
  return "{\"reads\": " + std::to_string(s.reads) +
         ", \"cache_hits\": " + std::to_string(s.cache_hits) +
         ", \"blocked_reads\": " + std::to_string(s.blocked_reads) +
         ", \"blocked_seconds\": " + Number(s.blocked_seconds) +
         ", \"clocks\": " + std::to_string(s.clocks) +
         ", \"global_clock\": " + std::to_string(s.global_clock) + ", \"staleness\": [" +
         staleness + "]}";
}

// One JSON line: the node's traffic per peer and what "extra" adds (", \"name\": value...").
void PrintFigures(int rounds, double sum, const std::string& extra) {
  ps::Van* van = ps::Postoffice::Get()->van();
  std::string out = "{\"role\": \"" + std::string(ps::IsServer() ? "server" : "worker") +
                    "\", \"rank\": " + std::to_string(ps::MyRank()) +
                    ", \"rounds\": " + std::to_string(rounds) + ", \"sum\": " + Number(sum) +
                    extra + ", \"peers\": {";
  bool first = true;
  for (const auto& [id, t] : van->peer_traffic()) {
    if (id < 8) continue;  // the scheduler's share keeps moving with heartbeats
    out += std::string(first ? "" : ", ") + "\"" + (id % 2 ? "worker-" : "server-") +
           std::to_string(ps::Postoffice::IDtoRank(id)) + "\": [" + std::to_string(t.bytes_sent) +
           ", " + std::to_string(t.messages_sent) + ", " + std::to_string(t.bytes_received) + ", " +
           std::to_string(t.messages_received) + "]";
    first = false;
  }
  std::printf("%s}}\n", out.c_str());
  std::fflush(stdout);
}

void Check(const ps::Status& s) {
  if (!s.ok()) {
    std::fprintf(stderr, "metrics_job: error: %s\n", s.ToString().c_str());
    std::exit(1);
  }
}

// N clocks of the SSP table; returns column 0 of row 0 read at staleness 0 after the last.
double RunSSP(ps::SSPTableGroup* group, int clocks) {
  ps::SSPWorker worker(group, 0);
  ps::SSPTable table = worker.table(0);
  ps::SSPRow row;
  for (int c = 0; c < clocks; ++c) {
    for (int r = 0; r < kSSPRows; ++r) {
      Check(table.Get(r, &row));
      Check(table.Inc(r, 0, 1.0));
    }
    Check(worker.Clock());
  }
  Check(table.Get(0, &row, 0));
  return row.Get(0);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string stop = Flag(argc, argv, "--stop");
  const std::string release = Flag(argc, argv, "--release");
  const std::string model = Flag(argc, argv, "--consistency");
  const int ssp_clocks = ps::test::IntFlag(argc, argv, "--ssp-clocks", 0);
  const size_t n = static_cast<size_t>(ps::test::IntFlag(argc, argv, "--keys", 1000));
  if (stop.empty() || release.empty()) {
    std::fprintf(stderr, "metrics_job: error: give --stop FILE and --release FILE\n");
    return 2;
  }
  ps::Consistency consistency;
  if (!model.empty()) Check(ps::Consistency::Parse(model, &consistency));
  ps::Start(0, argv[0]);
  const int both = ps::kServerGroup + ps::kWorkerGroup;
  // Lives until the node is released, so that its figures are scraped to the end.
  std::unique_ptr<ps::SSPTableGroup> ssp;
  if (ssp_clocks > 0 && !ps::IsScheduler()) {
    ssp.reset(new ps::SSPTableGroup(kSSPApp, {{0, 1, 1}}));
  }
  int status = 0;
  if (ps::IsServer()) {
    ps::KVServer<float> server(0);
    server.set_request_handle(ps::KVServerDefaultHandle<float>());
    ps::Postoffice::Get()->Barrier(0, both);  // the handle is set
    ps::Postoffice::Get()->Barrier(0, both);  // the workers are done
    PrintFigures(0, 0, ssp ? ", \"ssp\": " + SSPJson(ssp->stats()) : "");
    if (!WaitForFile(release)) status = 3;
  } else if (ps::IsWorker()) {
    if (HasFlag(argc, argv, "--recreate")) {
      for (int i = 0; i < 2; ++i) ps::KVWorker<float> phase(2, 0);
    }
    ps::KVWorker<float> kv(0, 0);
    kv.set_consistency(consistency);
    ps::Postoffice::Get()->Barrier(0, both);
    ps::SArray<ps::Key> keys(n);
    ps::SArray<float> vals(n, 1.0f);
    for (size_t i = 0; i < n; ++i) keys[i] = static_cast<ps::Key>(i) * (ps::kMaxKey / n);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    int rounds = 0;
    ps::SArray<float> out;
    while (access(stop.c_str(), F_OK) != 0 && std::chrono::steady_clock::now() < deadline) {
      const int push = kv.ZPush(keys, vals);
      kv.Wait(kv.ZPull(keys, &out));
      kv.Wait(push);
      ++rounds;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ps::Postoffice::Get()->Barrier(0, ps::kWorkerGroup);  // every worker has pushed
    kv.Wait(kv.ZPull(keys, &out));
    double sum = 0;
    for (float v : out) sum += v;
    std::string extra;
    if (ssp) {
      const double ssp_sum = RunSSP(ssp.get(), ssp_clocks);
      extra = ", \"ssp_sum\": " + Number(ssp_sum) + ", \"ssp\": " + SSPJson(ssp->stats());
    }
    ps::Postoffice::Get()->Barrier(0, both);
    PrintFigures(rounds, sum,
                 ", \"consistency\": " + ConsistencyJson(kv.consistency_stats()) + extra);
    if (!WaitForFile(release)) status = 3;
  } else if (!WaitForFile(release)) {
    status = 3;
  }
  ssp.reset();
  ps::Finalize(0, true);
  return status;
}
