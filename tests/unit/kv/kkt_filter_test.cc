#include "ps/kkt_filter.h"

#include <gtest/gtest.h>

#include <vector>

namespace ps {
namespace {

// Which of "keys" a push of "grads" (k per key) sends.
std::vector<Key> Pushed(KKTFilter<float>* kkt, const std::vector<Key>& keys,
                        const std::vector<float>& grads) {
  const size_t k = grads.size() / keys.size();
  std::vector<Key> sent;
  for (size_t i = 0; i < keys.size(); ++i) {
    if ((*kkt)(keys[i], grads.data() + i * k, k)) sent.push_back(keys[i]);
  }
  return sent;
}

std::vector<Key> Pulled(KKTFilter<float>* kkt, const std::vector<Key>& keys) {
  std::vector<Key> sent;
  for (Key key : keys) {
    if ((*kkt)(key, nullptr, 0)) sent.push_back(key);
  }
  return sent;
}

TEST(KKTFilter, PushLeavesOutZeroWeightsWhoseGradientIsBelowTheThreshold) {
  KKTFilter<float> kkt(1.0f, 0.2f);  // threshold 0.8
  EXPECT_FLOAT_EQ(kkt.threshold(), 0.8f);
  kkt.SetWeights(SArray<Key>{3}, SArray<float>{0.5f});
  //                                    small  large  w != 0  large  zero
  EXPECT_EQ(Pushed(&kkt, {1, 2, 3, 4, 5}, {0.1f, 0.9f, 0.01f, -0.85f, 0.0f}),
            (std::vector<Key>{2, 3, 4}));
  EXPECT_EQ(kkt.kept(), 3U);
  EXPECT_EQ(kkt.left_out(), 2U);
  // At the threshold itself the conditions no longer say the weight stays zero: sent.
  EXPECT_EQ(Pushed(&kkt, {6}, {0.8f}), (std::vector<Key>{6}));
}

TEST(KKTFilter, PullLeavesOutWhatTheLastPushLeftOut) {
  KKTFilter<float> kkt(1.0f, 0.2f);
  kkt.SetWeights(SArray<Key>{3}, SArray<float>{-2.0f});
  Pushed(&kkt, {1, 2, 3, 5}, {0.1f, 0.9f, 0.0f, 0.0f});
  // 1 and 5: zero weight, small gradient; 2: large gradient; 3: weight; 6: never pushed.
  EXPECT_EQ(Pulled(&kkt, {1, 2, 3, 5, 6}), (std::vector<Key>{2, 3, 6}));
  // Once a pull shows key 5 with a weight, it is sent again whatever its gradient.
  kkt.SetWeights(SArray<Key>{3, 5}, SArray<float>{0.0f, 0.3f});
  EXPECT_EQ(Pulled(&kkt, {1, 3, 5}), (std::vector<Key>{5}));
  EXPECT_EQ(Pushed(&kkt, {3, 5}, {0.0f, 0.0f}), (std::vector<Key>{5}));
}

TEST(KKTFilter, TighterMarginLeavesOutMore) {
  // The server tightens the margin over iterations: from l1 (nothing left out) down to 0.
  std::vector<Key> keys;
  std::vector<float> grads;
  for (int i = 0; i < 100; ++i) {
    keys.push_back(i);
    grads.push_back((i * 0.01f + 0.005f) * (i % 2 ? 1 : -1));  // |g| from 0.005 to 0.995
  }
  KKTFilter<float> kkt(1.0f, 1.0f);
  std::vector<size_t> sent;
  for (float margin : {1.0f, 0.75f, 0.5f, 0.25f, 0.0f}) {
    kkt.set_margin(margin);
    EXPECT_EQ(kkt.margin(), margin);
    sent.push_back(Pushed(&kkt, keys, grads).size());
  }
  // A key is sent when |g| >= 1 - margin.
  EXPECT_EQ(sent, (std::vector<size_t>{100, 75, 50, 25, 0}));
}

TEST(KKTFilter, KeysWithSeveralValuesUseTheirLargest) {
  KKTFilter<float> kkt(1.0f, 0.5f);
  EXPECT_EQ(Pushed(&kkt, {1, 2}, {0.1f, 0.2f, 0.1f, -0.6f}), (std::vector<Key>{2}));
  kkt.SetWeights(SArray<Key>{1, 2}, SArray<float>{0, 0, 0, 0.1f});
  EXPECT_EQ(Pulled(&kkt, {1, 2}), (std::vector<Key>{2}));
  // As a KVWorker key filter.
  auto filter = kkt.AsKeyFilter();
  float small[2] = {0.1f, 0.1f};
  EXPECT_FALSE(filter(1, small, 2));
  EXPECT_TRUE(filter(2, small, 2));
}

}  // namespace
}  // namespace ps
