// Filters in whole jobs inside one process, over real sockets on loopback (the filters alone,
// without a network, are tests/unit/filter/filter_test.cc): sums come out exactly as without
// filters, key caching puts only signatures on the wire, a receiver that lost a key list gets it
// again, receivers decode whatever their own configuration, and malformed filtered frames are
// dropped and counted.
#include <gtest/gtest.h>

#include <atomic>
#include <set>

#include "common/test_util.h"
#include "filter/key_cache_filter.h"
#include "message/codec.h"

namespace ps {
namespace {

constexpr int kServersAndWorkers = kServerGroup + kWorkerGroup;

// n keys spread over the whole key space, so that every server gets some.
SArray<Key> SpreadKeys(size_t n, Key offset = 0) {
  SArray<Key> keys(n);
  Key step = kMaxKey / static_cast<Key>(n);
  for (size_t i = 0; i < n; ++i) keys[i] = static_cast<Key>(i) * step + offset;
  return keys;
}

// Values whose sums are exact in floats: small multiples of 1/4.
SArray<float> Quarters(size_t n, int scale) {
  SArray<float> vals(n);
  for (size_t i = 0; i < n; ++i) vals[i] = 0.25f * static_cast<float>((i % 13 + 1) * scale);
  return vals;
}

// The stats of filter "name"; with an empty name when there are none.
FilterStats Find(const std::vector<FilterStats>& stats, const std::string& name) {
  for (const FilterStats& s : stats) {
    if (s.name == name) return s;
  }
  return FilterStats();
}

// A job whose servers run KVServerDefaultHandle and whose workers run "work". "server_filters"
// and "worker_filters", when not null, are set through the API (else PS_FILTERS applies).
struct Job {
  int servers = 1, workers = 1;
  test::Env env, server_env, worker_env;
  const char* server_filters = nullptr;
  const char* worker_filters = nullptr;
  std::function<void(Postoffice*, KVWorker<float>*)> work;
  std::function<void(KVServer<float>*)> served;  // on each server, after the workers are done
  // Each server's request handle; KVServerDefaultHandle when not set.
  std::function<KVServer<float>::ReqHandle()> make_handle;

