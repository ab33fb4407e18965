// Sparse logistic regression on the parameter server: the worker and the server in one file.
//
//   python3 tracker/launch.py -s 1 -n 2 -- build/demo/linear --data=train.libsvm
//       --test=test.libsvm [--algo=bcd|sgd] [--l1=1] [--consistency=sequential] [--kkt=on] ...
//
// Objective: sum_i log(1 + exp(-y_i w.x_i)) + l1 ||w||_1 + l2/2 ||w||^2 (liblinear's scaling).
// Each worker reads part "rank" of the data; the servers hold w, split by key range.
//
// --algo=bcd, block proximal gradient (Li et al., OSDI 2014): the features are split into
// blocks. For each block a worker pushes, per feature, its data's gradient g and a bound u of the
// curvature (one ZPushPull, cmd = the round); a server adds up the pushes of all workers, takes
// one proximal Newton step per coordinate, w = soft(u w - g, l1) / (u + l2), and answers every
// worker with the new weights, which update the worker's margins. The KVWorker's consistency
// model lets blocks overlap: under bounded:N a worker computes block b + 1 .. b + N while block b
// is still on its way. With --kkt=on the KKT filter leaves out the coordinates that are zero and
// whose gradient is below l1 by a margin the servers set: they would stay zero.
//
// --algo=sgd: each worker reads minibatches; it pulls the weights of a minibatch's keys,
// pushes the minibatch's gradient, and the servers apply FTRL-proximal per coordinate.
//
// A second app (a SimpleApp, app 1) carries the per-iteration report: every worker sends its
// loss, the servers answer with the job's totals and their share of the regularizer, so every
// worker learns the same objective and stops at the same iteration.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "data.h"
#include "options.h"
#include "ps/ps.h"

namespace {

using linear::Options;
using ps::Key;

// Requests of the report app.
enum Head { kReport = 1, kTraffic = 2, kModel = 3 };
constexpr int kAllNodes = ps::kScheduler + ps::kServerGroup + ps::kWorkerGroup;
constexpr int kFinalReport = 1 << 30;  // the report after the last iteration
constexpr int kRegister = -1;          // bcd: the cmd of a worker's push of all its keys

double Now() {
  using Seconds = std::chrono::duration<double>;
  return Seconds(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double Sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

// log(1 + exp(z)) without overflow.
double Softplus(double z) { return z > 0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z)); }

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "linear: error: %s\n", what.c_str());
  std::exit(1);
}

// Every node answers kTraffic with the bytes its van sent and received.
void AnswerTraffic(const ps::SimpleData& req, ps::SimpleApp* app) {
  ps::Van* van = ps::Postoffice::Get()->van();
  app->Response(req,
                std::to_string(van->bytes_sent()) + " " + std::to_string(van->bytes_received()));
}

// ------------------------------------------------------------------------------------------
// The server: holds its key range of w, and answers block rounds (bcd) or minibatch pulls and
// pushes (sgd), and the reports.
class Server {
 public:
  explicit Server(const Options& o)
      : o_(o), workers_(ps::NumWorkers()), rank_(ps::MyRank()), kv_(0), report_(1, 0) {
    kv_.set_request_handle([this](const ps::KVMeta& meta, const ps::KVPairs<float>& data,
                                  ps::KVServer<float>* server) {
      if (o_.algo == "bcd") {
        HandleBlock(meta, data, server);
      } else {
        HandleFtrl(meta, data, server);
      }
    });
    report_.set_request_handle(
        [this](const ps::SimpleData& req, ps::SimpleApp* app) { HandleReport(req, app); });
  }

