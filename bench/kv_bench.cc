// kv_bench: ZPush and ZPull throughput and small-request latency of Slackline, next to raw
// ZeroMQ carrying the same bytes between two processes, measured in the same run.
//
//   kv_bench [--max-keys N] [--rounds R]
//   kv_bench --curve [--max-keys N] [--rounds R]
//
// Started without DMLC_ROLE it is the driver: it starts a raw ZeroMQ echo process, then for 1
// and 2 servers a Slackline job (scheduler, servers, one worker), all of them this program.
// The worker measures each case alternately through Slackline and through its own raw ZeroMQ
// socket (its own context) to the echo process, and prints one JSON line per case:
// keys, bytes, Slackline ms and MB/s, raw ZeroMQ ms and MB/s, and ratio = raw ms / Slackline ms
// (1.0 is raw speed). Each figure is the median over rounds (7 by default) of the best of N
// transfers, the two sides interleaved; ratio_min and ratio_max are the spread of the rounds'
// ratios.
//
// Push is keys and values out with a small answer back. Pull is the keys out and the values back
// in one round trip, on both sides: what a pull must send. The old pull yardstick, a small
// request out and keys and values back (which no pull can do: it has to send its keys), is
// printed beside it as zmq_old_ms and ratio_old. The Slackline server does no work: it answers
// pulls from a preallocated buffer, and says it never blocks, so small requests are answered
// on the thread that receives them.
//
// --curve: what authentication and encryption cost. R times in turn, a job of one server
// without a job key and one with a job key (CURVE on every connection), each measuring every
// size once (best of N); then one JSON line per case: the median ms without and with CURVE,
// ratio = plain ms / CURVE ms (CURVE's throughput as a share of plain), and its spread
// (lowest and highest of the R pairs).
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "common/programs.h"
#include "common/test_util.h"
#include "ps/ps.h"

namespace {

using ps::test::IntFlag;
using ps::test::Median;
using ps::test::SpawnSelf;

using Seconds = std::chrono::duration<double>;
constexpr int kValsPerKey = 1;

double Time(const std::function<void()>& fn) {
  auto t0 = std::chrono::steady_clock::now();
  fn();
  return Seconds(std::chrono::steady_clock::now() - t0).count();
}

// Best of "reps" runs of "fn", in seconds.
double Best(int reps, const std::function<void()>& fn) {
  double best = 1e9;
  for (int i = 0; i < reps; ++i) best = std::min(best, Time(fn));
  return best;
}

void NoFree(void*, void*) {}

// ---- the raw ZeroMQ echo process ------------------------------------------------------------

// Answers "push" frames with a one-byte ack, "keys" frames (a pull: the keys) with as many
// values, and "pull N" (the old yardstick) with N keys and N values, sent zero-copy from
// buffers made once.
int RunRawServer(int port, size_t max_keys) {
  zmq::context_t ctx(1);
  zmq::socket_t sock(ctx, zmq::socket_type::router);
  sock.set(zmq::sockopt::rcvhwm, 0);
  sock.set(zmq::sockopt::sndhwm, 0);
  sock.bind("tcp://127.0.0.1:" + std::to_string(port));
  std::vector<ps::Key> keys(max_keys, 1);
  std::vector<float> vals(max_keys * kValsPerKey, 1.0f);
  while (true) {
    std::vector<zmq::message_t> parts;
    if (!zmq::recv_multipart(sock, std::back_inserter(parts))) continue;
    std::string op = parts[1].to_string();
    if (op == "quit") return 0;
    sock.send(parts[0], zmq::send_flags::sndmore);
    if (op == "push") {
      sock.send(zmq::str_buffer("ack"));
    } else if (op == "keys") {
      size_t n = parts[2].size() / sizeof(ps::Key);
      zmq::message_t v(vals.data(), n * kValsPerKey * sizeof(float), NoFree);
      sock.send(v, zmq::send_flags::none);
    } else {
      size_t n = std::stoul(op.substr(5));
      zmq::message_t k(keys.data(), n * sizeof(ps::Key), NoFree);
      zmq::message_t v(vals.data(), n * kValsPerKey * sizeof(float), NoFree);
      sock.send(k, zmq::send_flags::sndmore);
      sock.send(v, zmq::send_flags::none);
    }
  }
}

// The worker's side of the raw yardstick: its own context and socket.
class RawClient {
 public:
  explicit RawClient(int port) : ctx_(1), sock_(ctx_, zmq::socket_type::dealer) {
    sock_.set(zmq::sockopt::rcvhwm, 0);
    sock_.set(zmq::sockopt::sndhwm, 0);
    sock_.connect("tcp://127.0.0.1:" + std::to_string(port));
  }
  ~RawClient() { sock_.send(zmq::str_buffer("quit")); }
  void Push(const ps::SArray<ps::Key>& keys, const ps::SArray<float>& vals) {
    sock_.send(zmq::str_buffer("push"), zmq::send_flags::sndmore);
    zmq::message_t k(keys.data(), keys.size() * sizeof(ps::Key), NoFree);
    zmq::message_t v(vals.data(), vals.size() * sizeof(float), NoFree);
    sock_.send(k, zmq::send_flags::sndmore);
    sock_.send(v, zmq::send_flags::none);
    Receive();
  }
  // What a pull must send: the keys out, the values back.
  void Pull(const ps::SArray<ps::Key>& keys) {
    sock_.send(zmq::str_buffer("keys"), zmq::send_flags::sndmore);
    zmq::message_t k(keys.data(), keys.size() * sizeof(ps::Key), NoFree);
    sock_.send(k, zmq::send_flags::none);
    Receive();
  }
  // The old yardstick: a small request, keys and values back.
  void OldPull(size_t n) {
    std::string op = "pull " + std::to_string(n);
    sock_.send(zmq::buffer(op));
    Receive();
  }

