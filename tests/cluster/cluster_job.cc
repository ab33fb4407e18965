// The job the simulated cluster's tests run across hosts. Run one copy per node with the DMLC_*
// variables set (the launcher does that); it takes its role from DMLC_ROLE.
//
// Workers push the same keys once per round and meet in a barrier of all workers after each
// round, printing "worker R round N" (so a test sees the job pause while a link is down); then
// they pull and check every sum exactly. Servers run KVServerDefaultHandle. Exit 0 when every
// number is right.
//
//   cluster_job [--rounds 40] [--keys 20000] [--round-ms 50]
#include <chrono>
#include <cstdio>
#include <thread>

#include "common/programs.h"
#include "ps/ps.h"

using ps::test::IntFlag;

int main(int argc, char** argv) {
  const int rounds = IntFlag(argc, argv, "--rounds", 40);
  const size_t n = static_cast<size_t>(IntFlag(argc, argv, "--keys", 20000));
  const int round_ms = IntFlag(argc, argv, "--round-ms", 50);
  ps::Start(0, argv[0]);
  int status = 0;
  const int both = ps::kServerGroup + ps::kWorkerGroup;
  if (ps::IsServer()) {
    ps::KVServer<float> server(0);
    server.set_request_handle(ps::KVServerDefaultHandle<float>());
    ps::Postoffice::Get()->Barrier(0, both);  // the handle is set
    ps::Postoffice::Get()->Barrier(0, both);  // the workers are done
  } else if (ps::IsWorker()) {
    ps::KVWorker<float> kv(0, 0);
    ps::Postoffice::Get()->Barrier(0, both);
    const int rank = ps::MyRank();
    std::printf("worker rank %d of %d\n", rank, ps::NumWorkers());
    // Keys over the whole key space, so on every server; values are quarters, whose sums
    // floats hold exactly.
    ps::SArray<ps::Key> keys(n);
    ps::SArray<float> vals(n);
    for (size_t i = 0; i < n; ++i) {
      keys[i] = static_cast<ps::Key>(i) * (ps::kMaxKey / n);
      vals[i] = 0.25f * static_cast<float>((i % 13 + 1) * (rank + 1));
    }
    for (int r = 0; r < rounds; ++r) {
      kv.Wait(kv.ZPush(keys, vals));
      ps::Postoffice::Get()->Barrier(0, ps::kWorkerGroup);
      std::printf("worker %d round %d\n", rank, r);
      std::fflush(stdout);
      if (round_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(round_ms));
    }
    ps::SArray<float> out;
    kv.Wait(kv.ZPull(keys, &out));
    const int w = ps::NumWorkers();
    const float scale = static_cast<float>(rounds * w * (w + 1) / 2);
    size_t wrong = 0;
    for (size_t i = 0; i < n; ++i) {
      if (out[i] != 0.25f * static_cast<float>(i % 13 + 1) * scale) ++wrong;
    }
    std::printf("worker %d: %zu sums, %zu wrong\n", rank, n, wrong);
    std::fflush(stdout);
    if (wrong) status = 2;
    ps::Postoffice::Get()->Barrier(0, both);
  }
  ps::Finalize(0, true);
  return status;
}