 private:
  // bcd: one round per block and iteration. Each worker pushes [g, u] per key of the block (or
  // only the keys its KKT filter keeps) and waits for the answer; once every worker pushed, the
  // server updates the block and answers them all with the new weights.
  //
  // Before the first round each worker registers its keys, so that the server knows how many
  // workers hold each key. A key that is zero becomes nonzero only when every worker holding it
  // pushed it: a worker's KKT filter leaves a key out on the premise that it stays zero, and the
  // worker's copy of it must stay right. Such a key is held back and named in the iteration's
  // report instead, and every worker sends it in the next iteration.
  void HandleBlock(const ps::KVMeta& meta, const ps::KVPairs<float>& data,
                   ps::KVServer<float>* server) {
    std::lock_guard<std::mutex> lk(mu_);
    if (!meta.push) return server->Response(meta, Read(data.keys));
    if (meta.cmd == kRegister) {
      for (Key k : data.keys) ++holders_[k];
      return server->Response(meta);
    }
    if (data.vals.size() != 2 * data.keys.size()) {
      return server->ResponseError(meta, "a block push has a gradient and a curvature per key");
    }
    Round& round = rounds_[meta.cmd];
    for (size_t i = 0; i < data.keys.size(); ++i) {
      GradCurv& a = round.sum[data.keys[i]];
      a.g += data.vals[2 * i];
      a.u += data.vals[2 * i + 1];
      ++a.pushes;
    }
    round.held.push_back({meta, data.keys});
    if (static_cast<int>(round.held.size()) < workers_) return;
    // Every worker has pushed: a proximal Newton step per coordinate, then the answers.
    for (const auto& kv : round.sum) {
      const double g = kv.second.g, u = kv.second.u;
      if (u <= 0) continue;  // no data on this key in the block (a worker's placeholder)
      auto it = w_.find(kv.first);
      const double w = it == w_.end() ? 0 : it->second;
      const double z = u * w - g;
      if (w == 0 && std::abs(z) > o_.l1 && kv.second.pushes < holders_[kv.first]) {
        held_back_.push_back(kv.first);
        continue;
      }
      const double next = z > o_.l1    ? (z - o_.l1) / (u + o_.l2)
                          : z < -o_.l1 ? (z + o_.l1) / (u + o_.l2)
                                       : 0;
      if (it != w_.end()) {
        it->second = static_cast<float>(next);
      } else if (next != 0) {
        w_[kv.first] = static_cast<float>(next);
      }
    }
    for (const Held& h : round.held) server->Response(h.meta, Read(h.keys));
    rounds_.erase(meta.cmd);
  }

  // sgd: FTRL-proximal (McMahan et al., KDD 2013) per coordinate. A pull answers w from the
  // coordinate's state; a push of gradients updates it.
  void HandleFtrl(const ps::KVMeta& meta, const ps::KVPairs<float>& data,
                  ps::KVServer<float>* server) {
    std::lock_guard<std::mutex> lk(mu_);
    if (meta.push) {
      if (data.vals.size() != data.keys.size()) {
        return server->ResponseError(meta, "an sgd push has one gradient per key");
      }
      for (size_t i = 0; i < data.keys.size(); ++i) {
        Ftrl& s = ftrl_[data.keys[i]];
        const double g = data.vals[i], w = FtrlWeight(s);
        const double sigma = (std::sqrt(s.n + g * g) - std::sqrt(s.n)) / o_.alpha;
        s.z += g - sigma * w;
        s.n += g * g;
      }
    }
    ps::KVPairs<float> res;
    if (meta.pull) {
      res.keys = data.keys;
      res.vals.resize(data.keys.size());
      for (size_t i = 0; i < data.keys.size(); ++i) {
        auto it = ftrl_.find(data.keys[i]);
        res.vals[i] = it == ftrl_.end() ? 0 : static_cast<float>(FtrlWeight(it->second));
      }
    }
    server->Response(meta, res);
  }

  // The report app: per iteration, waits for every worker's report, then answers each with the
  // workers' totals (from server 0 only, so that workers can add up all answers) and this
  // server's share of the regularizer.
  void HandleReport(const ps::SimpleData& req, ps::SimpleApp* app) {
    if (req.head == kTraffic) return AnswerTraffic(req, app);
    if (req.head == kModel) return app->Response(req, ModelText());
    std::istringstream in(req.body);
    int iter = 0;
    double loss = 0, kept = 0, left = 0;
    in >> iter >> loss >> kept >> left;
    Report& r = reports_[iter];
    r.loss += loss;
    r.kept += kept;
    r.left += left;
    r.held.push_back(req);
    if (static_cast<int>(r.held.size()) < workers_) return;
    double l1norm = 0, l2sq = 0, nnz = 0;
    std::vector<Key> held_back;
    {
      std::lock_guard<std::mutex> lk(mu_);
      ForEachWeight([&](Key, double w) {
        l1norm += std::abs(w);
        l2sq += w * w;
        nnz += w != 0;
      });
      held_back.swap(held_back_);
    }
    // The KKT filter's margin: the threshold l1 - margin tightens towards l1 as w settles.
    const double margin = o_.l1 / (iter + 2);
    std::ostringstream out;
    out.precision(17);
    if (rank_ == 0) {
      out << r.loss << " " << r.kept << " " << r.left;
    } else {
      out << "0 0 0";
    }
    out << " " << l1norm << " " << l2sq << " " << nnz << " " << margin;
    for (Key k : held_back) out << " " << k;
    for (const ps::SimpleData& h : r.held) app->Response(h, out.str());
    reports_.erase(iter);
  }

