// The built-in request handles of a KVServer: KVServerDefaultHandle (a store that sums pushes
// and answers pulls) and KVServerSyncHandle (synchronous aggregation, one round per push of
// every worker), with the store helpers they share (kv::Store, CheckFits, AddInto, ReadFrom).
//
// Threads: a handle runs on its server's customer thread; each says what else is thread-safe.
#ifndef PS_KV_HANDLES_H_
#define PS_KV_HANDLES_H_

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ps/internal/kv_store.h"
#include "ps/kv_pairs.h"
#include "ps/kv_server.h"

namespace ps {

namespace kv {

// Values by key, as the server handles below keep them: any number of values per key (see
// ps/internal/kv_store.h).
template <typename Val>
using Store = KVStore<Val>;

// Whether "push" fits "store": every key it holds there has as many values as pushed.
template <typename Val>
Status CheckFits(const KVPairs<Val>& push, const Store<Val>& store) {
  return store.Check(push.keys, push.vals, push.lens);
}

// Adds the values of a push to "store" (a key's first push sets them). All or nothing: if it
// does not fit (CheckFits), nothing changes.
template <typename Val>
Status AddInto(const KVPairs<Val>& push, Store<Val>* store) {
  return store->Push(push.keys, push.vals, push.lens);
}

// The values of "keys" in "store", with lens when their lengths differ. Keys not in the store
// read as zeros, as many as the present ones agree on (else one).
template <typename Val>
KVPairs<Val> ReadFrom(const Store<Val>& store, const SArray<Key>& keys) {
  return store.Pull(keys);
}

}  // namespace kv

// A request handle that keeps a store: a push adds its values to the stored ones (a key's first
// push sets them), a pull returns them. A key may hold any number of values, but always the
// same number. Keys never pushed read as zeros, as many as the other keys of the pull have (or
// one). Runs on one thread at a time (the server's, see KVServer): the store needs no lock.
// It never blocks, so KVServer may run it where a small request is received (never_blocks).
template <typename Val>
struct KVServerDefaultHandle {
  bool never_blocks() const { return true; }

  void operator()(const KVMeta& req_meta, const KVPairs<Val>& req_data, KVServer<Val>* server) {
    if (req_meta.push) {
      Status s = kv::AddInto(req_data, &store);
      if (!s.ok()) return server->ResponseError(req_meta, s.message());
    }
    server->Response(req_meta, req_meta.pull ? kv::ReadFrom(store, req_data.keys) : KVPairs<Val>());
  }

  // The stored values of the keys in "range" (checkpoints; see KVServer).
  KVPairs<Val> Snapshot(const Range& range) const { return store.Read(range.begin(), range.end()); }
  // Sets the stored values of the keys in "state".
  void Restore(const KVPairs<Val>& state) {
    Status s = store.Assign(state.keys, state.vals, state.lens);
    CHECK(s.ok()) << s.message();  // a snapshot's keys are sorted and unique
  }

  kv::Store<Val> store;
};

// A request handle for synchronous (bulk synchronous parallel) training: each round collects
// one push from every worker, adds them up, applies the sum once, and only then answers them.
//
//  - A worker's pushes go to rounds 0, 1, 2... in the order they arrive; a worker is a
//    KVWorker (node and customer). Every worker must push to every server in every round, or
//    the round never completes on the servers it skipped.
//  - When the last worker's push of round r arrives, "apply" runs once with the sum of the
//    round's pushes (keys sorted, lens when lengths differ) and the store; by default it adds
//    the sum to the store. Then the round's pushes are answered; a PushPull gets the values
//    after the update.
//  - A pull waits until every round its worker has pushed to is applied, so it sees its own
//    round's update: a worker that pushes (without waiting) then pulls reads the whole round.
//    Pulls of a worker that has not pushed yet are answered at once.
//  - A push that does not fit (a key with a different number of values than the round holds),
//    or from more workers than expected, is answered with an error and not counted.
//
// Copies share one state, so the handle given to set_request_handle can be read through the
// copy kept by the caller. Runs on the server's customer thread; rounds() and the store
// accessors may be called from any thread.
template <typename Val>
class KVServerSyncHandle {
 public:
  using Apply = std::function<void(int round, const KVPairs<Val>& sum, kv::Store<Val>* store)>;

  // "num_workers": pushes per round; 0 means every worker of the job. A null "apply" adds the
  // sum to the store.
  explicit KVServerSyncHandle(int num_workers = 0, Apply apply = nullptr)
      : state_(std::make_shared<State>()), default_apply_(!apply) {
    state_->num_workers = num_workers;
    state_->apply =
        apply ? std::move(apply) : [](int, const KVPairs<Val>& sum, kv::Store<Val>* store) {
          Status s = kv::AddInto(sum, store);
          CHECK(s.ok()) << s.message();  // the round's sum was checked against the store
        };
  }

