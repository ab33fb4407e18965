// The library's own integration job. Run one copy per node with the DMLC_* variables set (the
// launcher does that); it takes its role from DMLC_ROLE.
//
// Workers send one SimpleApp request to every server per round and wait for all answers, then
// meet in a barrier of all workers. Servers count the requests and check, at the end, that they
// got exactly workers x rounds. Exit 0 when every number is right.
//
//   ps_job [--rounds N] [--round-ms MS] [--round-barrier 0|1] [--count-after-answer MS]
//          [--wait-in-callback RANK]
//
// --round-barrier 0: workers do not meet after each round; each waits for the servers only.
// --count-after-answer: servers count each request MS milliseconds after answering it, and
// check the count after Finalize (which returns once every request was handled).
// --wait-in-callback: the worker of rank RANK calls Wait from a response handler in round 3,
// which is an error that ends it (and with it the job).
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "common/programs.h"
#include "ps/ps.h"

using ps::test::IntFlag;

int main(int argc, char** argv) {
  const int rounds = IntFlag(argc, argv, "--rounds", 10);
  const int round_ms = IntFlag(argc, argv, "--round-ms", 0);
  const int count_after = IntFlag(argc, argv, "--count-after-answer", -1);
  const int wait_in_callback = IntFlag(argc, argv, "--wait-in-callback", -1);
  const bool round_barrier = IntFlag(argc, argv, "--round-barrier", 1) != 0;
  ps::Start(0, argv[0]);
  int status = 0;
  const int both = ps::kServerGroup + ps::kWorkerGroup;
  if (ps::IsServer()) {
    std::atomic<int> requests{0};
    ps::SimpleApp app(0, 0);
    app.set_request_handle([&](const ps::SimpleData& req, ps::SimpleApp* a) {
      if (count_after >= 0) {
        a->Response(req, std::to_string(req.head));
        std::this_thread::sleep_for(std::chrono::milliseconds(count_after));
        ++requests;
        return;
      }
      ++requests;
      a->Response(req, std::to_string(req.head));
    });
    // Until this handle is set, requests get SimpleApp's default answer and are not counted:
    // the workers start sending only after this barrier.
    ps::Postoffice::Get()->Barrier(0, both);
    ps::Postoffice::Get()->Barrier(0, both);  // the workers are done
    int want = ps::NumWorkers() * rounds;
    if (count_after >= 0) {
      ps::Finalize(0, true);
      std::printf("server %d handled %d requests by Finalize (expected %d)\n", ps::MyRank(),
                  requests.load(), want);
      return requests.load() == want ? 0 : 2;
    }
    std::printf("server %d handled %d requests (expected %d)\n", ps::MyRank(), requests.load(),
                want);
    if (requests.load() != want) status = 2;
  } else if (ps::IsWorker()) {
    std::printf("worker rank %d of %d\n", ps::MyRank(), ps::NumWorkers());
    std::fflush(stdout);
    ps::SimpleApp app(0, 0);
    std::atomic<int> answers{0};
    app.set_response_handle([&](const ps::SimpleData& res, ps::SimpleApp* a) {
      ++answers;
      if (res.head == 3 && ps::MyRank() == wait_in_callback) a->Wait(res.timestamp);
    });
    ps::Postoffice::Get()->Barrier(0, both);  // every server is ready to count
    for (int r = 0; r < rounds; ++r) {
      app.Wait(app.Request(r, "", ps::kServerGroup));
      if (round_barrier) ps::Postoffice::Get()->Barrier(0, ps::kWorkerGroup);
      std::printf("worker %d round %d\n", ps::MyRank(), r);
      std::fflush(stdout);
      if (round_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(round_ms));
    }
    int want = ps::NumServers() * rounds;
    std::printf("worker %d got %d answers (expected %d)\n", ps::MyRank(), answers.load(), want);
    if (answers.load() != want) status = 2;
    ps::Postoffice::Get()->Barrier(0, both);
  }
  ps::Finalize(0, true);
  std::printf("%s done\n", ps::IsScheduler() ? "scheduler" : ps::IsServer() ? "server" : "worker");
  return status;
}
