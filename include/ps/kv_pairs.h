// What the key-value apps exchange: KVPairs (sorted, unique keys with their values, and
// optionally the number of values of each key) and KVMeta (what a server's request handle
// learns about a request), with the checks both sides run on them.
//
// Plain values; thread-compatible. The checks do not block.
#ifndef PS_KV_PAIRS_H_
#define PS_KV_PAIRS_H_

#include <algorithm>
#include <string>

#include "ps/base.h"
#include "ps/sarray.h"
#include "ps/status.h"

namespace ps {

// Keys, values and, optionally, the number of values of each key.
template <typename Val>
struct KVPairs {
  SArray<Key> keys;
  SArray<Val> vals;
  SArray<int> lens;  // empty: vals.size() / keys.size() values per key
  int priority = 0;
};

// What a server's request handle learns about a request.
struct KVMeta {
  int cmd;          // the worker's cmd argument
  bool push;        // the request carries values
  bool pull;        // the request wants values back
  int sender;       // node id of the worker
  int timestamp;    // the worker's timestamp, to be echoed by Response
  int customer_id;  // the worker's customer
  // Under PS_REPLICATION >= 2: the key range the request is for (echoed by Response); -1
  // otherwise. A handle passes the meta it got to Response unchanged.
  int slice = -1;
};

namespace kv {

// Keys must be sorted and unique; says where they are not.
Status CheckOrder(const SArray<Key>& keys);

// The values of "num_keys" keys: a multiple of num_keys without lens, else as lens say.
template <typename Val>
Status CheckValues(size_t num_keys, const SArray<Val>& vals, const SArray<int>& lens) {
  const std::string keys = std::to_string(num_keys) + " keys";
  if (lens.empty()) {
    if ((num_keys == 0 && !vals.empty()) || (num_keys > 0 && vals.size() % num_keys != 0)) {
      return Status::InvalidArgument(std::to_string(vals.size()) + " values for " + keys +
                                     ": not a multiple; give lens for values of different "
                                     "lengths");
    }
    return Status::OK();
  }
  if (lens.size() != num_keys) {
    return Status::InvalidArgument("lens has " + std::to_string(lens.size()) + " entries for " +
                                   keys);
  }
  size_t sum = 0;
  for (size_t i = 0; i < num_keys; ++i) {
    if (lens[i] < 0) {
      return Status::InvalidArgument("lens[" + std::to_string(i) + "]=" + std::to_string(lens[i]) +
                                     " is negative");
    }
    sum += static_cast<size_t>(lens[i]);
  }
  if (sum != vals.size()) {
    return Status::InvalidArgument("lens add up to " + std::to_string(sum) + ", but there are " +
                                   std::to_string(vals.size()) + " values");
  }
  return Status::OK();
}

// Copies "src" into "dst" (an SArray or a std::vector) from position "offset" on.
template <typename C, typename T>
void CopyInto(C* dst, size_t offset, const SArray<T>& src) {
  if (!src.empty()) std::copy(src.begin(), src.end(), dst->data() + offset);
}

}  // namespace kv

}  // namespace ps
#endif  // PS_KV_PAIRS_H_
