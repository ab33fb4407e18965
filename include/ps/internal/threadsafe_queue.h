// A blocking multi-producer queue that hands out the highest priority first, and among equal
// priorities the oldest first. Thread-safe.
#ifndef PS_INTERNAL_THREADSAFE_QUEUE_H_
#define PS_INTERNAL_THREADSAFE_QUEUE_H_

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <queue>
#include <vector>

namespace ps {

template <typename T>
class ThreadsafePQueue {
 public:
  void Push(T value, int priority = 0) {
    std::lock_guard<std::mutex> lk(mu_);
    queue_.push(Entry{priority, seq_++, std::move(value)});
    cv_.notify_one();
  }

  // Blocks until an element is there, then removes it into "value".
  void WaitAndPop(T* value) {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [this] { return !queue_.empty(); });
    // top() is const; the entry is removed right after, so moving from it is safe.
    *value = std::move(const_cast<Entry&>(queue_.top()).value);
    queue_.pop();
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
};

}  // namespace ps
#endif  // PS_INTERNAL_THREADSAFE_QUEUE_H_