  // "feature<TAB>weight" lines of this server's nonzero weights.
  std::string ModelText() {
    std::lock_guard<std::mutex> lk(mu_);
    std::string text;
    char line[64];
    ForEachWeight([&](Key key, double w) {
      if (w == 0) return;
      std::snprintf(line, sizeof(line), "%llu\t%.9g\n",
                    static_cast<unsigned long long>(linear::FeatureOf(key)), w);
      text += line;
    });
    return text;
  }

  // REQUIRES: mu_ held.
  template <typename F>
  void ForEachWeight(F f) {
    for (const auto& kv : w_) f(kv.first, kv.second);
    for (const auto& kv : ftrl_) f(kv.first, FtrlWeight(kv.second));
  }
  ps::KVPairs<float> Read(const ps::SArray<Key>& keys) {
    ps::KVPairs<float> res;
    res.keys = keys;
    res.vals.resize(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      auto it = w_.find(keys[i]);
      res.vals[i] = it == w_.end() ? 0 : it->second;
    }
    return res;
  }

  struct Ftrl {
    double z = 0, n = 0;
  };
  double FtrlWeight(const Ftrl& s) const {
    if (std::abs(s.z) <= o_.l1) return 0;
    return -(s.z - std::copysign(o_.l1, s.z)) / ((o_.beta + std::sqrt(s.n)) / o_.alpha + o_.l2);
  }

  struct GradCurv {
    double g = 0, u = 0;
    int pushes = 0;
  };
  struct Held {
    ps::KVMeta meta;
    ps::SArray<Key> keys;
  };
  struct Round {
    std::unordered_map<Key, GradCurv> sum;
    std::vector<Held> held;
  };
  struct Report {
    double loss = 0, kept = 0, left = 0;
    std::vector<ps::SimpleData> held;
  };

  const Options o_;
  const int workers_;
  const int rank_;

  // The model, read by both apps' threads: protected by mu_.
  std::mutex mu_;
  std::unordered_map<Key, float> w_;      // bcd
  std::unordered_map<Key, int> holders_;  // bcd: workers that hold each key
  std::unordered_map<Key, Ftrl> ftrl_;    // sgd
  std::map<int, Round> rounds_;           // bcd rounds still waiting for workers
  std::vector<Key> held_back_;            // bcd: keys to send in full next iteration

  std::map<int, Report> reports_;  // report app thread only

  ps::KVServer<float> kv_;
  ps::SimpleApp report_;
};

// ------------------------------------------------------------------------------------------
// The worker: its part of the data, its copy of the weights of its keys, and the margins
// w.x_i of its rows.
class Worker {
 public:
  explicit Worker(const Options& o)
      : o_(o),
        rank_(ps::MyRank()),
        workers_(ps::NumWorkers()),
        // Each worker sees its share of the gradient: the threshold is scaled to it, so that a
        // key every worker leaves out has a total gradient below l1 - margin.
        kkt_(static_cast<float>(o.l1 / workers_), static_cast<float>(o.l1 / 2 / workers_)),
        kv_(0, 0),
        report_(1, 0) {
    report_.set_request_handle(AnswerTraffic);
    report_.set_response_handle([this](const ps::SimpleData& res, ps::SimpleApp*) {
      std::lock_guard<std::mutex> lk(mu_);
      answers_.push_back(res.body);
    });
    kv_.set_consistency(o.consistency);
  }

  void Run() {
    if (!o_.predict.empty()) {
      if (rank_ == 0) Predict();
      return;
    }
    const double load_start = Now();
    ps::Status s = linear::LoadLibsvm(o_.data, rank_, workers_, &data_);
    if (!s.ok()) Fail(s.message());
    load_seconds_ = Now() - load_start;
    margin_.assign(data_.rows(), 0);
    w_.assign(data_.keys.size(), 0);
    start_ = Now();
    if (o_.algo == "bcd") {
      TrainBcd();
    } else {
      TrainSgd();
    }
    Finish();
  }

