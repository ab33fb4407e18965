// KVWorker and KVServer in whole jobs inside one process, over real sockets on loopback.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <tuple>

#include "common/test_util.h"

namespace ps {
namespace {

constexpr int kAll = kScheduler + kServerGroup + kWorkerGroup;
constexpr int kServersAndWorkers = kServerGroup + kWorkerGroup;

// Keys spread over the whole key space, so that every server gets some: n keys, distinct per
// "worker" of "workers".
std::vector<Key> SpreadKeys(int n, int worker, int workers) {
  std::vector<Key> keys;
  Key step = kMaxKey / static_cast<Key>(n);
  for (int i = 0; i < n; ++i) keys.push_back(static_cast<Key>(i) * step + worker);
  (void)workers;
  return keys;
}

// Runs a job where servers run KVServerDefaultHandle and workers run "work".
void RunKVJob(int servers, int workers,
              const std::function<void(Postoffice* po, int rank, KVWorker<float>* kv)>& work,
              const test::Env& extra = {}) {
  test::LocalJob job(servers, workers, extra);
  job.Run([&](Postoffice* po, const std::string& role, int) {
    ASSERT_TRUE(po->TryStart(0).ok());
    if (role == "server") {
      KVServer<float> server(0, po);
      server.set_request_handle(KVServerDefaultHandle<float>());
      ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
    } else if (role == "worker") {
      {
        KVWorker<float> kv(0, 0, po);
        work(po, po->my_rank(), &kv);
        EXPECT_EQ(kv.pending_requests(), 0U);
      }
      ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
    }
    EXPECT_TRUE(po->TryFinalize(0).ok());
  });
}

class PushPull : public ::testing::TestWithParam<std::tuple<int, int>> {};

TEST_P(PushPull, PushesAddUpExactly) {
  const int servers = std::get<0>(GetParam()), workers = std::get<1>(GetParam());
  RunKVJob(servers, workers, [&](Postoffice*, int rank, KVWorker<float>* kv) {
    const int n = 40;
    std::vector<Key> keys = SpreadKeys(n, rank, workers);
    const float v = 0.5f + rank;
    std::vector<float> vals(n, v);
    std::vector<int> ts;
    for (int i = 0; i < 50; ++i) ts.push_back(kv->Push(keys, vals));
    for (int t : ts) ASSERT_TRUE(kv->TryWait(t).ok());
    std::vector<float> out;
    ASSERT_TRUE(kv->TryWait(kv->Pull(keys, &out)).ok());
    ASSERT_EQ(out.size(), keys.size());
    for (float x : out) EXPECT_EQ(x, 50 * v);

    // A PushPull loop on other keys: each round trip returns the sum so far.
    std::vector<Key> other = SpreadKeys(n, rank + workers, workers);
    std::vector<float> sum;
    for (int i = 1; i <= 100; ++i) {
      ASSERT_TRUE(kv->TryWait(kv->PushPull(other, vals, &sum)).ok());
      ASSERT_EQ(sum.size(), other.size());
      ASSERT_EQ(sum[0], i * v);
    }
    for (float x : sum) EXPECT_EQ(x, 100 * v);
  });
}

INSTANTIATE_TEST_SUITE_P(ServersWorkers, PushPull,
                         ::testing::Combine(::testing::Values(1, 2, 3),
                                            ::testing::Values(1, 2, 3)));

TEST(KV, SpinningWaitsGiveTheSameAnswers) {
  RunKVJob(2, 2,
           [&](Postoffice* po, int rank, KVWorker<float>* kv) {
             EXPECT_EQ(po->spin_us(), 200);
             std::vector<Key> keys = SpreadKeys(10, rank, 2);
             for (int i = 0; i < 200; ++i) {
               ASSERT_TRUE(kv->TryWait(kv->Push(keys, std::vector<float>(10, 1.0f))).ok());
             }
             std::vector<float> out;
             ASSERT_TRUE(kv->TryWait(kv->Pull(keys, &out)).ok());
             EXPECT_EQ(out, std::vector<float>(10, 200.0f));
           },
           {{"PS_SPIN_US", "200"}});
}

TEST(KV, VariableLensManyValuesPerKeyExtremeKeysAndEmptyLists) {
  RunKVJob(3, 1, [&](Postoffice*, int, KVWorker<float>* kv) {
    // k = 3 values per key, keys 0 and kMaxKey included.
    SArray<Key> keys = {0, 7, kMaxKey / 2, kMaxKey - 1, kMaxKey};
    SArray<float> vals(keys.size() * 3);
    for (size_t i = 0; i < vals.size(); ++i) vals[i] = static_cast<float>(i);
    ASSERT_TRUE(kv->TryWait(kv->ZPush(keys, vals)).ok());
    ASSERT_TRUE(kv->TryWait(kv->ZPush(keys, vals)).ok());
    SArray<float> out;
    SArray<int> out_lens;
    ASSERT_TRUE(kv->TryWait(kv->ZPull(keys, &out, &out_lens)).ok());
    ASSERT_EQ(out.size(), vals.size());
    for (size_t i = 0; i < vals.size(); ++i) EXPECT_EQ(out[i], 2 * vals[i]);
    EXPECT_EQ(std::vector<int>(out_lens.begin(), out_lens.end()), std::vector<int>(5, 3));

    // Variable lens on other keys.
    std::vector<Key> vkeys = {1, kMaxKey / 3, kMaxKey / 3 * 2 + 5, kMaxKey - 2};
    std::vector<int> lens = {1, 4, 0, 2};
    std::vector<float> vvals = {1, 2, 3, 4, 5, 6, 7};
    ASSERT_TRUE(kv->TryWait(kv->Push(vkeys, vvals, lens)).ok());
    std::vector<float> vout;
    std::vector<int> vlens;
    ASSERT_TRUE(kv->TryWait(kv->Pull(vkeys, &vout, &vlens)).ok());
    EXPECT_EQ(vout, vvals);
    EXPECT_EQ(vlens, lens);
    // Pulling them without lens is an error: their lengths differ.
    std::vector<float> no_lens;
    Status s = kv->TryWait(kv->Pull(vkeys, &no_lens));
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << s.message();

    // An empty key list finishes at once, and its callback has run.
    bool called = false;
    std::vector<float> empty_out;
    int ts = kv->Pull({}, &empty_out, nullptr, 0, [&] { called = true; });
    EXPECT_TRUE(called);
    EXPECT_TRUE(empty_out.empty());
    EXPECT_TRUE(kv->TryWait(ts).ok());
    // An output that is not empty must have the size of the answer, even an empty one.
    std::vector<float> sized = {1, 2};
    EXPECT_EQ(kv->TryWait(kv->Pull({}, &sized)).code(), Status::Code::kInvalidArgument);
    EXPECT_TRUE(kv->TryWait(kv->Push({}, {})).ok());
  });
}

TEST(KV, CallbackRunsBeforeWaitReturnsWithOutputsSized) {
  RunKVJob(2, 1, [&](Postoffice*, int, KVWorker<float>* kv) {
    std::vector<Key> keys = SpreadKeys(10, 0, 1);
    ASSERT_TRUE(kv->TryWait(kv->Push(keys, std::vector<float>(10, 2.0f))).ok());
    for (int i = 0; i < 20; ++i) {
      std::vector<float> out;
      std::atomic<size_t> seen{0};
      int ts = kv->Pull(keys, &out, nullptr, 0, [&] { seen = out.size(); });
      ASSERT_TRUE(kv->TryWait(ts).ok());
      EXPECT_EQ(seen.load(), 10U);
    }
  });
}

TEST(KV, BadCallsAreClearErrorsNamingThePosition) {
  RunKVJob(1, 1, [&](Postoffice*, int, KVWorker<float>* kv) {
    Status s = kv->TryWait(kv->Push({1, 5, 3}, {1, 1, 1}));
    EXPECT_EQ(s.message(), "keys must be sorted and unique: keys[2]=3 comes after keys[1]=5");
    s = kv->TryWait(kv->Push({1, 1}, {1, 1}));
    EXPECT_EQ(s.message(), "keys must be sorted and unique: keys[1]=1 comes after keys[0]=1");
    s = kv->TryWait(kv->Push({1, 2}, {1, 1, 1}));
    EXPECT_EQ(s.message(),
              "3 values for 2 keys: not a multiple; give lens for values of different lengths");
    s = kv->TryWait(kv->Push({1, 2}, {1, 1, 1}, {1, 1}));
    EXPECT_EQ(s.message(), "lens add up to 2, but there are 3 values");
    // Nothing bad reached the server: the keys still read as zeros.
    std::vector<float> out;
    ASSERT_TRUE(kv->TryWait(kv->Pull({1, 2, 3, 5}, &out)).ok());
    EXPECT_EQ(out, std::vector<float>(4, 0.0f));
    // A push that does not fit what a key holds is refused whole by the default handle.
    ASSERT_TRUE(kv->TryWait(kv->Push({1, 2}, {1, 1})).ok());
    s = kv->TryWait(kv->Push({1, 2}, {1, 1, 1, 1, 1}, {2, 3}));
    EXPECT_EQ(s.code(), Status::Code::kRemoteError);
    EXPECT_NE(s.message().find("key 1 holds 1 values; a push of 2 does not fit"), std::string::npos)
        << s.message();
    out.clear();
    s = kv->TryWait(kv->Pull({1, 2}, &out));
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(out, std::vector<float>(2, 1.0f));
  });
}

// Servers that answer on another thread, some time after the request, or with an error.
TEST(KV, ServerAnswersLaterFromAnotherThreadAndWithErrors) {
  test::LocalJob job(2, 1);
  job.Run([&](Postoffice* po, const std::string& role, int) {
    ASSERT_TRUE(po->TryStart(0).ok());
    if (role == "server") {
      KVServer<float> server(0, po);
      std::mutex mu;
      std::vector<std::pair<KVMeta, KVPairs<float>>> held;
      std::atomic<bool> done{false};
      server.set_request_handle(
          [&](const KVMeta& meta, const KVPairs<float>& data, KVServer<float>*) {
            std::lock_guard<std::mutex> lk(mu);
            held.emplace_back(meta, data);
          });
      // Answers from this thread: pulls get each key's first value doubled; cmd 13 is refused.
      std::thread answerer([&] {
        while (!done) {
          std::vector<std::pair<KVMeta, KVPairs<float>>> batch;
          {
            std::lock_guard<std::mutex> lk(mu);
            batch.swap(held);
          }
          for (auto& req : batch) {
            if (req.first.cmd == 13) {
              server.ResponseError(req.first, "cmd 13 is not allowed");
              continue;
            }
            KVPairs<float> res;
            if (req.first.pull) {
              res.vals.resize(req.second.keys.size());
              for (size_t i = 0; i < res.vals.size(); ++i) {
                res.vals[i] = static_cast<float>(req.second.keys[i] % 1000) * 2;
              }
            }
            server.Response(req.first, res);
          }
          std::this_thread::yield();
        }
      });
      ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
      done = true;
      answerer.join();
    } else if (role == "worker") {
      {
        KVWorker<float> kv(0, 0, po);
        std::vector<Key> keys = {3, 20, kMaxKey - 999};  // the last on server 1
        for (int i = 0; i < 20; ++i) {
          std::vector<float> out;
          ASSERT_TRUE(kv.TryWait(kv.Pull(keys, &out)).ok());
          EXPECT_EQ(out,
                    (std::vector<float>{6, 40, static_cast<float>((kMaxKey - 999) % 1000 * 2)}));
        }
        Status s = kv.TryWait(kv.Push(keys, {1, 1, 1}, {}, 13));
        EXPECT_EQ(s.code(), Status::Code::kRemoteError);
        EXPECT_NE(s.message().find("with an error: cmd 13 is not allowed"), std::string::npos)
            << s.message();
        EXPECT_TRUE(kv.TryWait(kv.Push(keys, {1, 1, 1})).ok());  // the next one works
        EXPECT_EQ(kv.pending_requests(), 0U);
      }
      ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
    }
    EXPECT_TRUE(po->TryFinalize(0).ok());
  });
}

TEST(KV, TwoWorkerThreadsInOneProcess) {
  int port = test::FreePort();
  Postoffice scheduler(test::NodeEnv("scheduler", port, 2, 2));
  Postoffice server0(test::NodeEnv("server", port, 2, 2));
  Postoffice server1(test::NodeEnv("server", port, 2, 2));
  Postoffice worker(test::NodeEnv("worker", port, 2, 2));
  std::vector<std::thread> threads;
  threads.emplace_back([&] {
    ASSERT_TRUE(scheduler.TryStart(0).ok());
    EXPECT_TRUE(scheduler.TryFinalize(0).ok());
  });
  for (Postoffice* po : {&server0, &server1}) {
    threads.emplace_back([po] {
      ASSERT_TRUE(po->TryStart(0).ok());
      {
        KVServer<float> server(0, po);
        server.set_request_handle(KVServerDefaultHandle<float>());
        ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
      }
      EXPECT_TRUE(po->TryFinalize(0).ok());
    });
  }
  for (int c = 0; c < 2; ++c) {
    threads.emplace_back([&, c] {
      ASSERT_TRUE(worker.TryStart(c).ok());
      {
        KVWorker<float> kv(0, c, &worker);
        std::vector<Key> keys = SpreadKeys(16, c, 2);
        std::vector<float> vals(16, 1.0f + c);
        for (int i = 0; i < 30; ++i) ASSERT_TRUE(kv.TryWait(kv.Push(keys, vals)).ok());
        std::vector<float> out;
        ASSERT_TRUE(kv.TryWait(kv.Pull(keys, &out)).ok());
        EXPECT_EQ(out, std::vector<float>(16, 30 * (1.0f + c)));
      }
      ASSERT_TRUE(worker.TryBarrier(c, kServersAndWorkers).ok());
      EXPECT_TRUE(worker.TryFinalize(c).ok());
    });
  }
  for (auto& t : threads) t.join();
}

// A thread in Wait receives for its whole process (Van::ReceiveUntil). While one waits long,
// heartbeats must go on and another customer's answers must still arrive.
TEST(KV, LongWaitKeepsHeartbeatsAndOtherCustomersGoing) {
  int port = test::FreePort();
  test::Env hb = {{"PS_HEARTBEAT_INTERVAL", "0.1"}, {"PS_HEARTBEAT_TIMEOUT", "1"}};
  Postoffice scheduler(test::NodeEnv("scheduler", port, 1, 2, hb));
  Postoffice server(test::NodeEnv("server", port, 1, 2, hb));
  Postoffice worker(test::NodeEnv("worker", port, 1, 2, hb));
  std::atomic<bool> slow_sent{false}, others_done{false};
  std::vector<std::thread> threads;
  threads.emplace_back([&] {
    ASSERT_TRUE(scheduler.TryStart(0).ok());
    EXPECT_TRUE(scheduler.TryFinalize(0).ok());
  });
  threads.emplace_back([&] {
    ASSERT_TRUE(server.TryStart(0).ok());
    {
      KVServer<float> kv(0, &server);
      KVServerDefaultHandle<float> store;
      std::mutex mu;
      std::thread late;  // protected by mu
      kv.set_request_handle(
          [&](const KVMeta& meta, const KVPairs<float>& data, KVServer<float>* s) {
            if (meta.cmd != 7) return store(meta, data, s);
            // Held for twice the heartbeat timeout, and until the other customer is done.
            std::lock_guard<std::mutex> lk(mu);
            late = std::thread([&, meta, s] {
              std::this_thread::sleep_until(Clock::now() + std::chrono::milliseconds(2000));
              ASSERT_TRUE(test::WaitFor([&] { return others_done.load(); }, 20));
              KVPairs<float> res;
              res.vals = {42};
              s->Response(meta, res);
            });
          });
      ASSERT_TRUE(server.TryBarrier(0, kServersAndWorkers).ok());
      std::lock_guard<std::mutex> lk(mu);
      late.join();
    }
    EXPECT_TRUE(server.TryFinalize(0).ok());
  });
  threads.emplace_back([&] {
    ASSERT_TRUE(worker.TryStart(0).ok());
    {
      KVWorker<float> kv(0, 0, &worker);
      std::vector<float> out;
      int ts = kv.Pull({5}, &out, nullptr, 7);
      slow_sent = true;
      Status s = kv.TryWait(ts);
      EXPECT_TRUE(s.ok()) << s.message();
      EXPECT_EQ(out, std::vector<float>{42});
    }
    ASSERT_TRUE(worker.TryBarrier(0, kServersAndWorkers).ok());
    EXPECT_TRUE(worker.TryFinalize(0).ok());
  });
  threads.emplace_back([&] {
    ASSERT_TRUE(worker.TryStart(1).ok());
    {
      KVWorker<float> kv(0, 1, &worker);
      ASSERT_TRUE(test::WaitFor([&] { return slow_sent.load(); }, 20));
      for (int i = 0; i < 30; ++i) ASSERT_TRUE(kv.TryWait(kv.Push({9}, {1})).ok());
      std::vector<float> out;
      ASSERT_TRUE(kv.TryWait(kv.Pull({9}, &out)).ok());
      EXPECT_EQ(out, std::vector<float>{30});
      others_done = true;
    }
    ASSERT_TRUE(worker.TryBarrier(1, kServersAndWorkers).ok());
    EXPECT_TRUE(worker.TryFinalize(1).ok());
  });
  for (auto& t : threads) t.join();
}

// Callbacks run on the thread that receives; a Wait there would wait for itself.
TEST(KV, WaitInACallbackIsAnErrorNotAHang) {
  RunKVJob(1, 1, [&](Postoffice*, int, KVWorker<float>* kv) {
    int first = kv->Push({1}, {1});
    Status inside;
    ASSERT_TRUE(kv->TryWait(kv->Push({2}, {1}, {}, 0, [&] { inside = kv->TryWait(first); })).ok());
    EXPECT_EQ(inside.code(), Status::Code::kInvalidArgument);
    EXPECT_NE(inside.message().find("Wait called from a response handler or callback"),
              std::string::npos)
        << inside.message();
    EXPECT_TRUE(kv->TryWait(first).ok());
  });
}

TEST(KV, ManyRequestsLeaveNoBookkeepingBehind) {
  RunKVJob(2, 1, [&](Postoffice*, int, KVWorker<float>* kv) {
    SArray<Key> keys = {1, kMaxKey - 1};
    SArray<float> vals = {1, 1};
    SArray<float> out(2);
    const int kRounds = 20000;
    for (int i = 0; i < kRounds; ++i) {
      int a = kv->ZPush(keys, vals);
      int b = kv->ZPull(keys, &out);
      ASSERT_TRUE(kv->TryWait(a).ok());
      ASSERT_TRUE(kv->TryWait(b).ok());
    }
    EXPECT_EQ(kv->pending_requests(), 0U);
    EXPECT_EQ(out[0], static_cast<float>(kRounds));
  });
}

TEST(KV, DeadServerFailsTheWaitsThatNeedIt) {
  test::LocalJob job(2, 1, {{"PS_HEARTBEAT_INTERVAL", "0.1"}, {"PS_HEARTBEAT_TIMEOUT", "1"}});
  std::atomic<bool> server1_gone{false}, worker_done{false};
  job.Run([&](Postoffice* po, const std::string& role, int) {
    ASSERT_TRUE(po->TryStart(0).ok());
    if (role == "scheduler") {
      // Stays up until the worker is done: without a scheduler every request fails.
      ASSERT_TRUE(test::WaitFor([&] { return worker_done.load(); }, 20));
    } else if (role == "server") {
      {
        KVServer<float> server(0, po);
        server.set_request_handle(KVServerDefaultHandle<float>());
        ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
        if (po->my_rank() == 0) {
          ASSERT_TRUE(test::WaitFor([&] { return worker_done.load(); }, 20));
        }
      }
      if (po->my_rank() == 1) {
        server1_gone = true;
        return;  // destroyed by the worker below: it dies
      }
    } else if (role == "worker") {
      KVWorker<float> kv(0, 0, po);
      ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
      ASSERT_TRUE(test::WaitFor([&] { return server1_gone.load(); }, 10));
      for (int i = 0; i < job.num_nodes(); ++i) {
        Postoffice* n = job.node(i);
        if (n && n->is_server() && n->my_rank() == 1) job.Kill(i);
      }
      std::vector<float> out;
      Status s = kv.TryWait(kv.Pull({1, kMaxKey}, &out));  // needs both servers
      EXPECT_EQ(s.code(), Status::Code::kNodeFailed);
      EXPECT_NE(s.message().find("server 1 (node 10"), std::string::npos) << s.message();
      std::vector<float> one;
      s = kv.TryWait(kv.Pull({1}, &one));  // server 0 still answers
      EXPECT_TRUE(s.ok()) << s.message();
      worker_done = true;
    }
    EXPECT_FALSE(po->TryFinalize(0).ok());
  });
}

TEST(KV, UseBeforeStartIsAnErrorNotACrash) {
  Postoffice po(test::NodeEnv("worker", test::FreePort(), 1, 1));
  KVWorker<float> kv(0, 0, &po);
  EXPECT_EQ(kv.TryWait(kv.Push({1}, {1})).message(), "KVWorker used before Start");
  SimpleApp app(1, 0, &po);
  EXPECT_EQ(app.TryWait(app.Request(0, "", kServerGroup)).message(), "SimpleApp used before Start");
}

TEST(DefaultSlicer, MatchesABruteForceSplit) {
  std::mt19937_64 rng(5);
  for (int servers : {1, 2, 3, 7}) {
    Postoffice po(test::NodeEnv("worker", 9000, servers, 1));
    const std::vector<Range>& ranges = po.GetServerKeyRanges();
    for (int round = 0; round < 50; ++round) {
      std::set<Key> unique;
      int n = static_cast<int>(rng() % 200);
      if (round % 5 == 0) unique = {0, kMaxKey};
      while (static_cast<int>(unique.size()) < n) unique.insert(static_cast<Key>(rng()));
      KVPairs<float> send;
      send.keys.CopyFrom(unique.begin(), unique.end());
      bool with_lens = round % 2;
      std::vector<float> vals;
      std::vector<int> lens;
      for (size_t i = 0; i < send.keys.size(); ++i) {
        int len = with_lens ? static_cast<int>(rng() % 4) : 2;
        lens.push_back(len);
        for (int j = 0; j < len; ++j) vals.push_back(static_cast<float>(i * 10 + j));
      }
      send.vals = SArray<float>(vals);
      if (with_lens) send.lens = SArray<int>(lens);

      KVWorker<float>::SlicedKVs sliced;
      KVWorker<float>::DefaultSlicer(send, ranges, &sliced);
      ASSERT_EQ(static_cast<int>(sliced.size()), servers);
      // Brute force: every key, with its values, goes to the server that owns it.
      std::vector<std::vector<Key>> want_keys(servers);
      std::vector<std::vector<float>> want_vals(servers);
      size_t at = 0;
      for (size_t i = 0; i < send.keys.size(); ++i) {
        int owner = po.ServerRankForKey(send.keys[i]);
        want_keys[owner].push_back(send.keys[i]);
        for (int j = 0; j < lens[i]; ++j) want_vals[owner].push_back(vals[at + j]);
        at += lens[i];
      }
      for (int s = 0; s < servers; ++s) {
        const KVPairs<float>& got = sliced[s].second;
        EXPECT_EQ(sliced[s].first, !want_keys[s].empty());
        EXPECT_EQ(std::vector<Key>(got.keys.begin(), got.keys.end()), want_keys[s]);
        EXPECT_EQ(std::vector<float>(got.vals.begin(), got.vals.end()), want_vals[s]);
      }
    }
  }
}

}  // namespace
}  // namespace ps
