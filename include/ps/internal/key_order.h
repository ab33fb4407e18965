// Checks that keys are sorted and unique. KVWorker runs it on every call, on the caller's
// thread, before anything is sent: it is on the critical path of large pushes and pulls, so it
// is built with -O3 and, where the CPU has them, AVX2 instructions (src/kv/key_order.cc).
#ifndef PS_INTERNAL_KEY_ORDER_H_
#define PS_INTERNAL_KEY_ORDER_H_

#include <cstddef>

#include "ps/base.h"

namespace ps {

// The first i with keys[i - 1] >= keys[i], or n when the keys are sorted and unique.
size_t FirstKeyOutOfOrder(const Key* keys, size_t n);

}  // namespace ps
#endif  // PS_INTERNAL_KEY_ORDER_H_