 private:
  // ---- bcd ----
  struct Block {
    ps::SArray<Key> keys;      // sorted: the block's keys, and a placeholder key per server
    std::vector<int32_t> col;  // the local column of each key; -1 for a placeholder
  };
  // One block's request in flight.
  struct InFlight {
    int block = 0;
    int ts = 0;
    ps::SArray<float> w;  // the answer: new weights of the block's keys
    std::atomic<bool> done{false};
  };

  // Feature j is in block key % blocks: the keys are well mixed, so blocks are even. Each
  // block also lists the first key of every server's range: a server completes a round when
  // every worker has pushed to it, and that key (with no gradient or curvature, unless it is
  // really in the block) makes sure each worker's request reaches every server, whatever its
  // data and its KKT filter leave out.
  void MakeBlocks() {
    std::vector<Key> anchors;
    for (const ps::Range& r : ps::Postoffice::Get()->GetServerKeyRanges()) {
      anchors.push_back(r.begin());
    }
    blocks_.resize(o_.blocks);
    for (int b = 0; b < o_.blocks; ++b) {
      std::vector<std::pair<Key, int32_t>> list;
      for (size_t j = 0; j < data_.keys.size(); ++j) {
        if (static_cast<int>(data_.keys[j] % o_.blocks) == b) {
          list.emplace_back(data_.keys[j], static_cast<int32_t>(j));
        }
      }
      for (Key a : anchors) {
        auto at = std::lower_bound(list.begin(), list.end(), std::make_pair(a, INT32_MIN));
        if (at == list.end() || at->first != a) list.insert(at, {a, -1});
      }
      Block& block = blocks_[b];
      block.keys.resize(list.size());
      for (size_t i = 0; i < list.size(); ++i) {
        block.keys[i] = list[i].first;
        block.col.push_back(list[i].second);
      }
    }
    row_blocks_.assign(data_.rows() * o_.blocks, 0);
    for (size_t i = 0; i < data_.rows(); ++i) {
      for (size_t e = data_.offset[i]; e < data_.offset[i + 1]; ++e) {
        uint16_t& n = row_blocks_[i * o_.blocks + data_.keys[data_.col[e]] % o_.blocks];
        if (n < UINT16_MAX) ++n;
      }
    }
    if (o_.kkt) {
      // Called on this thread, by ZPushPull.
      kv_.set_key_filter([this, anchors](Key key, const float* vals, size_t len) {
        if (std::binary_search(anchors.begin(), anchors.end(), key)) return true;
        // The gradient only, not the curvature.
        const bool send =
            kkt_(key, vals, vals ? 1 : 0) || (!send_next_.empty() && send_next_.count(key));
        ++(send ? kept_ : left_);
        return send;
      });
    }
  }

  // The block's gradient and curvature bound, [g, u] per key, at the current margins:
  //   g_k = sum_i x_ik (p_i - [y_i = 1]),   u_k = sum_i x_ik^2 p_i (1 - p_i) c_i,
  // p_i = sigmoid(w.x_i), c_i = the entries of row i in the blocks that may change at the same
  // time as this one: changing coordinates together moves a margin by at most c_i times the
  // sum of their own squared moves (Cauchy-Schwarz), so more overlap means shorter steps. Under
  // a consistency model that allows "window" blocks in flight, the gradient of block b misses
  // the updates of at most blocks b - window + 1 .. b - 1, which change together with it: those
  // are counted (every block under eventual).
  ps::SArray<float> BlockGradient(int b) {
    const Block& block = blocks_[b];
    const int window = o_.consistency.window();
    const int first = window ? std::max(0, b - window + 1) : 0;
    const int last = window ? b : o_.blocks - 1;
    ++stamp_;
    for (int32_t c : block.col) {
      if (c < 0) continue;
      for (size_t e = data_.col_offset[c]; e < data_.col_offset[c + 1]; ++e) {
        const uint32_t i = data_.row_of[e];
        if (row_stamp_[i] == stamp_) continue;
        row_stamp_[i] = stamp_;
        const double p = Sigmoid(margin_[i]);
        row_d_[i] = p - (data_.label[i] > 0);
        uint32_t together = 0;
        for (int bb = first; bb <= last; ++bb) together += row_blocks_[i * o_.blocks + bb];
        row_hc_[i] = p * (1 - p) * together;
      }
    }
    ps::SArray<float> gu(2 * block.keys.size(), 0);
    for (size_t j = 0; j < block.keys.size(); ++j) {
      const int32_t c = block.col[j];
      if (c < 0) continue;
      double g = 0, u = 0;
      for (size_t e = data_.col_offset[c]; e < data_.col_offset[c + 1]; ++e) {
        const uint32_t i = data_.row_of[e];
        const double x = data_.col_val[e];
        g += x * row_d_[i];
        u += x * x * row_hc_[i];
      }
      gu[2 * j] = static_cast<float>(g);
      gu[2 * j + 1] = static_cast<float>(u + 1e-12);
    }
    return gu;
  }

