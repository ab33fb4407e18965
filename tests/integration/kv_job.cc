// A key-value job for the process tests. Run one copy per node with the DMLC_* variables set;
// filters come from PS_FILTERS like in any ps-lite program.
//
// Workers push "rounds" times to the same keys, then pull after every worker has pushed, and
// check each sum exactly; servers run KVServerDefaultHandle. Each worker prints its sums'
// total, which is the same with and without filters. Exit 0 when every number is right.
//
//   kv_job [--rounds N] [--keys N]
#include <cstdio>

#include "common/programs.h"
#include "ps/ps.h"

using ps::test::IntFlag;

int main(int argc, char** argv) {
  const int rounds = IntFlag(argc, argv, "--rounds", 10);
  const size_t n = static_cast<size_t>(IntFlag(argc, argv, "--keys", 20000));
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
    // Keys over the whole key space, shared by every worker; values are quarters, whose sums
    // floats hold exactly.
    ps::SArray<ps::Key> keys(n);
    ps::SArray<float> vals(n);
    for (size_t i = 0; i < n; ++i) {
      keys[i] = static_cast<ps::Key>(i) * (ps::kMaxKey / n);
      vals[i] = 0.25f * static_cast<float>((i % 13 + 1) * (rank + 1));
    }
    for (int r = 0; r < rounds; ++r) kv.Wait(kv.ZPush(keys, vals));
    ps::Postoffice::Get()->Barrier(0, ps::kWorkerGroup);  // every worker has pushed
    ps::SArray<float> out;
    kv.Wait(kv.ZPull(keys, &out));
    const int w = ps::NumWorkers();
    const float scale = static_cast<float>(rounds * w * (w + 1) / 2);
    size_t wrong = 0;
    double total = 0;
    for (size_t i = 0; i < n; ++i) {
      if (out[i] != 0.25f * static_cast<float>(i % 13 + 1) * scale) ++wrong;
      total += out[i];
    }
    std::printf("worker %d: %zu sums, %zu wrong, total %.2f\n", rank, n, wrong, total);
    if (wrong) status = 2;
    ps::Postoffice::Get()->Barrier(0, both);
  }
  ps::Finalize(0, true);
  return status;
}
