// A job whose nodes can be watched: run with PS_METRICS_PORT set, through tracker/launch.py.
//
// Workers push and pull the same keys, round after round, until the file --stop names exists
// (a deadline of 60 s ends them anyway); servers run KVServerDefaultHandle. Then every node
// meets in a barrier, prints one JSON line with its own traffic counters per peer and the
// rounds it ran, and waits until the file --release names exists before it finalizes, so that
// a test can scrape the final figures while the node still serves them.
//
//   metrics_job --stop FILE --release FILE [--keys N]
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "common/programs.h"
#include "ps/ps.h"

namespace {

std::string Flag(int argc, char** argv, const std::string& name) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == name) return argv[i + 1];
  }
  return "";
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

void PrintTraffic(int rounds, double sum) {
  ps::Van* van = ps::Postoffice::Get()->van();
  std::string out = "{\"role\": \"" + std::string(ps::IsServer() ? "server" : "worker") +
                    "\", \"rank\": " + std::to_string(ps::MyRank()) +
                    ", \"rounds\": " + std::to_string(rounds) +
                    ", \"sum\": " + std::to_string(sum) + ", \"peers\": {";
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

}  // namespace

int main(int argc, char** argv) {
  const std::string stop = Flag(argc, argv, "--stop");
  const std::string release = Flag(argc, argv, "--release");
  const size_t n = static_cast<size_t>(ps::test::IntFlag(argc, argv, "--keys", 1000));
  if (stop.empty() || release.empty()) {
    std::fprintf(stderr, "metrics_job: error: give --stop FILE and --release FILE\n");
    return 2;
  }
  ps::Start(0, argv[0]);
  const int both = ps::kServerGroup + ps::kWorkerGroup;
  int status = 0;
  if (ps::IsServer()) {
    ps::KVServer<float> server(0);
    server.set_request_handle(ps::KVServerDefaultHandle<float>());
    ps::Postoffice::Get()->Barrier(0, both);  // the handle is set
    ps::Postoffice::Get()->Barrier(0, both);  // the workers are done
    PrintTraffic(0, 0);
    if (!WaitForFile(release)) status = 3;
  } else if (ps::IsWorker()) {
    ps::KVWorker<float> kv(0, 0);
    ps::Postoffice::Get()->Barrier(0, both);
    ps::SArray<ps::Key> keys(n);
    ps::SArray<float> vals(n, 1.0f);
    for (size_t i = 0; i < n; ++i) keys[i] = static_cast<ps::Key>(i) * (ps::kMaxKey / n);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    int rounds = 0;
    ps::SArray<float> out;
    while (access(stop.c_str(), F_OK) != 0 && std::chrono::steady_clock::now() < deadline) {
      kv.Wait(kv.ZPush(keys, vals));
      kv.Wait(kv.ZPull(keys, &out));
      ++rounds;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ps::Postoffice::Get()->Barrier(0, ps::kWorkerGroup);  // every worker has pushed
    kv.Wait(kv.ZPull(keys, &out));
    double sum = 0;
    for (float v : out) sum += v;
    ps::Postoffice::Get()->Barrier(0, both);
    PrintTraffic(rounds, sum);
    if (!WaitForFile(release)) status = 3;
  } else if (!WaitForFile(release)) {
    status = 3;
  }
  ps::Finalize(0, true);
  return status;
}