 private:
  void Receive() {
    std::vector<zmq::message_t> parts;
    (void)zmq::recv_multipart(sock_, std::back_inserter(parts));
  }
  zmq::context_t ctx_;
  zmq::socket_t sock_;
};

// ---- the Slackline job ----------------------------------------------------------------------

void RunServer(size_t max_keys) {
  ps::KVServer<float> server(0);
  ps::SArray<float> answer(max_keys * kValsPerKey, 1.0f);
  server.set_request_handle(
      [&](const ps::KVMeta& meta, const ps::KVPairs<float>& data, ps::KVServer<float>* s) {
        ps::KVPairs<float> res;
        if (meta.pull) res.vals = answer.segment(0, data.keys.size() * kValsPerKey);
        s->Response(meta, res);
      },
      /*never_blocks=*/true);
  ps::Postoffice::Get()->Barrier(0, ps::kServerGroup + ps::kWorkerGroup);
}

void RunWorker(size_t max_keys, int rounds, int raw_port) {
  ps::KVWorker<float> kv(0, 0);
  RawClient raw(raw_port);
  std::vector<size_t> sizes;
  for (size_t n : {1, 1000, 100000, 1000000, 10000000}) {
    if (n <= max_keys) sizes.push_back(n);
  }
  for (size_t n : sizes) {
    // Keys spread over the key space, so that with 2 servers each gets half.
    ps::SArray<ps::Key> keys(n);
    ps::Key step = ps::kMaxKey / n;
    for (size_t i = 0; i < n; ++i) keys[i] = static_cast<ps::Key>(i) * step;
    ps::SArray<float> vals(n * kValsPerKey, 0.5f);
    const double bytes = n * (sizeof(ps::Key) + kValsPerKey * sizeof(float));
    // About 0.1 s of transfers per best-of-N at ~4 GB/s plus ~50 us per round trip: enough
    // tries for the best one to be a quiet one on a noisy machine.
    const int reps = std::max(3, std::min(300, static_cast<int>(0.1 / (bytes / 4e9 + 5e-5))));
    for (const char* op : {"push", "pull"}) {
      bool push = std::strcmp(op, "push") == 0;
      std::vector<double> ours, theirs, old, ratios;
      for (int r = 0; r < rounds; ++r) {
        theirs.push_back(Best(reps, [&] { push ? raw.Push(keys, vals) : raw.Pull(keys); }));
        if (!push) old.push_back(Best(reps, [&] { raw.OldPull(n); }));
        ours.push_back(Best(reps, [&] {
          if (push) {
            kv.Wait(kv.ZPush(keys, vals));
          } else {
            ps::SArray<float> out;
            kv.Wait(kv.ZPull(keys, &out));
          }
        }));
        ratios.push_back(theirs.back() / ours.back());
      }
      std::sort(ratios.begin(), ratios.end());
      double s_ms = Median(ours) * 1e3, z_ms = Median(theirs) * 1e3;
      if (const char* out = std::getenv("KV_BENCH_OUT")) {
        std::ofstream(out, std::ios::app) << op << " " << n << " " << bytes << " " << s_ms << "\n";
      }
      std::printf(
          "{\"op\":\"%s\",\"servers\":%d,\"keys\":%zu,\"bytes\":%.0f,\"slackline_ms\":%.4f,"
          "\"slackline_MBps\":%.1f,\"zmq_ms\":%.4f,\"zmq_MBps\":%.1f,\"ratio\":%.3f,"
          "\"ratio_min\":%.3f,\"ratio_max\":%.3f,\"rounds\":%d,\"spin_us\":%d",
          op, ps::NumServers(), n, bytes, s_ms, bytes / s_ms / 1e3, z_ms, bytes / z_ms / 1e3,
          z_ms / s_ms, ratios.front(), ratios.back(), rounds, ps::Postoffice::Get()->spin_us());
      if (!push) {
        const double o_ms = Median(old) * 1e3;
        std::printf(",\"zmq_old_ms\":%.4f,\"ratio_old\":%.3f", o_ms, o_ms / s_ms);
      }
      std::printf("}\n");
      std::fflush(stdout);
    }
  }
}

int RunNode(int argc, char** argv) {
  size_t max_keys = static_cast<size_t>(IntFlag(argc, argv, "--max-keys", 10000000));
  int rounds = IntFlag(argc, argv, "--rounds", 7);
  ps::Start(0, argv[0]);
  if (ps::IsServer()) {
    RunServer(max_keys);
  } else if (ps::IsWorker()) {
    RunWorker(max_keys, rounds, std::atoi(std::getenv("KV_BENCH_RAW_PORT")));
    ps::Postoffice::Get()->Barrier(0, ps::kServerGroup + ps::kWorkerGroup);
  }
  ps::Finalize(0, true);
  return 0;
}

// ---- the driver -----------------------------------------------------------------------------

int RunCurveDriver(char** argv, int rounds) {
  std::string folder;
  const std::string key = ps::test::WriteJobKey("kv_bench", &folder);
  const std::string out = folder + "/results";
  // (op, keys) -> bytes, and the ms of each round without and with CURVE.
  struct Case {
    double bytes = 0;
    std::vector<double> plain, curve;
  };
  std::map<std::pair<std::string, size_t>, Case> cases;
  std::vector<std::pair<std::string, size_t>> order;
  int failed = 0;
  for (int r = 0; r < rounds; ++r) {
    for (bool curve : {false, true}) {
      std::remove(out.c_str());
      int raw_port = ps::test::FreePort();
      std::vector<char*> raw_argv = {argv[0], const_cast<char*>("--raw-server"), nullptr};
      pid_t raw = SpawnSelf(raw_argv.data(), {"KV_BENCH_RAW_PORT=" + std::to_string(raw_port)});
      std::vector<std::string> env = {"KV_BENCH_RAW_PORT=" + std::to_string(raw_port),
                                      "KV_BENCH_OUT=" + out};
      if (curve) env.push_back("PS_KEY_FILE=" + key);
      failed += ps::test::RunSelfJob(argv, 1, env);
      waitpid(raw, nullptr, 0);
      std::ifstream in(out);
      std::string op;
      size_t n;
      double bytes, ms;
      while (in >> op >> n >> bytes >> ms) {
        auto k = std::make_pair(op, n);
        if (!cases.count(k)) order.push_back(k);
        cases[k].bytes = bytes;
        (curve ? cases[k].curve : cases[k].plain).push_back(ms);
      }
    }
  }
  std::remove(out.c_str());
  std::remove(key.c_str());
  rmdir(folder.c_str());
  for (const auto& k : order) {
    const Case& c = cases[k];
    if (c.plain.empty() || c.plain.size() != c.curve.size()) continue;
    std::vector<double> ratios;
    for (size_t i = 0; i < c.plain.size(); ++i) ratios.push_back(c.plain[i] / c.curve[i]);
    double p = Median(c.plain), q = Median(c.curve);
    std::printf(
        "{\"op\":\"%s\",\"servers\":1,\"keys\":%zu,\"bytes\":%.0f,\"plain_ms\":%.4f,"
        "\"plain_MBps\":%.1f,\"curve_ms\":%.4f,\"curve_MBps\":%.1f,\"ratio\":%.3f,"
        "\"ratio_min\":%.3f,\"ratio_max\":%.3f,\"rounds\":%zu}\n",
        k.first.c_str(), k.second, c.bytes, p, c.bytes / p / 1e3, q, c.bytes / q / 1e3,
        Median(ratios), *std::min_element(ratios.begin(), ratios.end()),
        *std::max_element(ratios.begin(), ratios.end()), ratios.size());
  }
  return failed ? 1 : 0;
}

int RunDriver(char** argv) {
  int failed = 0;
  for (int servers : {1, 2}) {
    int raw_port = ps::test::FreePort();
    std::vector<char*> raw_argv = {argv[0], const_cast<char*>("--raw-server"), nullptr};
    pid_t raw = SpawnSelf(raw_argv.data(), {"KV_BENCH_RAW_PORT=" + std::to_string(raw_port)});
    failed +=
        ps::test::RunSelfJob(argv, servers, {"KV_BENCH_RAW_PORT=" + std::to_string(raw_port)});
    waitpid(raw, nullptr, 0);  // the worker's raw client told it to quit
  }
  return failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--raw-server") == 0) {
    return RunRawServer(std::atoi(std::getenv("KV_BENCH_RAW_PORT")),
                        static_cast<size_t>(IntFlag(argc, argv, "--max-keys", 10000000)));
  }
  if (std::getenv("DMLC_ROLE")) return RunNode(argc, argv);
  if (argc > 1 && std::strcmp(argv[1], "--curve") == 0) {
    // Each job measures every size once; the rounds are the jobs, in turn with and without.
    std::vector<char*> node_argv = {argv[0]};
    for (int i = 2; i < argc; ++i) {
      if (std::strcmp(argv[i], "--rounds") == 0) {
        ++i;  // the driver's, not the nodes'
      } else {
        node_argv.push_back(argv[i]);
      }
    }
    static char one[] = "1", rounds_flag[] = "--rounds";
    node_argv.push_back(rounds_flag);
    node_argv.push_back(one);
    node_argv.push_back(nullptr);
    return RunCurveDriver(node_argv.data(), IntFlag(argc, argv, "--rounds", 5));
  }
  return RunDriver(argv);
}
