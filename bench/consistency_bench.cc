// consistency_bench: requests per second per worker, and the share of time workers are held
// back, under each consistency model, with one straggler.
//
//   consistency_bench [--workers W] [--requests N] [--delay-us D] [--compute-us C]
//                     [--straggler-us S]
//
// Started without DMLC_ROLE it is the driver: it starts a job of a scheduler, one server and W
// workers, all of them this program. The server answers each request D microseconds after it
// arrived, as if each took that long, many at once (a server busy elsewhere, or a long way
// off). Each worker issues N small PushPull requests (10 keys), "computing" for C microseconds
// before each (it sleeps), and waits for them all at the end; the last worker is the
// straggler, which computes for S instead. For each model (sequential, bounded 1, 2, 4 and 8,
// eventual), one JSON line: requests per second per worker (the mean of the others, and the
// straggler's), each also relative to sequential, the share of the time workers spent held back
// by the model (held_back_seconds / wall time), and the most requests in flight.
//
// The workers send their figures to a second app on the server, from which worker 0 reads them
// all and prints.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "common/programs.h"
#include "common/slow_server.h"
#include "common/test_util.h"
#include "ps/ps.h"

namespace {

using ps::test::IntFlag;
using ps::test::Now;
using Seconds = std::chrono::duration<double>;

const std::vector<std::string> kModels = {"sequential", "bounded:1", "bounded:2",
                                          "bounded:4",  "bounded:8", "eventual"};
constexpr int kFigures = 3;  // per worker and model: requests/s, held-back share, max in flight

// One worker's figures for "model".
std::vector<double> RunModel(ps::KVWorker<float>* kv, const std::string& model, int requests,
                             int compute_us) {
  ps::Consistency c;
  CHECK(ps::Consistency::Parse(model, &c).ok());
  kv->set_consistency(c);
  std::vector<ps::Key> keys(10);
  for (size_t i = 0; i < keys.size(); ++i) keys[i] = i * 1000;
  std::vector<float> vals(keys.size(), 1.0f);
  std::vector<std::vector<float>> outs(requests);
  std::vector<int> ts;
  ts.reserve(requests);
  ps::ConsistencyStats before = kv->consistency_stats();
  double start = Now();
  for (int i = 0; i < requests; ++i) {
    std::this_thread::sleep_for(std::chrono::microseconds(compute_us));
    ts.push_back(kv->PushPull(keys, vals, &outs[i]));
  }
  for (int t : ts) kv->Wait(t);
  double wall = Now() - start;
  ps::ConsistencyStats after = kv->consistency_stats();
  return {requests / wall, (after.held_back_seconds - before.held_back_seconds) / wall,
          static_cast<double>(after.max_in_flight)};
}

double Mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / v.size();
}

int RunNode(int argc, char** argv) {
  const int requests = IntFlag(argc, argv, "--requests", 300);
  const int delay_us = IntFlag(argc, argv, "--delay-us", 5000);
  const int compute_us = IntFlag(argc, argv, "--compute-us", 500);
  const int straggler_us = IntFlag(argc, argv, "--straggler-us", 2000);
  ps::Start(0);
  const int workers = ps::NumWorkers();
  if (ps::IsServer()) {
    ps::KVServer<float> server(0);
    ps::test::SlowServer slow(&server, std::chrono::microseconds(delay_us));
    ps::KVServer<double> results(1);
    results.set_request_handle(ps::KVServerDefaultHandle<double>());
    ps::Finalize(0, true);
    return 0;
  }
  if (ps::IsWorker()) {
    const int rank = ps::MyRank();
    const bool straggler = rank == workers - 1 && workers > 1;
    {
      ps::KVWorker<float> kv(0, 0);
      ps::KVWorker<double> results(1, 0);
      std::vector<ps::Key> mine;
      std::vector<double> figures;
      for (size_t m = 0; m < kModels.size(); ++m) {
        ps::Postoffice::Get()->Barrier(0, ps::kWorkerGroup);
        std::vector<double> f =
            RunModel(&kv, kModels[m], requests, straggler ? straggler_us : compute_us);
        mine.push_back(static_cast<ps::Key>(m * workers + rank));
        figures.insert(figures.end(), f.begin(), f.end());
      }
      results.Wait(results.Push(mine, figures));
      ps::Postoffice::Get()->Barrier(0, ps::kWorkerGroup);
      if (rank == 0) {
        std::vector<ps::Key> all;
        for (size_t k = 0; k < kModels.size() * workers; ++k) all.push_back(k);
        std::vector<double> got;
        results.Wait(results.Pull(all, &got));
        double sequential = 0, sequential_straggler = 0;
        for (size_t m = 0; m < kModels.size(); ++m) {
          std::vector<double> rate, held, in_flight;
          double straggler_rate = 0, straggler_held = 0;
          for (int w = 0; w < workers; ++w) {
            const double* f = &got[(m * workers + w) * kFigures];
            if (w == workers - 1 && workers > 1) {
              straggler_rate = f[0];
              straggler_held = f[1];
            } else {
              rate.push_back(f[0]);
            }
            held.push_back(f[1]);
            in_flight.push_back(f[2]);
          }
          if (m == 0) {
            sequential = Mean(rate);
            sequential_straggler = straggler_rate;
          }
          std::printf(
              "{\"model\":\"%s\",\"workers\":%d,\"requests\":%d,\"delay_us\":%d,"
              "\"compute_us\":%d,\"straggler_us\":%d,\"req_per_s\":%.0f,"
              "\"vs_sequential\":%.2f,\"straggler_req_per_s\":%.0f,"
              "\"straggler_vs_sequential\":%.2f,\"held_back\":%.3f,"
              "\"straggler_held_back\":%.3f,\"max_in_flight\":%.0f}\n",
              kModels[m].c_str(), workers, requests, delay_us, compute_us, straggler_us, Mean(rate),
              Mean(rate) / sequential, straggler_rate,
              sequential_straggler > 0 ? straggler_rate / sequential_straggler : 0, Mean(held),
              straggler_held, *std::max_element(in_flight.begin(), in_flight.end()));
          std::fflush(stdout);
        }
      }
    }
    ps::Finalize(0, true);
    return 0;
  }
  ps::Finalize(0, true);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (std::getenv("DMLC_ROLE")) return RunNode(argc, argv);
  const int workers = IntFlag(argc, argv, "--workers", 4);
  return ps::test::RunSelfJob(argv, 1, {"PS_HEARTBEAT_INTERVAL=0"}, workers) ? 1 : 0;
}
