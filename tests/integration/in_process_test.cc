// Whole jobs inside one process: every node is its own Postoffice, talking over real ZeroMQ
// sockets on loopback.
#include <gtest/gtest.h>

#include <atomic>
#include <set>

#include "common/test_util.h"

namespace ps {
namespace {

constexpr int kAll = kScheduler + kServerGroup + kWorkerGroup;

int GroupOf(const std::string& role) {
  return role == "scheduler" ? kScheduler : role == "server" ? kServerGroup : kWorkerGroup;
}

TEST(LocalJob, StartsAndFinalizesWithTwoServersAndThreeWorkers) {
  test::LocalJob job(2, 3);
  std::mutex mu;
  std::set<int> server_ranks, worker_ranks;
  job.Run([&](Postoffice* po, const std::string& role, int) {
    ASSERT_TRUE(po->TryStart(0).ok());
    std::lock_guard<std::mutex> lk(mu);
    EXPECT_EQ(po->GetNodeIDs(kServerGroup).size(), 2U);
    EXPECT_EQ(po->GetNodeIDs(kWorkerGroup).size(), 3U);
    EXPECT_EQ(po->GetNodeIDs(kAll).size(), 6U);
    if (role == "server") server_ranks.insert(po->my_rank());
    if (role == "worker") worker_ranks.insert(po->my_rank());
  });
  EXPECT_EQ(server_ranks, (std::set<int>{0, 1}));
  EXPECT_EQ(worker_ranks, (std::set<int>{0, 1, 2}));
  job.Run([&](Postoffice* po, const std::string&, int) { EXPECT_TRUE(po->TryFinalize(0).ok()); });
}

TEST(LocalJob, BarriersOverEveryGroupCombination) {
  test::LocalJob job(2, 3);
  const int participants[8] = {0, 1, 2, 3, 3, 4, 5, 6};
  std::atomic<int> arrived[8] = {};
  std::atomic<int> early{0};
  job.Run([&](Postoffice* po, const std::string& role, int) {
    ASSERT_TRUE(po->TryStart(0).ok());
    for (int round = 0; round < 3; ++round) {
      for (int g = 1; g <= kAll; ++g) {
        if (!(g & GroupOf(role))) continue;
        ++arrived[g];
        ASSERT_TRUE(po->TryBarrier(0, g).ok()) << "group " << g;
        // Nobody leaves a barrier before everyone of the group reached it in this round.
        if (arrived[g].load() < participants[g] * (round + 1)) ++early;
      }
    }
    EXPECT_TRUE(po->TryFinalize(0).ok());
  });
  EXPECT_EQ(early.load(), 0);
  for (int g = 1; g <= kAll; ++g) EXPECT_EQ(arrived[g].load(), participants[g] * 3) << g;
}

TEST(LocalJob, BarrierOutsideOwnGroupIsAnError) {
  test::LocalJob job(1, 1);
  job.Run([&](Postoffice* po, const std::string& role, int) {
    ASSERT_TRUE(po->TryStart(0).ok());
    if (role == "worker") {
      Status s = po->TryBarrier(0, kServerGroup);
      EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
      EXPECT_EQ(s.message(), "barrier group 2 does not include worker 0");
      EXPECT_EQ(po->TryBarrier(0, 9).code(), Status::Code::kInvalidArgument);
    }
    EXPECT_TRUE(po->TryFinalize(0).ok());
  });
}

TEST(LocalJob, SimpleAppRequestToAllGroupsIsAnsweredByEveryNode) {
  test::LocalJob job(2, 3);
  const int kRequests = 20;
  std::atomic<int> handled{0}, answered{0};
  job.Run([&](Postoffice* po, const std::string& role, int) {
    ASSERT_TRUE(po->TryStart(0).ok());
    {
      SimpleApp app(0, 0, po);
      int me = po->van()->my_node().id;
      app.set_request_handle([&](const SimpleData& req, SimpleApp* a) {
        ++handled;
        a->Response(req, std::to_string(req.head * 2));
      });
      app.set_response_handle([&](const SimpleData& res, SimpleApp*) {
        EXPECT_EQ(res.body, std::to_string(me * 2));
        ++answered;
      });
      // Every node must have its handle set before anyone sends.
      ASSERT_TRUE(po->TryBarrier(0, kAll).ok());
      for (int i = 0; i < kRequests; ++i) {
        int ts = app.Request(me, "ping", kAll);
        EXPECT_TRUE(app.TryWait(ts).ok());
      }
      ASSERT_TRUE(po->TryBarrier(0, kAll).ok());
    }
    EXPECT_TRUE(po->TryFinalize(0).ok());
  });
  // 6 nodes each send kRequests to all 6 nodes, themselves included.
  EXPECT_EQ(handled.load(), 6 * 6 * kRequests);
  EXPECT_EQ(answered.load(), 6 * 6 * kRequests);
}

TEST(LocalJob, RequestsBeforeTheServerAppExistWaitForIt) {
  test::LocalJob job(1, 1);
  std::atomic<int> handled{0};
  job.Run([&](Postoffice* po, const std::string& role, int) {
    ASSERT_TRUE(po->TryStart(0).ok());
    const int kServerAndWorker = kServerGroup + kWorkerGroup;
    if (role == "worker") {
      SimpleApp app(5, 0, po);
      int ts = app.Request(1, "early", kServerGroup);
      ASSERT_TRUE(po->TryBarrier(0, kServerAndWorker).ok());
      EXPECT_TRUE(app.TryWait(ts).ok());
      ASSERT_TRUE(po->TryBarrier(0, kServerAndWorker).ok());
    } else if (role == "server") {
      // The request was sent before the barrier; the app that takes it is made after.
      ASSERT_TRUE(po->TryBarrier(0, kServerAndWorker).ok());
      Customer app(
          5, 5,
          [&](const Message& req) {
            ++handled;
            Message res;
            res.meta = req.meta;
            res.meta.request = false;
            res.meta.recver = req.meta.sender;
            po->van()->Send(res);
          },
          po);
      ASSERT_TRUE(po->TryBarrier(0, kServerAndWorker).ok());
    }
    EXPECT_TRUE(po->TryFinalize(0).ok());
  });
  EXPECT_EQ(handled.load(), 1);
}

TEST(LocalJob, RequestsForAnAppThatNeverComesAreBounded) {
  test::LocalJob job(1, 1);
  const int kSent = (1 << 16) + 100;
  job.Run([&](Postoffice* po, const std::string& role, int) {
    ASSERT_TRUE(po->TryStart(0).ok());
    if (role == "worker") {
      SimpleApp app(7, 0, po);  // the server never creates app 7
      for (int i = 0; i < kSent; ++i) app.Request(0, "", kServerGroup);
    }
    if (role == "server") {
      Van* van = po->van();
      EXPECT_TRUE(test::WaitFor([&] { return van->dropped(DropReason::kUnroutable) >= 100; }, 30));
      EXPECT_EQ(van->dropped(DropReason::kUnroutable), 100U);
    }
    ASSERT_TRUE(po->TryBarrier(0, kAll).ok());
    EXPECT_TRUE(po->TryFinalize(0).ok());
  });
}

TEST(LocalJob, TwoWorkerCustomersInOneProcess) {
  // DMLC_NUM_WORKER counts worker customers: one process with two of them is a job of two.
  int port = test::FreePort();
  Postoffice scheduler(test::NodeEnv("scheduler", port, 1, 2));
  Postoffice server(test::NodeEnv("server", port, 1, 2));
  Postoffice worker(test::NodeEnv("worker", port, 1, 2));
  std::atomic<int> handled{0};
  std::vector<std::thread> threads;
  threads.emplace_back([&] {
    ASSERT_TRUE(scheduler.TryStart(0).ok());
    EXPECT_TRUE(scheduler.TryFinalize(0).ok());
  });
  threads.emplace_back([&] {
    ASSERT_TRUE(server.TryStart(0).ok());
    {
      SimpleApp app(0, 0, &server);
      app.set_request_handle([&](const SimpleData& req, SimpleApp* a) {
        ++handled;
        a->Response(req, std::to_string(req.customer_id));
      });
      ASSERT_TRUE(server.TryBarrier(0, kServerGroup + kWorkerGroup).ok());
      ASSERT_TRUE(server.TryBarrier(0, kServerGroup + kWorkerGroup).ok());
    }
    EXPECT_TRUE(server.TryFinalize(0).ok());
  });
  for (int c = 0; c < 2; ++c) {
    threads.emplace_back([&, c] {
      ASSERT_TRUE(worker.TryStart(c).ok());
      EXPECT_EQ(worker.num_workers(), 2);
      EXPECT_EQ(worker.GetNodeIDs(kWorkerGroup).size(), 1U);  // one process, one node id
      {
        SimpleApp app(0, c, &worker);
        std::atomic<int> replies{0};
        app.set_response_handle([&](const SimpleData& res, SimpleApp*) {
          EXPECT_EQ(res.body, std::to_string(c));  // each customer gets its own answers
          ++replies;
        });
        ASSERT_TRUE(worker.TryBarrier(c, kServerGroup + kWorkerGroup).ok());
        for (int i = 0; i < 10; ++i)
          EXPECT_TRUE(app.TryWait(app.Request(i, "", kServerGroup)).ok());
        EXPECT_EQ(replies.load(), 10);
        ASSERT_TRUE(worker.TryBarrier(c, kServerGroup + kWorkerGroup).ok());
      }
      EXPECT_TRUE(worker.TryFinalize(c).ok());
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(handled.load(), 20);
}

TEST(LocalJob, ExtraWorkerIsTurnedAway) {
  test::LocalJob job(1, 1);
  Postoffice extra(test::NodeEnv("worker", job.port(), 1, 1));
  Status extra_status;
  std::thread t;
  job.Run([&](Postoffice* po, const std::string& role, int) {
    ASSERT_TRUE(po->TryStart(0).ok());
    if (role == "scheduler") {
      t = std::thread([&] { extra_status = extra.TryStart(0); });
      t.join();
    }
    EXPECT_TRUE(po->TryFinalize(0).ok());
  });
  EXPECT_FALSE(extra_status.ok());
  EXPECT_NE(extra_status.message().find("is one too many"), std::string::npos)
      << extra_status.message();
}

TEST(LocalJob, MissingWorkerFailsStartUpNamingTheRole) {
  // Two workers expected, one comes: every node that is up fails, saying what is missing.
  test::LocalJob job(1, 2, {{"PS_START_TIMEOUT", "1"}});
  std::mutex mu;
  std::vector<std::string> errors;
  job.Run([&](Postoffice* po, const std::string& role, int index) {
    if (role == "worker" && index == 1) return;  // never starts
    auto t0 = Clock::now();
    Status s = po->TryStart(0);
    EXPECT_FALSE(s.ok());
    EXPECT_LT(SecondsSince(t0), 1 + 8);
    std::lock_guard<std::mutex> lk(mu);
    errors.push_back(s.message());
  });
  ASSERT_EQ(errors.size(), 3U);
  for (const auto& e : errors) {
    EXPECT_NE(e.find("only 1 of 2 workers registered after 1 s"), std::string::npos) << e;
  }
}

// A node whose process dies is found from its broken connection, well before any heartbeat
// timeout (10 s here).
TEST(LocalJob, DeadWorkerFailsBarriersAndFinalizeNamingIt) {
  test::LocalJob job(1, 2);
  std::mutex mu;
  std::string victim;
  std::vector<std::string> errors;
  job.Run([&](Postoffice* po, const std::string& role, int index) {
    ASSERT_TRUE(po->TryStart(0).ok());
    if (role == "worker" && index == 1) {
      {
        std::lock_guard<std::mutex> lk(mu);
        victim = po->van()->my_node().ShortName();
      }
      job.Kill(3);  // node 3 is this one (scheduler, server, worker, worker): it dies here
      return;
    }
    ASSERT_TRUE(test::WaitFor(
        [&] {
          std::lock_guard<std::mutex> lk(mu);
          return !victim.empty();
        },
        10));
    auto t0 = Clock::now();
    Status s = role == "worker" ? po->TryBarrier(0, kWorkerGroup) : po->TryFinalize(0);
    EXPECT_LT(SecondsSince(t0), 3);
    EXPECT_EQ(s.code(), Status::Code::kNodeFailed);
    if (role == "worker") {
      Status f = po->TryFinalize(0);
      EXPECT_EQ(f.code(), Status::Code::kNodeFailed) << f.message();
    }
    std::lock_guard<std::mutex> lk(mu);
    errors.push_back(s.message());
  });
  ASSERT_EQ(errors.size(), 3U);
  for (const auto& e : errors) {
    EXPECT_NE(e.find(victim + " (node "), std::string::npos) << e;
    EXPECT_NE(e.find("its connection broke"), std::string::npos) << e;
  }
}

TEST(LocalJob, DeadServerFailsPendingRequests) {
  test::LocalJob job(1, 1, {{"PS_HEARTBEAT_INTERVAL", "0.1"}, {"PS_HEARTBEAT_TIMEOUT", "1"}});
  std::atomic<bool> server_dead{false};
  job.Run([&](Postoffice* po, const std::string& role, int) {
    ASSERT_TRUE(po->TryStart(0).ok());
    if (role == "server") {
      {
        // Takes requests and never answers, then dies.
        Customer silent(
            0, 0, [](const Message&) {}, po);
        ASSERT_TRUE(po->TryBarrier(0, kServerGroup + kWorkerGroup).ok());
      }
      server_dead = true;
      return;  // destroyed below by the worker's thread
    }
    if (role == "worker") {
      SimpleApp app(0, 0, po);
      ASSERT_TRUE(po->TryBarrier(0, kServerGroup + kWorkerGroup).ok());
      int ts = app.Request(0, "", kServerGroup);
      ASSERT_TRUE(test::WaitFor([&] { return server_dead.load(); }, 10));
      job.Kill(1);
      Status s = app.TryWait(ts);
      EXPECT_EQ(s.code(), Status::Code::kNodeFailed);
      EXPECT_NE(s.message().find("server 0 (node 8"), std::string::npos) << s.message();
      // A request to a server already known dead fails at once.
      Status again = app.TryWait(app.Request(0, "", kServerGroup));
      EXPECT_EQ(again.code(), Status::Code::kNodeFailed);
    }
    EXPECT_FALSE(po->TryFinalize(0).ok());
  });
}

}  // namespace
}  // namespace ps
