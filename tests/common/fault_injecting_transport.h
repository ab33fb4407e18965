// FaultInjectingTransport wraps a real transport (ZeroMQ) and misbehaves on purpose, the way
// leveldb's fault-injecting Env does for files: it drops, delays, duplicates or reorders a
// chosen share of the messages this node receives, cuts one peer off (its messages vanish both
// ways, as if it hung), or makes sends to a peer fail. Decisions come from a seeded generator,
// so a failing run can be repeated.
//
// Use: node->set_transport_factory(FaultInjectingTransport::Factory(options, &handle)) before
// Start; "handle" then points at the transport, to change the faults while the job runs and to
// read what it did.
//
// Threads: Recv runs on the node's receiving thread only (the delay and reorder queues are that
// thread's); Send, the setters and the counters may be used from any thread.
#ifndef PS_TESTS_COMMON_FAULT_INJECTING_TRANSPORT_H_
#define PS_TESTS_COMMON_FAULT_INJECTING_TRANSPORT_H_

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "message/codec.h"
#include "ps/internal/postoffice.h"
#include "ps/internal/transport.h"

namespace ps {
namespace test {

class FaultInjectingTransport : public Transport {
 public:
  struct Options {
    uint64_t seed = 1;
    // Shares of received messages, each from 0 to 1, that are dropped, duplicated (delivered
    // twice), delayed (by delay_ms) or reordered (held back until the next message passed).
    double drop = 0;
    double duplicate = 0;
    double delay = 0;
    double reorder = 0;
    int delay_ms = 20;
    // Faults hit data messages only; with this, control messages (registration, barriers,
    // heartbeats) too.
    bool control_too = false;
  };
  struct Counts {
    uint64_t passed = 0, dropped = 0, duplicated = 0, delayed = 0, reordered = 0, cut = 0;
    uint64_t failed_sends = 0;
  };

  FaultInjectingTransport(std::unique_ptr<Transport> inner, const Options& options)
      : inner_(std::move(inner)), options_(options), rng_(options.seed) {}

  // A factory for Postoffice::set_transport_factory over the real transport. "handle", if
  // given, is set to the transport it makes.
  static Postoffice::TransportFactory Factory(const Options& options,
                                              std::atomic<FaultInjectingTransport*>* handle) {
    return [options, handle] {
      auto* t = new FaultInjectingTransport(Transport::Create("zmq"), options);
      if (handle) *handle = t;
      return std::unique_ptr<Transport>(t);
    };
  }

  // Messages from and to node "id" vanish from now on (0: none): to the others it hangs.
  void CutOff(int id) { cut_ = id; }
  // With "on", every message from and to every peer vanishes: the node is cut off from the
  // network (until Isolate(false)).
  void Isolate(bool on) { isolated_ = on; }
  // Sends to node "id" fail from now on (0: none), once the next "after" sends to it went.
  void FailSendsTo(int id, int after = 0) {
    sends_before_failing_ = after;
    fail_sends_to_ = id;
  }
  // Calls "watch(id)" on every peer address set from now on (a replacement taking a dead
  // node's id), before the real transport gets it, on the thread that sets it.
  void WatchAddressChanges(std::function<void(int id)> watch) {
    std::lock_guard<std::mutex> lk(mu_);
    address_watch_ = std::make_shared<std::function<void(int)>>(std::move(watch));
  }
  // Changes the shares of faults while the job runs.
  void SetOptions(const Options& options) {
    std::lock_guard<std::mutex> lk(mu_);
    options_ = options;
  }
  Counts counts() const {
    std::lock_guard<std::mutex> lk(mu_);
    return counts_;
  }

  Status Configure(const Transport::Options& options) override {
    return inner_->Configure(options);
  }
  Status Bind(int port, int linger_ms, int* bound_port) override {
    return inner_->Bind(port, linger_ms, bound_port);
  }
  void SetAddress(int id, const std::string& host, int port, bool watch,
                  const std::string& routing_id) override {
    std::shared_ptr<std::function<void(int)>> hook;
    {
      std::lock_guard<std::mutex> lk(mu_);
      hook = address_watch_;
    }
    if (hook) (*hook)(id);
    inner_->SetAddress(id, host, port, watch, routing_id);
  }
  void Forget(int id) override { inner_->Forget(id); }
  bool HandshakeFailed(int id) override { return inner_->HandshakeFailed(id); }
  ConnectionCounts connection_counts() const override { return inner_->connection_counts(); }
  Status Send(int id, const std::string& meta, const std::vector<SArray<char>>& data,
              size_t* bytes) override {
    if (id != 0 && id == fail_sends_to_.load() && sends_before_failing_.fetch_sub(1) <= 0) {
      std::lock_guard<std::mutex> lk(mu_);
      ++counts_.failed_sends;
      return Status::IOError("injected send failure");
    }
    if ((id != 0 && id == cut_.load()) || isolated_.load()) {
      std::lock_guard<std::mutex> lk(mu_);
      ++counts_.cut;
      return Status::OK();  // gone without a trace, as into a hung peer
    }
    return inner_->Send(id, meta, data, bytes);
  }
  void ReadPeerEvents(const PeerEvent& on_event) override { inner_->ReadPeerEvents(on_event); }
  bool Recv(std::vector<SArray<char>>* frames, std::string* peer, int timeout_ms) override {
    Received out;
    bool got_one = RecvOne(&out, timeout_ms);
    *frames = std::move(out.frames);
    *peer = std::move(out.peer);
    return got_one;
  }
  void Wake() override { inner_->Wake(); }
  void Close() override { inner_->Close(); }