  void operator()(const KVMeta& meta, const KVPairs<Val>& data, KVServer<Val>* server) {
    State& st = *state_;
    std::lock_guard<std::mutex> lk(st.mu);
    if (st.num_workers <= 0) st.num_workers = server->get_customer()->postoffice()->num_workers();
    // Under replication each key range has its rounds (a server may be primary for several).
    Rounds& rs = st.by_slice[meta.slice];
    const std::pair<int, int> who(meta.sender, meta.customer_id);
    if (!meta.push) {
      const int need = rs.pushes.count(who) ? rs.pushes[who] : 0;
      if (need <= rs.applied) return Answer(st.store, meta, data.keys, server);
      rs.waiting[need].push_back(Held{meta, data.keys});
      return;
    }
    if (!rs.pushes.count(who) && static_cast<int>(rs.pushes.size()) >= st.num_workers) {
      return server->ResponseError(meta, "synchronous aggregation expects " +
                                             std::to_string(st.num_workers) +
                                             " workers; a push came from another one");
    }
    const int round = rs.pushes[who];
    Round& r = rs.rounds[round];
    // Both the round's sum and the store must take the push: checked before either changes.
    Status s = kv::CheckFits(data, r.sum);
    if (s.ok()) s = kv::CheckFits(data, st.store);
    if (!s.ok()) {
      if (r.held.empty()) rs.rounds.erase(round);
      return server->ResponseError(meta, s.message());
    }
    kv::AddInto(data, &r.sum);
    ++rs.pushes[who];
    r.held.push_back(Held{meta, data.keys});
    // Rounds complete in order: a worker pushes to round r + 1 only after round r.
    while (!rs.rounds.empty() && rs.rounds.begin()->first == rs.applied &&
           static_cast<int>(rs.rounds.begin()->second.held.size()) == st.num_workers) {
      Round done = std::move(rs.rounds.begin()->second);
      rs.rounds.erase(rs.rounds.begin());
      KVPairs<Val> sum = Sum(done.sum);
      st.apply(rs.applied, sum, &st.store);
      ++rs.applied;
      // Replication after aggregation: the replicas get the round's sum once, not each push;
      // the round's answers wait until they hold it.
      std::vector<KVMeta> covered;
      for (const Held& h : done.held) covered.push_back(h.meta);
      server->Replicate(meta.slice, rs.applied - 1, sum, covered);
      for (const Held& h : done.held) Answer(st.store, h.meta, h.keys, server);
      auto w = rs.waiting.find(rs.applied);
      if (w != rs.waiting.end()) {
        for (const Held& h : w->second) Answer(st.store, h.meta, h.keys, server);
        rs.waiting.erase(w);
      }
    }
  }

  // On a replica: applies round "update.cmd" of key range "update.slice", whose sum is "sum",
  // as its primary did; "covered" are the round's pushes (one per worker).
  void ReplicaUpdate(const KVMeta& update, const KVPairs<Val>& sum,
                     const std::vector<KVMeta>& covered, KVServer<Val>*) {
    State& st = *state_;
    std::lock_guard<std::mutex> lk(st.mu);
    Rounds& rs = st.by_slice[update.slice];
    st.apply(rs.applied, sum, &st.store);
    ++rs.applied;
    for (const KVMeta& c : covered) ++rs.pushes[{c.sender, c.customer_id}];
  }

  // The stored values of the keys in "range" (checkpoints; see KVServer). Rounds are not part
  // of the state: a copy is taken between rounds' updates, and the rounds after it count from
  // there.
  KVPairs<Val> Snapshot(const Range& range) const {
    std::lock_guard<std::mutex> lk(state_->mu);
    return state_->store.Read(range.begin(), range.end());
  }
  // Sets the stored values of the keys in "state".
  void Restore(const KVPairs<Val>& state) {
    std::lock_guard<std::mutex> lk(state_->mu);
    Status s = state_->store.Assign(state.keys, state.vals, state.lens);
    CHECK(s.ok()) << s.message();
  }

  // With the default update it never blocks (see KVServer::set_request_handle); with the
  // caller's, it may.
  bool never_blocks() const { return default_apply_; }

  // Rounds applied so far.
  int rounds() const {
    std::lock_guard<std::mutex> lk(state_->mu);
    int most = 0;
    for (const auto& kv : state_->by_slice) most = std::max(most, kv.second.applied);
    return most;
  }
  // The values of "keys" in the store now.
  KVPairs<Val> Read(const SArray<Key>& keys) const {
    std::lock_guard<std::mutex> lk(state_->mu);
    return kv::ReadFrom(state_->store, keys);
  }

 private:
  struct Held {
    KVMeta meta;
    SArray<Key> keys;
  };
  struct Round {
    kv::Store<Val> sum;
    std::vector<Held> held;  // its pushes, answered when it is applied
  };
  struct Rounds {
    int applied = 0;                            // rounds applied
    std::map<std::pair<int, int>, int> pushes;  // worker -> pushes counted
    std::map<int, Round> rounds;                // open rounds
    std::map<int, std::vector<Held>> waiting;   // pulls waiting for "applied" to reach the key
  };
  struct State {
    mutable std::mutex mu;
    // Protected by mu.
    int num_workers = 0;
    Apply apply;
    kv::Store<Val> store;
    std::map<int, Rounds> by_slice;  // key range (-1 without replication) -> its rounds
  };

  static void Answer(const kv::Store<Val>& store, const KVMeta& meta, const SArray<Key>& keys,
                     KVServer<Val>* server) {
    server->Response(meta, meta.pull ? kv::ReadFrom(store, keys) : KVPairs<Val>());
  }

  // The round's sum as key-value pairs: keys sorted, lens when lengths differ.
  static KVPairs<Val> Sum(const kv::Store<Val>& sum) { return sum.Pull(sum.keys()); }

  std::shared_ptr<State> state_;
  bool default_apply_;
};

}  // namespace ps
#endif  // PS_KV_HANDLES_H_
