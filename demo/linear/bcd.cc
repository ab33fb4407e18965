// --algo=bcd: block proximal gradient (Li et al., OSDI 2014). The features are split into
// blocks. For each block a worker pushes, per feature, its data's gradient g and a bound u of
// the curvature (one ZPushPull, cmd = the round); a server adds up the pushes of all workers,
// takes one proximal Newton step per coordinate, w = soft(u w - g, l1) / (u + l2), and answers
// every worker with the new weights, which update the worker's margins. The KVWorker's
// consistency model lets blocks overlap: under bounded:N a worker computes block b + 1 .. b + N
// while block b is still on its way. With --kkt=on the KKT filter leaves out the coordinates
// that are zero and whose gradient is below l1 by a margin the servers set: they would stay
// zero.
#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "algorithms.h"

namespace linear {
namespace {

using ps::Key;

constexpr int kRegister = -1;  // the cmd of a worker's push of all its keys

// One round per block and iteration. Each worker pushes [g, u] per key of the block (or only
// the keys its KKT filter keeps) and waits for the answer; once every worker pushed, the server
// updates the block and answers them all with the new weights.
//
// Before the first round each worker registers its keys, so that the server knows how many
// workers hold each key. A key that is zero becomes nonzero only when every worker holding it
// pushed it: a worker's KKT filter leaves a key out on the premise that it stays zero, and the
// worker's copy of it must stay right. Such a key is held back and named in the iteration's
// report instead, and every worker sends it in the next iteration.
class BcdModel : public Model {
 public:
  explicit BcdModel(const Options& o) : o_(o), workers_(ps::NumWorkers()) {}

  void Handle(const ps::KVMeta& meta, const ps::KVPairs<float>& data,
              ps::KVServer<float>* server) override {
    std::lock_guard<std::mutex> lk(mu_);
    if (!meta.push) return server->Response(meta, Read(data.keys));
    if (meta.cmd == kRegister) {
      for (Key k : data.keys) ++holders_[k];
      return server->Response(meta);
    }
    if (data.vals.size() != 2 * data.keys.size()) {
      return server->ResponseError(meta, "a block push has a gradient and a curvature per key");
    }
    // A round per block and key range: under replication a server may answer for several
    // ranges, and each range's pushes make their own round.
    const std::pair<int, int> id(meta.cmd, meta.slice);
    Round& round = rounds_[id];
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
    rounds_.erase(id);
  }

  void ForEachWeight(const std::function<void(Key, double)>& f) override {
    std::lock_guard<std::mutex> lk(mu_);
    for (const auto& kv : w_) f(kv.first, kv.second);
  }

  // Per key its weight and how many workers hold it: [w, holders].
  ps::KVPairs<float> Snapshot(const ps::Range& range) override {
    std::lock_guard<std::mutex> lk(mu_);
    return SnapshotOf(holders_, range, 2, [&](Key key, int holders, float* out) {
      auto it = w_.find(key);
      out[0] = it == w_.end() ? 0 : it->second;
      out[1] = static_cast<float>(holders);  // exact: far below 2^24 workers
    });
  }
  void Restore(const ps::KVPairs<float>& state) override {
    CheckWidth(state, 2, "bcd");
    std::lock_guard<std::mutex> lk(mu_);
    for (size_t i = 0; i < state.keys.size(); ++i) {
      holders_[state.keys[i]] = static_cast<int>(state.vals[2 * i + 1]);
      // A zero weight is one never set: Handle treats both alike.
      if (state.vals[2 * i] != 0) w_[state.keys[i]] = state.vals[2 * i];
    }
  }

  std::vector<Key> TakeHeldBack() override {
    std::lock_guard<std::mutex> lk(mu_);
    std::vector<Key> keys;
    keys.swap(held_back_);
    return keys;
  }

 private:
  struct GradCurv {
    double g = 0, u = 0;
    int pushes = 0;
  };
  // A worker's push, answered when the round is complete.
  struct Held {
    ps::KVMeta meta;
    ps::SArray<Key> keys;
  };
  struct Round {
    std::unordered_map<Key, GradCurv> sum;
    std::vector<Held> held;
  };

  // REQUIRES: mu_ held.
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

  const Options o_;
  const int workers_;

