#include "ps/internal/key_order.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace ps {
namespace {

// The plain loop the vectorised check must agree with.
size_t Reference(const std::vector<Key>& k) {
  for (size_t i = 1; i < k.size(); ++i) {
    if (k[i - 1] >= k[i]) return i;
  }
  return k.size();
}

TEST(KeyOrder, FindsTheFirstBadPairAnywhere) {
  std::mt19937_64 rng(3);
  for (size_t n : {0, 1, 2, 1023, 1024, 1025, 5000}) {
    std::vector<Key> keys(n);
    for (size_t i = 0; i < n; ++i) keys[i] = static_cast<Key>(i * 3 + 1);
    EXPECT_EQ(FirstKeyOutOfOrder(keys.data(), n), n);
    for (int round = 0; round < 50 && n > 1; ++round) {
      std::vector<Key> bad = keys;
      size_t at = 1 + rng() % (n - 1);
      bad[at] = round % 2 ? bad[at - 1] : 0;  // a duplicate, or a step down
      ASSERT_EQ(FirstKeyOutOfOrder(bad.data(), n), Reference(bad)) << n << " " << at;
    }
  }
  std::vector<Key> extremes = {0, 1, kMaxKey - 1, kMaxKey};
  EXPECT_EQ(FirstKeyOutOfOrder(extremes.data(), 4), 4U);
  std::vector<Key> wrapped = {kMaxKey, 0};
  EXPECT_EQ(FirstKeyOutOfOrder(wrapped.data(), 2), 1U);
}

}  // namespace
}  // namespace ps