  // Takes the answer of a block: new weights, so new margins.
  void Apply(InFlight* f) {
    kv_.Wait(f->ts);
    const Block& block = blocks_[f->block];
    for (size_t j = 0; j < block.keys.size(); ++j) {
      const int32_t c = block.col[j];
      if (c < 0) continue;
      const float dw = f->w[j] - w_[c];
      if (dw == 0) continue;
      for (size_t e = data_.col_offset[c]; e < data_.col_offset[c + 1]; ++e) {
        margin_[data_.row_of[e]] += dw * data_.col_val[e];
      }
      w_[c] = f->w[j];
    }
    if (o_.kkt) kkt_.SetWeights(block.keys, f->w);
  }

  void TrainBcd() {
    kv_.Wait(kv_.ZPush(data_.keys, ps::SArray<float>(data_.keys.size(), 1), ps::SArray<int>(),
                       kRegister));
    MakeBlocks();
    row_stamp_.assign(data_.rows(), 0);
    row_d_.assign(data_.rows(), 0);
    row_hc_.assign(data_.rows(), 0);
    for (int t = 0; t < o_.max_iter; ++t) {
      std::vector<std::unique_ptr<InFlight>> flying;
      const int window = o_.consistency.window();  // 0: eventual
      for (int b = 0; b < o_.blocks; ++b) {
        // The next gradient sees every answer that is in, and at least those the model says it
        // follows: under sequential every earlier block, under bounded:tau all but the last tau.
        for (auto& f : flying) {
          if (f && (f->done.load() || (window > 0 && f->block <= b - window))) {
            Apply(f.get());
            f.reset();
          }
        }
        ps::SArray<float> gu = BlockGradient(b);
        Straggle();
        auto f = std::make_unique<InFlight>();
        f->block = b;
        ps::TaskOptions opts;
        opts.cmd = t * o_.blocks + b;
        InFlight* raw = f.get();
        opts.callback = [raw] { raw->done.store(true); };
        // Held back here while the consistency model allows no more blocks in flight.
        f->ts = kv_.ZPushPull(blocks_[b].keys, gu, &f->w, opts);
        if (!o_.kkt) kept_ += blocks_[b].keys.size();
        flying.push_back(std::move(f));
      }
      for (auto& f : flying) {
        if (f) Apply(f.get());
      }
      const bool stop = EndIteration(t, kept_, left_);
      kept_ = left_ = 0;
      if (stop) break;
    }
  }

