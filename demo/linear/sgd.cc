// --algo=sgd: minibatch SGD with FTRL-proximal on the servers (McMahan et al., KDD 2013).
// Each worker goes over its rows in minibatches: it pulls the weights of a minibatch's keys,
// computes the minibatch's gradient, and pushes it; the servers update each coordinate's FTRL
// state, from which a pull reads the weight. An epoch ends when every worker's pushes are in.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <random>
#include <unordered_map>
#include <vector>

#include "algorithms.h"

namespace linear {
namespace {

using ps::Key;

class FtrlModel : public Model {
 public:
  explicit FtrlModel(const Options& o) : o_(o) {}

  // A push of gradients updates the coordinates' state; a pull answers their weights.
  void Handle(const ps::KVMeta& meta, const ps::KVPairs<float>& data,
              ps::KVServer<float>* server) override {
    std::lock_guard<std::mutex> lk(mu_);
    if (meta.push) {
      if (data.vals.size() != data.keys.size()) {
        return server->ResponseError(meta, "an sgd push has one gradient per key");
      }
      for (size_t i = 0; i < data.keys.size(); ++i) {
        Ftrl& s = ftrl_[data.keys[i]];
        const double g = data.vals[i], w = Weight(s);
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
        res.vals[i] = it == ftrl_.end() ? 0 : static_cast<float>(Weight(it->second));
      }
    }
    server->Response(meta, res);
  }

  void ForEachWeight(const std::function<void(Key, double)>& f) override {
    std::lock_guard<std::mutex> lk(mu_);
    for (const auto& kv : ftrl_) f(kv.first, Weight(kv.second));
  }

  // Per key its FTRL state, z and n, each double as the bits of two floats: exact.
  ps::KVPairs<float> Snapshot(const ps::Range& range) override {
    std::lock_guard<std::mutex> lk(mu_);
    return SnapshotOf(ftrl_, range, 4, [](Key, const Ftrl& s, float* out) {
      std::memcpy(out, &s.z, sizeof(double));
      std::memcpy(out + 2, &s.n, sizeof(double));
    });
  }
  void Restore(const ps::KVPairs<float>& state) override {
    CheckWidth(state, 4, "sgd");
    std::lock_guard<std::mutex> lk(mu_);
    for (size_t i = 0; i < state.keys.size(); ++i) {
      Ftrl& s = ftrl_[state.keys[i]];
      std::memcpy(&s.z, &state.vals[4 * i], sizeof(double));
      std::memcpy(&s.n, &state.vals[4 * i + 2], sizeof(double));
    }
  }

 private:
  // A coordinate's state: the weight is a function of it.
  struct Ftrl {
    double z = 0, n = 0;
  };
  double Weight(const Ftrl& s) const {
    if (std::abs(s.z) <= o_.l1) return 0;
    return -(s.z - std::copysign(o_.l1, s.z)) / ((o_.beta + std::sqrt(s.n)) / o_.alpha + o_.l2);
  }

  const Options o_;
  std::mutex mu_;
  std::unordered_map<Key, Ftrl> ftrl_;  // protected by mu_
};

class SgdWorker : public Worker {
 public:
  using Worker::Worker;

 private:
  void Train() override {
    std::vector<uint32_t> order(data_.rows());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<uint32_t>(i);
    std::mt19937_64 rng(o_.seed * 1000003ULL + rank_);
    std::vector<int32_t> pos(data_.keys.size(), -1);  // a column's place in the minibatch
    uint64_t keys_sent = 0;
    // Resumed: the minibatch orders of the epochs done, so that the next ones are as they were.
    for (int epoch = 0; epoch < first_iteration_; ++epoch) {
      std::shuffle(order.begin(), order.end(), rng);
    }
    for (int epoch = first_iteration_; epoch < o_.epochs; ++epoch) {
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
        kv()->Wait(kv()->ZPull(keys, &w));
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
        pushes.push_back(kv()->ZPush(keys, grad));
        keys_sent += 2 * keys.size();
      }
      for (int ts : pushes) kv()->Wait(ts);
      // Every worker's pushes are in: the objective is that of one model.
      ps::Postoffice::Get()->Barrier(0, ps::kWorkerGroup);
      PullAll();
      EndIteration(epoch, keys_sent, 0);
      keys_sent = 0;
      Checkpoint(epoch + 1, "");
    }
  }
};

}  // namespace

std::unique_ptr<Model> NewFtrlModel(const Options& o) { return std::make_unique<FtrlModel>(o); }
std::unique_ptr<Worker> NewSgdWorker(const Options& o) { return std::make_unique<SgdWorker>(o); }

}  // namespace linear
