// The van's receive path and control handling on untrusted messages, through a transport that
// hands the van what the input describes: a node (worker) that has joined a job of one server
// and itself, or a scheduler waiting for one server and one worker. Each message comes on a
// connection the input picks: the scheduler's own connection to this node, the connection of
// a registered node, or an unknown one. So the fuzzer reaches
// what the node accepts (known senders, plausible control commands) as well as what it drops.
//
// Input: byte 0 picks the role; then messages, each [connection byte][frame count byte]
// [frames, each two bytes of length and the bytes].
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "fuzz/fuzz_input.h"
#include "message/codec.h"
#include "ps/base.h"
#include "ps/internal/transport.h"
#include "ps/internal/van.h"
#include "van/peer_guard.h"

namespace ps {
namespace {

// A transport of queues: Recv takes what the harness queued; Send goes nowhere.
class QueueTransport : public Transport {
 public:
  struct Item {
    std::vector<SArray<char>> frames;
    std::string peer;
  };
  Status Configure(const Options& options) override {
    identity_ = options.identity;
    return Status::OK();
  }
  Status Bind(int, int, int* bound_port) override {
    *bound_port = 40000;
    return Status::OK();
  }
  void SetAddress(int, const std::string&, int, bool, const std::string&) override {}
  void Forget(int) override {}
  Status Send(int, const std::string& meta, const std::vector<SArray<char>>& data,
              size_t* bytes) override {
    *bytes += meta.size();
    for (const auto& d : data) *bytes += d.size();
    return Status::OK();
  }
  bool Recv(std::vector<SArray<char>>* frames, std::string* peer, int timeout_ms) override {
    std::unique_lock<std::mutex> lk(mu_);
    in_recv_ = true;  // whatever it took before is processed
    cv_.notify_all();
    cv_.wait_for(lk, std::chrono::milliseconds(timeout_ms),
                 [&] { return !items_.empty() || woken_; });
    woken_ = false;
    if (items_.empty()) return false;
    in_recv_ = false;
    *frames = std::move(items_.front().frames);
    *peer = std::move(items_.front().peer);
    items_.pop_front();
    return true;
  }
  void ReadPeerEvents(const PeerEvent&) override {}
  bool HandshakeFailed(int) override { return false; }
  ConnectionCounts connection_counts() const override { return {}; }
  void Wake() override {
    std::lock_guard<std::mutex> lk(mu_);
    woken_ = true;
    cv_.notify_all();
  }
  void Close() override {}

  void Push(Item item) {
    std::lock_guard<std::mutex> lk(mu_);
    in_recv_ = false;
    items_.push_back(std::move(item));
    cv_.notify_all();
  }
  // Waits until the van took every queued item and came back for more (so it processed them).
  void Drain() {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return items_.empty() && in_recv_; });
  }
  std::string identity() {
    std::lock_guard<std::mutex> lk(mu_);
    return identity_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> items_;
  bool woken_ = false;
  bool in_recv_ = false;  // the van waits in Recv, having processed what it took
  std::string identity_;
};

SArray<char> Frame(const std::string& s) {
  SArray<char> f;
  f.CopyFrom(s.data(), s.size());
  return f;
}

}  // namespace
}  // namespace ps

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ps;
  static const std::string kServerToken = PeerGuard::NewToken();
  static const std::string kWorkerToken = PeerGuard::NewToken();
  fuzz::FuzzInput in(data, size);
  const bool scheduler = in.Byte() & 1;

  auto* transport = new QueueTransport();
  Van van{std::unique_ptr<Transport>(transport)};
  VanOptions o;
  o.role = scheduler ? Node::SCHEDULER : Node::WORKER;
  o.num_servers = 1;
  o.num_workers = 1;
  o.scheduler_host = "127.0.0.1";
  o.scheduler_port = 40000;
  o.node_host = "127.0.0.1";
  o.heartbeat_interval = 0;
  o.start_timeout = 3600;
  o.linger_ms = 0;
  Status s = van.Start(
      o, [](Message&&) {}, [](const Node&, const Status&) {}, [](const Status&) {});
  if (!s.ok()) abort();
  const std::string me = transport->identity();

  if (!scheduler) {
    // The node list from the scheduler: this node is worker 9, the server is node 8.
    Meta list;
    list.sender = kScheduler;
    list.recver = 9;
    list.control.cmd = Control::ADD_NODE;
    Node sched, server, worker;
    sched.role = Node::SCHEDULER;
    sched.id = kScheduler;
    sched.hostname = "127.0.0.1";
    sched.port = 40000;
    server.role = Node::SERVER;
    server.id = 8;
    server.hostname = "127.0.0.1";
    server.port = 40001;
    server.conn_key = PeerGuard::KeyOf(kServerToken);
    worker = server;
    worker.role = Node::WORKER;
    worker.id = 9;
    worker.conn_key = PeerGuard::KeyOf(me);
    list.control.node = {sched, server, worker};
    std::string m;
    EncodeMeta(list, &m);
    transport->Push({{Frame(m)}, PeerGuard::SchedulerRoutingId(me)});
    transport->Drain();
    if (!van.ready()) abort();
  }

  while (!in.empty()) {
    QueueTransport::Item item;
    switch (in.Byte() % 4) {
      case 0:
        item.peer = PeerGuard::SchedulerRoutingId(scheduler ? kWorkerToken : me);
        break;
      case 1:
        item.peer = kServerToken;
        break;
      case 2:
        item.peer = kWorkerToken;
        break;
      default:
        item.peer = in.Bytes();
        if (item.peer.empty()) item.peer = "x";  // a routing id is never empty
        break;
    }
    int frames = in.Byte() % 5;
    for (int i = 0; i < frames; ++i) item.frames.push_back(Frame(in.Bytes()));
    transport->Push(std::move(item));
  }
  transport->Drain();
  van.Stop();
  return 0;
}