  // ---- sgd ----
  void TrainSgd() {
    std::vector<uint32_t> order(data_.rows());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<uint32_t>(i);
    std::mt19937_64 rng(o_.seed * 1000003ULL + rank_);
    std::vector<int32_t> pos(data_.keys.size(), -1);
    uint64_t keys_sent = 0;
    for (int epoch = 0; epoch < o_.epochs; ++epoch) {
      std::shuffle(order.begin(), order.end(), rng);
      std::vector<int> pushes;
      for (size_t start = 0; start < order.size(); start += o_.batch) {
        const size_t end = std::min(order.size(), start + o_.batch);
        // The minibatch's keys, sorted (local columns are in key order).
        std::vector<uint32_t> cols;
        for (size_t r = start; r < end; ++r) {
          const uint32_t i = order[r];
          for (size_t e = data_.offset[i]; e < data_.offset[i + 1]; ++e) {
            if (pos[data_.col[e]] < 0) {
              pos[data_.col[e]] = 0;
              cols.push_back(data_.col[e]);
            }
          }
        }
        std::sort(cols.begin(), cols.end());
        ps::SArray<Key> keys(cols.size());
        for (size_t j = 0; j < cols.size(); ++j) {
          keys[j] = data_.keys[cols[j]];
          pos[cols[j]] = static_cast<int32_t>(j);
        }
        ps::SArray<float> w;
        kv_.Wait(kv_.ZPull(keys, &w));
        ps::SArray<float> grad(keys.size(), 0);
        for (size_t r = start; r < end; ++r) {
          const uint32_t i = order[r];
          double m = 0;
          for (size_t e = data_.offset[i]; e < data_.offset[i + 1]; ++e) {
            m += w[pos[data_.col[e]]] * data_.val[e];
          }
          const double d = Sigmoid(m) - (data_.label[i] > 0);
          for (size_t e = data_.offset[i]; e < data_.offset[i + 1]; ++e) {
            grad[pos[data_.col[e]]] += static_cast<float>(d * data_.val[e]);
          }
        }
        for (uint32_t c : cols) pos[c] = -1;
        Straggle();
        pushes.push_back(kv_.ZPush(keys, grad));
        keys_sent += 2 * keys.size();
      }
      for (int ts : pushes) kv_.Wait(ts);
      // Every worker's pushes are in: the objective is that of one model.
      ps::Postoffice::Get()->Barrier(0, ps::kWorkerGroup);
      PullAll();
      if (EndIteration(epoch, keys_sent, 0)) break;
      keys_sent = 0;
    }
  }

