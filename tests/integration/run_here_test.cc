// Where a KVServer runs its request handle: small requests of a handle that never blocks run on
// the node's receiving thread, one at a time and in order; large ones, and every request of a
// handle that may block, on the server's own thread. Whole jobs inside one process.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <vector>

#include "common/test_util.h"

namespace ps {
namespace {

constexpr int kServersAndWorkers = kServerGroup + kWorkerGroup;

// What the handles saw, shared by their copies.
struct Seen {
  std::mutex mu;
  std::vector<int> cmds;            // in the order handled
  std::vector<bool> on_receiving;   // whether each ran on the receiving thread
  std::atomic<int> inside{0};       // handles running now
  std::atomic<int> most_inside{0};  // most at once
};

// KVServerDefaultHandle that records each request and says whether it blocks.
struct RecordingHandle {
  bool never_blocks() const { return says_never_blocks; }
  void operator()(const KVMeta& meta, const KVPairs<float>& data, KVServer<float>* server) {
    int now = ++seen->inside;
    int most = seen->most_inside.load();
    while (now > most && !seen->most_inside.compare_exchange_weak(most, now)) {
    }
    {
      std::lock_guard<std::mutex> lk(seen->mu);
      seen->cmds.push_back(meta.cmd);
      seen->on_receiving.push_back(po->van()->IsReceivingThread());
    }
    --seen->inside;
    store(meta, data, server);
  }
  bool says_never_blocks;
  Postoffice* po;
  std::shared_ptr<Seen> seen;
  KVServerDefaultHandle<float> store;
};

// A server with app 0 (a handle that never blocks) and app 1 (one that may), and a worker that
// runs "work" with a KVWorker for each.
void RunJob(const std::shared_ptr<Seen>& never, const std::shared_ptr<Seen>& may,
            const std::function<void(KVWorker<float>* never, KVWorker<float>* may)>& work) {
  test::LocalJob job(1, 1);
  job.Run([&](Postoffice* po, const std::string& role, int) {
    ASSERT_TRUE(po->TryStart(0).ok());
    if (role == "server") {
      KVServer<float> a(0, po), b(1, po);
      a.set_request_handle(RecordingHandle{true, po, never, {}});
      b.set_request_handle(RecordingHandle{false, po, may, {}});
      ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());  // handles set
      ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
    } else if (role == "worker") {
      {
        KVWorker<float> a(0, 0, po), b(1, 0, po);
        // Requests that arrive before the handle is set wait for it on the server's thread.
        ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
        work(&a, &b);
      }
      ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
    }
    EXPECT_TRUE(po->TryFinalize(0).ok());
  });
}

// Keys 0, 1, ..., n - 1 spread over the key space.
std::vector<Key> ManyKeys(size_t n) {
  std::vector<Key> keys(n);
  for (size_t i = 0; i < n; ++i) keys[i] = static_cast<Key>(i) * (kMaxKey / n);
  return keys;
}

TEST(RunHere, SmallRequestsOfAHandleThatNeverBlocksRunOnTheReceivingThread) {
  auto never = std::make_shared<Seen>(), may = std::make_shared<Seen>();
  const std::vector<Key> one = {0};
  const std::vector<Key> many = ManyKeys(20000);  // 240 KB: more than kRunHereMaxBytes
  RunJob(never, may, [&](KVWorker<float>* a, KVWorker<float>* b) {
    for (KVWorker<float>* kv : {a, b}) {
      for (int i = 0; i < 5; ++i) ASSERT_TRUE(kv->TryWait(kv->Push(one, {1.0f}, {}, 1)).ok());
      ASSERT_TRUE(kv->TryWait(kv->Push(many, std::vector<float>(many.size(), 2.0f), {}, 2)).ok());
      std::vector<float> out;
      ASSERT_TRUE(kv->TryWait(kv->Pull(one, &out, nullptr, 1)).ok());
      EXPECT_EQ(out, std::vector<float>{7.0f});  // 5 x 1 + 2, exactly
      out.clear();
      Status s = kv->TryWait(kv->Pull(many, &out, nullptr, 2));
      ASSERT_TRUE(s.ok()) << s.message();
      ASSERT_EQ(out.size(), many.size());
      EXPECT_EQ(out[0], 7.0f);
      EXPECT_EQ(out[1], 2.0f);
      EXPECT_EQ(out.back(), 2.0f);
    }
  });
  std::lock_guard<std::mutex> lk(never->mu);
  ASSERT_EQ(never->cmds, (std::vector<int>{1, 1, 1, 1, 1, 2, 1, 2}));
  ASSERT_EQ(never->on_receiving.size(), 8u);
  // The five small pushes ran where they were received; the large requests on the server's
  // thread. (The small pull after a large push may find that thread still finishing it, not
  // idle yet: then it runs there too, so its place is not checked.)
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(never->on_receiving[i]) << i;
  EXPECT_FALSE(never->on_receiving[5]);
  EXPECT_FALSE(never->on_receiving[7]);
  std::lock_guard<std::mutex> lk2(may->mu);
  ASSERT_EQ(may->cmds.size(), 8u);
  for (bool here : may->on_receiving) EXPECT_FALSE(here);
}

TEST(RunHere, MixedSmallAndLargeRequestsKeepTheirOrderAndRunOneAtATime) {
  auto never = std::make_shared<Seen>(), may = std::make_shared<Seen>();
  const std::vector<Key> one = {0};
  const std::vector<Key> many = ManyKeys(20000);
  const int kRequests = 60;
  RunJob(never, may, [&](KVWorker<float>* a, KVWorker<float>*) {
    std::vector<int> ts;
    // Sent without waiting: small ones arrive while large ones are queued or running.
    for (int i = 0; i < kRequests; ++i) {
      if (i % 3 == 2) {
        ts.push_back(a->Push(many, std::vector<float>(many.size(), 1.0f), {}, i));
      } else {
        ts.push_back(a->Push(one, {1.0f}, {}, i));
      }
    }
    for (int t : ts) ASSERT_TRUE(a->TryWait(t).ok());
    std::vector<float> out;
    ASSERT_TRUE(a->TryWait(a->Pull(one, &out)).ok());
    EXPECT_EQ(out, std::vector<float>{static_cast<float>(kRequests)});
  });
  std::lock_guard<std::mutex> lk(never->mu);
  ASSERT_EQ(never->cmds.size(), static_cast<size_t>(kRequests) + 1);
  for (int i = 0; i < kRequests; ++i) EXPECT_EQ(never->cmds[i], i);
  EXPECT_EQ(never->most_inside.load(), 1);
}

}  // namespace
}  // namespace ps