  void Run() {
    int port = test::FreePort();
    std::vector<std::unique_ptr<Postoffice>> nodes;
    std::vector<std::string> roles;
    auto add = [&](const std::string& role, const test::Env& extra) {
      test::Env e = env;
      for (const auto& kv : extra) e[kv.first] = kv.second;
      nodes.emplace_back(new Postoffice(test::NodeEnv(role, port, servers, workers, e)));
      roles.push_back(role);
    };
    add("scheduler", {});
    for (int i = 0; i < servers; ++i) add("server", server_env);
    for (int i = 0; i < workers; ++i) add("worker", worker_env);
    std::vector<std::thread> threads;
    for (size_t i = 0; i < nodes.size(); ++i) {
      threads.emplace_back([&, i] {
        Postoffice* po = nodes[i].get();
        ASSERT_TRUE(po->TryStart(0).ok());
        if (roles[i] == "server") {
          KVServer<float> server(0, po);
          if (server_filters) {
            ASSERT_TRUE(server.set_filters(server_filters).ok());
          }
          if (make_handle) {
            server.set_request_handle(make_handle());
          } else {
            server.set_request_handle(KVServerDefaultHandle<float>());
          }
          ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
          ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());  // workers done
          if (served) served(&server);
        } else if (roles[i] == "worker") {
          KVWorker<float> kv(0, 0, po);
          if (worker_filters) {
            ASSERT_TRUE(kv.set_filters(worker_filters).ok());
          }
          ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
          work(po, &kv);
          EXPECT_EQ(kv.pending_requests(), 0U);
          ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
        }
        EXPECT_TRUE(po->TryFinalize(0).ok());
      });
    }
    for (auto& t : threads) t.join();
  }
};

// Every worker pushes the same keys "rounds" times with ZPush, Push and PushPull, then pulls:
// the sums must be exact. Returns nothing; checks inside.
void PushPullAndCheckSums(Postoffice* po, KVWorker<float>* kv, int workers, int rounds) {
  const int rank = po->my_rank();
  const size_t n = 3000;
  SArray<Key> keys = SpreadKeys(n);
  SArray<float> vals = Quarters(n, rank + 1);
  std::vector<int> ts;
  for (int r = 0; r < rounds; ++r) ts.push_back(kv->ZPush(keys, vals));
  for (int t : ts) ASSERT_TRUE(kv->TryWait(t).ok());
  ASSERT_TRUE(po->TryBarrier(0, kWorkerGroup).ok());  // every worker has pushed
  SArray<float> out;
  ASSERT_TRUE(kv->TryWait(kv->ZPull(keys, &out)).ok());
  const int total = rounds * workers * (workers + 1) / 2;  // sum of (rank + 1) * rounds
  ASSERT_EQ(out.size(), n);
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(out[i], 0.25f * (i % 13 + 1) * total) << i;
  ASSERT_TRUE(po->TryBarrier(0, kWorkerGroup).ok());  // every worker has pulled
  // Other keys, two values each, through PushPull: each round trip returns the sum so far.
  std::vector<Key> other(keys.begin(), keys.end());
  for (Key& k : other) k += 1 + rank;  // this worker's own keys
  std::vector<float> two(2 * n, 0.5f), sum;
  for (int r = 1; r <= rounds; ++r) {
    ASSERT_TRUE(kv->TryWait(kv->PushPull(other, two, &sum)).ok());
    ASSERT_EQ(sum.size(), 2 * n);
    ASSERT_EQ(sum[0], 0.5f * r);
    ASSERT_EQ(sum[2 * n - 1], 0.5f * r);
  }
}

class SameSums : public ::testing::TestWithParam<const char*> {};

// A push-pull job gives exactly the same sums with every chain as without filters. The values
// of each push are multiples of one quarter, which fixed-point restores exactly only where a
// frame holds one value; so fixed is tested for its error bound elsewhere, not here.
TEST_P(SameSums, AsWithoutFilters) {
  Job job;
  job.servers = 2;
  job.workers = 2;
  job.env = {{"PS_FILTERS", GetParam()}};
  job.work = [&](Postoffice* po, KVWorker<float>* kv) { PushPullAndCheckSums(po, kv, 2, 12); };
  job.Run();
}

INSTANTIATE_TEST_SUITE_P(Filters, SameSums,
                         ::testing::Values("", "key_cache", "zstd", "lz4", "key_cache,zstd",
                                           "key_cache,lz4", "zstd:3,key_cache"));

TEST(Filters, ReceiversWithoutFiltersDecodeFilteredMessages) {
  // Workers filter their requests, servers have no filters at all, and the other way round.
  for (bool workers_filter : {true, false}) {
    Job job;
    job.servers = 2;
    job.workers = 2;
    const char* spec = "key_cache,zstd";
    (workers_filter ? job.worker_filters : job.server_filters) = spec;
    job.work = [&](Postoffice* po, KVWorker<float>* kv) {
      PushPullAndCheckSums(po, kv, 2, 5);
      FilterStats zstd = Find(kv->filter_stats(), "zstd");
      ASSERT_EQ(zstd.name, "zstd");
      EXPECT_GT((workers_filter ? zstd.encode : zstd.decode).applied, 0U);
      EXPECT_EQ((workers_filter ? zstd.decode : zstd.encode).messages, 0U);
    };
    job.served = [&](KVServer<float>* server) {
      FilterStats zstd = Find(server->filter_stats(), "zstd");
      ASSERT_EQ(zstd.name, "zstd");
      EXPECT_GT((workers_filter ? zstd.decode : zstd.encode).applied, 0U);
      EXPECT_EQ(zstd.dropped, 0U);
    };
    job.Run();
  }
}

TEST(KeyCache, RepeatedKeyListsSendOnlyTheSignature) {
  Job job;
  job.worker_filters = "key_cache";
  // The bytes sent per push are measured on the van: no heartbeat may fall in between.
  job.env["PS_HEARTBEAT_INTERVAL"] = "0";
  const size_t n = 10000;
  std::atomic<uint64_t> server_decoded{0};
  job.work = [&](Postoffice* po, KVWorker<float>* kv) {
    SArray<Key> keys = SpreadKeys(n);
    SArray<float> vals(n, 1.0f);
    Van* van = po->van();
    std::vector<uint64_t> sent;  // bytes on the wire per push
    for (int r = 0; r < 5; ++r) {
      uint64_t before = van->bytes_sent();
      ASSERT_TRUE(kv->TryWait(kv->ZPush(keys, vals)).ok());
      sent.push_back(van->bytes_sent() - before);
    }
    // The first push carries the keys; the others 24 bytes of signature instead.
    EXPECT_GT(sent[0], n * (sizeof(Key) + sizeof(float)));
    for (int r = 1; r < 5; ++r) {
      EXPECT_LT(sent[r], n * sizeof(float) + KeyCacheFilter::kSignatureBytes + 200) << r;
      EXPECT_EQ(sent[r], sent[1]);
    }
    FilterStats kc = Find(kv->filter_stats(), "key_cache");
    ASSERT_EQ(kc.name, "key_cache");
    EXPECT_EQ(kc.encode.messages, 5U);
    EXPECT_EQ(kc.encode.bytes_before, 5 * n * (sizeof(Key) + sizeof(float)));
    EXPECT_EQ(kc.encode.bytes_after,
              n * (sizeof(Key) + sizeof(float)) + 4 * (KeyCacheFilter::kSignatureBytes + n * 4));
    // A pull of the same keys after the pushes: its request is the signature alone.
    uint64_t before = van->bytes_sent();
    SArray<float> out;
    ASSERT_TRUE(kv->TryWait(kv->ZPull(keys, &out)).ok());
    EXPECT_LT(van->bytes_sent() - before, KeyCacheFilter::kSignatureBytes + 200);
    EXPECT_EQ(Find(kv->filter_stats(), "key_cache").encode.bytes_after,
              kc.encode.bytes_after + KeyCacheFilter::kSignatureBytes);
    ASSERT_EQ(out.size(), n);
    for (float x : out) ASSERT_EQ(x, 5.0f);
  };
  job.served = [&](KVServer<float>* server) {
    FilterStats kc = Find(server->filter_stats(), "key_cache");
    ASSERT_EQ(kc.name, "key_cache");
    server_decoded = kc.decode.messages;
    EXPECT_EQ(kc.decode.bytes_after - kc.decode.bytes_before, 5 * (n * 8 - 24));
    EXPECT_EQ(kc.misses, 0U);
  };
  job.Run();
  EXPECT_EQ(server_decoded.load(), 6U);
}

TEST(KeyCache, EvictedEntryMakesTheWorkerSendTheListAgain) {
  // The server keeps 1 MB of key lists, the worker remembers 256 MB: of three lists of 512 KiB,
  // the server holds two, so the signature of the third-newest misses every time.
  Job job;
  job.servers = 1;
  job.workers = 1;
  job.server_env = {{"PS_KEY_CACHE_MB", "1"}};
  job.worker_filters = "key_cache,lz4";
  std::atomic<uint64_t> misses{0}, resent{0};
  job.work = [&](Postoffice*, KVWorker<float>* kv) {
    const size_t n = 65536;
    std::vector<SArray<Key>> lists = {SpreadKeys(n, 0), SpreadKeys(n, 1), SpreadKeys(n, 2)};
    const int kRounds = 4;
    for (int r = 0; r < kRounds; ++r) {
      for (const auto& keys : lists) {
        ASSERT_TRUE(kv->TryWait(kv->ZPush(keys, Quarters(n, 1))).ok());
      }
    }
    for (const auto& keys : lists) {
      SArray<float> out;
      ASSERT_TRUE(kv->TryWait(kv->ZPull(keys, &out)).ok());
      ASSERT_EQ(out.size(), n);
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(out[i], 0.25f * (i % 13 + 1) * kRounds) << i;
    }
    resent = Find(kv->filter_stats(), "key_cache").resent;
  };
  job.served = [&](KVServer<float>* server) {
    misses = Find(server->filter_stats(), "key_cache").misses;
  };
  job.Run();
  // Rounds 2 to 4 and the pulls: every signature names the list evicted last.
  EXPECT_EQ(misses.load(), 3U * 3 + 3);
  EXPECT_EQ(resent.load(), misses.load());
}

TEST(KeyFilter, LeftOutKeysAreNotSentAndReadAsZeros) {
  Job job;
  job.servers = 2;
  job.work = [&](Postoffice*, KVWorker<float>* kv) {
    const size_t n = 10;
    SArray<Key> keys = SpreadKeys(n);
    std::set<Key> odd;
    for (size_t i = 1; i < n; i += 2) odd.insert(keys[i]);
    kv->set_key_filter([&](Key k, const float*, size_t) { return !odd.count(k); });
    SArray<float> vals(2 * n);
    for (size_t i = 0; i < 2 * n; ++i) vals[i] = static_cast<float>(i + 1);
    ASSERT_TRUE(kv->TryWait(kv->ZPush(keys, vals)).ok());
    // Through the filter the output has the size of the whole key list; the odd keys read as
    // zeros, two each, as many as the even keys have.
    std::vector<Key> all(keys.begin(), keys.end());
    std::vector<float> out;
    std::vector<int> lens;
    ASSERT_TRUE(kv->TryWait(kv->Pull(all, &out, &lens)).ok());
    std::vector<float> want(vals.begin(), vals.end());
    for (size_t i = 1; i < n; i += 2) want[2 * i] = want[2 * i + 1] = 0;
    EXPECT_EQ(out, want);
    EXPECT_EQ(lens, std::vector<int>(n, 2));
    // Without the filter: the same, because the odd keys never reached the servers.
    kv->set_key_filter(nullptr);
    out.clear();
    ASSERT_TRUE(kv->TryWait(kv->Pull(all, &out)).ok());
    EXPECT_EQ(out, want);
    // Everything left out: nothing is sent; zeros, one per key.
    kv->set_key_filter([](Key, const float*, size_t) { return false; });
    std::vector<float> none;
    std::vector<int> none_lens;
    ASSERT_TRUE(kv->TryWait(kv->Pull({1, 2, 3}, &none, &none_lens)).ok());
    EXPECT_EQ(none, std::vector<float>(3, 0.0f));
    EXPECT_EQ(none_lens, std::vector<int>(3, 1));
    // An output of the wrong size is an error, as without a key filter.
    std::vector<float> wrong(5);
    EXPECT_EQ(kv->TryWait(kv->Pull({1, 2, 3}, &wrong)).code(), Status::Code::kInvalidArgument);
    // Keys of different lengths: with lens, a left-out key reads as one zero.
    kv->set_key_filter([&](Key k, const float*, size_t) { return k != keys[1]; });
    ASSERT_TRUE(kv->TryWait(kv->Push({keys[3], keys[5]}, {1, 2, 3, 4, 5}, {2, 3})).ok());
    std::vector<float> uneven;
    std::vector<int> uneven_lens;
    ASSERT_TRUE(kv->TryWait(kv->Pull({keys[1], keys[3], keys[5]}, &uneven, &uneven_lens)).ok());
    EXPECT_EQ(uneven_lens, (std::vector<int>{1, 2, 3}));
    EXPECT_EQ(uneven, (std::vector<float>{0, 1, 2, 3, 4, 5}));
    EXPECT_EQ(kv->TryWait(kv->Pull({keys[1], keys[3], keys[5]}, &uneven)).code(),
              Status::Code::kInvalidArgument);
  };
  job.Run();
}

// A server's request handle that serves the KKT margin at kMaxKey from a schedule, by
// iteration, and keeps everything else in a store.
struct MarginHandle {
  void operator()(const KVMeta& meta, const KVPairs<float>& data, KVServer<float>* server) {
    if (meta.pull && data.keys.size() == 1 && data.keys[0] == kMaxKey) {
      KVPairs<float> res;
      res.vals = {margins[iteration->load()]};
      return server->Response(meta, res);
    }
    store(meta, data, server);
  }
  std::vector<float> margins;
  const std::atomic<int>* iteration;
  KVServerDefaultHandle<float> store;
};

// KKT on a worker: the server supplies the margin and tightens it each iteration; coordinates
// with zero weight and small gradients never reach the server.
TEST(KKTFilter, WorkerLeavesOutCoordinatesWithAMarginTheServerSupplies) {
  const size_t n = 1000;
  const std::vector<float> margins = {0.5f, 0.25f, 0.1f, 0.0f};
  std::atomic<int> iteration{0};
  Job job;
  job.servers = 2;
  job.make_handle = [&] { return MarginHandle{margins, &iteration, {}}; };
  job.work = [&](Postoffice*, KVWorker<float>* kv) {
    KKTFilter<float> kkt(1.0f, 1.0f);
    SArray<Key> keys = SpreadKeys(n);  // kMaxKey is not among them
    SArray<float> grads(n);            // |g_k| = k / n; every weight stays zero
    for (size_t i = 0; i < n; ++i) grads[i] = static_cast<float>(i) / n;
    std::vector<uint64_t> left_out;
    for (int it = 0; it < 4; ++it) {
      iteration = it;
      kv->set_key_filter(nullptr);  // the margin itself is always pulled
      std::vector<float> margin;
      ASSERT_TRUE(kv->TryWait(kv->Pull({kMaxKey}, &margin)).ok());
      ASSERT_EQ(margin, std::vector<float>{margins[it]});
      kkt.set_margin(margin[0]);
      kv->set_key_filter(kkt.AsKeyFilter());
      uint64_t before = kkt.left_out();
      ASSERT_TRUE(kv->TryWait(kv->ZPush(keys, grads)).ok());
      left_out.push_back(kkt.left_out() - before);
    }
    // Thresholds 0.5, 0.75, 0.9 and 1: the keys below are left out.
    EXPECT_EQ(left_out, (std::vector<uint64_t>{500, 750, 900, 1000}));
    // A pull through the filter asks for none: the last push left every key out.
    SArray<float> w;
    uint64_t before = kkt.left_out();
    ASSERT_TRUE(kv->TryWait(kv->ZPull(keys, &w)).ok());
    EXPECT_EQ(kkt.left_out() - before, n);
    EXPECT_EQ(std::vector<float>(w.begin(), w.end()), std::vector<float>(n, 0.0f));
    // Without the filter: the servers hold the sum of the gradients they were sent.
    kv->set_key_filter(nullptr);
    w.clear();
    ASSERT_TRUE(kv->TryWait(kv->ZPull(keys, &w)).ok());
    for (size_t i = 0; i < n; ++i) {
      float sum = 0;
      for (int it = 0; it < 3; ++it) {
        if (!(grads[i] < 1.0f - margins[it])) sum += grads[i];
      }
      ASSERT_EQ(w[i], sum) << i;
    }
  };
  job.Run();
}

// Requests with filtered frames that cannot be decoded, forged over a real socket as if the
// worker sent them: the server drops each, counts it under its filter, answers with an error
// (to timestamps the worker never issued), and goes on serving the real worker exactly.
TEST(Filters, MalformedFilteredFramesAreDroppedAndCounted) {
  Job job;
  const int kForged = 7;
  job.work = [&](Postoffice* po, KVWorker<float>* kv) {
    Van* van = po->van();
    Node server;
    for (const Node& n : van->nodes()) {
      if (n.role == Node::SERVER) server = n;
    }
    FilterChain forger(po, "forger");
    auto request = [&](const char* spec) {
      Message msg;
      msg.meta.app_id = 0;
      msg.meta.customer_id = 0;
      msg.meta.timestamp = 100000;  // never issued by the worker
      msg.meta.request = true;
      msg.meta.push = true;
      msg.meta.sender = van->my_node().id;
      msg.meta.recver = server.id;
      msg.AddData(SpreadKeys(2000));
      msg.AddData(SArray<float>(2000, 1.0f));
      EXPECT_TRUE(forger.Configure(spec).ok());
      forger.Encode(false, &msg);
      return msg;
    };
    std::vector<Message> bad;
    for (size_t size : {23, 25}) {  // a signature of the wrong length
      Message m = request("");
      m.data[0] = SArray<char>(size);
      m.meta.data_type[0] = CHAR;
      m.meta.filters = {{"key_cache", {KeyCacheFilter::kSignature, GetDataType<Key>()}}};
      bad.push_back(m);
    }
    Message m = request("zstd");  // truncated
    m.data[0] = m.data[0].segment(0, m.data[0].size() / 2);
    bad.push_back(m);
    m = request("zstd");  // a size the frame cannot hold
    m.meta.filters[0].args[2] = int64_t{1} << 40;
    bad.push_back(m);
    m = request("lz4");  // not lz4 at all
    m.data[1] = SArray<char>(m.data[1].size(), 'x');
    bad.push_back(m);
    m = request("fixed");  // a range header cut short
    m.data[1] = m.data[1].segment(0, 12);
    bad.push_back(m);
    m = request("zstd");  // a filter nobody registered
    m.meta.filters[0].name = "nosuch";
    bad.push_back(m);
    ASSERT_EQ(bad.size(), static_cast<size_t>(kForged));

    // Sent on the worker's own connection: a message from any other is dropped as forged
    // before its filters are looked at.
    for (Message& msg : bad) ASSERT_TRUE(van->TrySend(msg).ok());
    // The server still serves: exact sums.
    SArray<Key> keys = SpreadKeys(2000);
    for (int r = 0; r < 3; ++r) ASSERT_TRUE(kv->TryWait(kv->ZPush(keys, Quarters(2000, 1))).ok());
    SArray<float> out;
    ASSERT_TRUE(kv->TryWait(kv->ZPull(keys, &out)).ok());
    for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], 0.75f * (i % 13 + 1)) << i;
  };
  job.served = [&](KVServer<float>* server) {
    auto dropped = [&] {
      uint64_t n = 0;
      for (const FilterStats& s : server->filter_stats()) n += s.dropped;
      return n;
    };
    ASSERT_TRUE(test::WaitFor([&] { return dropped() >= kForged; }, 10)) << dropped();
    std::vector<FilterStats> stats = server->filter_stats();
    EXPECT_EQ(Find(stats, "key_cache").dropped, 2U);
    EXPECT_EQ(Find(stats, "zstd").dropped, 2U);
    EXPECT_EQ(Find(stats, "lz4").dropped, 1U);
    EXPECT_EQ(Find(stats, "fixed").dropped, 1U);
    EXPECT_EQ(Find(stats, "(unknown)").dropped, 1U);
  };
  job.Run();
}

}  // namespace
}  // namespace ps