  // Protected by mu_.
  std::mutex mu_;
  std::unordered_map<Key, float> w_;
  std::unordered_map<Key, int> holders_;         // workers that hold each key
  std::map<std::pair<int, int>, Round> rounds_;  // (block, range) -> waiting for workers
  std::vector<Key> held_back_;                   // keys to send in full next iteration
};

class BcdWorker : public Worker {
 public:
  explicit BcdWorker(const Options& o)
      : Worker(o),
        // Each worker sees its share of the gradient: the threshold is scaled to it, so that a
        // key every worker leaves out has a total gradient below l1 - margin.
        kkt_(static_cast<float>(o.l1 / workers_), static_cast<float>(o.l1 / 2 / workers_)) {}

 private:
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

  bool kkt() const override { return o_.kkt; }

  void Train() override {
    timed_ = true;
    bool stopped = false;  // the checkpoint resumed from ended the training
    if (first_iteration_ == 0) {
      kv()->Wait(kv()->ZPush(data_.keys, ps::SArray<float>(data_.keys.size(), 1), ps::SArray<int>(),
                             kRegister));
    } else {
      // The servers hold the checkpoint's weights and key holders: the margins follow from the
      // weights, the KKT filter's margin and held-back keys come from the checkpoint.
      PullAll();
      std::istringstream in(resumed_state_);
      double margin = 0;
      in >> stopped >> margin;
      kkt_.set_margin(static_cast<float>(margin / workers_));
      for (Key k; in >> k;) send_next_.insert(k);
      kkt_.SetWeights(data_.keys, ps::SArray<float>(w_));
    }
    MakeBlocks();
    row_stamp_.assign(data_.rows(), 0);
    row_d_.assign(data_.rows(), 0);
    row_hc_.assign(data_.rows(), 0);
    for (int t = first_iteration_; t < o_.max_iter && !stopped; ++t) {
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
        const double compute_start = Now();
        ps::SArray<float> gu = BlockGradient(b);
        Straggle();
        const double issue_start = Now();
        times_.compute += issue_start - compute_start;
        auto f = std::make_unique<InFlight>();
        f->block = b;
        ps::TaskOptions opts;
        opts.cmd = t * o_.blocks + b;
        InFlight* raw = f.get();
        opts.callback = [raw] { raw->done.store(true); };
        // Held back here while the consistency model allows no more blocks in flight.
        f->ts = kv()->ZPushPull(blocks_[b].keys, gu, &f->w, opts);
        times_.held += Now() - issue_start;
        if (!o_.kkt) kept_ += blocks_[b].keys.size();
        flying.push_back(std::move(f));
      }
      for (auto& f : flying) {
        if (f) Apply(f.get());
      }
      const Totals totals = EndIteration(t, kept_, left_);
      kkt_.set_margin(static_cast<float>(totals.kkt_margin / workers_));
      send_next_ = std::unordered_set<Key>(totals.send_next.begin(), totals.send_next.end());
      kept_ = left_ = 0;
      stopped = iterations() > 1 && totals.change < o_.epsilon;
      std::ostringstream state;
      state.precision(17);
      state << stopped << " " << totals.kkt_margin;
      for (Key k : totals.send_next) state << " " << k;
      Checkpoint(t + 1, state.str());
    }
  }

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
      // Called on this thread, by ZPushPull; PullAll removes it before the summary.
      kv()->set_key_filter([this, anchors](Key key, const float* vals, size_t len) {
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
    const double wait_start = Now();
    kv()->Wait(f->ts);
    const double apply_start = Now();
    times_.wait += apply_start - wait_start;
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
    times_.compute += Now() - apply_start;
  }

  ps::KKTFilter<float> kkt_;  // called by kv()'s key filter
  std::vector<Block> blocks_;
  // Scratch of BlockGradient, by row.
  uint32_t stamp_ = 0;
  std::vector<uint32_t> row_stamp_;
  std::vector<double> row_d_, row_hc_;  // p_i - [y_i = 1], and p_i (1 - p_i) c_i
  std::vector<uint16_t> row_blocks_;    // by row and block: entries of the row in the block
  uint64_t kept_ = 0, left_ = 0;        // keys the KKT filter sent and left out
  std::unordered_set<Key> send_next_;   // keys the servers held back: sent in the next iteration
};

}  // namespace

std::unique_ptr<Model> NewBcdModel(const Options& o) { return std::make_unique<BcdModel>(o); }
std::unique_ptr<Worker> NewBcdWorker(const Options& o) { return std::make_unique<BcdWorker>(o); }

}  // namespace linear
