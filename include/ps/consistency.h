// Tasks and consistency models (the parameter server paper, Li et al., OSDI 2014): every
// KVWorker request is a task with a timestamp, and a task may execute only after earlier ones.
//
// A request "finishes" when every server involved has answered it and its outputs and callback
// are done. A request that "executes after" another is sent only once that one finished. Two
// ways to ask for it:
//  - TaskOptions::after names earlier timestamps of the same KVWorker, for one request. If one
//    of them failed, the request fails too, with a message naming it, and is never sent.
//  - A Consistency model orders all requests of a KVWorker (KVWorker::set_consistency, or
//    PS_CONSISTENCY for every KVWorker):
//      sequential      request t executes after request t - 1;
//      bounded:tau     request t executes after every request up to t - tau - 1, so at most
//                      tau + 1 are in flight; bounded:0 is sequential;
//      eventual        no order (ps-lite's behaviour, the default).
//    A call that would exceed the bound is held back until the request it waits for finished, so
//    a fast worker cannot run ahead. A call made from a callback (the thread that receives
//    answers) is never held back, since it would wait for itself: its request is queued behind
//    the ones it must follow instead. A model orders requests only: a failed request does not
//    fail the ones after it.
//
// Plain values; thread-compatible.
#ifndef PS_CONSISTENCY_H_
#define PS_CONSISTENCY_H_

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "ps/status.h"

namespace ps {

// How a KVWorker orders its own requests.
struct Consistency {
  enum class Model { kEventual, kSequential, kBoundedDelay };

  Model model = Model::kEventual;
  int tau = 0;  // kBoundedDelay only

  static Consistency Eventual() { return Consistency(); }
  static Consistency Sequential() { return Consistency{Model::kSequential, 0}; }
  // REQUIRES: tau >= 0.
  static Consistency BoundedDelay(int tau) { return Consistency{Model::kBoundedDelay, tau}; }

  // Reads "sequential", "bounded:N" (N >= 0) or "eventual", the values of PS_CONSISTENCY. On an
  // error, says what is wrong and leaves "out" alone.
  static Status Parse(const std::string& spec, Consistency* out);
  // The form Parse reads: "bounded:2".
  std::string ToString() const;
  // How many requests may be in flight at once: 1 for sequential, tau + 1 for bounded delay, 0
  // (no limit) for eventual.
  int window() const {
    return model == Model::kSequential ? 1 : model == Model::kBoundedDelay ? tau + 1 : 0;
  }
};

// Options of one KVWorker request: the tasks it executes after, and ps-lite's per-call
// arguments.
struct TaskOptions {
  // Earlier timestamps of the same KVWorker. The request is sent once all of them finished; it
  // fails if one of them failed, or if one was never issued.
  std::vector<int> after;
  int cmd = 0;                     // travels to the server's handle (KVMeta::cmd)
  std::function<void()> callback;  // runs once every server answered, before Wait returns
  int priority = 0;                // higher is handled first by the server
};

// Options that only say what a request executes after: kv.Push(keys, vals, ps::After({a, b})).
inline TaskOptions After(std::vector<int> timestamps) {
  TaskOptions o;
  o.after = std::move(timestamps);
  return o;
}

// What a KVWorker's requests did under its consistency model (KVWorker::consistency_stats).
struct ConsistencyStats {
  uint64_t requests = 0;         // requests issued
  int max_in_flight = 0;         // most requests sent and not yet finished at one time
  uint64_t held_back = 0;        // calls held back by the model before they could issue
  double held_back_seconds = 0;  // the time those calls spent held back, summed
  uint64_t deferred = 0;         // requests queued behind unfinished ones instead of sent
};

}  // namespace ps
#endif  // PS_CONSISTENCY_H_