 private:
  using Time = std::chrono::steady_clock::time_point;
  // A message held for reordering waits at most this long for one to overtake it.
  static constexpr std::chrono::milliseconds kHoldAtMost{20};
  static Time Now() { return std::chrono::steady_clock::now(); }
  // A received message and the connection it came on.
  struct Received {
    std::vector<SArray<char>> frames;
    std::string peer;
    bool empty() const { return frames.empty(); }
    void clear() { frames.clear(); }
  };

  bool RecvOne(Received* out, int timeout_ms) {
    if (TakeDue(out)) return true;
    auto until = Now() + std::chrono::milliseconds(timeout_ms);
    if (!delayed_.empty()) until = std::min(until, delayed_.front().first);
    if (!held_.empty()) until = std::min(until, held_since_ + kHoldAtMost);
    int wait = static_cast<int>(std::max<long>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(until - Now()).count()));
    Received got;
    if (inner_->Recv(&got.frames, &got.peer, wait)) return Decide(std::move(got), out);
    return TakeDue(out);
  }

  // A due message from the delay queue or the duplicates, if any.
  bool TakeDue(Received* frames) {
    if (!ready_.empty()) {
      *frames = std::move(ready_.front());
      ready_.pop_front();
      return true;
    }
    if (!delayed_.empty() && delayed_.front().first <= Now()) {
      *frames = std::move(delayed_.front().second);
      delayed_.pop_front();
      return true;
    }
    if (!held_.empty() && Now() >= held_since_ + kHoldAtMost) {
      // Nothing overtook it in time: it goes now.
      *frames = std::move(held_);
      held_.clear();
      return true;
    }
    return false;
  }

  // Decides the fate of one received message; true when "frames" is to be delivered now.
  bool Decide(Received&& got, Received* frames) {
    Meta meta;
    bool parsed =
        !got.empty() && DecodeMeta(got.frames[0].data(), got.frames[0].size(), &meta).ok();
    std::lock_guard<std::mutex> lk(mu_);
    if ((parsed && meta.sender != 0 && meta.sender == cut_.load()) || isolated_.load()) {
      ++counts_.cut;
      return false;
    }
    if (!parsed || (!meta.control.empty() && !options_.control_too)) {
      *frames = std::move(got);
      return true;
    }
    double r = std::uniform_real_distribution<double>(0, 1)(rng_);
    if ((r -= options_.drop) < 0) {
      ++counts_.dropped;
      return false;
    }
    if ((r -= options_.duplicate) < 0) {
      ++counts_.duplicated;
      ready_.push_back(got);
      *frames = std::move(got);
      return true;
    }
    if ((r -= options_.delay) < 0) {
      ++counts_.delayed;
      delayed_.emplace_back(Now() + std::chrono::milliseconds(options_.delay_ms), std::move(got));
      return false;
    }
    if ((r -= options_.reorder) < 0 && held_.empty()) {
      ++counts_.reordered;
      held_ = std::move(got);
      held_since_ = Now();
      return false;
    }
    ++counts_.passed;
    *frames = std::move(got);
    // The held one goes right after the one that overtook it.
    if (!held_.empty()) {
      ready_.push_back(std::move(held_));
      held_.clear();
    }
    return true;
  }

  const std::unique_ptr<Transport> inner_;
  std::atomic<int> cut_{0};
  std::atomic<int> fail_sends_to_{0};
  std::atomic<int> sends_before_failing_{0};  // of those to fail_sends_to_, still to go
  std::atomic<bool> isolated_{false};

  // Protected by mu_.
  mutable std::mutex mu_;
  Options options_;
  std::mt19937_64 rng_;
  Counts counts_;
  std::shared_ptr<std::function<void(int)>> address_watch_;

  // The receiving thread's.
  std::deque<Received> ready_;                     // due now, in order
  std::deque<std::pair<Time, Received>> delayed_;  // by due time (one delay)
  Received held_;                                  // reordered: waits for one to overtake it
  Time held_since_;
};

}  // namespace test
}  // namespace ps
#endif  // PS_TESTS_COMMON_FAULT_INJECTING_TRANSPORT_H_
