// A blocking multi-producer queue that hands out the highest priority first, and among equal
// priorities the oldest first. Thread-safe.
#ifndef PS_INTERNAL_THREADSAFE_QUEUE_H_
#define PS_INTERNAL_THREADSAFE_QUEUE_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <queue>
#include <thread>
#include <vector>

namespace ps {

template <typename T>
class ThreadsafePQueue {
 public:
  void Push(T value, int priority = 0) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      queue_.push(Entry{priority, seq_++, std::move(value)});
      size_.store(queue_.size(), std::memory_order_release);
    }
    // Outside the lock: the woken thread does not then block at once on mu_.
    cv_.notify_one();
  }

  // Blocks until an element is there, then removes it into "value". With "spin_us", first
  // looks again for that long before sleeping: a wake-up costs more than a short spin.
  void WaitAndPop(T* value, int spin_us = 0) {
    if (spin_us > 0) {
      auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(spin_us);
      while (size_.load(std::memory_order_acquire) == 0 &&
             std::chrono::steady_clock::now() < until) {
        std::this_thread::yield();
      }
    }
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [this] { return !queue_.empty(); });
    // top() is const; the entry is removed right after, so moving from it is safe.
    *value = std::move(const_cast<Entry&>(queue_.top()).value);
    queue_.pop();
    size_.store(queue_.size(), std::memory_order_release);
  }

 private:
  struct Entry {
    int priority;
    uint64_t seq;
    T value;
    bool operator<(const Entry& o) const {
      return priority != o.priority ? priority < o.priority : seq > o.seq;
    }
  };

  // Protected by mu_.
  std::mutex mu_;
  std::condition_variable cv_;
  std::priority_queue<Entry> queue_;
  uint64_t seq_ = 0;
  std::atomic<size_t> size_{0};  // queue_.size(), readable without mu_
};

}  // namespace ps
#endif  // PS_INTERNAL_THREADSAFE_QUEUE_H_
