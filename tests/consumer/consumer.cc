// A program that knows nothing of Slackline but its installed interface: it includes only
// "ps/ps.h" and is built with `pkg-config --cflags --libs ps`. Run as a job of one server and
// two workers; exits 0 when the pulled sums are right.
#include <cstdio>
#include <vector>

#include "ps/ps.h"

int main(int argc, char* argv[]) {
  ps::Start(0, argv[0]);
  int status = 0;
  if (ps::IsServer()) {
    ps::KVServer<float> server(0);
    server.set_request_handle(ps::KVServerDefaultHandle<float>());
    ps::Postoffice::Get()->Barrier(0, ps::kServerGroup + ps::kWorkerGroup);
  } else if (ps::IsWorker()) {
    ps::KVWorker<float> kv(0, 0);
    std::vector<ps::Key> keys = {1, 3, ps::kMaxKey};
    std::vector<float> vals = {1, 2, 3};
    for (int i = 0; i < 10; ++i) kv.Wait(kv.Push(keys, vals));
    ps::Postoffice::Get()->Barrier(0, ps::kWorkerGroup);  // every worker has pushed
    std::vector<float> out;
    kv.Wait(kv.Pull(keys, &out));
    for (size_t i = 0; i < keys.size(); ++i) {
      float want = 10 * vals[i] * ps::NumWorkers();
      if (out[i] != want) {
        LL << "key " << keys[i] << ": pulled " << out[i] << ", expected " << want;
        status = 1;
      }
    }
    std::printf("worker %d pulled %g %g %g\n", ps::MyRank(), out[0], out[1], out[2]);
    ps::Postoffice::Get()->Barrier(0, ps::kServerGroup + ps::kWorkerGroup);
  }
  ps::Finalize(0, true);
  return status;
}
