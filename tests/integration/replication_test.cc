// Server replication inside one process: a server cut off from the network by the
// fault-injecting transport is replaced, and fenced when it comes back; the sums stay exact.
// (test_replication.py kills and freezes real server processes.)
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "common/fault_injecting_transport.h"
#include "common/test_util.h"
#include "ps/kv_app.h"

namespace ps {
namespace {

constexpr int kBoth = kServerGroup + kWorkerGroup;

TEST(Replication, ServerCutOffIsReplacedThenFencedWhenItComesBackAndSumsStayExact) {
  const test::Env env = {
      {"PS_HEARTBEAT_INTERVAL", "0.1"}, {"PS_HEARTBEAT_TIMEOUT", "1"}, {"PS_REPLICATION", "2"}};
  test::LocalJob job(3, 2, env);
  // Node 2 is the second server. It gives up on the scheduler much later than the scheduler
  // gives up on it, so that it is still running when its network comes back.
  job.Configure(2, {{"PS_HEARTBEAT_TIMEOUT", "60"}});
  std::atomic<test::FaultInjectingTransport*> cut{nullptr};
  job.node(2)->set_transport_factory(test::FaultInjectingTransport::Factory({}, &cut));
  Postoffice* scheduler = job.node(0);

  const int kRounds = 200, kKeys = 30, kCutAt = 20;
  std::vector<Key> keys(kKeys);
  for (int i = 0; i < kKeys; ++i) keys[i] = static_cast<Key>(i) * (kMaxKey / kKeys);
  std::mutex mu;
  std::condition_variable cv;
  std::string fenced;  // what the cut-off server was told
  std::vector<std::vector<float>> pulled;
  std::atomic<bool> back{false};

  job.Run([&](Postoffice* po, const std::string& role, int index) {
    ASSERT_TRUE(po->TryStart(0).ok());
    if (role == "scheduler") {
      EXPECT_TRUE(po->TryFinalize(0).ok());
      return;
    }
    if (role == "server") {
      KVServer<float> server(0, po);
      server.set_request_handle(KVServerDefaultHandle<float>());
      ASSERT_TRUE(po->TryBarrier(0, kBoth).ok());
      Status s = po->TryBarrier(0, kBoth);  // the workers are done
      if (index == 1) {
        std::lock_guard<std::mutex> lk(mu);
        fenced = s.message();
        cv.notify_all();
        return;
      }
      EXPECT_TRUE(s.ok()) << s.message();
      EXPECT_TRUE(po->TryFinalize(0).ok());
      return;
    }
    KVWorker<float> kv(0, 0, po);
    ASSERT_TRUE(po->TryBarrier(0, kBoth).ok());
    for (int r = 0; r < kRounds; ++r) {
      if (index == 0 && r == kCutAt) cut.load()->Isolate(true);
      // Back once the scheduler replaced it (pushes went on through the new primaries).
      if (index == 0 && r > kCutAt && !back && scheduler->van()->epoch() >= 1) {
        cut.load()->Isolate(false);
        back = true;
      }
      std::vector<float> vals(kKeys, static_cast<float>(index + 1 + r % 3));
      Status s = kv.TryWait(kv.Push(keys, vals));
      ASSERT_TRUE(s.ok()) << s.message();
    }
    if (index == 0) {
      // The job goes on until the server that came back was told to go.
      std::unique_lock<std::mutex> lk(mu);
      cv.wait_for(lk, std::chrono::seconds(30), [&] { return !fenced.empty(); });
    }
    ASSERT_TRUE(po->TryBarrier(0, kWorkerGroup).ok());
    std::vector<float> got;
    ASSERT_TRUE(kv.TryWait(kv.Pull(keys, &got)).ok());
    {
      std::lock_guard<std::mutex> lk(mu);
      pulled.push_back(got);
    }
    EXPECT_TRUE(po->TryBarrier(0, kBoth).ok());
    EXPECT_TRUE(po->TryFinalize(0).ok());
  });
  EXPECT_TRUE(back);
  float want = 0;
  for (int w = 0; w < 2; ++w) {
    for (int r = 0; r < kRounds; ++r) want += static_cast<float>(w + 1 + r % 3);
  }
  ASSERT_EQ(pulled.size(), 2u);
  for (const auto& got : pulled) EXPECT_EQ(got, std::vector<float>(kKeys, want));
  EXPECT_NE(fenced.find("was replaced: it was declared dead"), std::string::npos) << fenced;
  EXPECT_NE(fenced.find("answers for its key range since epoch 1"), std::string::npos) << fenced;
}

}  // namespace
}  // namespace ps
