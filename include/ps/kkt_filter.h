// KKTFilter is a key filter (KVWorker::set_key_filter) for L1-regularized problems,
//
//   minimize over w:  loss(w) + l1 * |w|_1.
//
// The optimality (KKT) conditions say that a coordinate with w_k = 0 stays zero while the
// gradient of the loss there, g_k, has |g_k| <= l1. Sending such a coordinate is wasted, and on
// sparse problems most coordinates are such. So a worker leaves out of its pushes and pulls the
// coordinates with w_k = 0 and |g_k| < l1 - margin. The margin guards against a gradient that is
// small in one worker's data, or early on, and grows later: the server, which sees every
// worker's updates, supplies it (a value the workers pull, say) and tightens it as the model
// converges; set_margin takes each new value. A margin of l1 or more leaves nothing out.
//
// What the filter decides, per key k:
//  - a push (values: the gradient) sends k unless the worker's weight w_k is zero and every
//    |g_k| is below the threshold l1 - margin; it remembers the largest |g_k| it saw;
//  - a pull asks for k unless w_k is zero and the last gradient pushed for k was below the
//    threshold; a key never pushed is pulled.
// w_k is what SetWeights recorded last (the worker's copy of the model, after a pull); a key it
// never recorded has weight zero, as every coordinate of an L1 model starts. A key left out of
// a pull reads as zero (see KVWorker::set_key_filter): the filter's premise is that the
// server's weight is zero too, which holds as long as every worker filters with the same
// threshold. A pull without the key filter refreshes every key.
//
// Thread-safe. The filter must outlive the worker it is set on.
#ifndef PS_KKT_FILTER_H_
#define PS_KKT_FILTER_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <mutex>
#include <unordered_map>

#include "ps/base.h"
#include "ps/sarray.h"

namespace ps {

template <typename Val>
class KKTFilter {
 public:
  // REQUIRES: l1 >= 0, margin >= 0.
  KKTFilter(Val l1, Val margin) : l1_(l1), margin_(margin) {}

  // The margin the server supplies: the threshold is l1 - margin.
  void set_margin(Val margin) {
    std::lock_guard<std::mutex> lk(mu_);
    margin_ = margin;
  }
  Val margin() const {
    std::lock_guard<std::mutex> lk(mu_);
    return margin_;
  }
  Val threshold() const {
    std::lock_guard<std::mutex> lk(mu_);
    return l1_ - margin_;
  }

  // Records the worker's weights of "keys", the same number of values per key: a key with a
  // value that is not zero is always sent.
  void SetWeights(const SArray<Key>& keys, const SArray<Val>& weights) {
    const size_t k = keys.empty() ? 0 : weights.size() / keys.size();
    std::lock_guard<std::mutex> lk(mu_);
    for (size_t i = 0; i < keys.size(); ++i) {
      bool nonzero = false;
      for (size_t j = 0; j < k; ++j) nonzero = nonzero || weights[i * k + j] != 0;
      state_[keys[i]].nonzero = nonzero;
    }
  }

  // The predicate of KVWorker::KeyFilter: whether a request sends "key" ("len" gradient values
  // "vals" in a push; null in a pull).
  bool operator()(Key key, const Val* vals, size_t len) {
    std::lock_guard<std::mutex> lk(mu_);
    const Val threshold = l1_ - margin_;
    auto it = state_.find(key);
    const bool nonzero = it != state_.end() && it->second.nonzero;
    bool send;
    if (vals) {
      Val largest = 0;
      for (size_t j = 0; j < len; ++j) largest = std::max<Val>(largest, std::abs(vals[j]));
      State& st = it != state_.end() ? it->second : state_[key];
      st.pushed = true;
      st.gradient = largest;
      send = nonzero || !(largest < threshold);
    } else {
      send =
          nonzero || it == state_.end() || !it->second.pushed || !(it->second.gradient < threshold);
    }
    ++(send ? kept_ : left_out_);
    return send;
  }

  // The filter as a KVWorker<Val>::KeyFilter, referring to this object.
  std::function<bool(Key, const Val*, size_t)> AsKeyFilter() {
    return [this](Key key, const Val* vals, size_t len) { return (*this)(key, vals, len); };
  }

  // Keys sent and left out so far, over pushes and pulls.
  uint64_t kept() const {
    std::lock_guard<std::mutex> lk(mu_);
    return kept_;
  }
  uint64_t left_out() const {
    std::lock_guard<std::mutex> lk(mu_);
    return left_out_;
  }

 private:
  struct State {
    bool nonzero = false;  // the worker's weight
    bool pushed = false;   // a gradient was pushed
    Val gradient = 0;      // the largest |g| of the last push
  };

  const Val l1_;

  // Protected by mu_.
  mutable std::mutex mu_;
  Val margin_;
  std::unordered_map<Key, State> state_;
  uint64_t kept_ = 0;
  uint64_t left_out_ = 0;
};

}  // namespace ps
#endif  // PS_KKT_FILTER_H_
