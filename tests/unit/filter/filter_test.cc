// The filters and their chain, without a network: a sender's chain encodes, a receiver's chain
// (configured differently, or not at all) decodes, as the key-value apps do.
#include <gtest/gtest.h>
#include <zstd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "common/test_util.h"
#include "filter/compress_filter.h"
#include "filter/fixed_point_filter.h"
#include "filter/key_cache_filter.h"
#include "filter/lru_cache.h"

namespace ps {

// A user-defined filter: XORs every byte of every frame with its parameter, and records it.
class XorFilter : public Filter {
 public:
  explicit XorFilter(int mask) : mask_(mask) {}
  bool Encode(bool, Message* msg, std::vector<int64_t>* args) override {
    for (auto& frame : msg->data) frame = Xor(frame, static_cast<char>(mask_));
    *args = {mask_};
    return true;
  }
  FilterResult Decode(const std::vector<int64_t>& args, Message* msg, std::string* error) override {
    if (args.size() != 1) {
      *error = "no mask";
      return FilterResult::kMalformed;
    }
    for (auto& frame : msg->data) frame = Xor(frame, static_cast<char>(args[0]));
    return FilterResult::kOk;
  }

 private:
  static SArray<char> Xor(const SArray<char>& in, char mask) {
    SArray<char> out(in.size());
    for (size_t i = 0; i < in.size(); ++i) out[i] = in[i] ^ mask;
    return out;
  }
  const int mask_;
};

PS_REGISTER_FILTER("xor",
                   [](const std::string& param, const Environment&, std::unique_ptr<Filter>* f) {
                     f->reset(new XorFilter(param.empty() ? 0x5a : std::atoi(param.c_str())));
                     return Status::OK();
                   });

namespace {

constexpr int kWorker = 9;  // node ids as the van assigns them
constexpr int kServer = 8;

// A push request from the worker to the server: keys, values and, if given, lens.
Message Push(const SArray<Key>& keys, const SArray<float>& vals, const SArray<int>& lens = {}) {
  Message msg;
  msg.meta.app_id = 0;
  msg.meta.customer_id = 0;
  msg.meta.request = true;
  msg.meta.push = true;
  msg.meta.recver = kServer;
  msg.AddData(keys);
  msg.AddData(vals);
  if (!lens.empty()) msg.AddData(lens);
  return msg;
}

// What the receiver gets: the sender filled in, as the van does.
Message Arrive(Message msg, int sender = kWorker) {
  msg.meta.sender = sender;
  return msg;
}

SArray<Key> Keys(size_t n, Key step = 7, Key first = 3) {
  SArray<Key> keys(n);
  for (size_t i = 0; i < n; ++i) keys[i] = first + i * step;
  return keys;
}

// Gradient-like values: most near zero, some large.
SArray<float> Values(size_t n, uint32_t seed = 1) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> small(0, 1e-4f), large(0, 1);
  SArray<float> vals(n);
  for (size_t i = 0; i < n; ++i) vals[i] = rng() % 10 == 0 ? large(rng) : small(rng);
  return vals;
}

template <typename T>
std::vector<T> AsVector(const SArray<char>& frame) {
  SArray<T> t(frame);
  return std::vector<T>(t.begin(), t.end());
}

std::vector<std::string> Bytes(const Message& msg) {
  std::vector<std::string> out;
  for (const auto& f : msg.data) out.emplace_back(f.data(), f.size());
  return out;
}

class Chains : public ::testing::Test {
 protected:
  Chains() : po_(test::NodeEnv("worker", 9000, 1, 1)) {}
  std::unique_ptr<FilterChain> Chain(const std::string& spec) {
    std::unique_ptr<FilterChain> c(new FilterChain(&po_, "test"));
    Status s = c->Configure(spec);
    EXPECT_TRUE(s.ok()) << s.message();
    return c;
  }
  Postoffice po_;
};

FilterResult Decode(FilterChain* chain, Message* msg, std::string* error = nullptr) {
  std::string filter, why;
  FilterResult r = chain->Decode(msg, &filter, &why);
  if (error) *error = why;
  return r;
}

TEST_F(Chains, CompressionRestoresEveryFrameExactly) {
  for (const char* codec : {"zstd", "lz4", "zstd:5", "lz4:4"}) {
    auto sender = Chain(codec);
    auto receiver = Chain("");  // configured with nothing: decodes by the meta
    SArray<Key> keys = Keys(5000);
    SArray<float> vals(5000 * 2, 0.25f);
    SArray<int> lens(5000, 2);
    Message msg = Push(keys, vals, lens);
    const auto before = Bytes(msg);
    sender->Encode(false, &msg);
    ASSERT_EQ(msg.meta.filters.size(), 1U) << codec;
    EXPECT_EQ(msg.meta.data_type, (std::vector<DataType>{CHAR, CHAR, CHAR}));
    EXPECT_LT(msg.data_bytes(), 100000U / 4);
    Message got = Arrive(msg);
    ASSERT_EQ(Decode(receiver.get(), &got), FilterResult::kOk) << codec;
    EXPECT_EQ(Bytes(got), before);
    EXPECT_EQ(got.meta.data_type, (std::vector<DataType>{GetDataType<Key>(), FLOAT, INT32}));
    EXPECT_TRUE(got.meta.filters.empty());
    // The application's arrays were not written.
    EXPECT_EQ(keys[1], 10U);
    EXPECT_EQ(vals[0], 0.25f);
  }
}

TEST_F(Chains, CompressionLeavesSmallAndIncompressibleFramesRaw) {
  auto sender = Chain("zstd");
  // Below PS_COMPRESS_MIN_BYTES (1024 by default): untouched, and not recorded.
  Message small = Push(Keys(100), SArray<float>(100, 1.0f));
  sender->Encode(false, &small);
  EXPECT_TRUE(small.meta.filters.empty());
  // Random bytes do not shrink: raw, while the compressible frame is compressed.
  std::mt19937_64 rng(3);
  SArray<Key> random(4096);
  for (auto& k : random) k = rng();
  Message msg = Push(random, SArray<float>(4096, 2.0f));
  sender->Encode(false, &msg);
  ASSERT_EQ(msg.meta.filters.size(), 1U);
  EXPECT_EQ(msg.meta.filters[0].args, (std::vector<int64_t>{1, FLOAT, 4096 * 4}));
  EXPECT_EQ(msg.meta.data_type[0], GetDataType<Key>());
  EXPECT_EQ(msg.data[0].data(), reinterpret_cast<char*>(random.data()));  // not copied
  // A frame above a threshold set by the node's environment.
  Postoffice po(test::NodeEnv("worker", 9000, 1, 1, {{"PS_COMPRESS_MIN_BYTES", "100000"}}));
  FilterChain big_threshold(&po, "test");
  ASSERT_TRUE(big_threshold.Configure("lz4").ok());
  Message mid = Push(Keys(4096), SArray<float>(4096, 2.0f));
  big_threshold.Encode(false, &mid);
  EXPECT_TRUE(mid.meta.filters.empty());
}

TEST_F(Chains, FixedPointRestoresWithinOneStep) {
  for (int bits : {8, 16}) {
    auto sender = Chain("fixed:" + std::to_string(bits));
    auto receiver = Chain("");
    const double levels = bits == 8 ? 255 : 65535;
    SArray<float> f = Values(10000, bits);
    SArray<double> d(3000);
    for (size_t i = 0; i < d.size(); ++i) d[i] = std::sin(i * 0.37) * 1e3;
    SArray<Key> keys = Keys(10000);
    Message msg = Push(keys, f);
    msg.AddData(d);
    sender->Encode(false, &msg);
    ASSERT_EQ(msg.meta.filters.size(), 1U);
    EXPECT_EQ(msg.meta.filters[0].args,
              (std::vector<int64_t>{bits, 1, FLOAT, 10000, 2, DOUBLE, 3000}));  // not the keys
    EXPECT_EQ(msg.data[1].size(), FixedPointFilter::kHeaderBytes + 10000 * bits / 8);
    Message got = Arrive(msg);
    ASSERT_EQ(Decode(receiver.get(), &got), FilterResult::kOk);
    EXPECT_EQ(AsVector<Key>(got.data[0]), std::vector<Key>(keys.begin(), keys.end()));
    auto check = [&](const auto& orig, const auto& back) {
      ASSERT_EQ(orig.size(), back.size());
      double lo = *std::min_element(orig.begin(), orig.end());
      double hi = *std::max_element(orig.begin(), orig.end());
      double step = (hi - lo) / levels;
      double worst = 0;
      for (size_t i = 0; i < orig.size(); ++i) {
        worst = std::max(worst, std::abs(static_cast<double>(back[i]) - orig[i]));
      }
      // One step; for floats, plus the rounding of the decoded value to a float.
      EXPECT_LE(worst, step * (1 + 1e-6) + std::abs(hi) * 6e-8) << bits << " bits";
      EXPECT_GT(worst, 0);
    };
    check(f, AsVector<float>(got.data[1]));
    check(d, AsVector<double>(got.data[2]));
  }
}

TEST_F(Chains, FixedPointRoundingIsUnbiased) {
  // Values that sit between levels; over many rounds the mean decoded value is the value.
  auto sender = Chain("fixed:8");
  auto receiver = Chain("");
  const size_t n = 64;
  SArray<float> x(n);
  for (size_t i = 0; i < n; ++i) x[i] = static_cast<float>(i) / (n - 1) + 0.0013f * (i % 5);
  x[0] = 0;
  x[n - 1] = 1;
  const double step = 1.0 / 255;
  const int kRounds = 4000;
  std::vector<double> sum(n, 0);
  double max_error = 0;
  for (int r = 0; r < kRounds; ++r) {
    Message msg = Push(Keys(n), x);
    sender->Encode(false, &msg);
    Message got = Arrive(msg);
    ASSERT_EQ(Decode(receiver.get(), &got), FilterResult::kOk);
    std::vector<float> back = AsVector<float>(got.data[1]);
    for (size_t i = 0; i < n; ++i) {
      sum[i] += back[i];
      max_error = std::max(max_error, std::abs(static_cast<double>(back[i]) - x[i]));
    }
  }
  EXPECT_LE(max_error, step * (1 + 1e-5));
  double mean_error = 0;
  for (size_t i = 0; i < n; ++i) {
    double bias = sum[i] / kRounds - x[i];
    // Each decoded value has a standard deviation of at most step / 2: the mean of kRounds
    // lies within 5 of its standard deviations.
    EXPECT_LT(std::abs(bias), 5 * step / 2 / std::sqrt(kRounds)) << "value " << i;
    mean_error += bias / n;
  }
  EXPECT_LT(std::abs(mean_error), 5 * step / 2 / std::sqrt(kRounds * n));
}

TEST_F(Chains, FixedPointLeavesOtherFramesAsTheyAre) {
  auto sender = Chain("fixed");
  // Too short to shrink, and not finite: both travel as they are.
  Message small = Push(Keys(4), SArray<float>(4, 1.0f));
  sender->Encode(false, &small);
  EXPECT_TRUE(small.meta.filters.empty());
  SArray<float> with_nan = Values(100);
  with_nan[50] = std::nanf("");
  Message nan = Push(Keys(100), with_nan);
  sender->Encode(false, &nan);
  EXPECT_TRUE(nan.meta.filters.empty());
  SArray<float> with_inf = Values(100);
  with_inf[0] = INFINITY;
  Message inf = Push(Keys(100), with_inf);
  sender->Encode(false, &inf);
  EXPECT_TRUE(inf.meta.filters.empty());
  // Equal values travel exactly: the range is one point.
  Message flat = Push(Keys(100), SArray<float>(100, 3.5f));
  sender->Encode(false, &flat);
  ASSERT_EQ(flat.meta.filters.size(), 1U);
  Message got = Arrive(flat);
  ASSERT_EQ(Decode(Chain("").get(), &got), FilterResult::kOk);
  EXPECT_EQ(AsVector<float>(got.data[1]), std::vector<float>(100, 3.5f));
  // fixed:16 halves the bytes of float values.
  Message half = Push(Keys(10000), Values(10000));
  sender->Encode(false, &half);
  EXPECT_EQ(half.data[1].size(), 16 + 10000 * 2U);
}

TEST_F(Chains, KeyCacheSendsARepeatedListAsItsSignature) {
  auto sender = Chain("key_cache");
  auto receiver = Chain("");
  SArray<Key> keys = Keys(1000);
  // First: in full, for the receiver to keep.
  Message first = Push(keys, SArray<float>(1000, 1.0f));
  sender->Encode(false, &first);
  EXPECT_EQ(first.meta.filters,
            (std::vector<FilterRecord>{{"key_cache", {KeyCacheFilter::kStore}}}));
  EXPECT_EQ(first.data[0].size(), 8000U);
  Message got = Arrive(first);
  ASSERT_EQ(Decode(receiver.get(), &got), FilterResult::kOk);
  // Then: the signature only, for pushes and pulls of the same keys alike.
  for (bool push : {true, false}) {
    Message again = Push(keys, SArray<float>(1000, 2.0f));
    if (!push) {
      again.data.resize(1);
      again.meta.data_type.resize(1);
      again.meta.push = false;
      again.meta.pull = true;
    }
    sender->Encode(false, &again);
    EXPECT_EQ(again.data[0].size(), KeyCacheFilter::kSignatureBytes);
    EXPECT_EQ(again.meta.data_type[0], CHAR);
    got = Arrive(again);
    ASSERT_EQ(Decode(receiver.get(), &got), FilterResult::kOk);
    EXPECT_EQ(AsVector<Key>(got.data[0]), std::vector<Key>(keys.begin(), keys.end()));
    EXPECT_EQ(got.meta.data_type[0], GetDataType<Key>());
  }
  // A different list is new again; short lists are not worth a signature.
  Message other = Push(Keys(1000, 7, 4), SArray<float>(1000, 1.0f));
  sender->Encode(false, &other);
  EXPECT_EQ(other.meta.filters[0].args, (std::vector<int64_t>{KeyCacheFilter::kStore}));
  Message tiny = Push(Keys(3), SArray<float>(3, 1.0f));
  sender->Encode(false, &tiny);
  EXPECT_TRUE(tiny.meta.filters.empty());
  // Responses carry no keys: untouched.
  Message response;
  response.meta.recver = kWorker;
  response.AddData(Keys(1000));
  sender->Encode(false, &response);
  EXPECT_TRUE(response.meta.filters.empty());

  std::vector<FilterStats> stats = sender->stats();
  ASSERT_EQ(stats.size(), 1U);
  EXPECT_EQ(stats[0].name, "key_cache");
  EXPECT_EQ(stats[0].encode.messages, 6U);  // the response, too: it has data
  EXPECT_EQ(stats[0].encode.applied, 4U);
}

TEST_F(Chains, KeyCacheMissesWhatTheReceiverDoesNotHold) {
  auto sender = Chain("key_cache");
  SArray<Key> keys = Keys(1000);
  Message first = Push(keys, SArray<float>(1000, 1.0f));
  sender->Encode(false, &first);
  Message again = Push(keys, SArray<float>(1000, 1.0f));
  sender->Encode(false, &again);
  ASSERT_EQ(again.data[0].size(), KeyCacheFilter::kSignatureBytes);
  // A receiver that never got the list (restarted): a miss, never a guess.
  auto restarted = Chain("");
  Message got = Arrive(again);
  std::string filter, error;
  EXPECT_EQ(restarted->Decode(&got, &filter, &error), FilterResult::kMiss);
  EXPECT_EQ(filter, "key_cache");
  EXPECT_EQ(restarted->stats()[0].misses, 1U);
  // The sender, asked again, sends the list in full; then the signature works again.
  Message full = Push(keys, SArray<float>(1000, 1.0f));
  sender->Encode(true, &full);
  EXPECT_EQ(full.data[0].size(), 8000U);
  got = Arrive(full);
  ASSERT_EQ(Decode(restarted.get(), &got), FilterResult::kOk);
  got = Arrive(again);
  ASSERT_EQ(Decode(restarted.get(), &got), FilterResult::kOk);
  EXPECT_EQ(AsVector<Key>(got.data[0]), std::vector<Key>(keys.begin(), keys.end()));
  // Lists are kept per sender node and customer: another customer's signature misses.
  got = Arrive(again);
  got.meta.customer_id = 1;
  EXPECT_EQ(Decode(restarted.get(), &got), FilterResult::kMiss);
  got = Arrive(again, kWorker + 2);
  EXPECT_EQ(Decode(restarted.get(), &got), FilterResult::kMiss);
  // The sender remembers lists per receiver: to another server the list goes in full.
  Message elsewhere = Push(keys, SArray<float>(1000, 1.0f));
  elsewhere.meta.recver = kServer + 2;
  sender->Encode(false, &elsewhere);
  EXPECT_EQ(elsewhere.data[0].size(), 8000U);
}

TEST_F(Chains, KeyCacheEvictsLeastRecentlyUsedLists) {
  // 1 MB each side: two lists of 64 Ki keys (512 KiB) fit, a third evicts the oldest.
  Postoffice po(test::NodeEnv("server", 9000, 1, 1, {{"PS_KEY_CACHE_MB", "1"}}));
  FilterChain receiver(&po, "test");
  auto sender = Chain("key_cache");  // 256 MB: remembers all three
  std::vector<SArray<Key>> lists = {Keys(65536, 3, 0), Keys(65536, 3, 1), Keys(65536, 3, 2)};
  for (const auto& keys : lists) {
    Message m = Push(keys, SArray<float>());
    m.data.resize(1);
    m.meta.data_type.resize(1);
    sender->Encode(false, &m);
    Message got = Arrive(m);
    ASSERT_EQ(Decode(&receiver, &got), FilterResult::kOk);
  }
  std::vector<FilterResult> results;
  for (const auto& keys : lists) {
    Message m = Push(keys, SArray<float>());
    m.data.resize(1);
    m.meta.data_type.resize(1);
    sender->Encode(false, &m);
    EXPECT_EQ(m.data[0].size(), KeyCacheFilter::kSignatureBytes);
    Message got = Arrive(m);
    results.push_back(Decode(&receiver, &got));
  }
  EXPECT_EQ(results,
            (std::vector<FilterResult>{FilterResult::kMiss, FilterResult::kOk, FilterResult::kOk}));

  LruCache<int, int> lru(10);
  EXPECT_TRUE(lru.Put(1, 1, 4));
  EXPECT_TRUE(lru.Put(2, 2, 4));
  ASSERT_NE(lru.Get(1), nullptr);  // 1 is now the most recent
  EXPECT_TRUE(lru.Put(3, 3, 4));   // evicts 2
  EXPECT_EQ(lru.Get(2), nullptr);
  EXPECT_EQ(*lru.Get(1), 1);
  EXPECT_FALSE(lru.Put(4, 4, 11));  // larger than everything: not kept
  EXPECT_EQ(lru.charge(), 8U);
  EXPECT_EQ(lru.evictions(), 1U);
}

// Every chain of the built-ins, in every order, restores what was sent (fixed-point within
// its bound), to a receiver with no filters configured, twice in a row (the key cache's
// second time is a signature).
TEST_F(Chains, EveryChainInEveryOrderRoundTrips) {
  const std::vector<std::string> all = {"key_cache", "zstd", "lz4", "fixed:16"};
  int chains = 0;
  for (int mask = 1; mask < (1 << all.size()); ++mask) {
    std::vector<std::string> chosen;
    for (size_t i = 0; i < all.size(); ++i) {
      if (mask & (1 << i)) chosen.push_back(all[i]);
    }
    std::sort(chosen.begin(), chosen.end());
    do {
      std::string spec;
      for (const auto& c : chosen) spec += (spec.empty() ? "" : ",") + c;
      auto sender = Chain(spec);
      auto receiver = Chain("");
      bool lossy = std::count(chosen.begin(), chosen.end(), "fixed:16");
      for (int round = 0; round < 2; ++round) {
        SArray<Key> keys = Keys(3000);
        SArray<float> vals = Values(6000, round);
        SArray<int> lens(3000, 2);
        Message msg = Push(keys, vals, lens);
        sender->Encode(false, &msg);
        Message got = Arrive(msg);
        std::string error;
        ASSERT_EQ(Decode(receiver.get(), &got, &error), FilterResult::kOk) << spec << error;
        EXPECT_EQ(AsVector<Key>(got.data[0]), std::vector<Key>(keys.begin(), keys.end())) << spec;
        EXPECT_EQ(AsVector<int>(got.data[2]), std::vector<int>(3000, 2)) << spec;
        std::vector<float> back = AsVector<float>(got.data[1]);
        ASSERT_EQ(back.size(), vals.size()) << spec;
        if (!lossy) {
          EXPECT_EQ(back, std::vector<float>(vals.begin(), vals.end())) << spec;
        } else {
          double step = (*std::max_element(vals.begin(), vals.end()) -
                         *std::min_element(vals.begin(), vals.end())) /
                        65535;
          for (size_t i = 0; i < back.size(); ++i) {
            ASSERT_LE(std::abs(back[i] - vals[i]), step * 1.001) << spec;
          }
        }
      }
      ++chains;
    } while (std::next_permutation(chosen.begin(), chosen.end()));
  }
  EXPECT_EQ(chains, 4 + 12 + 24 + 24);
}

TEST_F(Chains, BadListsAreClearErrorsThatChangeNothing) {
  auto chain = Chain("zstd");
  auto error = [&](const std::string& spec) {
    Status s = chain->Configure(spec);
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << spec;
    return s.message();
  };
  EXPECT_EQ(error("key_cache,zsdt"),
            "unknown filter zsdt (known: fixed, key_cache, lz4, xor, zstd)");
  EXPECT_EQ(error("fixed:12"), "filter fixed:12: fixed takes 8 or 16 bits, not \"12\"");
  EXPECT_EQ(error("zstd:fast"), "filter zstd:fast: zstd takes a number from " +
                                    std::to_string(-(1 << 17)) + " to 22, not \"fast\"");
  EXPECT_EQ(error("zstd, zstd:3"), "filter zstd is listed twice");
  EXPECT_EQ(error("zstd,,lz4"), "a filter without a name");
  EXPECT_EQ(error("zstd,"), "a filter without a name");
  EXPECT_EQ(error("key_cache:5"),
            "filter key_cache:5: key_cache takes no parameter (its size is PS_KEY_CACHE_MB)");
  EXPECT_EQ(chain->spec(), "zstd");
  ASSERT_TRUE(chain->Configure(" key_cache , fixed:8 ,zstd ").ok());
  EXPECT_EQ(chain->spec(), "key_cache , fixed:8 ,zstd");
  ASSERT_TRUE(chain->Configure("").ok());
  EXPECT_TRUE(chain->empty());
}

TEST_F(Chains, StatsCountMessagesAndBytesPerFilterAndDirection) {
  auto sender = Chain("fixed:16,zstd");
  auto receiver = Chain("");
  Message msg = Push(Keys(10000), SArray<float>(10000, 1.5f));  // 80000 + 40000 bytes
  sender->Encode(false, &msg);
  const size_t wire = msg.data_bytes();
  Message got = Arrive(msg);
  ASSERT_EQ(Decode(receiver.get(), &got), FilterResult::kOk);
  std::vector<FilterStats> out = sender->stats();
  ASSERT_EQ(out.size(), 2U);
  EXPECT_EQ(out[0].name, "fixed");
  EXPECT_EQ(out[0].encode.messages, 1U);
  EXPECT_EQ(out[0].encode.bytes_before, 120000U);
  EXPECT_EQ(out[0].encode.bytes_after, 80000U + 16 + 20000);
  EXPECT_EQ(out[1].name, "zstd");
  EXPECT_EQ(out[1].encode.bytes_before, 80000U + 16 + 20000);
  EXPECT_EQ(out[1].encode.bytes_after, wire);
  std::vector<FilterStats> in = receiver->stats();
  ASSERT_EQ(in.size(), 2U);
  EXPECT_EQ(in[0].name, "zstd");  // decoded first
  EXPECT_EQ(in[0].decode.bytes_before, wire);
  EXPECT_EQ(in[1].decode.bytes_after, 120000U);
}

// Frames and arguments from the network that cannot be what an encoder made: each is
// rejected, never a crash (the sanitizer builds check the memory), and counted once.
TEST_F(Chains, MalformedFramesAreRejectedAndCounted) {
  auto receiver = Chain("");
  int cases = 0;
  auto expect_malformed = [&](Message msg, const std::string& why) {
    std::string error;
    EXPECT_EQ(Decode(receiver.get(), &msg, &error), FilterResult::kMalformed) << why;
    EXPECT_NE(error.find(why), std::string::npos) << error;
    ++cases;
  };
  auto encoded = [&](const std::string& spec) {
    Message msg = Push(Keys(2000), SArray<float>(2000, 0.5f));
    Chain(spec)->Encode(false, &msg);
    return Arrive(msg);
  };
  {  // a signature of 23 and 25 bytes
    for (size_t n : {23, 25}) {
      Message m = Arrive(Push(Keys(10), SArray<float>(10, 1.0f)));
      m.data[0] = SArray<char>(n);
      m.meta.data_type[0] = CHAR;
      m.meta.filters = {{"key_cache", {KeyCacheFilter::kSignature, GetDataType<Key>()}}};
      expect_malformed(m, "filter key_cache: a signature of " + std::to_string(n) + " bytes");
    }
  }
  for (const char* codec : {"zstd", "lz4"}) {
    Message m = encoded(codec);  // truncated
    m.data[0] = m.data[0].segment(0, m.data[0].size() - 5);
    expect_malformed(m, std::string("filter ") + codec + ": frame 0: ");
    m = encoded(codec);  // a size larger than the frame can hold
    m.meta.filters[0].args[2] = int64_t{1} << 40;
    expect_malformed(m, "compressed bytes cannot hold");
    m = encoded(codec);  // a size off by one element
    m.meta.filters[0].args[2] -= 8;
    expect_malformed(m, "frame 0: ");
    m = encoded(codec);  // arguments that do not come in threes
    m.meta.filters[0].args.pop_back();
    expect_malformed(m, "bad arguments");
  }
  {
    Message m = encoded("fixed");  // a header cut short
    m.data[1] = m.data[1].segment(0, 10);
    expect_malformed(m, "10 bytes are not a range and 2000 16-bit values");
    m = encoded("fixed");  // a range from high to low
    double bad[2] = {1.0, -1.0};
    SArray<char> frame(m.data[1].size());
    std::copy(m.data[1].begin(), m.data[1].end(), frame.begin());
    std::memcpy(frame.data(), bad, sizeof(bad));
    m.data[1] = frame;
    expect_malformed(m, "a range that is not one");
    m = encoded("fixed");  // values that decode to a non-float type
    m.meta.filters[0].args[2] = INT64;
    expect_malformed(m, "bad arguments");
  }
  {  // a frame that decodes to 3 bytes said to be floats
    char three[3] = {1, 2, 3};
    SArray<char> packed(ZSTD_compressBound(3));
    packed.resize(ZSTD_compress(packed.data(), packed.size(), three, 3, 1));
    Message m;
    m.meta.request = true;
    m.meta.sender = kWorker;
    m.data = {packed};
    m.meta.data_type = {CHAR};
    m.meta.filters = {{"zstd", {0, FLOAT, 3}}};
    expect_malformed(m, "frame 0 decodes to 3 bytes, not whole elements");
  }
  {
    Message m = encoded("zstd");
    m.meta.filters[0].name = "nosuch";
    expect_malformed(m, "unknown filter nosuch");
  }
  uint64_t dropped = 0;
  for (const FilterStats& s : receiver->stats()) dropped += s.dropped;
  EXPECT_EQ(dropped, static_cast<uint64_t>(cases));

  // Random damage to encoded frames: decoded exactly or rejected, never anything else.
  std::mt19937 rng(11);
  for (int round = 0; round < 3000; ++round) {
    const char* spec = round % 3 == 0 ? "zstd" : round % 3 == 1 ? "lz4" : "fixed:8";
    Message m = encoded(spec);
    size_t f = round % 3 == 2 ? 1 : rng() % 2;
    if (m.meta.data_type[f] != CHAR) continue;
    SArray<char> frame(m.data[f].size());
    std::copy(m.data[f].begin(), m.data[f].end(), frame.begin());
    if (rng() % 2) {
      frame = frame.segment(0, rng() % frame.size());
    } else {
      for (int k = 0; k < 4; ++k)
        frame[rng() % frame.size()] ^= static_cast<char>(1 << (rng() % 8));
    }
    m.data[f] = frame;
    std::string filter, error;
    FilterResult r = receiver->Decode(&m, &filter, &error);
    ASSERT_NE(r, FilterResult::kMiss);
    if (r == FilterResult::kOk) {
      ASSERT_EQ(m.data[0].size(), 2000 * sizeof(Key));
      ASSERT_EQ(m.data[1].size(), 2000 * sizeof(float));
    }
  }
}

TEST_F(Chains, UserFilterRegisteredByNameIsEncodedAndDecodedByName) {
  std::vector<std::string> names = RegisteredFilters();
  EXPECT_EQ(names, (std::vector<std::string>{"fixed", "key_cache", "lz4", "xor", "zstd"}));
  auto sender = Chain("xor:7,zstd");
  auto receiver = Chain("");
  Message msg = Push(Keys(2000), SArray<float>(2000, 1.0f));
  const auto before = Bytes(msg);
  sender->Encode(false, &msg);
  ASSERT_EQ(msg.meta.filters.size(), 2U);
  EXPECT_EQ(msg.meta.filters[0], (FilterRecord{"xor", {7}}));
  Message got = Arrive(msg);
  ASSERT_EQ(Decode(receiver.get(), &got), FilterResult::kOk);
  EXPECT_EQ(Bytes(got), before);
}

TEST(FilterConfig, UnknownNameOrBadValueFailsStart) {
  auto start_error = [](const test::Env& extra) {
    Postoffice po(test::NodeEnv("worker", 9000, 1, 1, extra));
    Status s = po.TryStart(0);
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << s.message();
    return s.message();
  };
  EXPECT_EQ(start_error({{"PS_FILTERS", "key_cache,zsdt"}}),
            "PS_FILTERS=key_cache,zsdt: unknown filter zsdt (known: fixed, key_cache, lz4, xor, "
            "zstd)");
  EXPECT_EQ(start_error({{"PS_FILTERS", "fixed:32"}}),
            "PS_FILTERS=fixed:32: filter fixed:32: fixed takes 8 or 16 bits, not \"32\"");
  EXPECT_EQ(start_error({{"PS_KEY_CACHE_MB", "lots"}}), "PS_KEY_CACHE_MB=lots is not a number");
  EXPECT_EQ(start_error({{"PS_COMPRESS_MIN_BYTES", "-1"}}),
            "PS_COMPRESS_MIN_BYTES=-1 is out of range (0 to 1099511627776)");
}

}  // namespace
}  // namespace ps
