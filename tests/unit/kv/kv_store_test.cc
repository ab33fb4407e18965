// KVStore against a plain reference (std::map of vectors): the same pushes must give exactly the
// same values, for repeated, new and interleaved key lists, lens, several values per key, and
// the ends of the key space. Values are small integers, so float sums are exact.
#include "ps/internal/kv_store.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <vector>

namespace ps {
namespace {

using Reference = std::map<Key, std::vector<float>>;

// Sorted, unique keys: "n" of them drawn from [lo, hi].
SArray<Key> RandomKeys(std::mt19937_64* rng, size_t n, Key lo, Key hi) {
  std::vector<Key> keys;
  std::uniform_int_distribution<Key> d(lo, hi);
  while (keys.size() < n) {
    while (keys.size() < n) keys.push_back(d(*rng));
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  }
  return SArray<Key>(keys);
}

// Values 1..9 for each key, "lens[i]" of them, or "k" each without lens.
SArray<float> RandomVals(std::mt19937_64* rng, size_t total) {
  SArray<float> v(total);
  for (size_t i = 0; i < total; ++i) v[i] = static_cast<float>((*rng)() % 9 + 1);
  return v;
}

void PushBoth(KVStore<float>* store, Reference* ref, const SArray<Key>& keys,
              const SArray<float>& vals, const SArray<int>& lens) {
  ASSERT_TRUE(kv::CheckValues(keys.size(), vals, lens).ok());
  Status s = store->Push(keys, vals, lens);
  ASSERT_TRUE(s.ok()) << s.message();
  size_t at = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    size_t len = lens.empty() ? vals.size() / keys.size() : static_cast<size_t>(lens[i]);
    auto& held = (*ref)[keys[i]];
    if (held.empty()) {
      held.assign(vals.data() + at, vals.data() + at + len);
    } else {
      ASSERT_EQ(held.size(), len);
      for (size_t j = 0; j < len; ++j) held[j] += vals[at + j];
    }
    at += len;
  }
}

// A pull of "keys" equals the reference's values, keys absent reading as zeros by the rule
// of KVServerDefaultHandle.
void ExpectPull(const KVStore<float>& store, const Reference& ref, const SArray<Key>& keys) {
  size_t fill = 0;
  bool agree = true;
  for (Key k : keys) {
    auto it = ref.find(k);
    if (it == ref.end()) continue;
    if (fill && fill != it->second.size()) agree = false;
    fill = it->second.size();
  }
  if (!agree || fill == 0) fill = 1;
  std::vector<float> want;
  std::vector<int> want_lens;
  for (Key k : keys) {
    auto it = ref.find(k);
    if (it == ref.end()) {
      want.insert(want.end(), fill, 0.0f);
      want_lens.push_back(static_cast<int>(fill));
    } else {
      want.insert(want.end(), it->second.begin(), it->second.end());
      want_lens.push_back(static_cast<int>(it->second.size()));
    }
  }
  bool same =
      std::all_of(want_lens.begin(), want_lens.end(), [&](int l) { return l == want_lens[0]; });
  KVPairs<float> got = store.Pull(keys);
  ASSERT_EQ(got.keys.size(), keys.size());
  ASSERT_EQ(std::vector<float>(got.vals.begin(), got.vals.end()), want);
  if (same) {
    EXPECT_TRUE(got.lens.empty());
  } else {
    ASSERT_EQ(std::vector<int>(got.lens.begin(), got.lens.end()), want_lens);
  }
}

void ExpectEqual(const KVStore<float>& store, const Reference& ref) {
  ASSERT_EQ(store.size(), ref.size());
  std::vector<Key> all;
  for (const auto& kv : ref) all.push_back(kv.first);
  SArray<Key> keys = store.keys();
  ASSERT_EQ(std::vector<Key>(keys.begin(), keys.end()), all);
  ExpectPull(store, ref, SArray<Key>(all));
}

TEST(KVStore, RepeatedKeyListSumsExactly) {
  std::mt19937_64 rng(1);
  KVStore<float> store;
  Reference ref;
  SArray<Key> keys = RandomKeys(&rng, 20000, 0, kMaxKey);  // several leaves
  for (int round = 0; round < 5; ++round) {
    PushBoth(&store, &ref, keys, RandomVals(&rng, keys.size()), {});
  }
  EXPECT_GT(store.num_leaves(), 4u);
  ExpectEqual(store, ref);
  // 5 pushes of ones add up to 5 exactly.
  KVStore<float> ones;
  for (int round = 0; round < 5; ++round) {
    ASSERT_TRUE(ones.Push(keys, SArray<float>(keys.size(), 1.0f), {}).ok());
  }
  KVPairs<float> got = ones.Pull(keys);
  ASSERT_EQ(got.vals.size(), keys.size());
  for (float v : got.vals) ASSERT_EQ(v, 5.0f);
}

TEST(KVStore, NewAndInterleavedKeyListsSumExactly) {
  std::mt19937_64 rng(2);
  KVStore<float> store;
  Reference ref;
  // Four lists over a shared range interleave in the store; each push mixes keys held and new.
  std::vector<SArray<Key>> lists;
  for (int l = 0; l < 4; ++l) lists.push_back(RandomKeys(&rng, 5000, 0, 200000));
  for (int round = 0; round < 12; ++round) {
    const SArray<Key>& keys = lists[round % 4];
    PushBoth(&store, &ref, keys, RandomVals(&rng, keys.size()), {});
    // Fresh keys anywhere, some below and above everything held.
    SArray<Key> fresh = RandomKeys(&rng, 700, round % 2 ? 0 : 100000, 400000 + round);
    PushBoth(&store, &ref, fresh, RandomVals(&rng, fresh.size()), {});
    ExpectPull(store, ref, lists[(round + 1) % 4]);
  }
  ExpectEqual(store, ref);
  // A pull of held and absent keys together.
  ExpectPull(store, ref, RandomKeys(&rng, 3000, 0, 1000000));
}

TEST(KVStore, SeveralValuesPerKey) {
  std::mt19937_64 rng(3);
  KVStore<float> store;
  Reference ref;
  SArray<Key> a = RandomKeys(&rng, 6000, 0, 1 << 20);
  SArray<Key> b = RandomKeys(&rng, 6000, 1 << 20, 1 << 21);
  for (int round = 0; round < 3; ++round) {
    PushBoth(&store, &ref, a, RandomVals(&rng, a.size() * 3), {});
    PushBoth(&store, &ref, b, RandomVals(&rng, b.size() * 3), {});
  }
  ExpectEqual(store, ref);
  KVPairs<float> got = store.Pull(a);
  EXPECT_EQ(got.vals.size(), a.size() * 3);
  EXPECT_TRUE(got.lens.empty());
  // A key never pushed reads as 3 zeros next to keys of 3.
  SArray<Key> mixed = {a[0], (1 << 21) + 5};
  ExpectPull(store, ref, mixed);
  EXPECT_EQ(store.Pull(mixed).vals.size(), 6u);
}

TEST(KVStore, LensGiveEachKeyItsOwnLength) {
  std::mt19937_64 rng(4);
  KVStore<float> store;
  Reference ref;
  SArray<Key> keys = RandomKeys(&rng, 9000, 0, kMaxKey);
  SArray<int> lens(keys.size());
  size_t total = 0;
  for (size_t i = 0; i < keys.size(); ++i) total += lens[i] = static_cast<int>(rng() % 5);  // 0..4
  for (int round = 0; round < 3; ++round) {
    PushBoth(&store, &ref, keys, RandomVals(&rng, total), lens);
  }
  // Keys of one length among them, and new keys of another.
  SArray<Key> other = RandomKeys(&rng, 3000, 0, kMaxKey);
  std::vector<Key> fresh;
  for (Key k : other) {
    if (!ref.count(k)) fresh.push_back(k);
  }
  SArray<Key> fk(fresh);
  PushBoth(&store, &ref, fk, RandomVals(&rng, fk.size() * 2), {});
  ExpectEqual(store, ref);
  ExpectPull(store, ref, fk);
  ExpectPull(store, ref, other);
}

TEST(KVStore, KeyZeroAndTheLargestKey) {
  KVStore<float> store;
  Reference ref;
  SArray<Key> ends = {0, 1, kMaxKey - 1, kMaxKey};
  for (int round = 0; round < 3; ++round) {
    PushBoth(&store, &ref, ends, SArray<float>{1, 2, 3, 4}, {});
  }
  PushBoth(&store, &ref, SArray<Key>{kMaxKey}, SArray<float>{10}, {});
  PushBoth(&store, &ref, SArray<Key>{0}, SArray<float>{20}, {});
  ExpectEqual(store, ref);
  KVPairs<float> got = store.Pull(ends);
  EXPECT_EQ(std::vector<float>(got.vals.begin(), got.vals.end()),
            (std::vector<float>{23, 6, 9, 22}));
  size_t len = 0;
  const float* v = store.Find(kMaxKey, &len);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(len, 1u);
  EXPECT_EQ(*v, 22.0f);
  EXPECT_EQ(store.Find(2, &len), nullptr);
}

TEST(KVStore, PushThatDoesNotFitChangesNothing) {
  KVStore<float> store;
  SArray<Key> keys = {1, 5, 9};
  ASSERT_TRUE(store.Push(keys, SArray<float>{1, 1, 1}, {}).ok());
  // Key 9 holds one value; two do not fit, and key 3 is not added either.
  SArray<Key> bad = {3, 9};
  Status s = store.Push(bad, SArray<float>{1, 1, 1, 1}, {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "key 9 holds 1 values; a push of 2 does not fit");
  EXPECT_FALSE(store.Check(bad, SArray<float>{1, 1, 1, 1}, {}).ok());
  EXPECT_EQ(store.size(), 3u);
  EXPECT_EQ(store.Find(3, nullptr), nullptr);
  // Keys out of order are refused, not stored.
  s = store.Push(SArray<Key>{7, 6}, SArray<float>{1, 1}, {});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("sorted and unique"), std::string::npos) << s.message();
  EXPECT_EQ(store.size(), 3u);
  KVPairs<float> got = store.Pull(keys);
  EXPECT_EQ(std::vector<float>(got.vals.begin(), got.vals.end()), (std::vector<float>{1, 1, 1}));
}

TEST(KVStore, ForEachVisitsKeysInOrderAndMayChangeValues) {
  KVStore<float> store;
  ASSERT_TRUE(store.Push(SArray<Key>{2, 4, 8}, SArray<float>{1, 2, 3}, {}).ok());
  std::vector<Key> seen;
  store.ForEach([&](Key k, float* v, size_t len) {
    seen.push_back(k);
    for (size_t j = 0; j < len; ++j) v[j] *= 10;
  });
  EXPECT_EQ(seen, (std::vector<Key>{2, 4, 8}));
  KVPairs<float> got = store.Pull(SArray<Key>{2, 4, 8});
  EXPECT_EQ(std::vector<float>(got.vals.begin(), got.vals.end()), (std::vector<float>{10, 20, 30}));
}

// Read(begin, end) gives exactly the reference's keys in the range (kMaxKey in the last one),
// and Assign of that copy into another store reproduces them, replacing what it held.
TEST(KVStore, ReadOfARangeRestoresThroughAssign) {
  std::mt19937_64 rng(11);
  KVStore<float> store;
  Reference ref;
  for (int i = 0; i < 30; ++i) {
    SArray<Key> keys = RandomKeys(&rng, 700, 0, 50000);
    SArray<int> lens(keys.size());
    size_t total = 0;
    for (size_t j = 0; j < keys.size(); ++j) {
      auto it = ref.find(keys[j]);
      lens[j] = it != ref.end() ? static_cast<int>(it->second.size()) : 1 + keys[j] % 3;
      total += lens[j];
    }
    PushBoth(&store, &ref, keys, RandomVals(&rng, total), lens);
  }
  PushBoth(&store, &ref, SArray<Key>{kMaxKey}, SArray<float>{7}, {});
  const Key cuts[] = {0, 1000, 20000, 20001, kMaxKey};
  KVStore<float> copy;
  // A key the copy holds already is replaced, whatever its length.
  ASSERT_TRUE(
      copy.Push(SArray<Key>{1500, 60000}, SArray<float>{5, 5, 5, 9}, SArray<int>{3, 1}).ok());
  for (size_t c = 0; c + 1 < sizeof(cuts) / sizeof(cuts[0]); ++c) {
    KVPairs<float> part = store.Read(cuts[c], cuts[c + 1]);
    size_t at = 0;
    std::vector<Key> want;
    for (const auto& kv : ref) {
      if (kv.first >= cuts[c] &&
          (kv.first < cuts[c + 1] || (cuts[c + 1] == kMaxKey && kv.first == kMaxKey))) {
        want.push_back(kv.first);
      }
    }
    ASSERT_EQ(std::vector<Key>(part.keys.begin(), part.keys.end()), want);
    for (size_t i = 0; i < part.keys.size(); ++i) {
      const auto& held = ref[part.keys[i]];
      const size_t len = part.lens.empty() ? part.vals.size() / part.keys.size() : part.lens[i];
      ASSERT_EQ(len, held.size());
      for (size_t j = 0; j < len; ++j) ASSERT_EQ(part.vals[at + j], held[j]);
      at += len;
    }
    ASSERT_EQ(at, part.vals.size());
    ASSERT_TRUE(copy.Assign(part.keys, part.vals, part.lens).ok());
  }
  Reference with_extra = ref;
  with_extra[60000] = {9};
  EXPECT_EQ(copy.size(), with_extra.size());
  ExpectPull(copy, with_extra, copy.keys());
}

TEST(KVStore, HoldsAboutTwelveBytesPerFloat) {
  std::mt19937_64 rng(5);
  KVStore<float> store;
  // Loaded the way training loads it: many pushes of random sorted lists.
  for (int i = 0; i < 20; ++i) {
    SArray<Key> keys = RandomKeys(&rng, 10000, 0, kMaxKey);
    ASSERT_TRUE(store.Push(keys, SArray<float>(keys.size(), 1.0f), {}).ok());
  }
  ASSERT_GT(store.size(), 199000u);
  double per_pair = static_cast<double>(store.bytes()) / store.size();
  EXPECT_LT(per_pair, 16.0) << per_pair;
  EXPECT_GE(per_pair, 12.0);
}

}  // namespace
}  // namespace ps
