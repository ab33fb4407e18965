// KVServer request handles whose answers leave a fixed time after their requests arrived
// (SlowServer), or when the test lets them (GatedServer), for tests and benchmarks of request
// ordering.
#ifndef PS_TESTS_COMMON_SLOW_SERVER_H_
#define PS_TESTS_COMMON_SLOW_SERVER_H_

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#include "ps/ps.h"

namespace ps {
namespace test {

// What a SlowServer saw, for the checks after the job.
struct Seen {
  std::mutex mu;
  int64_t clock = 0;                   // orders the events below
  std::map<int, int> outstanding;      // by worker node: arrived, not answered yet
  std::map<int, int> max_outstanding;  // by worker node
  std::map<std::pair<int, int>, int64_t> arrived, answered;  // (worker node, timestamp) -> clock
};

// A server whose answers leave "delay" after their request arrived, as if each took that long
// in parallel; it sums pushes like KVServerDefaultHandle, refuses cmd 13, and, when "seen" is
// given, records when each request arrived and was answered. The destructor stops answering.
class SlowServer {
 public:
  SlowServer(KVServer<float>* server, std::chrono::microseconds delay, Seen* seen = nullptr)
      : server_(server), delay_(delay), seen_(seen), answerer_([this] { Answering(); }) {
    server->set_request_handle(
        [this](const KVMeta& meta, const KVPairs<float>& data, KVServer<float>*) {
          if (seen_) {
            std::lock_guard<std::mutex> lk(seen_->mu);
            int& out = ++seen_->outstanding[meta.sender];
            int& max = seen_->max_outstanding[meta.sender];
            max = std::max(max, out);
            seen_->arrived[{meta.sender, meta.timestamp}] = seen_->clock++;
          }
          std::lock_guard<std::mutex> lk(mu_);
          queue_.push_back(Request{std::chrono::steady_clock::now() + delay_, meta, data});
          cv_.notify_all();
        });
  }

  ~SlowServer() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
      cv_.notify_all();
    }
    answerer_.join();
  }

 private:
  struct Request {
    std::chrono::steady_clock::time_point due;
    KVMeta meta;
    KVPairs<float> data;
  };

  void Answering() {
    std::unique_lock<std::mutex> lk(mu_);
    while (true) {
      cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      auto due = queue_.front().due;
      if (cv_.wait_until(lk, due, [&] { return stop_; })) return;
      Request req = std::move(queue_.front());
      queue_.pop_front();
      lk.unlock();
      if (seen_) {
        // Counted as answered before the answer leaves: the next request of a worker that
        // waits for it cannot arrive earlier.
        std::lock_guard<std::mutex> g(seen_->mu);
        --seen_->outstanding[req.meta.sender];
        seen_->answered[{req.meta.sender, req.meta.timestamp}] = seen_->clock++;
      }
      if (req.meta.cmd == 13) {
        server_->ResponseError(req.meta, "cmd 13 is refused");
      } else {
        store_(req.meta, req.data, server_);
      }
      lk.lock();
    }
  }

  KVServer<float>* const server_;
  const std::chrono::microseconds delay_;
  Seen* const seen_;
  KVServerDefaultHandle<float> store_;  // answering thread only

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Request> queue_;  // protected by mu_; in arrival order, so by due time
  bool stop_ = false;          // protected by mu_
  std::thread answerer_;
};

// A KVServer request handle that keeps every request until the test answers it (AnswerOldest,
// Open), then answers as KVServerDefaultHandle does: the test, not a timer, decides when an
// answer leaves. Owned by the test, attached to a server by its node's thread. Thread-safe.
class GatedServer {
 public:
  // Installs the handle on "server". The returned handle detaches it when the last copy goes
  // (before "server" does); requests still held then are never answered.
  std::shared_ptr<void> Attach(KVServer<float>* server) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      server_ = server;
    }
    server->set_request_handle(
        [this](const KVMeta& meta, const KVPairs<float>& data, KVServer<float>*) {
          std::lock_guard<std::mutex> lk(mu_);
          ++arrived_;
          max_outstanding_ = std::max(max_outstanding_, arrived_ - answered_);
          held_.emplace_back(meta, data);
          if (open_) AnswerAllLocked();
        });
    return std::shared_ptr<void>(this, [](void* self) {
      GatedServer* g = static_cast<GatedServer*>(self);
      std::lock_guard<std::mutex> lk(g->mu_);
      g->server_ = nullptr;
    });
  }

  // Answers the oldest request held; false when none is.
  bool AnswerOldest() {
    std::lock_guard<std::mutex> lk(mu_);
    if (held_.empty() || !server_) return false;
    AnswerFrontLocked();
    return true;
  }

  // Answers every request held, and from now on each one when it arrives.
  void Open() {
    std::lock_guard<std::mutex> lk(mu_);
    open_ = true;
    AnswerAllLocked();
  }

  int arrived() {
    std::lock_guard<std::mutex> lk(mu_);
    return arrived_;
  }
  int answered() {
    std::lock_guard<std::mutex> lk(mu_);
    return answered_;
  }
  // The most requests that had arrived and were not answered yet, at one time.
  int max_outstanding() {
    std::lock_guard<std::mutex> lk(mu_);
    return max_outstanding_;
  }

 private:
  // Answers go out under mu_, which keeps the store to one thread at a time; sending does not
  // wait for the receiving thread, which is the only other user of mu_.
  void AnswerFrontLocked() {
    ++answered_;
    store_(held_.front().first, held_.front().second, server_);
    held_.pop_front();
  }
  void AnswerAllLocked() {
    while (server_ && !held_.empty()) AnswerFrontLocked();
  }

  // Protected by mu_.
  std::mutex mu_;
  KVServer<float>* server_ = nullptr;
  KVServerDefaultHandle<float> store_;
  std::deque<std::pair<KVMeta, KVPairs<float>>> held_;  // in arrival order
  bool open_ = false;
  int arrived_ = 0, answered_ = 0, max_outstanding_ = 0;
};

}  // namespace test
}  // namespace ps
#endif  // PS_TESTS_COMMON_SLOW_SERVER_H_
