// store_bench: the server's store (KVServerDefaultHandle) next to yardsticks measured in the same
// run: the transport alone, memcpy, and raw ZeroMQ.
//
//   store_bench [--runs R] [--mem-keys N] [--small-only 1]
//
// Started without DMLC_ROLE it is the driver. It starts a raw ZeroMQ echo process and:
//  1. a job of 1 server and 1 worker. The server has three apps: 0 runs KVServerDefaultHandle,
//     1 answers without a store (pulls from a preallocated buffer: the transport alone), 2 runs
//     the store this project had before (a std::unordered_map of vectors), for comparison.
//     - "pushpull": a push then a pull of the same n random sorted keys (the same list every
//       run, after one unmeasured first run that loads it), one float per key, 4 per key, or
//       1 to 7 by lens. Each run times one push-pull on each app in turn; printed: the median
//       of R runs of each side, their ratio (store ms / transport ms), and the spread of the
//       runs' ratios (min and max).
//     - "small": a 1-key push plus Wait and a 1-key pull plus Wait through app 0, next to a raw
//       ZeroMQ round trip of the same bytes (12 bytes out and an ack back; 8 out, 4 back)
//       between this worker and the echo process; each run is the median of 400 round trips.
//       "server_thread" is the same through app 4, the store behind a lambda that does not say
//       it never blocks, so it runs on the server's thread: the hand-off that app 0 saves.
//       Memory is measured after a warm-up load of the same size, not reported: the first load
//       of a process grows its heap by about 127 MB outside the store (seen with mallinfo2).
//     - "memory": the server's resident set grows by this much per key-value pair while the
//       worker loads N random keys (10 pushes of N/10 random sorted keys), floats one per key,
//       4 per key and 1 to 7 by lens, next to the floor (8 bytes a key, 4 a float, 4 a length).
//  2. the same job with PS_SPIN_US=50, for "small" only.
//  3. a job of 1 server and 4 workers: "aggregate" has all four push the same 10^5 keys 20
//     times at once; keys aggregated per second by app 0 and app 1, next to a memcpy of the
//     same bytes in the same run (its keys per second: bytes per second / 12), from and to
//     buffers of all the bytes, so at memory speed.
// One JSON line per figure.
#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "common/programs.h"
#include "common/test_util.h"
#include "ps/ps.h"

namespace {

using ps::Key;
using ps::KVMeta;
using ps::KVPairs;
using ps::KVServer;
using ps::SArray;
using ps::test::IntFlag;
using ps::test::Median;
using ps::test::Now;

using Seconds = std::chrono::duration<double>;
const int kAll = ps::kServerGroup + ps::kWorkerGroup;
// Push-pull cases, and the apps of their stores.
const int kCases = 4;
const int kStoreApp = 10;
const int kLegacyApp = 20;

SArray<Key> RandomKeys(std::mt19937_64* rng, size_t n) {
  std::vector<Key> keys;
  while (keys.size() < n) {
    while (keys.size() < n) keys.push_back(static_cast<Key>((*rng)()));
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  }
  return SArray<Key>(keys);
}

// Resident bytes of this process, after giving freed memory back to the system.
double ResidentBytes() {
  malloc_trim(0);
  std::ifstream f("/proc/self/statm");
  long pages = 0, resident = 0;
  f >> pages >> resident;
  return static_cast<double>(resident) * sysconf(_SC_PAGESIZE);
}

// ---- the raw ZeroMQ echo process ------------------------------------------------------------

void NoFree(void*, void*) {}

// Answers "push" with a 1-byte ack, "pull" with 4 bytes.
int RunRawServer(int port) {
  zmq::context_t ctx(1);
  zmq::socket_t sock(ctx, zmq::socket_type::router);
  sock.bind("tcp://127.0.0.1:" + std::to_string(port));
  float val = 1;
  while (true) {
    std::vector<zmq::message_t> parts;
    if (!zmq::recv_multipart(sock, std::back_inserter(parts))) continue;
    std::string op = parts[1].to_string();
    if (op == "quit") return 0;
    sock.send(parts[0], zmq::send_flags::sndmore);
    if (op == "push") {
      sock.send(zmq::str_buffer("a"));
    } else {
      sock.send(zmq::message_t(&val, sizeof(val), NoFree), zmq::send_flags::none);
    }
  }
}

class RawClient {
 public:
  explicit RawClient(int port) : ctx_(1), sock_(ctx_, zmq::socket_type::dealer) {
    sock_.connect("tcp://127.0.0.1:" + std::to_string(port));
  }
  ~RawClient() { sock_.send(zmq::str_buffer("quit")); }
  // The bytes a 1-key push sends (key and value), and a pull (the key), in one frame each.
  void RoundTrip(bool push) {
    Key key = 7;
    float val = 1;
    sock_.send(push ? zmq::str_buffer("push") : zmq::str_buffer("pull"), zmq::send_flags::sndmore);
    if (push) {
      sock_.send(zmq::message_t(&key, sizeof(key), NoFree), zmq::send_flags::sndmore);
      sock_.send(zmq::message_t(&val, sizeof(val), NoFree), zmq::send_flags::none);
    } else {
      sock_.send(zmq::message_t(&key, sizeof(key), NoFree), zmq::send_flags::none);
    }
    std::vector<zmq::message_t> parts;
    (void)zmq::recv_multipart(sock_, std::back_inserter(parts));
  }

