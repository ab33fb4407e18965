// The server of the logistic regression demo: it holds its key range of the weights in the
// algorithm's Model (bcd.cc, sgd.cc), which answers the workers' pushes and pulls, and answers
// the report app itself.
#ifndef PS_DEMO_LINEAR_SERVER_H_
#define PS_DEMO_LINEAR_SERVER_H_

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "options.h"
#include "ps/ps.h"

namespace linear {

// One algorithm's part of the model on a server. Thread-safe: Handle runs on the KVServer's
// thread, the others on the report app's.
class Model {
 public:
  virtual ~Model() = default;
  // Answers a push or a pull of the algorithm's workers (now or later, for a round).
  virtual void Handle(const ps::KVMeta& meta, const ps::KVPairs<float>& data,
                      ps::KVServer<float>* server) = 0;
  // Calls f(key, weight) for every weight this server holds.
  virtual void ForEachWeight(const std::function<void(ps::Key, double)>& f) = 0;
  // The keys whose update was held back since the last call: every worker sends them in the
  // next iteration (bcd's KKT filter). Named in the iteration's report.
  virtual std::vector<ps::Key> TakeHeldBack() { return {}; }
  // The state of the keys in "range", sorted (a checkpoint; see ps/checkpoint.h), and setting
  // it back. Run on the KVServer's thread between requests, at the end of an iteration, when no
  // round is open.
  virtual ps::KVPairs<float> Snapshot(const ps::Range& range) = 0;
  virtual void Restore(const ps::KVPairs<float>& state) = 0;
};

// A model's Snapshot: the keys of "map" in "range", sorted, each with "width" floats that
// put(key, value, out) writes.
template <typename Map, typename Put>
ps::KVPairs<float> SnapshotOf(const Map& map, const ps::Range& range, size_t width, Put put) {
  std::vector<ps::Key> keys;
  for (const auto& kv : map) {
    if (ps::kv::InRange(kv.first, range)) keys.push_back(kv.first);
  }
  std::sort(keys.begin(), keys.end());
  ps::KVPairs<float> out;
  out.keys = ps::SArray<ps::Key>(keys);
  out.vals = ps::SArray<float>(keys.size() * width);
  for (size_t i = 0; i < keys.size(); ++i)
    put(keys[i], map.find(keys[i])->second, &out.vals[i * width]);
  return out;
}

// Ends the process unless "state" holds "width" values per key (a model's Restore).
void CheckWidth(const ps::KVPairs<float>& state, size_t width, const char* algo);

// A server node's apps. Constructing it registers them; no I/O.
class Server {
 public:
  Server(const Options& o, std::unique_ptr<Model> model);

 private:
  // Per iteration, waits for every worker's report, then answers each with the workers' totals
  // (from server 0 only, so that workers can add up all answers) and this server's share of the
  // regularizer.
  void HandleReport(const ps::SimpleData& req, ps::SimpleApp* app);
  // "feature<TAB>weight" lines of this server's nonzero weights.
  std::string ModelText();
  // Whether this server answers for a key's range now (always, without replication).
  using Leads = std::function<bool(ps::Key)>;
  Leads LeadsNow() const;
  // The model's weights of the ranges this server answers for.
  void ForEachLedWeight(const std::function<void(ps::Key, double)>& f);
  // The lowest server rank alive: it answers the workers' totals.
  int FirstLiveServer() const;

  struct Report {
    double loss = 0, kept = 0, left = 0;
    std::vector<ps::SimpleData> held;
  };

  const Options o_;
  const int workers_;
  const int rank_;
  const std::unique_ptr<Model> model_;
  std::map<int, Report> reports_;  // report app thread only

  // Last, so that they stop first: their handlers use the members above.
  ps::KVServer<float> kv_;
  ps::SimpleApp report_;
};

}  // namespace linear
#endif  // PS_DEMO_LINEAR_SERVER_H_
