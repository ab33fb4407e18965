// Server replication inside one process: a server cut off from the network by the
// fault-injecting transport is replaced, and fenced when it comes back; the sums stay exact.
// (test_replication.py kills and freezes real server processes.)
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/fault_injecting_transport.h"
#include "common/test_util.h"
#include "ps/kv_app.h"

namespace ps {
namespace {

constexpr int kBoth = kServerGroup + kWorkerGroup;

// A server of these tests: sums pushes until the workers are done; returns how the barrier
// that says so ended (a server replaced meanwhile is told there).
Status ServeUntilTheWorkersAreDone(Postoffice* po) {
  KVServer<float> server(0, po);
  server.set_request_handle(KVServerDefaultHandle<float>());
  Status s = po->TryBarrier(0, kBoth);
  return s.ok() ? po->TryBarrier(0, kBoth) : s;
}

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
      Status s = ServeUntilTheWorkersAreDone(po);
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

// A replacement server joins. Every node must know where the new incarnation listens before
// its configuration names it: from then on another thread may send to its id (a push the chain
// forwards to it), and a message that went to the old incarnation's socket (the cut-off server
// here, or a dead process) would be lost, with the worker's push never answered. Each node's
// transport checks, as it is given the replacement's address, that the node does not route to
// it yet; the sums stay exact.
TEST(Replication, NothingMeantForAReplacementGoesToTheServerItReplaces) {
  const test::Env env = {
      {"PS_HEARTBEAT_INTERVAL", "0.1"}, {"PS_HEARTBEAT_TIMEOUT", "1"}, {"PS_REPLICATION", "2"}};
  test::LocalJob job(3, 2, env);
  // Node 1, a server (of whatever rank), is cut off; it gives up on the scheduler only long
  // after it was replaced. Nodes 2 to 5 are the other servers and the workers.
  job.Configure(1, {{"PS_HEARTBEAT_TIMEOUT", "60"}});
  std::atomic<test::FaultInjectingTransport*> transport[6] = {};
  std::atomic<int> address_changes{0}, routed_early{0};
  for (int n = 1; n <= 5; ++n) {
    job.node(n)->set_transport_factory(test::FaultInjectingTransport::Factory({}, &transport[n]));
  }
  Postoffice* scheduler = job.node(0);
  Postoffice* cut_off = job.node(1);

  const int kMinRounds = 100, kKeys = 30, kCutAt = 20;
  std::vector<Key> keys(kKeys);
  for (int i = 0; i < kKeys; ++i) keys[i] = static_cast<Key>(i) * (kMaxKey / kKeys);
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::string cut_off_end;  // why the cut-off server's last barrier failed
  std::vector<std::vector<float>> pulled;
  std::vector<double> pushed(2, 0);  // per worker, the value each key got in total
  std::string replacement_error;
  bool was_replacement = false;

  // A hang here is the defect: fail in a minute with what it means, not at the suite's limit.
  std::thread watchdog([&] {
    std::unique_lock<std::mutex> lk(mu);
    if (!cv.wait_for(lk, std::chrono::seconds(90), [&] { return done; })) {
      std::fprintf(stderr, "the job did not end: a push forwarded to the replacement was lost\n");
      std::_Exit(1);
    }
  });

  auto replacement = [&] {
    Postoffice po(test::NodeEnv("server", job.port(), 3, 2, env));
    Status s = po.TryStart(0);
    const bool recovery = po.is_recovery();
    if (s.ok()) {
      KVServer<float> server(0, &po);
      server.set_request_handle(KVServerDefaultHandle<float>());
      s = po.TryBarrier(0, kBoth);  // the workers are done (the first barrier is long passed)
      if (s.ok()) s = po.TryFinalize(0);
    }
    std::lock_guard<std::mutex> lk(mu);
    was_replacement = recovery;
    replacement_error = s.message();
  };
  std::thread joining;

  job.Run([&](Postoffice* po, const std::string& role, int index) {
    ASSERT_TRUE(po->TryStart(0).ok());
    if (role == "scheduler") {
      EXPECT_TRUE(po->TryFinalize(0).ok());
      return;
    }
    if (role == "server") {
      Status s = ServeUntilTheWorkersAreDone(po);
      if (po == cut_off) {
        std::lock_guard<std::mutex> lk(mu);
        cut_off_end = s.ok() ? "ok" : s.message();
        return;
      }
      EXPECT_TRUE(s.ok()) << s.message();
      EXPECT_TRUE(po->TryFinalize(0).ok());
      return;
    }
    KVWorker<float> kv(0, 0, po);
    ASSERT_TRUE(po->TryBarrier(0, kBoth).ok());
    // Rounds go on until the replacement holds its ranges and a while after.
    int synced_at = -1;
    for (int r = 0; synced_at < 0 || r < std::max(kMinRounds, synced_at + 50); ++r) {
      if (index == 0 && r == kCutAt) {
        for (int n = 2; n <= 5; ++n) {
          Postoffice* node = job.node(n);
          transport[n].load()->WatchAddressChanges([&, node](int id) {
            ++address_changes;
            // Still dead in this node's configuration: nothing is sent to it yet.
            if (!node->van()->chains().dead(Postoffice::IDtoRank(id))) ++routed_early;
          });
        }
        transport[1].load()->Isolate(true);
      }
      if (index == 0 && r > kCutAt && !joining.joinable() && scheduler->van()->epoch() >= 1) {
        joining = std::thread(replacement);
      }
      if (synced_at < 0 && scheduler->van()->synced() >= 1) synced_at = r;
      ASSERT_LT(r, 100000) << "the replacement never synced";
      const float v = static_cast<float>(index + 1 + r % 3);
      std::vector<float> vals(kKeys, v);
      Status s = kv.TryWait(kv.Push(keys, vals));
      ASSERT_TRUE(s.ok()) << s.message();
      pushed[index] += v;
    }
    ASSERT_TRUE(po->TryBarrier(0, kWorkerGroup).ok());
    std::vector<float> got;
    ASSERT_TRUE(kv.TryWait(kv.Pull(keys, &got)).ok());
    {
      std::lock_guard<std::mutex> lk(mu);
      pulled.push_back(got);
    }
    // Back after the replacement took its place: its messages come on a connection that no
    // longer holds its node's id and are refused; it ends once the job does.
    if (index == 0) transport[1].load()->Isolate(false);
    EXPECT_TRUE(po->TryBarrier(0, kBoth).ok());
    EXPECT_TRUE(po->TryFinalize(0).ok());
  });
  if (joining.joinable()) joining.join();
  {
    std::lock_guard<std::mutex> lk(mu);
    done = true;
    cv.notify_all();
  }
  watchdog.join();
  EXPECT_TRUE(was_replacement);
  EXPECT_TRUE(replacement_error.empty()) << replacement_error;
  EXPECT_EQ(scheduler->van()->replacements(), 1);
  EXPECT_EQ(address_changes.load(), 4);  // the replacement's, on each of the other nodes
  EXPECT_EQ(routed_early.load(), 0);
  const float want = static_cast<float>(pushed[0] + pushed[1]);
  ASSERT_EQ(pulled.size(), 2u);
  for (const auto& got : pulled) EXPECT_EQ(got, std::vector<float>(kKeys, want));
  EXPECT_FALSE(cut_off_end.empty() || cut_off_end == "ok") << cut_off_end;
}

}  // namespace
}  // namespace ps
