// A key-value job for server replication (PS_REPLICATION): servers keep KVServerDefaultHandle
// (or KVServerSyncHandle with --sync); every worker pushes distinct values for keys spread over
// every server's range, round after round, then all pull and check that each key holds
// exactly the sum of everything every worker pushed. A server may be killed meanwhile: with
// enough replicas the sums must not change.
//
//   replication_job [--rounds N] [--keys K] [--round-ms MS] [--sync 1] [--in-flight F]
//
// Worker w pushes (w + 1) + (round % 5) for every key in each round; it keeps F rounds in
// flight (F = 1 with --sync: a synchronous round completes only when every worker pushed).
// Each worker prints "worker W round R" as it goes and, at the end, one JSON line
// {"rank": W, "exact": true|false, "keys": K, "want": ..., "wrong": n}. Exit 0 when exact.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <thread>
#include <vector>

#include "common/programs.h"
#include "ps/ps.h"

using ps::test::IntFlag;

namespace {

float Value(int worker, int round) { return static_cast<float>(worker + 1 + round % 5); }

}  // namespace

int main(int argc, char** argv) {
  const int rounds = IntFlag(argc, argv, "--rounds", 100);
  const int num_keys = IntFlag(argc, argv, "--keys", 30);
  const int round_ms = IntFlag(argc, argv, "--round-ms", 0);
  const bool sync = IntFlag(argc, argv, "--sync", 0) != 0;
  const int in_flight = sync ? 1 : std::max(1, IntFlag(argc, argv, "--in-flight", 4));
  ps::Start(0, argv[0]);
  const int both = ps::kServerGroup + ps::kWorkerGroup;
  int status = 0;
  if (ps::IsServer()) {
    std::printf("server rank %d pid %d%s\n", ps::MyRank(), static_cast<int>(getpid()),
                ps::Postoffice::Get()->is_recovery() ? " (a replacement)" : "");
    std::fflush(stdout);
    ps::KVServer<float> server(0);
    if (sync) {
      server.set_request_handle(ps::KVServerSyncHandle<float>());
    } else {
      server.set_request_handle(ps::KVServerDefaultHandle<float>());
    }
    // A replacement server joins the running job: the others passed this barrier long ago.
    if (!ps::Postoffice::Get()->is_recovery()) ps::Postoffice::Get()->Barrier(0, both);
    ps::Finalize(0, true);
    std::printf("server done: %zu requests tracked for exactly-once\n",
                server.replication_tracked());
    return 0;
  }
  if (ps::IsWorker()) {
    const int rank = ps::MyRank();
    std::printf("worker rank %d of %d\n", rank, ps::NumWorkers());
    std::fflush(stdout);
    ps::KVWorker<float> kv(0, 0);
    // Keys spread evenly over the whole key space: every server's range gets some.
    std::vector<ps::Key> keys(num_keys);
    const ps::Key step = ps::kMaxKey / static_cast<ps::Key>(num_keys);
    for (int i = 0; i < num_keys; ++i) keys[i] = static_cast<ps::Key>(i) * step;
    ps::Postoffice::Get()->Barrier(0, both);
    std::deque<int> sent;
    for (int r = 0; r < rounds; ++r) {
      std::vector<float> vals(num_keys, Value(rank, r));
      sent.push_back(kv.Push(keys, vals));
      if (static_cast<int>(sent.size()) >= in_flight) {
        kv.Wait(sent.front());
        sent.pop_front();
      }
      std::printf("worker %d round %d\n", rank, r);
      std::fflush(stdout);
      if (round_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(round_ms));
    }
    for (int ts : sent) kv.Wait(ts);
    ps::Postoffice::Get()->Barrier(0, ps::kWorkerGroup);  // every push is in
    std::vector<float> got;
    kv.Wait(kv.Pull(keys, &got));
    double want = 0;
    for (int w = 0; w < ps::NumWorkers(); ++w) {
      for (int r = 0; r < rounds; ++r) want += Value(w, r);
    }
    int wrong = 0;
    for (float v : got) wrong += static_cast<double>(v) == want ? 0 : 1;
    if (static_cast<int>(got.size()) != num_keys) wrong = num_keys;
    std::printf(
        "{\"rank\": %d, \"exact\": %s, \"keys\": %d, \"want\": %.0f, \"first\": %.0f, "
        "\"wrong\": %d}\n",
        rank, wrong ? "false" : "true", num_keys, want, got.empty() ? -1.0 : got[0], wrong);
    std::fflush(stdout);
    if (wrong) status = 2;
  }
  ps::Finalize(0, true);
  return status;
}
