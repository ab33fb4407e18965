// Tasks with execute-after dependencies, the consistency models built on them, and synchronous
// aggregation on the server: whole jobs inside one process, over real sockets on loopback.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "common/slow_server.h"
#include "common/test_util.h"

namespace ps {
namespace {

constexpr int kServersAndWorkers = kServerGroup + kWorkerGroup;
using Millis = std::chrono::milliseconds;
using test::Seen;
using test::SlowServer;

using Work = std::function<void(Postoffice* po, KVWorker<float>* kv)>;

// A job of one server and "workers" workers running "work" on a KVWorker. "serve" installs the
// server's request handle; what it returns is kept until the job ends.
void RunJob(int workers, const std::function<std::shared_ptr<void>(KVServer<float>*)>& serve,
            const Work& work, const test::Env& extra = {}) {
  test::LocalJob job(1, workers, extra);
  job.Run([&](Postoffice* po, const std::string& role, int) {
    ASSERT_TRUE(po->TryStart(0).ok());
    if (role == "server") {
      KVServer<float> server(0, po);
      std::shared_ptr<void> handle = serve(&server);
      ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
    } else if (role == "worker") {
      {
        KVWorker<float> kv(0, 0, po);
        work(po, &kv);
        EXPECT_EQ(kv.pending_requests(), 0U);
      }
      ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
    }
    EXPECT_TRUE(po->TryFinalize(0).ok());
  });
}

// A job of one SlowServer and "workers" workers running "work" on a KVWorker; returns what the
// server saw.
void RunSlowJob(int workers, Millis delay, Seen* seen, const Work& work,
                const test::Env& extra = {}) {
  RunJob(
      workers,
      [&](KVServer<float>* server) { return std::make_shared<SlowServer>(server, delay, seen); },
      work, extra);
}

// A job of one GatedServer, "gate", and one worker running "work".
void RunGatedJob(test::GatedServer* gate, const Work& work) {
  RunJob(
      1, [&](KVServer<float>* server) { return gate->Attach(server); }, work);
}

// Each worker issues "n" pushes of 1 to three keys without waiting, then waits for them all, and
// after every worker is done pulls the sums. Returns the worker's stats through "stats".
void PushMany(Postoffice* po, KVWorker<float>* kv, int n, ConsistencyStats* stats) {
  const std::vector<Key> keys = {1, 2, 3};
  std::vector<int> ts;
  for (int i = 0; i < n; ++i) ts.push_back(kv->Push(keys, {1, 1, 1}));
  for (int t : ts) ASSERT_TRUE(kv->TryWait(t).ok());
  ASSERT_TRUE(po->TryBarrier(0, kWorkerGroup).ok());
  std::vector<float> sums;
  ASSERT_TRUE(kv->TryWait(kv->Pull(keys, &sums)).ok());
  const float want = static_cast<float>(n * po->num_workers());
  EXPECT_EQ(sums, (std::vector<float>{want, want, want}));
  *stats = kv->consistency_stats();
}

// Runs PushMany on 2 workers under "model" (set through the API, or PS_CONSISTENCY when
// "by_env"); returns the most requests the server saw outstanding from any worker, and the
// least, and the workers' stats.
struct ModelRun {
  int most = 0, least = 1 << 30;
  std::vector<ConsistencyStats> stats;
};
ModelRun RunModel(const std::string& model, bool by_env, int n = 12, Millis delay = Millis(15)) {
  Seen seen;
  ModelRun run;
  std::mutex mu;
  test::Env env;
  if (by_env) env["PS_CONSISTENCY"] = model;
  RunSlowJob(
      2, delay, &seen,
      [&](Postoffice* po, KVWorker<float>* kv) {
        if (!by_env) {
          Consistency c;
          ASSERT_TRUE(Consistency::Parse(model, &c).ok());
          kv->set_consistency(c);
        }
        EXPECT_EQ(kv->consistency().ToString(), model);
        ConsistencyStats s;
        PushMany(po, kv, n, &s);
        std::lock_guard<std::mutex> lk(mu);
        run.stats.push_back(s);
      },
      env);
  EXPECT_EQ(seen.max_outstanding.size(), 2U);
  for (const auto& m : seen.max_outstanding) {
    run.most = std::max(run.most, m.second);
    run.least = std::min(run.least, m.second);
  }
  return run;
}

// What RunLockstep saw.
struct Lockstep {
  int held = 0;  // calls seen blocked until the oldest unanswered request was answered
  int went = 0;  // calls that returned with every earlier request unanswered
  double seen_held_seconds = 0;  // from seeing each held call asleep to the answer releasing it
  int max_outstanding = 0;       // at the server
  ConsistencyStats stats;
};

// One worker pushes "n" times under "model", from a thread of its own, against a GatedServer
// that answers nothing until the pusher is blocked in a call; then the test answers the oldest
// request, which must release that call. A call the model holds back is seen blocked (its
// thread asleep inside Push, which has not returned); a call it lets go returns with every
// earlier request unanswered. Nothing depends on how fast anything runs. Then the pushes are
// answered and the sums pulled.
Lockstep RunLockstep(const Consistency& model, int n) {
  test::GatedServer gate;
  Lockstep run;
  RunGatedJob(&gate, [&](Postoffice*, KVWorker<float>* kv) {
    kv->set_consistency(model);
    const std::vector<Key> keys = {1, 2, 3};
    std::vector<int> ts(n, -1);
    std::atomic<int> returned{0};
    std::atomic<pid_t> tid{0};
    std::thread pusher([&] {
      tid = test::ThreadId();
      for (int i = 0; i < n; ++i) {
        ts[i] = kv->Push(keys, {1, 1, 1});
        ++returned;
      }
    });
    ASSERT_TRUE(test::WaitFor([&] { return tid.load() != 0; }, 10));
    while (returned < n) {
      const int r = returned;
      std::chrono::steady_clock::time_point asleep_since;
      if (test::WaitUntilBlocked(
              tid, [&] { return returned == r; }, 10, &asleep_since)) {
        // Call r is held back: every request issued before it reached the server, none was
        // answered since it blocked.
        EXPECT_TRUE(test::WaitFor([&] { return gate.arrived() == r; }, 10)) << "call " << r;
        ++run.held;
        // It cannot be released before the answer below leaves.
        run.seen_held_seconds +=
            std::chrono::duration<double>(std::chrono::steady_clock::now() - asleep_since).count();
        if (!gate.AnswerOldest()) {
          ADD_FAILURE() << "call " << r << " blocked with no request outstanding";
          break;
        }
        if (!test::WaitFor([&] { return returned > r; }, 10)) {
          ADD_FAILURE() << "answering the oldest request did not release call " << r;
          break;
        }
      } else if (returned == r) {
        ADD_FAILURE() << "call " << r << " neither returned nor blocked in 10 s";
        break;
      }
    }
    EXPECT_TRUE(test::WaitFor([&] { return gate.arrived() == n; }, 10));
    gate.Open();
    pusher.join();
    run.went = n - run.held;
    for (int t : ts) ASSERT_TRUE(kv->TryWait(t).ok());
    std::vector<float> sums;
    ASSERT_TRUE(kv->TryWait(kv->Pull(keys, &sums)).ok());
    const float want = static_cast<float>(n);
    EXPECT_EQ(sums, (std::vector<float>{want, want, want}));
    run.stats = kv->consistency_stats();
  });
  run.max_outstanding = gate.max_outstanding();
  return run;
}

TEST(Consistency, SequentialSendsEachRequestAfterThePreviousWasAnswered) {
  ModelRun run = RunModel("sequential", false);
  EXPECT_EQ(run.most, 1);
  for (const ConsistencyStats& s : run.stats) {
    EXPECT_EQ(s.max_in_flight, 1);
    EXPECT_EQ(s.requests, 13U);  // 12 pushes and the pull
  }
}

TEST(Consistency, SequentialHoldsBackEachCallUntilThePreviousIsAnswered) {
  Lockstep run = RunLockstep(Consistency::Sequential(), 12);
  EXPECT_EQ(run.went, 1);  // the first
  EXPECT_EQ(run.held, 11);
  EXPECT_EQ(run.max_outstanding, 1);
  EXPECT_EQ(run.stats.max_in_flight, 1);
  EXPECT_EQ(run.stats.held_back, 11U);
  // Each held call was held at least from when the test saw it asleep to its answer (20 ms or
  // more each): the stats count that time.
  EXPECT_GE(run.stats.held_back_seconds, run.seen_held_seconds);
  EXPECT_GE(run.seen_held_seconds, 11 * 0.02);
  EXPECT_EQ(run.stats.requests, 13U);  // and the pull
}

TEST(Consistency, BoundedDelayKeepsAtMostTauPlusOneOutstandingAndReachesIt) {
  ModelRun run = RunModel("bounded:2", false);
  EXPECT_EQ(run.most, 3);
  EXPECT_EQ(run.least, 3);
  for (const ConsistencyStats& s : run.stats) {
    EXPECT_EQ(s.max_in_flight, 3);
    EXPECT_GT(s.held_back, 0U);
  }
}

TEST(Consistency, BoundedDelayLetsTauPlusOneGoAndHoldsBackTheNext) {
  Consistency bounded;
  ASSERT_TRUE(Consistency::Parse("bounded:2", &bounded).ok());
  Lockstep run = RunLockstep(bounded, 12);
  // Three go with nothing answered; each later one waits for the oldest answer.
  EXPECT_EQ(run.went, 3);
  EXPECT_EQ(run.held, 9);
  EXPECT_EQ(run.max_outstanding, 3);
  EXPECT_EQ(run.stats.max_in_flight, 3);
  EXPECT_EQ(run.stats.held_back, 9U);
  EXPECT_GE(run.stats.held_back_seconds, run.seen_held_seconds);
}

TEST(Consistency, BoundedDelayZeroIsSequential) {
  ModelRun run = RunModel("bounded:0", false);
  EXPECT_EQ(run.most, 1);
  for (const ConsistencyStats& s : run.stats) EXPECT_EQ(s.max_in_flight, 1);
  Consistency zero;
  ASSERT_TRUE(Consistency::Parse("bounded:0", &zero).ok());
  Lockstep lockstep = RunLockstep(zero, 6);
  EXPECT_EQ(lockstep.went, 1);
  EXPECT_EQ(lockstep.held, 5);
  EXPECT_EQ(lockstep.max_outstanding, 1);
}

TEST(Consistency, EventualLetsManyRequestsBeOutstanding) {
  ModelRun run = RunModel("eventual", false, 20);
  for (const ConsistencyStats& s : run.stats) EXPECT_EQ(s.held_back, 0U);
  // 20 pushes, none answered until all are at the server: all 20 outstanding at once.
  Lockstep lockstep = RunLockstep(Consistency::Eventual(), 20);
  EXPECT_EQ(lockstep.went, 20);
  EXPECT_EQ(lockstep.held, 0);
  EXPECT_EQ(lockstep.max_outstanding, 20);
  EXPECT_EQ(lockstep.stats.max_in_flight, 20);
  EXPECT_EQ(lockstep.stats.held_back, 0U);
}

TEST(Consistency, ChosenWithoutCodeChangesThroughTheEnvironment) {
  EXPECT_EQ(RunModel("sequential", true).most, 1);
  EXPECT_EQ(RunModel("bounded:1", true).most, 2);
}

TEST(Consistency, BadModelInTheEnvironmentFailsStart) {
  for (const char* bad :
       {"bounded", "bounded:-1", "bounded:x", "bounded:3x", "bounded:1048577", "strict"}) {
    Postoffice po(test::NodeEnv("worker", test::FreePort(), 1, 1, {{"PS_CONSISTENCY", bad}}));
    Status s = po.TryStart(0);
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find(std::string("PS_CONSISTENCY=") + bad), std::string::npos)
        << s.message();
    EXPECT_NE(s.message().find("sequential, bounded:N or eventual"), std::string::npos)
        << s.message();
  }
  Consistency c;
  ASSERT_TRUE(Consistency::Parse("bounded:8", &c).ok());
  EXPECT_EQ(c.window(), 9);
  EXPECT_EQ(Consistency::Sequential().window(), 1);
  EXPECT_EQ(Consistency::Eventual().window(), 0);
}

TEST(Consistency, CallsFromACallbackAreQueuedNotHeldBack) {
  Seen seen;
  RunSlowJob(1, Millis(5), &seen, [&](Postoffice* po, KVWorker<float>* kv) {
    kv->set_consistency(Consistency::Sequential());
    const std::vector<Key> keys = {7};
    // Each answer issues the next push from the callback, on the receiving thread, where
    // holding it back would wait for itself.
    std::atomic<int> issued{0};
    std::vector<int> ts(10, -1);
    std::function<void()> next = [&] {
      int i = issued++;
      if (i + 1 < static_cast<int>(ts.size())) {
        TaskOptions o;
        o.callback = next;
        // Two at once from the callback: the second queued behind the first.
        ts[i + 1] = kv->Push(keys, {1}, o);
      }
    };
    TaskOptions o;
    o.callback = next;
    ts[0] = kv->Push(keys, {1}, o);
    ASSERT_TRUE(test::WaitFor([&] { return issued == static_cast<int>(ts.size()); }, 20));
    for (int t : ts) ASSERT_TRUE(kv->TryWait(t).ok());
    std::vector<float> sum;
    ASSERT_TRUE(kv->TryWait(kv->Pull(keys, &sum)).ok());
    EXPECT_EQ(sum, std::vector<float>{10});
    (void)po;
  });
  EXPECT_EQ(seen.max_outstanding.begin()->second, 1);
}

TEST(Consistency, ARelaxedModelReleasesCallersHeldBack) {
  test::GatedServer gate;  // the first push stays unanswered until the end
  RunGatedJob(&gate, [&](Postoffice*, KVWorker<float>* kv) {
    kv->set_consistency(Consistency::Sequential());
    int first = kv->Push({1}, {1});
    std::atomic<pid_t> tid{0};
    std::atomic<bool> issued{false};
    int second = -1;
    std::thread held([&] {
      tid = test::ThreadId();
      second = kv->Push({1}, {1});  // held back: the first is not answered
      issued = true;
    });
    ASSERT_TRUE(test::WaitFor([&] { return tid.load() != 0; }, 10));
    // First it is held back: blocked inside Push, and nothing was issued for it.
    EXPECT_TRUE(test::WaitUntilBlocked(
        tid, [&] { return !issued; }, 10))
        << "the second push under sequential was not held back";
    EXPECT_EQ(kv->consistency_stats().requests, 1U);
    EXPECT_TRUE(test::WaitFor([&] { return gate.arrived() == 1; }, 10));
    kv->set_consistency(Consistency::Eventual());
    // Then relaxing releases it with the first still unanswered: both at the server at once.
    EXPECT_TRUE(test::WaitFor([&] { return issued.load(); }, 10))
        << "relaxing the model did not release the held call";
    EXPECT_TRUE(test::WaitFor([&] { return gate.arrived() == 2; }, 10));
    EXPECT_EQ(gate.answered(), 0);
    gate.Open();
    held.join();
    ASSERT_TRUE(kv->TryWait(first).ok());
    ASSERT_TRUE(kv->TryWait(second).ok());
    EXPECT_EQ(kv->consistency_stats().held_back, 1U);
  });
  EXPECT_EQ(gate.max_outstanding(), 2);
}

// A diamond: B and C after A, D after B and C.
TEST(Dependencies, DiamondExecutesInAValidOrder) {
  Seen seen;
  std::vector<int> ts;
  int worker = -1;
  RunSlowJob(1, Millis(20), &seen, [&](Postoffice* po, KVWorker<float>* kv) {
    worker = po->van()->my_node().id;
    const std::vector<Key> keys = {5};
    int a = kv->Push(keys, {1});
    int b = kv->Push(keys, {10}, After({a}));
    int c = kv->Push(keys, {100}, After({a}));
    std::vector<float> d_out;
    int d = kv->PushPull(keys, {1000}, &d_out, After({b, c}));
    ts = {a, b, c, d};
    // Issued at once: none of them waited for an answer.
    EXPECT_EQ(kv->consistency_stats().held_back, 0U);
    EXPECT_EQ(kv->consistency_stats().deferred, 3U);
    ASSERT_TRUE(kv->TryWait(d).ok());
    EXPECT_EQ(d_out, std::vector<float>{1111});
    for (int t : {a, b, c}) ASSERT_TRUE(kv->TryWait(t).ok());
  });
  ASSERT_EQ(ts.size(), 4U);
  auto arrived = [&](int t) { return seen.arrived.at({worker, t}); };
  auto answered = [&](int t) { return seen.answered.at({worker, t}); };
  const int a = ts[0], b = ts[1], c = ts[2], d = ts[3];
  EXPECT_GT(arrived(b), answered(a));
  EXPECT_GT(arrived(c), answered(a));
  EXPECT_GT(arrived(d), answered(b));
  EXPECT_GT(arrived(d), answered(c));
  // B and C do not wait for each other: both were out at once.
  EXPECT_LT(arrived(c), answered(b));
  EXPECT_LT(arrived(b), answered(c));
}

TEST(Dependencies, AFailedTaskFailsEverythingAfterItWithClearMessages) {
  Seen seen;
  int worker = -1;
  std::vector<int> ts;
  RunSlowJob(1, Millis(5), &seen, [&](Postoffice* po, KVWorker<float>* kv) {
    worker = po->van()->my_node().id;
    const std::vector<Key> keys = {5};
    TaskOptions refused;
    refused.cmd = 13;
    int a = kv->Push(keys, {1}, refused);
    int b = kv->Push(keys, {1}, After({a}));
    int c = kv->Push(keys, {1}, After({a}));
    int d = kv->Push(keys, {1}, After({b, c}));
    ts = {a, b, c, d};
    Status sa = kv->TryWait(a);
    EXPECT_EQ(sa.code(), Status::Code::kRemoteError);
    for (int t : {b, c}) {
      Status s = kv->TryWait(t);
      EXPECT_EQ(s.code(), Status::Code::kRemoteError);
      EXPECT_NE(
          s.message().find("request " + std::to_string(t) + " failed: it executes after request " +
                           std::to_string(a) + ", which failed: "),
          std::string::npos)
          << s.message();
      EXPECT_NE(s.message().find("cmd 13 is refused"), std::string::npos) << s.message();
    }
    Status sd = kv->TryWait(d);
    EXPECT_NE(sd.message().find("request " + std::to_string(d) + " failed: it executes after"),
              std::string::npos)
        << sd.message();
    // A failure is remembered: a task issued later after A fails at once, and so does one
    // after a timestamp not issued yet.
    Status late = kv->TryWait(kv->Push(keys, {1}, After({a})));
    EXPECT_NE(late.message().find("after request " + std::to_string(a) + ", which failed"),
              std::string::npos)
        << late.message();
    Status future = kv->TryWait(kv->Push(keys, {1}, After({1000})));
    EXPECT_EQ(future.code(), Status::Code::kInvalidArgument);
    EXPECT_NE(future.message().find("timestamp 1000, which this customer has not issued yet"),
              std::string::npos)
        << future.message();
    // Tasks after finished ones go at once. (ps-lite's form with empty lens, {}, still means
    // lens next to the overloads that take options.)
    int e = kv->Push(keys, {2}, {});
    ASSERT_TRUE(kv->TryWait(e).ok());
    std::vector<float> out;
    ASSERT_TRUE(kv->TryWait(kv->Pull(keys, &out, After({e}))).ok());
    EXPECT_EQ(out, std::vector<float>{2});
  });
  ASSERT_EQ(ts.size(), 4U);
  // Only A reached the server.
  EXPECT_EQ(seen.arrived.count({worker, ts[0]}), 1U);
  for (int i = 1; i < 4; ++i) EXPECT_EQ(seen.arrived.count({worker, ts[i]}), 0U) << i;
}

TEST(Dependencies, ADeadServerFailsTheTasksQueuedBehindItsRequests) {
  test::LocalJob job(1, 1, {{"PS_HEARTBEAT_INTERVAL", "0.1"}, {"PS_HEARTBEAT_TIMEOUT", "1"}});
  std::atomic<bool> server_gone{false}, worker_done{false};
  job.Run([&](Postoffice* po, const std::string& role, int) {
    ASSERT_TRUE(po->TryStart(0).ok());
    if (role == "scheduler") {
      ASSERT_TRUE(test::WaitFor([&] { return worker_done.load(); }, 20));
    } else if (role == "server") {
      {
        KVServer<float> server(0, po);
        // Never answers: the worker's first request stays outstanding until the server dies.
        server.set_request_handle([](const KVMeta&, const KVPairs<float>&, KVServer<float>*) {});
        ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
      }
      server_gone = true;
      return;  // destroyed by the worker below: it dies
    } else if (role == "worker") {
      KVWorker<float> kv(0, 0, po);
      ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
      int a = kv.Push({1}, {1});
      int b = kv.Push({1}, {1}, After({a}));
      int c = kv.Push({1}, {1}, After({b}));
      ASSERT_TRUE(test::WaitFor([&] { return server_gone.load(); }, 10));
      for (int i = 0; i < job.num_nodes(); ++i) {
        Postoffice* n = job.node(i);
        if (n && n->is_server()) job.Kill(i);
      }
      for (int t : {a, b, c}) {
        Status s = kv.TryWait(t);
        EXPECT_EQ(s.code(), Status::Code::kNodeFailed) << s.message();
        EXPECT_NE(s.message().find("request " + std::to_string(t) + " failed: "), std::string::npos)
            << s.message();
      }
      worker_done = true;
    }
    EXPECT_FALSE(po->TryFinalize(0).ok());
  });
}

// Three workers push (rank + 1) * (round + 1) to keys on both servers each round, without
// waiting, then pull; a slow worker makes the others wait for it.
TEST(SyncAggregation, EveryPullOfARoundReturnsExactlyTheSumOfThatRound) {
  const int kRounds = 6;
  test::LocalJob job(2, 3);
  const std::vector<Key> keys = {1, kMaxKey - 1};  // one on each server
  job.Run([&](Postoffice* po, const std::string& role, int) {
    ASSERT_TRUE(po->TryStart(0).ok());
    if (role == "server") {
      KVServer<float> server(0, po);
      // The store holds the round's sum alone, so that a pull shows exactly that round.
      KVServerSyncHandle<float> sync(0, [](int, const KVPairs<float>& sum, kv::Store<float>* st) {
        st->clear();
        ASSERT_TRUE(kv::AddInto(sum, st).ok());
      });
      server.set_request_handle(sync);
      ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
      EXPECT_EQ(sync.rounds(), 2 * kRounds);
    } else if (role == "worker") {
      {
        KVWorker<float> kv(0, 0, po);
        const int rank = po->my_rank();
        for (int r = 0; r < kRounds; ++r) {
          if (rank == 2) std::this_thread::sleep_for(Millis(10));  // the straggler
          const float v = static_cast<float>((rank + 1) * (r + 1));
          int push = kv.Push(keys, {v, 2 * v});
          std::vector<float> out;
          ASSERT_TRUE(kv.TryWait(kv.Pull(keys, &out)).ok());
          const float sum = static_cast<float>(6 * (r + 1));  // (1 + 2 + 3) * (r + 1)
          EXPECT_EQ(out, (std::vector<float>{sum, 2 * sum})) << "round " << r;
          ASSERT_TRUE(kv.TryWait(push).ok());
        }
        // PushPull: the answer carries the round's sum.
        for (int r = kRounds; r < 2 * kRounds; ++r) {
          const float v = static_cast<float>((rank + 1) * (r + 1));
          std::vector<float> out;
          ASSERT_TRUE(kv.TryWait(kv.PushPull(keys, {v, 2 * v}, &out)).ok());
          const float sum = static_cast<float>(6 * (r + 1));
          EXPECT_EQ(out, (std::vector<float>{sum, 2 * sum})) << "round " << r;
        }
      }
      ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
    }
    EXPECT_TRUE(po->TryFinalize(0).ok());
  });
}

TEST(SyncAggregation, DefaultApplyAddsEachRoundAndBadPushesAreRefused) {
  test::LocalJob job(1, 2);
  job.Run([&](Postoffice* po, const std::string& role, int) {
    ASSERT_TRUE(po->TryStart(0).ok());
    if (role == "server") {
      KVServer<float> server(0, po);
      KVServerSyncHandle<float> sync;
      server.set_request_handle(sync);
      ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
      EXPECT_EQ(sync.rounds(), 3);
      KVPairs<float> now = sync.Read(SArray<Key>(std::vector<Key>{4, 9}));
      EXPECT_EQ(std::vector<float>(now.vals.begin(), now.vals.end()), (std::vector<float>{6, 12}));
    } else if (role == "worker") {
      {
        KVWorker<float> kv(0, 0, po);
        kv.set_consistency(Consistency::Sequential());
        for (int r = 0; r < 3; ++r) {
          std::vector<float> out;
          ASSERT_TRUE(kv.TryWait(kv.PushPull({4, 9}, {1, 2}, &out)).ok());
          const float n = static_cast<float>(2 * (r + 1));
          EXPECT_EQ(out, (std::vector<float>{n, 2 * n})) << r;
        }
        // Key 9 holds one value: a push of two does not fit, and is not counted.
        Status s = kv.TryWait(kv.Push({9}, {1, 1}));
        EXPECT_EQ(s.code(), Status::Code::kRemoteError);
        EXPECT_NE(s.message().find("key 9 holds 1 values; a push of 2 does not fit"),
                  std::string::npos)
            << s.message();
      }
      ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
    }
    EXPECT_TRUE(po->TryFinalize(0).ok());
  });
}

}  // namespace
}  // namespace ps
