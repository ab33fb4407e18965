// A key-value job that checkpoints, for the checkpoint tests. Run one copy per node with the
// DMLC_* and PS_CHECKPOINT_* variables set (or through tracker/launch.py).
//
// Workers run steps up to --steps in all: each step every worker pushes to keys spread over the
// whole key space, waits, and calls KVWorker::Checkpoint(step + 1, "done=<step + 1>"). A job
// that resumes starts at the step of ps::LatestCheckpoint() (its app state is checked against
// it). At the end every worker pulls every key and checks each value exactly: key i holds
// 0.25 * (i % 13 + 1) * steps * W(W+1)/2, whatever number of servers wrote the checkpoint.
// With --ragged 1 key i holds i % 3 + 1 values (lens). With --step-ms N each step takes at
// least N ms (so a test can kill a node mid-run). Worker 0 prints one JSON line:
// {"start": S, "steps": N, "keys": K, "wrong": W, "exact": true}. Exit 0 when every number is
// right.
//
//   checkpoint_job [--steps N] [--keys N] [--ragged 0|1] [--step-ms N] [--double 0|1]
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "common/programs.h"
#include "ps/ps.h"

using ps::test::IntFlag;

template <typename Val>
int Run(int argc, char** argv) {
  const int steps = IntFlag(argc, argv, "--steps", 10);
  const size_t n = static_cast<size_t>(IntFlag(argc, argv, "--keys", 5000));
  const bool ragged = IntFlag(argc, argv, "--ragged", 0) != 0;
  const int step_ms = IntFlag(argc, argv, "--step-ms", 0);
  ps::Start(0, argv[0]);
  int status = 0;
  if (ps::IsServer()) {
    ps::KVServer<Val> server(0);
    server.set_request_handle(ps::KVServerDefaultHandle<Val>());
    ps::Finalize(0, true);
    return 0;
  }
  if (ps::IsWorker()) {
    ps::KVWorker<Val> kv(0, 0);
    const int rank = ps::MyRank();
    int start = 0;
    if (auto ck = ps::LatestCheckpoint()) {
      start = ck->step;
      if (ck->app_state != "done=" + std::to_string(start)) {
        std::fprintf(stderr, "checkpoint step %d has app state '%s'\n", start,
                     ck->app_state.c_str());
        status = 3;
      }
    }
    std::vector<ps::Key> keys(n);
    std::vector<int> lens;
    std::vector<Val> vals;
    for (size_t i = 0; i < n; ++i) {
      keys[i] = static_cast<ps::Key>(i) * (ps::kMaxKey / n);
      const int len = ragged ? static_cast<int>(i % 3 + 1) : 1;
      if (ragged) lens.push_back(len);
      for (int j = 0; j < len; ++j) {
        vals.push_back(static_cast<Val>(0.25 * static_cast<double>((i % 13 + 1) * (rank + 1))));
      }
    }
    for (int s = start; s < steps; ++s) {
      const auto t0 = std::chrono::steady_clock::now();
      kv.Wait(kv.Push(keys, vals, lens));
      std::this_thread::sleep_until(t0 + std::chrono::milliseconds(step_ms));
      kv.Checkpoint(s + 1, "done=" + std::to_string(s + 1));
      if (rank == 0) std::printf("step %d\n", s + 1), std::fflush(stdout);
    }
    ps::Postoffice::Get()->Barrier(0, ps::kWorkerGroup);  // every worker has pushed
    std::vector<Val> out;
    std::vector<int> out_lens;
    kv.Wait(kv.Pull(keys, &out, &out_lens));
    const int w = ps::NumWorkers();
    const double scale = static_cast<double>(steps) * w * (w + 1) / 2;
    size_t wrong = 0, at = 0;
    for (size_t i = 0; i < n; ++i) {
      const int len = ragged ? static_cast<int>(i % 3 + 1) : 1;
      if (out_lens[i] != len) {
        ++wrong;
        break;
      }
      for (int j = 0; j < len; ++j, ++at) {
        if (out[at] != static_cast<Val>(0.25 * static_cast<double>(i % 13 + 1) * scale)) ++wrong;
      }
    }
    if (rank == 0) {
      std::printf("{\"start\": %d, \"steps\": %d, \"keys\": %zu, \"wrong\": %zu, \"exact\": %s}\n",
                  start, steps, n, wrong, wrong ? "false" : "true");
    }
    if (wrong) status = 2;
  }
  ps::Finalize(0, true);
  return status;
}

int main(int argc, char** argv) {
  return IntFlag(argc, argv, "--double", 0) ? Run<double>(argc, argv) : Run<float>(argc, argv);
}