  // ---- both ----
  void Straggle() {
    if (rank_ == o_.straggler_rank && o_.straggler_ms > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(o_.straggler_ms));
    }
  }

  // Pulls every key of the worker's data, without the KKT filter, and recomputes the margins.
  void PullAll() {
    kv_.set_key_filter(nullptr);
    ps::SArray<float> w;
    kv_.Wait(kv_.ZPull(data_.keys, &w));
    for (size_t c = 0; c < w_.size(); ++c) w_[c] = w[c];
    for (size_t i = 0; i < data_.rows(); ++i) {
      double m = 0;
      for (size_t e = data_.offset[i]; e < data_.offset[i + 1]; ++e) {
        m += w_[data_.col[e]] * data_.val[e];
      }
      margin_[i] = m;
    }
  }

  double Loss() const {
    double loss = 0;
    for (size_t i = 0; i < data_.rows(); ++i) loss += Softplus(-data_.label[i] * margin_[i]);
    return loss;
  }

  // The job's totals for iteration "iter", the same on every worker.
  struct Totals {
    double objective = 0, kept = 0, left = 0, nnz = 0, margin = 0;
  };
  Totals Exchange(int iter, uint64_t kept, uint64_t left) {
    std::ostringstream body;
    body.precision(17);
    body << iter << " " << Loss() << " " << kept << " " << left;
    {
      std::lock_guard<std::mutex> lk(mu_);
      answers_.clear();
    }
    report_.Wait(report_.Request(kReport, body.str(), ps::kServerGroup));
    Totals t;
    double loss = 0, l1norm = 0, l2sq = 0;
    send_next_.clear();
    std::lock_guard<std::mutex> lk(mu_);
    for (const std::string& a : answers_) {
      std::istringstream in(a);
      double v[7] = {0};
      for (double& x : v) in >> x;
      for (Key k; in >> k;) send_next_.insert(k);
      loss += v[0];
      t.kept += v[1];
      t.left += v[2];
      l1norm += v[3];
      l2sq += v[4];
      t.nnz += v[5];
      t.margin = v[6];
    }
    t.objective = loss + o_.l1 * l1norm + o_.l2 / 2 * l2sq;
    return t;
  }

  // Reports iteration "iter"; worker 0 prints its line. Returns whether to stop.
  bool EndIteration(int iter, uint64_t kept, uint64_t left) {
    Totals t = Exchange(iter, kept, left);
    const double seconds = Now() - start_;
    const double change =
        iterations_ ? std::abs(last_objective_ - t.objective) / std::max(t.objective, 1e-300) : 1;
    if (rank_ == 0) {
      if (iterations_ == 0) {
        std::printf("%5s %14s %10s %9s %12s %9s %8s\n", "iter", "objective", "rel_change", "nnz",
                    "active_keys", "filtered", "seconds");
      }
      const double total = t.kept + t.left;
      std::printf("%5d %14.6f %10.3e %9.0f %12.0f %8.1f%% %8.3f\n", iter, t.objective, change,
                  t.nnz, t.kept, total > 0 ? 100 * t.left / total : 0.0, seconds);
      std::fflush(stdout);
    }
    ++iterations_;
    last_objective_ = t.objective;
    trace_.emplace_back(seconds, t.objective);
    kkt_.set_margin(static_cast<float>(t.margin / workers_));
    all_kept_ += t.kept;
    all_left_ += t.left;
    return o_.algo == "bcd" && iterations_ > 1 && change < o_.epsilon;
  }

  // After training: the exact objective of the final weights, test metrics, the model, the
  // traffic, and the summary.
  void Finish() {
    PullAll();
    Totals t = Exchange(kFinalReport, 0, 0);
    const double seconds = Now() - start_;
    if (rank_ != 0) return;
    std::ostringstream json;
    json.precision(10);
    json << "{\"algo\": \"" << o_.algo << "\", \"objective\": " << t.objective
         << ", \"nnz\": " << t.nnz << ", \"iterations\": " << iterations_
         << ", \"seconds\": " << seconds << ", \"load_seconds\": " << load_seconds_;
    const double total = all_kept_ + all_left_;
    json << ", \"keys_filtered_pct\": " << (total > 0 ? 100 * all_left_ / total : 0.0);
    if (!o_.test.empty()) json << TestMetrics();
    if (!o_.model_out.empty()) {
      ps::Status s = linear::WriteModel(o_.model_out, ServerWeights());
      if (!s.ok()) Fail(s.message());
    }
    double sent = 0, received = 0;
    for (const std::string& a : Gather(kTraffic, kAllNodes)) {
      std::istringstream in(a);
      double s = 0, r = 0;
      in >> s >> r;
      sent += s;
      received += r;
    }
    json << ", \"bytes_sent\": " << sent << ", \"bytes_received\": " << received
         << ", \"workers\": " << workers_ << ", \"servers\": " << ps::NumServers()
         << ", \"consistency\": \"" << o_.consistency.ToString() << "\", \"kkt\": \""
         << (o_.kkt && o_.algo == "bcd" ? "on" : "off") << "\"";
    if (o_.trace) {
      json << ", \"trace\": [";
      for (size_t i = 0; i < trace_.size(); ++i) {
        json << (i ? ", " : "") << "[" << trace_[i].first << ", " << trace_[i].second << "]";
      }
      json << "]";
    }
    json << "}";
    std::printf("%s\n", json.str().c_str());
    std::fflush(stdout);
  }

  // The bodies of the answers to a report-app request "head" sent to "group".
  std::vector<std::string> Gather(int head, int group) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      answers_.clear();
    }
    report_.Wait(report_.Request(head, "", group));
    std::lock_guard<std::mutex> lk(mu_);
    return answers_;
  }

  std::vector<std::pair<uint64_t, float>> ServerWeights() {
    std::vector<std::pair<uint64_t, float>> weights;
    for (const std::string& text : Gather(kModel, ps::kServerGroup)) {
      std::istringstream in(text);
      unsigned long long feature;
      float w;
      while (in >> feature >> w) weights.emplace_back(feature, w);
    }
    return weights;
  }

  // ", test_accuracy..." of the model on the servers, for the whole --test file.
  std::string TestMetrics() {
    linear::Dataset test;
    ps::Status s = linear::LoadLibsvm(o_.test, 0, 1, &test);
    if (!s.ok()) Fail(s.message());
    ps::SArray<float> w;
    kv_.set_key_filter(nullptr);
    kv_.Wait(kv_.ZPull(test.keys, &w));  // features no worker saw read as 0
    return MetricsJson(test, [&](uint32_t c) { return w[c]; });
  }

  template <typename W>
  static std::string MetricsJson(const linear::Dataset& test, W weight,
                                 std::vector<double>* probs = nullptr) {
    std::vector<double> prob(test.rows());
    for (size_t i = 0; i < test.rows(); ++i) {
      double m = 0;
      for (size_t e = test.offset[i]; e < test.offset[i + 1]; ++e) {
        m += weight(test.col[e]) * test.val[e];
      }
      prob[i] = Sigmoid(m);
    }
    linear::Metrics m = linear::Evaluate(prob, test.label);
    std::ostringstream out;
    out.precision(10);
    out << ", \"test_rows\": " << test.rows() << ", \"test_accuracy\": " << m.accuracy
        << ", \"test_auc\": ";
    if (std::isfinite(m.auc)) {
      out << m.auc;
    } else {
      out << "null";
    }
    out << ", \"test_logloss\": " << m.logloss;
    if (probs) *probs = std::move(prob);
    return out.str();
  }

  // --model-in --predict: worker 0 alone, from the model file.
  void Predict() {
    std::unordered_map<Key, float> model;
    ps::Status s = linear::ReadModel(o_.model_in, &model);
    linear::Dataset test;
    if (s.ok()) s = linear::LoadLibsvm(o_.test, 0, 1, &test);
    if (!s.ok()) Fail(s.message());
    std::vector<double> prob;
    std::string metrics = MetricsJson(
        test,
        [&](uint32_t c) {
          auto it = model.find(test.keys[c]);
          return it == model.end() ? 0.0f : it->second;  // a feature the model lacks: 0
        },
        &prob);
    FILE* f = std::fopen(o_.predict.c_str(), "w");
    if (!f) Fail("cannot write " + o_.predict);
    for (double p : prob) std::fprintf(f, "%.9g\n", p);
    if (std::fclose(f) != 0) Fail("cannot write " + o_.predict);
    std::printf("{\"predicted\": %zu, \"model_nnz\": %zu%s}\n", prob.size(), model.size(),
                metrics.c_str());
    std::fflush(stdout);
  }

  const Options o_;
  const int rank_;
  const int workers_;
  ps::KKTFilter<float> kkt_;  // outlives kv_, which calls it

  std::mutex mu_;
  std::vector<std::string> answers_;  // protected by mu_: bodies of report-app answers

  linear::Dataset data_;
  std::vector<float> w_;        // by local column: the worker's copy of the weights
  std::vector<double> margin_;  // by row: w.x_i
  std::vector<Block> blocks_;
  // Scratch of BlockGradient, by row.
  uint32_t stamp_ = 0;
  std::vector<uint32_t> row_stamp_;
  std::vector<double> row_d_, row_hc_;  // p_i - [y_i = 1], and p_i (1 - p_i) c_i
  std::vector<uint16_t> row_blocks_;    // by row and block: entries of the row in the block

  double start_ = 0, load_seconds_ = 0;
  int iterations_ = 0;
  double last_objective_ = 0;
  uint64_t kept_ = 0, left_ = 0;       // keys the KKT filter sent and left out
  std::unordered_set<Key> send_next_;  // keys the servers held back: sent in the next iteration
  double all_kept_ = 0, all_left_ = 0;
  std::vector<std::pair<double, double>> trace_;

  // Last, so that they stop first: their handlers use the members above.
  ps::KVWorker<float> kv_;
  ps::SimpleApp report_;
};

}  // namespace

