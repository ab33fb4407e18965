// filter_bench: bytes on the wire and time per push-pull with each filter and the useful chains,
// relative to no filter, on a sparse-gradient-like payload.
//
//   filter_bench [--keys N] [--lists L] [--rounds R] [--servers S]
//
// Started without DMLC_ROLE it is the driver: it starts a job of a scheduler, S servers and one
// worker, all of them this program, with heartbeats off so that the wire carries the benchmark
// only. Each case is an app of its own: the worker's KVWorker and the servers' KVServers set
// the case's filters through the API. A round is a ZPush of one of L key lists of N keys
// (cycled, so lists repeat) with float gradients, 80% of them near zero (|g| ~ 1e-4) and 20%
// large (~1), then a ZPull of the same keys. After one unmeasured pass over the lists (the key
// cache's first, full sends), R rounds are measured. One JSON line per case: bytes on the wire
// per push-pull (sent and received by the worker, metas included) and milliseconds per
// push-pull, each also relative to no filter. The "kkt" cases add a KKTFilter (l1 = 0.01,
// margin 0) as the worker's key filter. A first line times XXH3-128 over 8 MB of keys.
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "common/programs.h"
#include "common/test_util.h"
#include "ps/ps.h"

namespace {

using ps::test::IntFlag;
using ps::test::Now;
using ps::test::SpawnSelf;

using Seconds = std::chrono::duration<double>;

struct Case {
  const char* name;     // as printed
  const char* filters;  // for set_filters
  bool kkt;
};

const std::vector<Case> kCases = {
    {"none", "", false},
    {"key_cache", "key_cache", false},
    {"zstd", "zstd", false},
    {"lz4", "lz4", false},
    {"fixed:16", "fixed:16", false},
    {"fixed:8", "fixed:8", false},
    {"key_cache,zstd", "key_cache,zstd", false},
    {"key_cache,lz4", "key_cache,lz4", false},
    {"key_cache,fixed:16", "key_cache,fixed:16", false},
    {"key_cache,fixed:16,zstd", "key_cache,fixed:16,zstd", false},
    {"key_cache,fixed:8,zstd", "key_cache,fixed:8,zstd", false},
    {"key_cache,fixed:8,lz4", "key_cache,fixed:8,lz4", false},
    {"kkt", "", true},
    {"kkt+key_cache,fixed:8,zstd", "key_cache,fixed:8,zstd", true},
};

// XXH3-128 over 8 MB of keys: the key cache hashes every key list it sends.
void TimeHash() {
  std::vector<ps::Key> keys(8000000 / sizeof(ps::Key));
  for (size_t i = 0; i < keys.size(); ++i) keys[i] = i * 7919;
  std::vector<double> ms;
  for (int r = 0; r < 21; ++r) {
    double t = Now();
    XXH128_hash_t h = XXH3_128bits(keys.data(), keys.size() * sizeof(ps::Key));
    ms.push_back((Now() - t) * 1e3);
    if (h.low64 == 42) std::printf("\n");  // keeps the call
  }
  std::sort(ms.begin(), ms.end());
  std::printf("{\"op\":\"xxh3_128\",\"bytes\":%zu,\"ms\":%.3f,\"GBps\":%.1f}\n",
              keys.size() * sizeof(ps::Key), ms[ms.size() / 2], 8e6 / ms[ms.size() / 2] / 1e6);
  std::fflush(stdout);
}

// The payload: "lists" sorted key lists of n keys each, spread over the key space, and a
// gradient for each.
struct Payload {
  std::vector<ps::SArray<ps::Key>> keys;
  std::vector<ps::SArray<float>> grads;
};

Payload MakePayload(size_t n, int lists) {
  std::mt19937_64 rng(42);
  std::normal_distribution<float> small(0, 1e-4f), large(0, 1);
  Payload p;
  for (int l = 0; l < lists; ++l) {
    std::set<ps::Key> chosen;
    while (chosen.size() < n) chosen.insert(rng() >> 8);
    ps::SArray<ps::Key> keys(n);
    std::copy(chosen.begin(), chosen.end(), keys.begin());
    ps::SArray<float> g(n);
    for (size_t i = 0; i < n; ++i) g[i] = rng() % 5 == 0 ? large(rng) : small(rng);
    p.keys.push_back(keys);
    p.grads.push_back(g);
  }
  return p;
}

void RunServer() {
  std::vector<std::unique_ptr<ps::KVServer<float>>> servers;
  for (size_t c = 0; c < kCases.size(); ++c) {
    servers.emplace_back(new ps::KVServer<float>(static_cast<int>(c)));
    ps::Status s = servers.back()->set_filters(kCases[c].filters);
    CHECK(s.ok()) << s.message();
    servers.back()->set_request_handle(ps::KVServerDefaultHandle<float>());
  }
  ps::Postoffice::Get()->Barrier(0, ps::kServerGroup + ps::kWorkerGroup);  // ready
  ps::Postoffice::Get()->Barrier(0, ps::kServerGroup + ps::kWorkerGroup);  // done
}

void RunWorker(size_t n, int lists, int rounds) {
  TimeHash();
  Payload p = MakePayload(n, lists);
  ps::Postoffice::Get()->Barrier(0, ps::kServerGroup + ps::kWorkerGroup);
  ps::Van* van = ps::Postoffice::Get()->van();
  double base_bytes = 0, base_ms = 0;
  for (size_t c = 0; c < kCases.size(); ++c) {
    ps::KKTFilter<float> kkt(0.01f, 0);  // outlives the worker that uses it
    ps::KVWorker<float> kv(static_cast<int>(c), 0);
    ps::Status s = kv.set_filters(kCases[c].filters);
    CHECK(s.ok()) << s.message();
    if (kCases[c].kkt) kv.set_key_filter(kkt.AsKeyFilter());
    auto round = [&](int r) {
      const int l = r % lists;
      kv.Wait(kv.ZPush(p.keys[l], p.grads[l]));
      ps::SArray<float> w;
      kv.Wait(kv.ZPull(p.keys[l], &w));
      if (kCases[c].kkt) kkt.SetWeights(p.keys[l], w);
    };
    for (int r = 0; r < lists; ++r) round(r);  // first sends of each list
    const uint64_t bytes0 = van->bytes_sent() + van->bytes_received();
    const double t0 = Now();
    for (int r = 0; r < rounds; ++r) round(r);
    const double ms = (Now() - t0) * 1e3 / rounds;
    const double bytes =
        static_cast<double>(van->bytes_sent() + van->bytes_received() - bytes0) / rounds;
    if (c == 0) {
      base_bytes = bytes;
      base_ms = ms;
    }
    std::printf(
        "{\"filters\":\"%s\",\"servers\":%d,\"keys\":%zu,\"wire_bytes\":%.0f,"
        "\"bytes_ratio\":%.3f,\"ms\":%.3f,\"time_ratio\":%.2f",
        kCases[c].name, ps::NumServers(), n, bytes, bytes / base_bytes, ms, ms / base_ms);
    if (kCases[c].kkt) {
      std::printf(",\"kkt_left_out\":%.3f",
                  static_cast<double>(kkt.left_out()) / (kkt.left_out() + kkt.kept()));
    }
    std::printf("}\n");
    std::fflush(stdout);
  }
  ps::Postoffice::Get()->Barrier(0, ps::kServerGroup + ps::kWorkerGroup);
}

int RunNode(int argc, char** argv) {
  const size_t n = static_cast<size_t>(IntFlag(argc, argv, "--keys", 100000));
  const int lists = IntFlag(argc, argv, "--lists", 4);
  const int rounds = IntFlag(argc, argv, "--rounds", 40);
  ps::Start(0, argv[0]);
  if (ps::IsServer()) {
    RunServer();
  } else if (ps::IsWorker()) {
    RunWorker(n, lists, rounds);
  }
  ps::Finalize(0, true);
  return 0;
}

int RunDriver(int argc, char** argv) {
  const int servers = IntFlag(argc, argv, "--servers", 1);
  return ps::test::RunSelfJob(argv, servers, {"PS_HEARTBEAT_INTERVAL=0"}) ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (std::getenv("DMLC_ROLE")) return RunNode(argc, argv);
  return RunDriver(argc, argv);
}
