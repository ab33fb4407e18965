#include <gtest/gtest.h>

#include <random>

#include "common/test_util.h"

namespace ps {
namespace {

// Brute force: the rank whose range holds "key", scanning every range.
int Owner(const std::vector<Range>& ranges, Key key) {
  for (size_t i = 0; i < ranges.size(); ++i) {
    bool last = i + 1 == ranges.size();
    if (key >= ranges[i].begin() && (key < ranges[i].end() || (last && key <= ranges[i].end()))) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

class KeyRanges : public ::testing::TestWithParam<int> {};

TEST_P(KeyRanges, CoverTheWholeKeySpaceIncludingTheMaximum) {
  int n = GetParam();
  Postoffice po(test::NodeEnv("worker", 9000, n, 1));
  const std::vector<Range>& r = po.GetServerKeyRanges();
  ASSERT_EQ(static_cast<int>(r.size()), n);
  EXPECT_EQ(r.front().begin(), 0U);
  EXPECT_EQ(r.back().end(), static_cast<uint64_t>(kMaxKey));
  for (int i = 1; i < n; ++i) EXPECT_EQ(r[i].begin(), r[i - 1].end()) << "gap before " << i;
  // Even split: sizes differ by at most one.
  for (int i = 1; i + 1 < n; ++i) EXPECT_LE(r[i].size() - r[0].size() + 1, 2U);

  std::mt19937_64 rng(n);
  std::vector<Key> keys = {0, 1, kMaxKey, kMaxKey - 1};
  for (const Range& x : r) {
    keys.push_back(static_cast<Key>(x.begin()));
    if (x.begin() > 0) keys.push_back(static_cast<Key>(x.begin() - 1));
  }
  for (int i = 0; i < 1000; ++i) keys.push_back(static_cast<Key>(rng()));
  for (Key k : keys) {
    int owner = Owner(r, k);
    ASSERT_GE(owner, 0) << "key " << k << " has no server";
    EXPECT_EQ(po.ServerRankForKey(k), owner) << "key " << k;
  }
  EXPECT_EQ(po.ServerRankForKey(kMaxKey), n - 1);
  EXPECT_EQ(po.ServerRankForKey(0), 0);
}

INSTANTIATE_TEST_SUITE_P(Servers, KeyRanges, ::testing::Values(1, 2, 3, 7));

}  // namespace
}  // namespace ps