int main(int argc, char* argv[]) {
  if (argc == 2 && std::string(argv[1]) == "--help") {
    std::printf("%s\n", linear::Usage());
    return 0;
  }
  // Only workers read the data: servers and the scheduler may run where it is not.
  const char* role = std::getenv("DMLC_ROLE");
  const bool worker = !role || std::string(role) == "worker";
  Options o;
  ps::Status s = linear::ParseOptions(argc, argv, worker, &o);
  if (!s.ok()) {
    std::fprintf(stderr, "linear: error: %s (--help lists the options)\n", s.message().c_str());
    return 2;
  }
  ps::Start(0, argv[0]);
  // Every node builds its apps, then all meet, so that no request finds a node without them.
  if (ps::IsServer()) {
    Server server(o);
    ps::Postoffice::Get()->Barrier(0, kAllNodes);
    ps::Postoffice::Get()->Barrier(0, kAllNodes);
  } else if (ps::IsWorker()) {
    Worker worker(o);
    ps::Postoffice::Get()->Barrier(0, kAllNodes);
    worker.Run();
    ps::Postoffice::Get()->Barrier(0, kAllNodes);
  } else {
    ps::SimpleApp report(1, 0);
    report.set_request_handle(AnswerTraffic);
    ps::Postoffice::Get()->Barrier(0, kAllNodes);
    ps::Postoffice::Get()->Barrier(0, kAllNodes);
  }
  ps::Finalize(0, true);
  return 0;
}
