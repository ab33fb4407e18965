// ReplicaChain is a KVServer's part in chain replication (PS_REPLICATION >= 2; the placement
// and the configuration are in ps/internal/replication.h).
//
// A push goes to its range's primary, which applies it through the request handle. What goes
// down the chain then depends on the handle:
//  - replay (the default): when the handle answers the push, the request itself is forwarded
//    to the next live server of the chain, which applies it through its own handle, and so on;
//    the tail acknowledges to its predecessor, each server acknowledges on, and the primary
//    answers the worker once its successor acknowledged. A deterministic handle (the default
//    one, the demo's) ends up with the same state on every replica.
//  - updates (a handle with a ReplicaUpdate member, as KVServerSyncHandle): the handle sends
//    what it applied itself (Replicate: one aggregated update per round, not every push),
//    naming the pushes it covers; their answers wait for the update's acknowledgement.
// Exactly once: each server records which requests it applied, by (worker, customer,
// timestamp, key range), and forgets them once the worker says it has finished everything
// before a timestamp (Meta::done_below): a request resent after a failover, or forwarded
// again by a new predecessor, is acknowledged (and a push-pull's values read) without being
// applied again.
//
// Thread-safe. The decisions that need the handle (OnRequest, OnForward) run on the server's
// customer thread; answers may come from any thread; acknowledgements and failovers arrive on
// the customer thread and the receiving thread.
#ifndef PS_INTERNAL_REPLICA_CHAIN_H_
#define PS_INTERNAL_REPLICA_CHAIN_H_

#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include "ps/internal/message.h"
#include "ps/kv_pairs.h"
#include "ps/status.h"

namespace ps {

class Postoffice;

class ReplicaChain {
 public:
  // What the server does with a request after OnRequest or OnForward.
  enum class Action {
    kHandle,  // run the handle on it (on the pull-only copy, when it was rewritten to one)
    kDone,    // nothing: answered, or to be answered when the chain acknowledges it
  };

  explicit ReplicaChain(Postoffice* postoffice);

  // A worker's request for a key range (Meta::slice >= 0). May rewrite "msg" into a pull only
  // (a resent push-pull whose push was applied and acknowledged already).
  Action OnRequest(Message* msg);
  // A request forwarded by the predecessor (Meta::kForward). Sets its sender to the worker.
  Action OnForward(Message* msg);
  // Whether the handle's answer "answer" to request "req" waits for the chain: then it is
  // kept, and sent (or turned into an acknowledgement) once the chain holds the push.
  // "updates": the handle replicates its own updates (Replicate) instead of its requests.
  bool OnAnswer(const KVMeta& req, Message* answer, bool updates);
  // An acknowledgement from the successor (Meta::kAck).
  void OnAck(const Message& ack);
  // A replicated update (Meta::kUpdate) from the predecessor: true when it is to be applied
  // (then Applied), false when it was applied already (it is acknowledged again).
  bool OnUpdate(const Message& update);
  void Applied(const Message& update);
  // Sends "update" (data frames and head set) down the chain of key range "slice", covering
  // the pushes "covered": their answers wait for its acknowledgement.
  void Replicate(Message update, int slice, const std::vector<KVMeta>& covered);
  // The configuration changed: what waits on a dead successor goes to the next one.
  void OnFailover();

  // A replacement server's copy of key range "slice" carries what exactly-once needs with the
  // state: the requests and updates of the range whose effect the state holds. CopySeen(slice)
  // gives them (take it with the state's snapshot, on the customer thread: a request whose
  // handle has not answered yet is not in the state, and is left out); LoadSeen adds them here,
  // and fails, changing nothing, on a malformed list.
  std::vector<int> CopySeen(int slice) const;
  // A forwarded request or update (Meta::kForward, kUpdate) that a replacement keeps until it
  // holds its range: acknowledged to the predecessor at once. The configuration does not count a
  // syncing server as a replica, so its acknowledgement adds nothing the chain relies on, and the
  // workers' answers need not wait for the copy. It is applied (and acknowledged again, which
  // the predecessor ignores) once the copy is in.
  void AckHeld(const Message& msg);
  Status LoadSeen(int slice, const std::vector<int>& seen);

  // Requests recorded as applied, and requests waiting for the chain (bookkeeping bounds).
  size_t tracked() const;
  size_t pending() const;

 private:
  struct Id {
    int origin, customer, ts, slice;
    bool operator<(const Id& o) const {
      return std::tie(origin, customer, ts, slice) < std::tie(o.origin, o.customer, o.ts, o.slice);
    }
  };
  static constexpr int kUpdateCustomer = -1;  // the customer of an update's Id
  struct Entry {
    Message request;  // as the handle got it, to forward
    int from = 0;     // who gets the answer (a worker) or the acknowledgement
    bool from_worker = false;
    bool answered = false;   // the handle answered (replay), or the update covering it did
    Message answer;          // for the worker
    int sent_to = 0;         // the successor it went to; 0: not yet
    bool acked = false;      // updates mode: the update covering it was acknowledged
    std::vector<Id> covers;  // an update: the requests waiting for it
  };
  struct Seen {
    int below = 0;                      // every timestamp below is done
    std::set<std::pair<int, int>> ids;  // (timestamp, slice) applied, at or above "below"
  };

  static Id IdOf(const Meta& m, int origin);
  // Records "done_below" of (origin, customer), forgetting what it covers. REQUIRES: mu_.
  void Forget(int origin, int customer, int done_below);
  bool SeenLocked(const Id& id) const;
  void MarkSeenLocked(const Id& id);
  // Forwards entry "id" to the successor of its range, or delivers it at the tail.
  void ForwardLocked(const Id& id, Entry* e);
  // Sends the answer or acknowledgement of "id" and forgets it.
  void DeliverLocked(std::map<Id, Entry>::iterator it);
  void SendAck(int to, const Id& id, const Meta& like);
  // The key of "id" in seen_: the worker's customer, or the key range of an update.
  static std::pair<int, int> SeenKey(const Id& id);
  int Successor(int slice) const;

  Postoffice* const postoffice_;

  mutable std::mutex mu_;  // protects what follows; sends happen under it to keep the order
  std::map<std::pair<int, int>, Seen> seen_;  // (origin, customer) -> applied
  std::map<Id, Entry> pending_;
  int next_update_ = 0;
};

}  // namespace ps
#endif  // PS_INTERNAL_REPLICA_CHAIN_H_