 private:
  zmq::context_t ctx_;
  zmq::socket_t sock_;
};

// ---- server side ----------------------------------------------------------------------------

// The store this project had before KVStore: a hash map of vectors (one value per key here).
struct UnorderedMapHandle {
  void operator()(const KVMeta& meta, const KVPairs<float>& data, KVServer<float>* server) {
    const size_t n = data.keys.size();
    if (meta.push) {
      const size_t k = data.vals.size() / n;
      for (size_t i = 0; i < n; ++i) {
        auto& v = store[data.keys[i]];
        if (v.empty()) {
          v.assign(data.vals.data() + i * k, data.vals.data() + (i + 1) * k);
        } else {
          for (size_t j = 0; j < k; ++j) v[j] += data.vals[i * k + j];
        }
      }
    }
    KVPairs<float> res;
    if (meta.pull) {
      size_t k = 1;
      auto first = store.find(data.keys[0]);
      if (first != store.end()) k = first->second.size();
      res.vals.resize(n * k);
      for (size_t i = 0; i < n; ++i) {
        auto it = store.find(data.keys[i]);
        if (it != store.end()) std::copy(it->second.begin(), it->second.end(), &res.vals[i * k]);
      }
    }
    server->Response(meta, res);
  }
  std::unordered_map<Key, std::vector<float>> store;
};

// The transport alone: pulls are answered with as many values as the last push had (and its
// lens), from a preallocated buffer.
struct TransportOnly {
  void operator()(const KVMeta& meta, const KVPairs<float>& data, KVServer<float>* server) {
    if (meta.push) {
      last_vals = data.vals.size();
      last_lens = data.lens;
    }
    KVPairs<float> res;
    if (meta.pull) {
      if (answer->size() < last_vals) answer->resize(last_vals, 1.0f);
      res.vals = answer->segment(0, last_vals);
      res.lens = last_lens;
    }
    server->Response(meta, res);
  }
  size_t last_vals = 1;
  SArray<int> last_lens;
  std::shared_ptr<SArray<float>> answer = std::make_shared<SArray<float>>();
};

void RunServer(int runs, size_t mem_keys, bool small_only) {
  KVServer<float> store(0), transport(1), hop(4);
  store.set_request_handle(ps::KVServerDefaultHandle<float>());
  // The same store behind a handle that does not say it never blocks: it runs on the server's
  // own thread, one thread hand-off per request.
  ps::KVServerDefaultHandle<float> hop_store;
  hop.set_request_handle(
      [&](const KVMeta& m, const KVPairs<float>& d, KVServer<float>* s) { hop_store(m, d, s); });
  transport.set_request_handle(TransportOnly());
  // A store of each kind per push-pull case, so that cases do not share keys.
  std::vector<std::unique_ptr<KVServer<float>>> per_case;
  for (int c = 0; c < kCases; ++c) {
    per_case.emplace_back(new KVServer<float>(kStoreApp + c));
    per_case.back()->set_request_handle(ps::KVServerDefaultHandle<float>());
    per_case.emplace_back(new KVServer<float>(kLegacyApp + c));
    per_case.back()->set_request_handle(UnorderedMapHandle());
  }
  ps::Postoffice::Get()->Barrier(0, kAll);  // ready
  if (!small_only && ps::NumWorkers() == 1) {
    // Memory: one app per value layout, each loaded by the worker between two barriers.
    for (const char* layout : {"warm-up", "k=1", "k=4", "lens"}) {
      ps::KVServerDefaultHandle<float> handle;
      KVServer<float> mem(3);
      mem.set_request_handle(
          [&](const KVMeta& m, const KVPairs<float>& d, KVServer<float>* s) { handle(m, d, s); });
      const double before = ResidentBytes();
      const double heap_before = static_cast<double>(mallinfo2().uordblks + mallinfo2().hblkhd);
      ps::Postoffice::Get()->Barrier(0, kAll);  // loading
      ps::Postoffice::Get()->Barrier(0, kAll);  // loaded
      const double grown = ResidentBytes() - before;
      const double heap_grown =
          static_cast<double>(mallinfo2().uordblks + mallinfo2().hblkhd) - heap_before;
      if (std::strcmp(layout, "warm-up") == 0) continue;
      const double pairs = static_cast<double>(handle.store.size());
      const double values = static_cast<double>(handle.store.num_values());
      // The floor: 8 bytes a key, 4 a float, and 4 a length where keys differ in length.
      const double floor =
          8 * pairs + 4 * values + (std::strcmp(layout, "lens") == 0 ? 4 * pairs : 0);
      std::printf(
          "{\"case\":\"memory\",\"layout\":\"%s\",\"keys\":%.0f,\"values\":%.0f,"
          "\"rss_bytes_per_key\":%.2f,\"heap_bytes_per_key\":%.2f,\"store_bytes_per_key\":%.2f,"
          "\"floor_bytes_per_key\":%.2f,\"rss_vs_floor\":%.2f}\n",
          layout, pairs, values, grown / pairs, heap_grown / pairs, handle.store.bytes() / pairs,
          floor / pairs, grown / floor);
      std::fflush(stdout);
      (void)mem_keys;
    }
  }
  ps::Postoffice::Get()->Barrier(0, kAll);  // done
}

// ---- worker side ----------------------------------------------------------------------------

struct Case {
  size_t n;
  const char* name;
  int per_key;  // 0: lens of 1 to 7
};

void PushPullCases(int runs) {
  ps::KVWorker<float> transport(1, 0);
  std::mt19937_64 rng(7);
  const Case cases[kCases] = {
      {100000, "k=1", 1}, {100000, "k=4", 4}, {100000, "lens", 0}, {1000000, "k=1", 1}};
  for (int c = 0; c < kCases; ++c) {
    {
      const size_t n = cases[c].n;
      const Case& layout = cases[c];
      ps::KVWorker<float> store(kStoreApp + c, 0), legacy(kLegacyApp + c, 0);
      SArray<Key> keys = RandomKeys(&rng, n);
      SArray<int> lens;
      size_t total = n * layout.per_key;
      if (layout.per_key == 0) {
        lens.resize(n);
        total = 0;
        for (size_t i = 0; i < n; ++i) total += lens[i] = static_cast<int>(rng() % 7 + 1);
      }
      SArray<float> vals(total, 1.0f);
      const bool with_legacy = layout.per_key == 1;
      auto once = [&](ps::KVWorker<float>* kv) {
        double t = Now();
        kv->Wait(kv->ZPush(keys, vals, lens));
        SArray<float> out;
        SArray<int> out_lens;
        kv->Wait(kv->ZPull(keys, &out, lens.empty() ? nullptr : &out_lens));
        CHECK_EQ(out.size(), total);
        return (Now() - t) * 1e3;
      };
      const double first = once(&store);
      once(&transport);
      if (with_legacy) once(&legacy);
      std::vector<double> ours, theirs, old, ratios;
      for (int r = 0; r < runs; ++r) {
        theirs.push_back(once(&transport));
        ours.push_back(once(&store));
        ratios.push_back(ours.back() / theirs.back());
        if (with_legacy) old.push_back(once(&legacy));
      }
      std::sort(ratios.begin(), ratios.end());
      std::printf(
          "{\"case\":\"pushpull\",\"keys\":%zu,\"layout\":\"%s\",\"values\":%zu,\"runs\":%d,"
          "\"store_ms\":%.3f,\"transport_ms\":%.3f,\"store_vs_transport\":%.2f,"
          "\"ratio_min\":%.2f,\"ratio_max\":%.2f,\"first_run_ms\":%.3f",
          n, layout.name, total, runs, Median(ours), Median(theirs), Median(ours) / Median(theirs),
          ratios.front(), ratios.back(), first);
      if (with_legacy) {
        std::printf(",\"unordered_map_ms\":%.3f,\"unordered_map_vs_transport\":%.2f", Median(old),
                    Median(old) / Median(theirs));
      }
      std::printf("}\n");
      std::fflush(stdout);
    }
  }
}

void SmallCases(int runs, int raw_port) {
  ps::KVWorker<float> store(0, 0), hop(4, 0);
  RawClient raw(raw_port);
  std::vector<Key> key = {7};
  std::vector<float> val = {1}, out;
  for (bool push : {true, false}) {
    auto request = [&](ps::KVWorker<float>* kv) {
      if (push) {
        kv->Wait(kv->Push(key, val));
      } else {
        kv->Wait(kv->Pull(key, &out));
      }
    };
    auto ours = [&] { request(&store); };
    auto hopped = [&] { request(&hop); };
    auto theirs = [&] { raw.RoundTrip(push); };
    auto median_of = [](const std::function<void()>& fn) {
      std::vector<double> us;
      for (int i = 0; i < 400; ++i) {
        double t = Now();
        fn();
        us.push_back((Now() - t) * 1e6);
      }
      return Median(us);
    };
    for (int i = 0; i < 200; ++i) ours(), hopped(), theirs();  // warm up
    std::vector<double> a, b, h, ratios;
    for (int r = 0; r < runs; ++r) {
      b.push_back(median_of(theirs));
      a.push_back(median_of(ours));
      h.push_back(median_of(hopped));
      ratios.push_back(a.back() / b.back());
    }
    std::sort(ratios.begin(), ratios.end());
    std::printf(
        "{\"case\":\"small\",\"op\":\"%s\",\"spin_us\":%d,\"runs\":%d,\"slackline_us\":%.1f,"
        "\"raw_zmq_us\":%.1f,\"slackline_vs_raw\":%.2f,\"ratio_min\":%.2f,\"ratio_max\":%.2f,"
        "\"server_thread_us\":%.1f,\"server_thread_vs_raw\":%.2f}\n",
        push ? "push" : "pull", ps::Postoffice::Get()->spin_us(), runs, Median(a), Median(b),
        Median(a) / Median(b), ratios.front(), ratios.back(), Median(h), Median(h) / Median(b));
    std::fflush(stdout);
  }
}

void MemoryCases(size_t mem_keys) {
  std::mt19937_64 rng(11);
  for (int layout : {0, 0, 1, 2}) {  // a warm-up load first, not reported
    ps::KVWorker<float> kv(3, 0);
    ps::Postoffice::Get()->Barrier(0, kAll);  // loading
    for (int p = 0; p < 10; ++p) {
      SArray<Key> keys = RandomKeys(&rng, mem_keys / 10);
      SArray<int> lens;
      size_t total = keys.size() * (layout == 1 ? 4 : 1);
      if (layout == 2) {
        lens.resize(keys.size());
        total = 0;
        for (size_t i = 0; i < keys.size(); ++i) total += lens[i] = static_cast<int>(rng() % 7 + 1);
      }
      kv.Wait(kv.ZPush(keys, SArray<float>(total, 1.0f), lens));
    }
    ps::Postoffice::Get()->Barrier(0, kAll);  // loaded
  }
}

// Every worker pushes the same keys "rounds" times to "app"; returns keys aggregated per second.
double Aggregate(ps::KVWorker<float>* kv, const SArray<Key>& keys, const SArray<float>& vals,
                 int rounds) {
  ps::Postoffice::Get()->Barrier(0, ps::kWorkerGroup);
  double t = Now();
  for (int r = 0; r < rounds; ++r) kv->Wait(kv->ZPush(keys, vals));
  ps::Postoffice::Get()->Barrier(0, ps::kWorkerGroup);
  return ps::NumWorkers() * rounds * static_cast<double>(keys.size()) / (Now() - t);
}

void AggregateCases(int runs) {
  ps::KVWorker<float> store(0, 0), transport(1, 0);
  std::mt19937_64 rng(5);  // the same keys on every worker
  const size_t n = 100000;
  const int rounds = 20;
  SArray<Key> keys = RandomKeys(&rng, n);
  SArray<float> vals(n, 1.0f);
  Aggregate(&store, keys, vals, 1);  // loads the keys
  std::vector<double> ours, theirs, mem, ratios;
  // memcpy of what the server receives, keys and values of every push, from and to buffers
  // that large, so that the copy runs at memory speed rather than from the cache.
  const size_t bytes = ps::NumWorkers() * rounds * n * (sizeof(Key) + sizeof(float));
  std::vector<char> from(bytes, 1), to(bytes, 2);
  for (int r = 0; r < runs; ++r) {
    theirs.push_back(Aggregate(&transport, keys, vals, rounds));
    ours.push_back(Aggregate(&store, keys, vals, rounds));
    double t = Now();
    std::memcpy(to.data(), from.data(), bytes);
    from[r] = to[bytes - 1 - r];  // keeps the copy
    mem.push_back(bytes / (Now() - t) / (sizeof(Key) + sizeof(float)));
    ratios.push_back(ours.back() / mem.back());
  }
  std::sort(ratios.begin(), ratios.end());
  if (ps::MyRank() == 0) {
    std::printf(
        "{\"case\":\"aggregate\",\"workers\":%d,\"keys\":%zu,\"pushes_per_worker\":%d,"
        "\"runs\":%d,\"store_keys_per_s\":%.3g,\"transport_keys_per_s\":%.3g,"
        "\"memcpy_keys_per_s\":%.3g,\"store_vs_memcpy\":%.3f,\"ratio_min\":%.3f,"
        "\"ratio_max\":%.3f,\"store_vs_transport\":%.2f}\n",
        ps::NumWorkers(), n, rounds, runs, Median(ours), Median(theirs), Median(mem),
        Median(ours) / Median(mem), ratios.front(), ratios.back(), Median(ours) / Median(theirs));
    std::fflush(stdout);
  }
}

int RunNode(int argc, char** argv) {
  const int runs = IntFlag(argc, argv, "--runs", 9);
  const size_t mem_keys = static_cast<size_t>(IntFlag(argc, argv, "--mem-keys", 10000000));
  const bool small_only = IntFlag(argc, argv, "--small-only", 0) != 0;
  ps::Start(0, argv[0]);
  if (ps::IsServer()) {
    RunServer(runs, mem_keys, small_only);
  } else if (ps::IsWorker()) {
    ps::Postoffice::Get()->Barrier(0, kAll);  // ready
    if (ps::NumWorkers() > 1) {
      AggregateCases(runs);
    } else {
      if (!small_only) PushPullCases(runs);
      SmallCases(runs, std::atoi(std::getenv("STORE_BENCH_RAW_PORT")));
      if (!small_only) MemoryCases(mem_keys);
    }
    ps::Postoffice::Get()->Barrier(0, kAll);  // done
  }
  ps::Finalize(0, true);
  return 0;
}

int RunDriver(int argc, char** argv) {
  const bool small_only = IntFlag(argc, argv, "--small-only", 0) != 0;
  int failed = 0;
  for (int spin : {0, 50}) {
    if (small_only && spin == 0) continue;
    const int raw_port = ps::test::FreePort();
    const std::string raw_env = "STORE_BENCH_RAW_PORT=" + std::to_string(raw_port);
    std::vector<char*> raw_argv = {argv[0], const_cast<char*>("--raw-server"), nullptr};
    pid_t raw = ps::test::SpawnSelf(raw_argv.data(), {raw_env});
    std::vector<std::string> env = {raw_env, "PS_HEARTBEAT_INTERVAL=0",
                                    "PS_SPIN_US=" + std::to_string(spin)};
    if (spin) {
      // The second job measures small requests only.
      std::vector<char*> args(argv, argv + argc);
      static char flag[] = "--small-only", one[] = "1";
      args.push_back(flag);
      args.push_back(one);
      args.push_back(nullptr);
      failed += ps::test::RunSelfJob(args.data(), 1, env);
    } else {
      failed += ps::test::RunSelfJob(argv, 1, env);
    }
    waitpid(raw, nullptr, 0);  // the worker's raw client told it to quit
  }
  if (!small_only) failed += ps::test::RunSelfJob(argv, 1, {"PS_HEARTBEAT_INTERVAL=0"}, 4);
  return failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--raw-server") == 0) {
    return RunRawServer(std::atoi(std::getenv("STORE_BENCH_RAW_PORT")));
  }
  if (std::getenv("DMLC_ROLE")) return RunNode(argc, argv);
  return RunDriver(argc, argv);
}
