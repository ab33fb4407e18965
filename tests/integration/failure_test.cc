// The failure matrix, inside one process: user code on the receiving thread, nodes that die,
// hang or give up, sends that fail, stops from any thread, and a transport that drops, delays,
// duplicates and reorders messages (tests/common/fault_injecting_transport.h).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <future>
#include <thread>

#include "common/fault_injecting_transport.h"
#include "common/test_util.h"
#include "ps/kv_app.h"
#include "ps/ssp_table.h"

namespace ps {
namespace {

constexpr int kServersAndWorkers = kServerGroup + kWorkerGroup;
const test::Env kFastHeartbeat = {{"PS_HEARTBEAT_INTERVAL", "0.1"}, {"PS_HEARTBEAT_TIMEOUT", "1"}};

// The stats of filter "name" (empty ones if it has none).
FilterStats Find(const std::vector<FilterStats>& stats, const std::string& name) {
  for (const FilterStats& f : stats) {
    if (f.name == name) return f;
  }
  return FilterStats();
}

// Runs "fn" and fails the test if it does not return within "seconds": a deadlock ends the
// test binary (a hung thread cannot be joined) instead of hanging the suite.
void WithinSeconds(double seconds, const std::string& what, const std::function<void()>& fn) {
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> f = done->get_future();
  std::thread t([fn, done] {
    fn();
    done->set_value();
  });
  if (f.wait_for(std::chrono::duration<double>(seconds)) != std::future_status::ready) {
    ADD_FAILURE() << what << " did not finish within " << seconds << " s (deadlock?)";
    std::fprintf(stderr, "%s: hung; ending the test binary\n", what.c_str());
    std::_Exit(1);
  }
  t.join();
}

// A job of one server with the default handle and "workers" workers; "work" runs on each
// worker with its KVWorker. "configure" may give nodes their own variables (LocalJob::Configure),
// then "setup" sees each node before it starts.
void RunKVJob(int servers, int workers,
              const std::function<void(Postoffice*, KVWorker<float>*)>& work,
              const test::Env& extra = {},
              const std::function<void(Postoffice*, const std::string&, int)>& setup = nullptr,
              const std::function<void(test::LocalJob*)>& configure = nullptr) {
  test::LocalJob job(servers, workers, extra);
  if (configure) configure(&job);
  if (setup) {
    int counts[3] = {0, 0, 0};
    for (int i = 0; i < job.num_nodes(); ++i) {
      std::string role = i == 0 ? "scheduler" : i <= servers ? "server" : "worker";
      int r = i == 0 ? 0 : i <= servers ? 1 : 2;
      setup(job.node(i), role, counts[r]++);
    }
  }
  job.Run([&](Postoffice* po, const std::string& role, int) {
    ASSERT_TRUE(po->TryStart(0).ok());
    if (role == "server") {
      KVServer<float> server(0, po);
      server.set_request_handle(KVServerDefaultHandle<float>());
      ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
      ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
    } else if (role == "worker") {
      KVWorker<float> kv(0, 0, po);
      ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
      work(po, &kv);
      ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
    }
    EXPECT_TRUE(po->TryFinalize(0).ok());
  });
}

// Defect 1: the registry's lock was held while a callback ran, so a callback that made a
// second app re-entered AddCustomer and deadlocked.
TEST(Failure, CallbackMayConstructAndDestroyApps) {
  WithinSeconds(30, "a push whose callback constructs and destroys a KVWorker", [] {
    RunKVJob(1, 1, [](Postoffice* po, KVWorker<float>* kv) {
      std::atomic<bool> made{false};
      int ts = kv->Push({1, 2}, {1, 2}, {}, 0, [&] {
        auto* other = new KVWorker<float>(1, 0, po);
        SimpleApp app(2, 0, po);
        delete other;
        made = true;
      });
      EXPECT_TRUE(kv->TryWait(ts).ok());
      EXPECT_TRUE(made.load());
      std::vector<float> out;
      EXPECT_TRUE(kv->TryWait(kv->Pull({1, 2}, &out)).ok());
      EXPECT_EQ(out, (std::vector<float>{1, 2}));
    });
  });
}

// Defect 3: Finalize returned before every request the node received had been handled.
TEST(Failure, FinalizeReturnsOnlyAfterEveryRequestWasHandled) {
  const int kRequests = 20;
  test::LocalJob job(2, 2);
  std::atomic<int> counted[2] = {{0}, {0}};
  std::atomic<int> checked{0};
  job.Run([&](Postoffice* po, const std::string& role, int index) {
    ASSERT_TRUE(po->TryStart(0).ok());
    if (role == "server") {
      SimpleApp app(0, 0, po);
      app.set_request_handle([&, index](const SimpleData& req, SimpleApp* a) {
        a->Response(req);
        // Work after answering (a handler that logs or updates state): Finalize must wait.
        std::this_thread::sleep_for(std::chrono::milliseconds(req.head == kRequests - 1 ? 300 : 0));
        ++counted[index];
      });
      ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
      ASSERT_TRUE(po->TryFinalize(0).ok());
      EXPECT_EQ(counted[index].load(), 2 * kRequests) << "server " << index;
      ++checked;
      return;
    }
    if (role == "worker") {
      SimpleApp app(0, 0, po);
      ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
      for (int i = 0; i < kRequests; ++i) {
        ASSERT_TRUE(app.TryWait(app.Request(i, "", kServerGroup)).ok());
      }
    }
    ASSERT_TRUE(po->TryFinalize(0).ok());
  });
  EXPECT_EQ(checked.load(), 2);
}

// Defect 4: a request whose send failed waited forever; now it fails naming the peer.
TEST(Failure, FailedSendFailsTheRequestNamingThePeer) {
  std::atomic<test::FaultInjectingTransport*> worker_transport{nullptr};
  WithinSeconds(30, "a push whose send fails", [&] {
    RunKVJob(
        2, 1,
        [&](Postoffice* po, KVWorker<float>* kv) {
          ASSERT_TRUE(kv->TryWait(kv->Push({1, kMaxKey}, {1, 2})).ok());
          worker_transport.load()->FailSendsTo(Postoffice::ServerRankToID(1));
          Status s = kv->TryWait(kv->Push({1, kMaxKey}, {1, 2}));
          EXPECT_EQ(s.code(), Status::Code::kIOError) << s.message();
          EXPECT_NE(s.message().find("cannot send to server 1 (node 10 at "), std::string::npos)
              << s.message();
          EXPECT_NE(s.message().find("injected send failure"), std::string::npos) << s.message();
          // The same for a SimpleApp request, and the other server still answers.
          SimpleApp app(0, 1, po);  // answered by the KVServer of app 0
          s = app.TryWait(app.Request(0, "", kServerGroup));
          EXPECT_NE(s.message().find("cannot send to server 1"), std::string::npos) << s.message();
          worker_transport.load()->FailSendsTo(0);
          std::vector<float> out;
          ASSERT_TRUE(kv->TryWait(kv->Pull({1}, &out)).ok());
          EXPECT_EQ(out, (std::vector<float>{2}));  // both pushes reached server 0
        },
        {},
        [&](Postoffice* po, const std::string& role, int) {
          if (role == "worker") {
            po->set_transport_factory(
                test::FaultInjectingTransport::Factory({}, &worker_transport));
          }
        });
  });
}

// Defect 4, the resend: a server whose key cache lost a key list asks the worker for the
// request again; when that second send fails, the request fails naming the server instead of
// waiting forever.
TEST(Failure, FailedResendFailsTheRequestNamingThePeer) {
  std::atomic<test::FaultInjectingTransport*> worker_transport{nullptr};
  const int kServer = Postoffice::ServerRankToID(0);
  WithinSeconds(30, "a push whose resend fails", [&] {
    RunKVJob(
        1, 1,
        [&](Postoffice*, KVWorker<float>* kv) {
          ASSERT_TRUE(kv->set_filters("key_cache").ok());
          const size_t n = 65536;
          std::vector<SArray<Key>> lists;
          for (Key offset = 0; offset < 3; ++offset) {
            SArray<Key> keys(n);
            for (size_t i = 0; i < n; ++i) keys[i] = static_cast<Key>(i) * 3 + offset;
            lists.push_back(keys);
          }
          SArray<float> ones(n, 1);
          for (const auto& keys : lists) ASSERT_TRUE(kv->TryWait(kv->ZPush(keys, ones)).ok());
          // The first list again: its signature goes out, the server asks for the list, and
          // the send of the list fails.
          worker_transport.load()->FailSendsTo(kServer, 1);
          Status s = kv->TryWait(kv->ZPush(lists[0], ones));
          EXPECT_EQ(s.code(), Status::Code::kIOError) << s.message();
          EXPECT_NE(s.message().find("cannot send to server 0 (node 8 at "), std::string::npos)
              << s.message();
          EXPECT_NE(s.message().find("injected send failure"), std::string::npos) << s.message();
          EXPECT_EQ(Find(kv->filter_stats(), "key_cache").resent, 1U);
          // The server applied nothing of it: the first push alone is in the sums.
          worker_transport.load()->FailSendsTo(0);
          SArray<float> out;
          ASSERT_TRUE(kv->TryWait(kv->ZPull(lists[0], &out)).ok());
          ASSERT_EQ(out.size(), n);
          for (size_t i = 0; i < n; ++i) ASSERT_EQ(out[i], 1) << i;
        },
        {},
        [&](Postoffice* po, const std::string& role, int) {
          if (role == "worker") {
            po->set_transport_factory(
                test::FaultInjectingTransport::Factory({}, &worker_transport));
          }
        },
        // The server keeps 1 MB of key lists: of three lists of 512 KiB, the oldest is
        // forgotten; the worker keeps them all.
        [](test::LocalJob* job) {
          job->Configure(1, {{"PS_KEY_CACHE_MB", "1"}});
        });
  });
}

// Defect 4 in the SSP tables: a read whose request cannot be sent fails naming the server
// instead of waiting forever, and so does a clock that cannot reach a server (it said "the
// node is stopping").
TEST(Failure, SSPReadAndClockWhoseSendsFailNameTheServer) {
  std::atomic<test::FaultInjectingTransport*> worker_transport{nullptr};
  test::LocalJob job(1, 1);
  job.node(2)->set_transport_factory(test::FaultInjectingTransport::Factory({}, &worker_transport));
  const std::vector<SSPTableConfig> tables = {{/*table_id=*/0, /*row_width=*/2, /*staleness=*/0}};
  WithinSeconds(30, "SSP calls whose sends fail", [&] {
    job.Run([&](Postoffice* po, const std::string& role, int) {
      ASSERT_TRUE(po->TryStart(0).ok());
      if (role == "scheduler") {
        EXPECT_TRUE(po->TryFinalize(0).ok());
        return;
      }
      {
        SSPTableGroup group(1, tables, SSPOptions(), po);
        ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
        if (role == "worker") {
          SSPWorker w(&group, 0);
          SSPTable t = w.table(0);
          SSPRow row;
          worker_transport.load()->FailSendsTo(Postoffice::ServerRankToID(0));
          Status s = t.Get(3, &row);
          EXPECT_EQ(s.code(), Status::Code::kIOError) << s.message();
          EXPECT_NE(s.message().find("SSP read of row 3 of table 0: cannot send to server 0 "
                                     "(node 8 at "),
                    std::string::npos)
              << s.message();
          // The server is there: with sends working again the row comes.
          worker_transport.load()->FailSendsTo(0);
          ASSERT_TRUE(t.Get(3, &row).ok());
          EXPECT_EQ(row.values, (std::vector<double>{0, 0}));
          ASSERT_TRUE(t.Inc(3, 1, 2).ok());
          worker_transport.load()->FailSendsTo(Postoffice::ServerRankToID(0));
          s = w.Clock();
          EXPECT_EQ(s.code(), Status::Code::kIOError) << s.message();
          EXPECT_NE(s.message().find("SSP Clock: cannot send to server 0 (node 8 at "),
                    std::string::npos)
              << s.message();
          worker_transport.load()->FailSendsTo(0);
        }
        ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
      }
      EXPECT_TRUE(po->TryFinalize(0).ok());
    });
  });
}

// Defect 5: Stop on the receiving thread joined itself; a send racing a close used sockets
// being reset. Stop is now safe from any thread, and sends after it fail cleanly.
TEST(Failure, StopFromTheReceivingThreadAndSendsAfterItFailCleanly) {
  test::LocalJob job(1, 1);
  job.Run([&](Postoffice* po, const std::string& role, int) {
    ASSERT_TRUE(po->TryStart(0).ok());
    if (role == "worker") {
      SimpleApp app(0, 0, po);
      std::atomic<bool> stopped{false};
      app.set_response_handle([&](const SimpleData&, SimpleApp*) {
        EXPECT_TRUE(po->van()->IsReceivingThread());
        po->van()->Stop();  // on the receiving thread
        stopped = true;
      });
      ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
      std::atomic<bool> go{true};
      std::thread sender([&] {
        // Races the stop: every send either leaves or fails cleanly with kShutdown.
        while (go) {
          Message m;
          m.meta.recver = kScheduler;
          m.meta.control.cmd = Control::HEARTBEAT;
          m.meta.request = true;
          Status s = po->van()->TrySend(m);
          if (!s.ok()) {
            EXPECT_EQ(s.code(), Status::Code::kShutdown) << s.message();
            break;
          }
        }
      });
      app.Request(0, "", kServerGroup);
      ASSERT_TRUE(test::WaitFor([&] { return stopped.load(); }, 10));
      go = false;
      sender.join();
      Message m;
      m.meta.recver = 8;
      EXPECT_EQ(po->van()->TrySend(m).code(), Status::Code::kShutdown);
      EXPECT_EQ(po->van()->Send(m), -1);
      po->van()->Stop();  // again, from another thread: joins the van thread
      EXPECT_FALSE(po->TryFinalize(0).ok());
      return;
    }
    if (role == "server") {
      SimpleApp app(0, 0, po);  // answers with the default handle
      ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
      // The worker's van stopped: it left the job, which the others notice and report.
      Status s = po->TryBarrier(0, kServersAndWorkers);
      EXPECT_EQ(s.code(), Status::Code::kNodeFailed) << s.message();
      EXPECT_NE(s.message().find("worker 0 (node 9"), std::string::npos) << s.message();
    }
    EXPECT_FALSE(po->TryFinalize(0).ok());
  });
}

// Defect 2: a node that gives up says why, and every other node learns it at once.
TEST(Failure, NodeThatGivesUpTellsEveryNodeWhy) {
  test::LocalJob job(1, 2);
  std::mutex mu;
  std::vector<std::string> errors;
  std::string victim;
  job.Run([&](Postoffice* po, const std::string& role, int index) {
    ASSERT_TRUE(po->TryStart(0).ok());
    if (role == "worker" && index == 0) {
      {
        std::lock_guard<std::mutex> lk(mu);
        victim = po->van()->NodeName(po->van()->my_node().id);
      }
      po->van()->ReportFailure(Status::InvalidArgument("the training data is damaged"));
      ASSERT_TRUE(test::WaitFor(
          [&] {
            std::lock_guard<std::mutex> lk(mu);
            return errors.size() == 3;
          },
          10));
      return;
    }
    auto t0 = Clock::now();
    Status s = po->TryBarrier(
        0, role == "scheduler" ? kScheduler + kWorkerGroup : kWorkerGroup + kServerGroup);
    // Told, not found out: well within the heartbeat timeout (10 s here).
    EXPECT_LT(SecondsSince(t0), 3);
    EXPECT_EQ(s.code(), Status::Code::kNodeFailed) << s.message();
    std::lock_guard<std::mutex> lk(mu);
    errors.push_back(s.message());
  });
  ASSERT_EQ(errors.size(), 3U);
  for (const auto& e : errors) {
    EXPECT_NE(e.find(victim + " failed: the training data is damaged"), std::string::npos) << e;
  }
}

// A node that hangs (its messages vanish both ways, its connection stays) is found by
// heartbeats; every other node is told which one it was.
TEST(Failure, HungNodeIsFoundByHeartbeatsAndNamedToEveryNode) {
  std::atomic<test::FaultInjectingTransport*> hung{nullptr};
  test::LocalJob job(1, 2, kFastHeartbeat);
  job.node(3)->set_transport_factory(test::FaultInjectingTransport::Factory({}, &hung));
  std::mutex mu;
  std::vector<std::string> errors;
  std::atomic<bool> done{false};
  std::string victim;
  job.Run([&](Postoffice* po, const std::string& role, int index) {
    ASSERT_TRUE(po->TryStart(0).ok());
    if (role == "worker" && index == 1) {
      {
        std::lock_guard<std::mutex> lk(mu);
        victim = po->van()->NodeName(po->van()->my_node().id);
      }
      hung.load()->CutOff(kScheduler);  // from now on it neither hears nor is heard
      ASSERT_TRUE(test::WaitFor([&] { return done.load(); }, 20));
      return;
    }
    auto t0 = Clock::now();
    Status s = po->TryBarrier(
        0, role == "scheduler" ? kScheduler + kWorkerGroup : kWorkerGroup + kServerGroup);
    EXPECT_LT(SecondsSince(t0), 1 + 3);
    EXPECT_EQ(s.code(), Status::Code::kNodeFailed) << s.message();
    std::lock_guard<std::mutex> lk(mu);
    errors.push_back(s.message());
    if (errors.size() == 3) done = true;
  });
  ASSERT_EQ(errors.size(), 3U);
  for (const auto& e : errors) {
    EXPECT_NE(e.find(victim + " sent no heartbeat"), std::string::npos) << e;
  }
}

// Heartbeats lost now and then, below the timeout, declare no node dead: the scheduler loses a
// share of everything it receives, heartbeats included, for more than three heartbeat timeouts
// while the workers push, and the job ends as without (exact sums, every barrier passes).
TEST(Failure, HeartbeatsLostBelowTheTimeoutDeclareNoNodeDead) {
  std::atomic<test::FaultInjectingTransport*> scheduler{nullptr};
  test::LocalJob job(1, 2, kFastHeartbeat);
  job.node(0)->set_transport_factory(test::FaultInjectingTransport::Factory({}, &scheduler));
  test::FaultInjectingTransport::Options lossy;
  lossy.seed = 11;
  lossy.drop = 0.3;
  lossy.control_too = true;
  // Three nodes send 10 heartbeats a second: 100 of them take more than three timeouts (1 s).
  const uint64_t kHeard = 100;
  std::atomic<bool> lossy_over{false};
  std::atomic<int> pushes{0};
  test::FaultInjectingTransport::Counts counts;
  job.Run([&](Postoffice* po, const std::string& role, int) {
    ASSERT_TRUE(po->TryStart(0).ok());
    if (role == "scheduler") {
      scheduler.load()->SetOptions(lossy);
      EXPECT_TRUE(test::WaitFor(
          [&] {
            auto c = scheduler.load()->counts();
            return c.passed + c.dropped >= kHeard;
          },
          20));
      scheduler.load()->SetOptions({});
      counts = scheduler.load()->counts();
      lossy_over = true;  // barriers go through the scheduler: they wait for this
      EXPECT_TRUE(po->TryFinalize(0).ok());
      return;
    }
    if (role == "server") {
      KVServer<float> server(0, po);
      server.set_request_handle(KVServerDefaultHandle<float>());
      ASSERT_TRUE(test::WaitFor([&] { return lossy_over.load(); }, 30));
      ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
      ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
    } else {
      KVWorker<float> kv(0, 0, po);
      while (!lossy_over) {
        ASSERT_TRUE(kv.TryWait(kv.Push({1, kMaxKey}, {1, 2})).ok());
        ++pushes;
      }
      ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());  // every push is in
      std::vector<float> out;
      ASSERT_TRUE(kv.TryWait(kv.Pull({1, kMaxKey}, &out)).ok());
      const float n = static_cast<float>(pushes.load());
      EXPECT_EQ(out, (std::vector<float>{n, 2 * n}));
      ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
    }
    EXPECT_TRUE(po->TryFinalize(0).ok());
  });
  EXPECT_GE(counts.passed + counts.dropped, kHeard);
  EXPECT_GT(counts.dropped, kHeard / 10);  // about 30
  EXPECT_GT(counts.passed, counts.dropped);
}

// Delayed, reordered and duplicated messages change nothing in the sums: responses are matched
// by timestamp and sender, and a second copy of one is dropped and counted.
TEST(Failure, DelayedReorderedAndDuplicatedResponsesChangeNothing) {
  std::atomic<test::FaultInjectingTransport*> faults{nullptr};
  test::FaultInjectingTransport::Options o;
  o.seed = 7;
  o.delay = 0.2;
  o.delay_ms = 5;
  o.reorder = 0.2;
  o.duplicate = 0.2;
  const int kRounds = 50;
  uint64_t dropped = 0;
  test::FaultInjectingTransport::Counts counts;
  RunKVJob(
      2, 1,
      [&](Postoffice* po, KVWorker<float>* kv) {
        kv->set_consistency(Consistency::Eventual());
        std::vector<int> ts;
        for (int i = 0; i < kRounds; ++i) ts.push_back(kv->Push({3, kMaxKey - 1}, {1, 2}));
        for (int t : ts) ASSERT_TRUE(kv->TryWait(t).ok());
        std::vector<float> out;
        ASSERT_TRUE(kv->TryWait(kv->Pull({3, kMaxKey - 1}, &out)).ok());
        EXPECT_EQ(out, (std::vector<float>{kRounds * 1.0f, kRounds * 2.0f}));
        // The second copy of the last answer may still be on its way.
        test::WaitFor(
            [&] {
              return po->van()->dropped(DropReason::kUnroutable) ==
                     faults.load()->counts().duplicated;
            },
            5);
        dropped = po->van()->dropped(DropReason::kUnroutable);
        counts = faults.load()->counts();  // the transport goes with the job
      },
      {},
      [&](Postoffice* po, const std::string& role, int) {
        if (role == "worker") {
          po->set_transport_factory(test::FaultInjectingTransport::Factory(o, &faults));
        }
      });
  const auto& c = counts;
  EXPECT_GT(c.delayed, 0U);
  EXPECT_GT(c.reordered, 0U);
  EXPECT_GT(c.duplicated, 0U);
  EXPECT_EQ(dropped, c.duplicated);  // every second copy, and nothing else
}

}  // namespace
}  // namespace ps
