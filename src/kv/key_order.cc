#include "ps/internal/key_order.h"

// target_clones picks the AVX2 version at load time, through an ifunc resolver; sanitizer
// runtimes are not up yet then, so sanitizer builds take the default version only.
#ifdef PS_NO_TARGET_CLONES
#define PS_TARGET_CLONES
#else
#define PS_TARGET_CLONES __attribute__((target_clones("avx2", "default")))
#endif

namespace ps {

// Chunks are compared without branches, which the compiler turns into vector compares; only a
// chunk that holds a bad pair is searched again for its position.
PS_TARGET_CLONES size_t FirstKeyOutOfOrder(const Key* keys, size_t n) {
  constexpr size_t kChunk = 1024;
  for (size_t begin = 1; begin < n; begin += kChunk) {
    size_t end = begin + kChunk < n ? begin + kChunk : n;
    uint64_t bad = 0;
    for (size_t i = begin; i < end; ++i) bad |= static_cast<uint64_t>(keys[i - 1] >= keys[i]);
    if (!bad) continue;
    for (size_t i = begin; i < end; ++i) {
      if (keys[i - 1] >= keys[i]) return i;
    }
  }
  return n;
}

}  // namespace ps
