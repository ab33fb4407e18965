// KVServer, ps-lite's server API: answers the workers' key-value requests with a request handle
// the application writes (ps/kv_handles.h has the built-in ones). Requests are decoded by the
// filters their meta names; responses go through the filters of PS_FILTERS or set_filters.
//
// Threads: the request handle runs on the server's customer thread, one request at a time, in
// priority order (small requests of a handle that never blocks may run on the node's receiving
// thread instead, still one at a time: see set_request_handle); it may answer then (Response)
// or later, from any thread. Requests that arrive
// before the handle is set wait for it. All methods are thread-safe; none blocks, except that a
// request waits up to 30 s for a handle to be set.
//
// Replication (PS_REPLICATION=k >= 2; see ps/internal/replica_chain.h): every key range is held
// by k servers. A handle takes part in one of two ways:
//  - replay (any handle): each push a server applies and answers is forwarded to the next
//    server of its range's chain, which applies it through its own handle. A handle whose
//    state is a function of the pushes it applied (the default handle; any handle that does
//    not read clocks, random numbers or other outside state) is replicated with no change.
//    Pushes of different workers may be applied in different orders on different replicas:
//    the state must not depend on that order (sums do not).
//  - updates: a handle with a member
//      void ReplicaUpdate(const KVMeta& update, const KVPairs<Val>& data,
//                         const std::vector<KVMeta>& covered, KVServer* server)
//    replicates what it applied itself: it calls Replicate(...) with an update that covers
//    some pushes before answering them, and ReplicaUpdate applies such an update on a
//    replica. KVServerSyncHandle does this, once per round (replication after aggregation).
//
// State (checkpoints, and the copy a replacement server fetches from a live replica): a handle
// whose state can be read and set per key range has members
//      KVPairs<Val> Snapshot(const Range& range)   // its keys in range (kv::InRange), sorted,
//                                                 // with their state as values (lens if ragged)
//      void Restore(const KVPairs<Val>& state)     // sets those keys' state (what Snapshot gave)
// set_request_handle detects them (the built-in handles have them); a handle given as a
// function sets them with set_state_handles. Both run on the server's customer thread, between
// requests, so a snapshot is the state after a request and before the next one.
//
// Checkpoints (ps/checkpoint.h): a server writes the state of a key range when a worker's
// KVWorker::Checkpoint asks it to (a SimpleApp request with head checkpoint::kWriteHead, a
// value reserved on KVServer apps). A server whose node resumes from a checkpoint loads the
// keys of every range it holds from it, through its restore handle, before it handles its
// first request; a handle without state, or with values of another type than the checkpoint's,
// then ends the process in one line. The checkpoint is for one app: servers of other app ids
// start empty.
#ifndef PS_KV_SERVER_H_
#define PS_KV_SERVER_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "ps/base.h"
#include "ps/filter.h"
#include "ps/internal/checkpoint_io.h"
#include "ps/internal/filter_chain.h"
#include "ps/internal/replica_chain.h"
#include "ps/internal/replication.h"
#include "ps/kv_pairs.h"
#include "ps/range.h"
#include "ps/simple_app.h"

namespace ps {

template <typename Val>
class KVServer;

namespace kv {
// Whether handle type H replicates its own updates (see KVServer).
template <typename H, typename Val, typename = void>
struct HasReplicaUpdate : std::false_type {};
template <typename H, typename Val>
struct HasReplicaUpdate<
    H, Val,
    std::void_t<decltype(std::declval<H&>().ReplicaUpdate(
        std::declval<const KVMeta&>(), std::declval<const KVPairs<Val>&>(),
        std::declval<const std::vector<KVMeta>&>(), std::declval<KVServer<Val>*>()))>>
    : std::true_type {};
// Whether handle type H can read and set its state per key range (see KVServer).
template <typename H, typename Val, typename = void>
struct HasState : std::false_type {};
template <typename H, typename Val>
struct HasState<
    H, Val,
    std::void_t<decltype(KVPairs<Val>(std::declval<H&>().Snapshot(std::declval<const Range&>()))),
                decltype(std::declval<H&>().Restore(std::declval<const KVPairs<Val>&>()))>>
    : std::true_type {};

// Whether "key" is in server key range "range": [begin, end), and kMaxKey in the last range.
inline bool InRange(Key key, const Range& range) {
  return key >= range.begin() && (key < range.end() || (range.end() == kMaxKey && key == kMaxKey));
}
}  // namespace kv

template <typename Val>
class KVServer : public SimpleApp {
 public:
  using SimpleApp::obj_;
  using ReqHandle =
      std::function<void(const KVMeta& req_meta, const KVPairs<Val>& req_data, KVServer* server)>;
  // Applies a replicated update on a replica (see the top of this file).
  using UpdateHandle = std::function<void(const KVMeta& update, const KVPairs<Val>& data,
                                          const std::vector<KVMeta>& covered, KVServer* server)>;
  // Read and set the handle's state per key range (see the top of this file).
  using SnapshotHandle = std::function<KVPairs<Val>(const Range& range)>;
  using RestoreHandle = std::function<void(const KVPairs<Val>& state)>;

  // "postoffice" is the node the server lives on; null means the default node.
  explicit KVServer(int app_id, Postoffice* postoffice = nullptr)
      : SimpleApp(app_id, postoffice),
        filters_(new FilterChain(postoffice_, "KVServer app " + std::to_string(app_id))) {
    if (postoffice_->replication() > 1) {
      replica_.reset(new ReplicaChain(postoffice_));
    }
    obj_.reset(new Customer(
        app_id, app_id, [this](const Message& msg) { Process(msg); }, postoffice_,
        [this](const Message& msg) { return MayRunHere(msg); }));
    if (replica_) {
      obj_->set_failover_handle([this](int) {
        replica_->OnFailover();
        OfferCopies();
      });
      if (postoffice_->is_recovery()) postoffice_->ExpectCopies(app_id_);
    }
  }

  ~KVServer() override { obj_.reset(); }

  // Sets the handle of key-value requests; it runs on the customer thread, one request at a
  // time, and answers each with Response or ResponseError, then or later, from any thread.
  // Requests that arrive before it is set wait for it.
  // A handle with a ReplicaUpdate member also becomes the update handle (one object serves
  // both). A handle with a never_blocks() method (KVServerDefaultHandle, KVServerSyncHandle)
  // says through it whether it may block (see the two-argument form).
  template <typename H>
  void set_request_handle(const H& request_handle) {
    set_request_handle(request_handle, NeverBlocks(request_handle, 0));
  }

  // The same for a handle that says whether it ever blocks. One that "never_blocks" (it
  // returns soon, waits for nothing, takes no lock held for long) runs small requests (up to
  // kRunHereMaxBytes of data, no filters) on the node's receiving thread when the server's own
  // thread is idle, which saves a thread hand-off per request; larger ones, and every request
  // of a handle that may block, run on the server's thread (so do all requests under
  // replication). A handle still runs one request at a time, in order.
  // A handle with Snapshot and Restore members also becomes the state handle.
  template <typename H>
  void set_request_handle(const H& request_handle, bool never_blocks) {
    if constexpr (kv::HasReplicaUpdate<H, Val>::value || kv::HasState<H, Val>::value) {
      // One object serves every role.
      auto shared = std::make_shared<H>(request_handle);
      std::shared_ptr<UpdateHandle> update;
      if constexpr (kv::HasReplicaUpdate<H, Val>::value) {
        update = std::make_shared<UpdateHandle>(
            [shared](const KVMeta& u, const KVPairs<Val>& d, const std::vector<KVMeta>& c,
                     KVServer* s) { shared->ReplicaUpdate(u, d, c, s); });
      }
      if constexpr (kv::HasState<H, Val>::value) {
        set_state_handles([shared](const Range& r) { return KVPairs<Val>(shared->Snapshot(r)); },
                          [shared](const KVPairs<Val>& st) { shared->Restore(st); });
      }
      SetHandles(std::make_shared<ReqHandle>([shared](const KVMeta& m, const KVPairs<Val>& d,
                                                      KVServer* s) { (*shared)(m, d, s); }),
                 std::move(update), never_blocks);
    } else {
      ReqHandle handle(request_handle);
      CHECK(handle) << "invalid request handle";
      SetHandles(std::make_shared<ReqHandle>(std::move(handle)), nullptr, never_blocks);
    }
  }

  // Sets how the handle's state is read and set per key range (see the top of this file), for
  // a handle given as a function; both run on the server's customer thread. Thread-safe.
  void set_state_handles(SnapshotHandle snapshot, RestoreHandle restore) {
    CHECK(snapshot && restore) << "invalid state handles";
    std::lock_guard<std::mutex> lk(kv_mu_);
    snapshot_ = std::make_shared<SnapshotHandle>(std::move(snapshot));
    restore_ = std::make_shared<RestoreHandle>(std::move(restore));
    kv_cv_.notify_all();  // a resume and a replacement's copy wait for them
  }
  // Whether the handle's state can be read and set (checkpoints, replacement servers).
  bool has_state() const {
    std::lock_guard<std::mutex> lk(kv_mu_);
    return snapshot_ != nullptr;
  }

  // Requests with more data bytes than this run on the server's thread whatever the handle.
  static constexpr size_t kRunHereMaxBytes = 64 << 10;

  // For a handle in updates mode: sends "update" (what the handle applied to key range
  // "slice", with "cmd" for its own use) to the range's replicas; the answers to the pushes
  // "covered" wait until they hold it. Call it before answering them. Without replication,
  // for a request not for a key range (slice < 0), or for a handle replicated by replay (set
  // through a type without ReplicaUpdate), it does nothing.
  void Replicate(int slice, int cmd, const KVPairs<Val>& update,
                 const std::vector<KVMeta>& covered) {
    // A handle that is not in updates mode (wrapped in a lambda, say) is replicated by replay.
    if (!replica_ || slice < 0 || !updates_) return;
    Message msg;
    msg.meta.app_id = app_id_;
    msg.meta.customer_id = app_id_;
    msg.meta.head = cmd;
    msg.meta.push = true;
    msg.AddData(update.keys);
    msg.AddData(update.vals);
    if (!update.lens.empty()) msg.AddData(update.lens);
    replica_->Replicate(std::move(msg), slice, covered);
  }
  // On a replacement server (Postoffice::is_recovery): key ranges copied from live replicas so
  // far, and whether it holds every range it replicates.
  size_t ranges_copied() const {
    std::lock_guard<std::mutex> lk(copy_mu_);
    return copied_.size();
  }
  // Under replication: requests recorded for exactly-once, and pushes waiting for the chain.
  size_t replication_tracked() const { return replica_ ? replica_->tracked() : 0; }
  size_t replication_pending() const { return replica_ ? replica_->pending() : 0; }

  // Answers request "req"; for a pull, "res" holds the values of the requested keys, in order
  // (res.keys is not sent: the worker has them), and res.lens if their lengths differ.
  void Response(const KVMeta& req, const KVPairs<Val>& res = KVPairs<Val>()) {
    Message msg = Answer(req);
    if (req.pull) {
      msg.AddData(res.vals);
      if (!res.lens.empty()) msg.AddData(res.lens);
    }
    filters_->Encode(false, &msg);
    if (replica_ && replica_->OnAnswer(req, &msg, updates_)) return;
    postoffice_->van()->Send(msg);
  }

  // Answers request "req" with an error; the worker's Wait reports "error".
  void ResponseError(const KVMeta& req, const std::string& error) {
    Message msg = Answer(req);
    msg.meta.error = error.empty() ? "error" : error;
    if (replica_ && replica_->OnAnswer(req, &msg, updates_)) return;
    postoffice_->van()->Send(msg);
  }

  // Sets the filters this server's responses go through, in order ("fixed:16,zstd"; "" for
  // none), in place of PS_FILTERS. Fails, changing nothing, on an unknown name, a name listed
  // twice or a bad parameter. Requests are decoded whatever filters they went through.
  // Thread-safe.
  Status set_filters(const std::string& spec) { return filters_->Configure(spec); }
  // What each filter did so far, decoding requests and encoding responses. Thread-safe.
  std::vector<FilterStats> filter_stats() const { return filters_->stats(); }

 private:
  struct Outgoing;  // a copy going out to a replacement (below)

  Message Answer(const KVMeta& req) const {
    Message msg;
    msg.meta.app_id = app_id_;
    msg.meta.customer_id = req.customer_id;
    msg.meta.request = false;
    msg.meta.push = req.push;
    msg.meta.pull = req.pull;
    msg.meta.head = req.cmd;
    msg.meta.timestamp = req.timestamp;
    msg.meta.slice = req.slice;
    msg.meta.recver = req.sender;
    return msg;
  }

  void SetHandles(std::shared_ptr<ReqHandle> request, std::shared_ptr<UpdateHandle> update,
                  bool never_blocks) {
    std::lock_guard<std::mutex> lk(kv_mu_);
    request_handle_ = std::move(request);
    update_handle_ = std::move(update);
    never_blocks_ = never_blocks;
    updates_ = update_handle_ != nullptr;
    kv_cv_.notify_all();
  }

  // The handle's state of the keys in "range" (REQUIRES: has_state()). Customer thread only.
  KVPairs<Val> SnapshotState(const Range& range) {
    std::shared_ptr<SnapshotHandle> snapshot;
    {
      std::lock_guard<std::mutex> lk(kv_mu_);
      snapshot = snapshot_;
    }
    CHECK(snapshot) << "KVServer app " << app_id_ << " has no state handles";
    return (*snapshot)(range);
  }
  // Sets the handle's state of the keys in "state" (REQUIRES: has_state()). Customer thread
  // only.
  void RestoreState(const KVPairs<Val>& state) {
    std::shared_ptr<RestoreHandle> restore;
    {
      std::lock_guard<std::mutex> lk(kv_mu_);
      restore = restore_;
    }
    CHECK(restore) << "KVServer app " << app_id_ << " has no state handles";
    (*restore)(state);
  }

  // Replacement servers (see ps/internal/replication.h). On the receiving thread, after the
  // configuration changed: for each key range whose successor here is a syncing replacement
  // that has no copy from this server yet, the copy is taken on the server's thread (SendCopy),
  // between requests: every request applied before is in it, every one after goes down the
  // chain to the replacement, which already follows this server in the configuration.
  void OfferCopies() {
    Van* van = postoffice_->van();
    if (!van) return;
    const ServerChains chains = van->chains();
    const int me = postoffice_->my_rank();
    std::vector<std::pair<int, int>> todo;  // (range, node id)
    {
      std::lock_guard<std::mutex> lk(copy_mu_);
      for (int s = 0; s < chains.num_servers(); ++s) {
        const int next = chains.Successor(s, me);
        if (next < 0 || !chains.syncing(next) || chains.syncing(me)) {
          offered_.erase(s);  // a syncing server copies once it holds the range itself
          outgoing_.erase(s);
          continue;
        }
        const int id = Postoffice::ServerRankToID(next);
        auto it = offered_.find(s);
        if (it != offered_.end() && it->second == id) continue;
        offered_[s] = id;
        todo.emplace_back(s, id);
      }
    }
    for (const auto& t : todo) {
      Message order;
      order.meta.app_id = app_id_;
      order.meta.customer_id = app_id_;
      order.meta.request = true;
      order.meta.chain = Meta::kCopy;
      order.meta.slice = t.first;
      order.meta.origin = t.second;
      order.meta.sender = van->my_node().id;
      order.meta.recver = order.meta.sender;
      obj_->Accept(order);
    }
  }

  // On the server's thread: sends the copy of key range "slice" to replacement "to": the
  // handle's state of its keys and what exactly-once needs.
  void SendCopy(int slice, int to) {
    Van* van = postoffice_->van();
    const ServerChains chains = van->chains();
    const int me = postoffice_->my_rank();
    if (chains.Successor(slice, me) != Postoffice::IDtoRank(to) ||
        !chains.syncing(Postoffice::IDtoRank(to))) {
      return;  // the configuration moved on
    }
    if (!has_state()) {
      LOG(ERROR) << "KVServer app " << app_id_ << " cannot copy key range " << slice << " to "
                 << van->NodeName(to)
                 << ": its request handle has no Snapshot and Restore (set_state_handles)";
      return;
    }
    Outgoing out;
    out.to = to;
    out.start = std::chrono::steady_clock::now();
    out.state = SnapshotState(postoffice_->GetServerKeyRanges()[slice]);
    out.seen = SArray<int>(replica_->CopySeen(slice));
    // In pieces, a few at a time (the replacement acknowledges each as it arrives): the chain's
    // messages to the replacement, which go on the same connection, never wait behind more than
    // kCopyWindow pieces.
    const size_t n = out.state.keys.size();
    out.pieces = std::max<size_t>(1, (n + kCopyChunkKeys - 1) / kCopyChunkKeys);
    std::lock_guard<std::mutex> lk(copy_mu_);
    Outgoing& o = outgoing_[slice] = std::move(out);
    SendPiecesLocked(slice, &o, kCopyWindow);
  }

  // Sends pieces of outgoing copy "o" (of range "slice") until "upto" were sent, and forgets it
  // once all were. REQUIRES: copy_mu_.
  void SendPiecesLocked(int slice, Outgoing* o, size_t upto) {
    const KVPairs<Val>& state = o->state;
    const size_t n = state.keys.size();
    const size_t width = n && state.lens.empty() ? state.vals.size() / n : 0;
    for (; o->sent < std::min(upto, o->pieces); ++o->sent) {
      const size_t c = o->sent;
      const size_t a = std::min(n, c * kCopyChunkKeys), b = std::min(n, a + kCopyChunkKeys);
      size_t nv = (b - a) * width;
      if (!state.lens.empty()) {
        nv = 0;
        for (size_t i = a; i < b; ++i) nv += static_cast<size_t>(state.lens[i]);
      }
      Message copy;
      copy.meta.app_id = app_id_;
      copy.meta.customer_id = app_id_;
      copy.meta.request = true;
      copy.meta.push = true;
      copy.meta.chain = Meta::kCopy;
      copy.meta.slice = slice;
      copy.meta.head = static_cast<int>(o->pieces);
      copy.meta.timestamp = static_cast<int>(c);
      copy.meta.recver = o->to;
      copy.AddData(state.keys.segment(a, b));
      copy.AddData(state.vals.segment(o->val_at, o->val_at + nv));
      copy.AddData(state.lens.empty() ? SArray<int>() : state.lens.segment(a, b));
      copy.AddData(c == 0 ? o->seen : SArray<int>());
      o->val_at += nv;
      o->bytes += copy.data_bytes();
      postoffice_->van()->Send(copy);
    }
    if (o->sent < o->pieces) return;
    LOG(INFO) << "KVServer app " << app_id_ << " copied key range " << slice << " (" << n
              << " keys, " << (o->bytes >> 10) << " KB) to " << postoffice_->van()->NodeName(o->to)
              << " in "
              << std::chrono::duration<double>(std::chrono::steady_clock::now() - o->start).count()
              << " s";
    outgoing_.erase(slice);
  }

  // The replacement took piece "msg.meta.timestamp" of the copy of range "msg.meta.slice": the
  // next ones go out.
  void OnPieceAck(const Message& msg) {
    std::lock_guard<std::mutex> lk(copy_mu_);
    auto it = outgoing_.find(msg.meta.slice);
    if (it == outgoing_.end() || it->second.to != msg.meta.sender || msg.meta.timestamp < 0) {
      return;  // done, or for a copy given up
    }
    SendPiecesLocked(msg.meta.slice, &it->second,
                     static_cast<size_t>(msg.meta.timestamp) + 1 + kCopyWindow);
  }

  // On a replacement: tells the sender of copy piece "piece" that it arrived.
  void AckPiece(const Message& piece) {
    Message ack;
    ack.meta.app_id = app_id_;
    ack.meta.customer_id = app_id_;
    ack.meta.request = true;
    ack.meta.chain = Meta::kCopy;
    ack.meta.slice = piece.meta.slice;
    ack.meta.timestamp = piece.meta.timestamp;
    ack.meta.recver = piece.meta.sender;
    postoffice_->van()->Send(ack);
  }

  // Keys per message of a copy, and pieces in flight.
  static constexpr size_t kCopyChunkKeys = 1 << 16;
  static constexpr size_t kCopyWindow = 2;

  // On the server's thread of a replacement: takes the copy of a key range, then applies what
  // the chain sent meanwhile (what the copy holds already is recognised and not applied again).
  void ReceiveCopy(const Message& msg) {
    Van* van = postoffice_->van();
    const ServerChains chains = van->chains();
    const int me = postoffice_->my_rank();
    const int s = msg.meta.slice;
    const int from = Postoffice::IDtoRank(msg.meta.sender);
    const auto& types = msg.meta.data_type;
    const int chunks = msg.meta.head, chunk = msg.meta.timestamp;
    std::string bad;
    if (!chains.syncing(me) || !chains.Holds(me, s) || !chains.Holds(from, s) ||
        chains.syncing(from)) {
      bad = "not expected";
    } else if (types.size() != 4 || types[0] != GetDataType<Key>() ||
               types[1] != GetDataType<Val>() || types[2] != INT32 || types[3] != INT32) {
      bad = "its frames are not keys, values, lens, records";
    } else if (chunks < 1 || chunk < 0 || chunk >= chunks) {
      bad = "piece " + std::to_string(chunk) + " of " + std::to_string(chunks);
    }
    KVPairs<Val> state;
    if (bad.empty()) {
      state.keys = SArray<Key>(msg.data[0]);
      state.vals = SArray<Val>(msg.data[1]);
      state.lens = SArray<int>(msg.data[2]);
      if (!state.keys.empty()) {
        Status c = kv::CheckValues(state.keys.size(), state.vals, state.lens);
        if (c.ok()) c = kv::CheckOrder(state.keys);
        if (!c.ok()) bad = c.message();
      }
    }
    {
      std::lock_guard<std::mutex> lk(copy_mu_);
      if (bad.empty() && copied_.count(s)) return;  // a second copy (a predecessor died)
    }
    if (!bad.empty()) {
      LOG(ERROR) << "KVServer app " << app_id_ << " dropped a copy of key range " << s
                 << " from node " << msg.meta.sender << ": " << bad;
      return;
    }
    {
      // Pieces come in order from one predecessor; a new predecessor's copy starts over (it
      // holds everything the old one did: keys are replaced, records added).
      std::lock_guard<std::mutex> lk(copy_mu_);
      Pieces& p = pieces_[s];
      if (p.from != msg.meta.sender || chunk == 0) p = Pieces{msg.meta.sender, 0};
      if (chunk != p.received) {
        LOG(ERROR) << "KVServer app " << app_id_ << " dropped piece " << chunk
                   << " of the copy of key range " << s << ": piece " << p.received << " was next";
        return;
      }
    }
    SArray<int> seen(msg.data[3]);
    Status loaded = replica_->LoadSeen(s, std::vector<int>(seen.begin(), seen.end()));
    if (!loaded.ok()) {
      LOG(ERROR) << "KVServer app " << app_id_ << " dropped a copy: " << loaded.message();
      return;
    }
    {
      std::unique_lock<std::mutex> lk(kv_mu_);
      kv_cv_.wait_for(lk, std::chrono::seconds(30), [&] { return restore_ != nullptr; });
    }
    if (!has_state()) {
      LOG(ERROR) << "KVServer app " << app_id_ << " cannot take the copy of key range " << s
                 << ": its request handle has no Snapshot and Restore (set_state_handles)";
      return;
    }
    RestoreState(state);
    std::vector<Message> held;
    bool all = true;
    {
      std::lock_guard<std::mutex> lk(copy_mu_);
      if (++pieces_[s].received < chunks) return;
      pieces_.erase(s);
      copied_.insert(s);
      held.swap(held_[s]);
      held_.erase(s);
      for (int r = 0; r < chains.num_servers(); ++r)
        all = all && (!chains.Holds(me, r) || copied_.count(r));
      copied_all_ = all;
    }
    if (postoffice_->verbose() >= 1) {
      LOG(INFO) << "KVServer app " << app_id_ << " holds key range " << s << " ("
                << state.keys.size() << " keys) from " << van->NodeName(msg.meta.sender) << "; "
                << held.size() << " requests came meanwhile";
    }
    for (const Message& m : held) Process(m);
    if (all) {
      postoffice_->ExpectCopies(app_id_);
      postoffice_->CopiesDone(app_id_);
    }
  }

  // Whether chain message "msg" waits for the copy of its key range: on a replacement that
  // does not hold the range yet. REQUIRES: copy_mu_.
  bool WaitsForCopyLocked(const Message& msg) const {
    return (msg.meta.chain == Meta::kForward || msg.meta.chain == Meta::kUpdate) &&
           postoffice_->is_recovery() && !copied_all_ && !copied_.count(msg.meta.slice);
  }
  // Keeps "msg" for when its range's copy is in, if it waits for it (on the server's thread).
  // It was acknowledged when it was received (AckIfWaits); one that came another way (kept
  // for the app before it existed) is acknowledged now too.
  bool HoldForCopy(const Message& msg) {
    std::lock_guard<std::mutex> lk(copy_mu_);
    if (!WaitsForCopyLocked(msg)) return false;
    held_[msg.meta.slice].push_back(msg);
    replica_->AckHeld(msg);  // a second acknowledgement is ignored
    return true;
  }
  // On the receiving thread, as a request arrives: a chain message that will wait for its
  // range's copy is acknowledged at once (ReplicaChain::AckHeld), not behind the copy's pieces
  // in the server's queue.
  void AckIfWaits(const Message& msg) {
    if (!postoffice_->is_recovery()) return;  // the common case: no lock per request
    if (msg.meta.chain == Meta::kCopy && !msg.data.empty()) return AckPiece(msg);
    {
      std::lock_guard<std::mutex> lk(copy_mu_);
      if (!WaitsForCopyLocked(msg)) return;
    }
    replica_->AckHeld(msg);
  }

  // A replicated update from the predecessor: applied through the update handle.
  void ProcessUpdate(const Message& msg) {
    if (!replica_->OnUpdate(msg)) return;
    const auto& types = msg.meta.data_type;
    KVPairs<Val> data;
    if (types.size() < 2 || types.size() > 3 || types[0] != GetDataType<Key>() ||
        types[1] != GetDataType<Val>() || (types.size() == 3 && types[2] != INT32)) {
      LOG(ERROR) << "dropped a malformed replicated update from node " << msg.meta.sender;
      return;
    }
    data.keys = SArray<Key>(msg.data[0]);
    data.vals = SArray<Val>(msg.data[1]);
    if (types.size() == 3) data.lens = SArray<int>(msg.data[2]);
    std::vector<KVMeta> covered;
    const auto& c = msg.meta.covered;
    for (size_t i = 0; i + 4 < c.size(); i += 5) {
      covered.push_back(KVMeta{0, true, false, c[i], c[i + 2], c[i + 1], c[i + 3]});
    }
    KVMeta update{msg.meta.head,        true,          false, msg.meta.origin, msg.meta.timestamp,
                  msg.meta.customer_id, msg.meta.slice};
    std::shared_ptr<UpdateHandle> handle;
    {
      std::unique_lock<std::mutex> lk(kv_mu_);
      kv_cv_.wait_for(lk, std::chrono::seconds(30), [&] { return update_handle_ != nullptr; });
      handle = update_handle_;
    }
    if (!handle) {
      LOG(ERROR) << "KVServer app " << app_id_
                 << " got a replicated update but its handle takes no updates (ReplicaUpdate)";
      return;
    }
    (*handle)(update, data, covered, this);
    replica_->Applied(msg);
  }

  // Reads a request's frames: keys, then values and lens for a push.
  static Status ParseRequest(const Message& msg, KVPairs<Val>* kv) {
    const auto& types = msg.meta.data_type;
    const size_t want = msg.meta.push ? 2 : 1;
    if (types.size() < want || types.size() > want + (msg.meta.push ? 1 : 0) ||
        types[0] != GetDataType<Key>() || (msg.meta.push && types[1] != GetDataType<Val>()) ||
        (types.size() == 3 && types[2] != INT32)) {
      return Status::InvalidArgument("malformed request: its frames are not keys" +
                                     std::string(msg.meta.push ? ", values [, lens]" : ""));
    }
    kv->keys = SArray<Key>(msg.data[0]);
    if (kv->keys.empty()) return Status::InvalidArgument("malformed request: no keys");
    if (!msg.meta.push) return Status::OK();
    kv->vals = SArray<Val>(msg.data[1]);
    if (types.size() == 3) kv->lens = SArray<int>(msg.data[2]);
    return kv::CheckValues(kv->keys.size(), kv->vals, kv->lens);
  }

  // Whether this server loads checkpoint "info" (one of its app, written by KVWorkers).
  bool ResumesFrom(const std::optional<CheckpointInfo>& info) const {
    return info && info->kind == "kv" && info->app_id == app_id_;
  }

  // Loads the checkpoint the node resumes from, if any, once, before the first request is
  // handled (see the top of this file). Customer thread only.
  void Resume() {
    if (postoffice_->is_recovery()) {
      resumed_ = true;  // a replacement server takes its ranges from live replicas instead
      return;
    }
    std::optional<CheckpointInfo> info;
    Status s = postoffice_->ResumeCheckpoint(&info);
    if (s.ok() && ResumesFrom(info)) s = LoadCheckpoint(*info);
    if (!s.ok()) postoffice_->Die(s);
    resumed_ = true;
  }

  // Restores the keys of the ranges this server holds from every file of checkpoint "info".
  Status LoadCheckpoint(const CheckpointInfo& info) {
    const auto start = std::chrono::steady_clock::now();
    std::shared_ptr<RestoreHandle> restore;
    {
      std::unique_lock<std::mutex> lk(kv_mu_);
      kv_cv_.wait_for(lk, std::chrono::seconds(30), [&] { return restore_ != nullptr; });
      restore = restore_;
    }
    const std::string name = "KVServer app " + std::to_string(app_id_);
    if (!restore) {
      return Status::InvalidArgument(name +
                                     " has no state handles (Snapshot and Restore), so "
                                     "it cannot resume from checkpoint " +
                                     info.path);
    }
    if (info.val_type != GetDataType<Val>()) {
      return Status::InvalidArgument("checkpoint " + info.path + "/MANIFEST holds values of type " +
                                     std::to_string(info.val_type) + ", but " + name +
                                     " has values of type " + std::to_string(GetDataType<Val>()) +
                                     " (a checkpoint of another program)");
    }
    const std::vector<Range>& ranges = postoffice_->GetServerKeyRanges();
    const int rank = postoffice_->my_rank();
    ServerChains chains(static_cast<int>(ranges.size()), postoffice_->replication());
    std::vector<Range> held;
    for (size_t r = 0; r < ranges.size(); ++r) {
      if (chains.Holds(rank, static_cast<int>(r))) held.push_back(ranges[r]);
    }
    auto is_held = [&](Key k) {
      for (const Range& r : held) {
        if (kv::InRange(k, r)) return true;
      }
      return false;
    };
    size_t restored = 0;
    for (const CheckpointFile& f : info.files) {
      checkpoint::RangeHeader h;
      SArray<char> keys, vals;
      SArray<int> lens;
      Status s = checkpoint::ReadRange(info, f, &h, &keys, &vals, &lens);
      if (!s.ok()) return s;
      KVPairs<Val> all;
      all.keys = SArray<Key>(keys);
      all.vals = SArray<Val>(vals);
      all.lens = lens;
      if (all.keys.empty()) continue;
      s = kv::CheckValues(all.keys.size(), all.vals, all.lens);
      if (!s.ok())
        return Status::IOError("checkpoint " + info.path + "/" + f.name + ": " + s.message());
      // The whole file when it lies in one held range (the same servers as when it was
      // written): no copy. Otherwise the keys of the held ranges, re-split.
      bool whole = false;
      for (const Range& r : held) {
        whole |= kv::InRange(all.keys[0], r) && kv::InRange(all.keys.back(), r);
      }
      KVPairs<Val> mine;
      if (whole) {
        mine = all;
      } else {
        std::vector<Key> k;
        std::vector<Val> v;
        std::vector<int> l;
        const size_t width = all.lens.empty() ? all.vals.size() / all.keys.size() : 0;
        size_t at = 0;
        for (size_t i = 0; i < all.keys.size(); ++i) {
          const size_t len = all.lens.empty() ? width : static_cast<size_t>(all.lens[i]);
          if (is_held(all.keys[i])) {
            k.push_back(all.keys[i]);
            v.insert(v.end(), all.vals.begin() + at, all.vals.begin() + at + len);
            l.push_back(static_cast<int>(len));
          }
          at += len;
        }
        if (k.empty()) continue;
        mine.keys = SArray<Key>(k);
        mine.vals = SArray<Val>(v);
        if (!all.lens.empty()) mine.lens = SArray<int>(l);
      }
      (*restore)(mine);
      restored += mine.keys.size();
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    LOG(INFO) << "server " << rank << " restored " << restored << " keys of " << held.size()
              << " key range(s) from checkpoint " << info.path << " (step " << info.step << ") in "
              << secs << " s";
    return Status::OK();
  }

  // Writes the state of a key range to its checkpoint file (a request of KVWorker::Checkpoint:
  // body "<step> <range>") and answers with the file's bytes and checksum.
  void WriteCheckpoint(const Message& req) {
    Message res;
    res.meta.head = req.meta.head;
    res.meta.timestamp = req.meta.timestamp;
    res.meta.request = false;
    res.meta.simple_app = true;
    res.meta.app_id = app_id_;
    res.meta.customer_id = req.meta.customer_id;
    res.meta.recver = req.meta.sender;
    const CheckpointConfig config = postoffice_->checkpoint_config();
    const std::vector<Range>& ranges = postoffice_->GetServerKeyRanges();
    std::istringstream in(req.meta.body);
    long step = -1, range = -1;
    const std::string me = "server " + std::to_string(postoffice_->my_rank());
    if (!(in >> step >> range) || step < 0 || range < 0 ||
        range >= static_cast<long>(ranges.size())) {
      res.meta.error = me + ": malformed checkpoint request '" + req.meta.body + "'";
    } else if (config.dir.empty()) {
      res.meta.error = me + " has no PS_CHECKPOINT_DIR";
    } else if (!has_state()) {
      res.meta.error = me + ": KVServer app " + std::to_string(app_id_) +
                       " has no state handles (Snapshot and Restore) to checkpoint";
    } else {
      const Range& r = ranges[static_cast<size_t>(range)];
      KVPairs<Val> st = SnapshotState(r);
      checkpoint::RangeHeader h;
      h.key_bytes = sizeof(Key);
      h.val_type = GetDataType<Val>();
      h.begin = r.begin();
      h.end = r.end();
      h.num_keys = st.keys.size();
      h.num_vals = st.vals.size();
      h.has_lens = !st.lens.empty();
      CheckpointFile f;
      Status s = checkpoint::WriteRange(checkpoint::StepPath(config.dir, static_cast<int>(step)) +
                                            "/range-" + std::to_string(range),
                                        h, st.keys.data(), st.vals.data(), st.lens.data(), &f);
      if (s.ok()) {
        std::ostringstream os;
        os << f.bytes << " " << std::hex << f.checksum;
        res.meta.body = os.str();
      } else {
        res.meta.error = me + ": " + s.message();
      }
    }
    postoffice_->van()->Send(res);
  }

  void Process(const Message& in) {
    const bool write =
        in.meta.simple_app && in.meta.request && in.meta.head == checkpoint::kWriteHead;
    if (in.meta.simple_app && !write) return SimpleApp::Process(in);
    if (!resumed_) Resume();
    if (write) return WriteCheckpoint(in);
    Message copy;  // a request the replication rewrote
    const Message* mp = &in;
    if (replica_ && in.meta.chain == Meta::kAck) return replica_->OnAck(in);
    if (replica_ && in.meta.chain == Meta::kCopy) {
      // An order from this server itself (OfferCopies), the acknowledgement of a piece, or a
      // piece of a copy from a predecessor.
      if (in.data.empty() && in.meta.sender == postoffice_->van()->my_node().id) {
        return SendCopy(in.meta.slice, in.meta.origin);
      }
      if (in.data.empty()) return OnPieceAck(in);
      AckPiece(in);  // again: one that waited for the app was not acknowledged on arrival
      return ReceiveCopy(in);
    }
    if (replica_ && HoldForCopy(in)) return;
    if (replica_ && in.meta.chain == Meta::kUpdate) return ProcessUpdate(in);
    if (replica_ && (in.meta.chain == Meta::kForward || in.meta.slice >= 0)) {
      copy = in;
      if (!copy.meta.filters.empty()) {
        // Replicas get requests decoded: they need no filter state of the worker's.
        std::string filter, error;
        FilterResult r = filters_->Decode(&copy, &filter, &error);
        if (r != FilterResult::kOk) copy = in;  // answered below, as without replication
      }
      if (copy.meta.filters.empty()) {
        ReplicaChain::Action a = in.meta.chain == Meta::kForward ? replica_->OnForward(&copy)
                                                                 : replica_->OnRequest(&copy);
        if (a == ReplicaChain::Action::kDone) return;
      }
      mp = &copy;
    }
    const Message& msg = *mp;
    KVMeta meta{msg.meta.head,      msg.meta.push,        msg.meta.pull, msg.meta.sender,
                msg.meta.timestamp, msg.meta.customer_id, msg.meta.slice};
    Message decoded;
    const Message* m = &msg;
    if (!msg.meta.filters.empty()) {
      decoded = msg;
      std::string filter, error;
      FilterResult r = filters_->Decode(&decoded, &filter, &error);
      if (r == FilterResult::kMiss) {
        // Not handled: the worker sends the request again in full, and it is handled then.
        Message notice = FilterChain::MissNotice(msg, filter);
        postoffice_->van()->Send(notice);
        return;
      }
      // Dropped (and counted); the answer tells the worker, whose Wait would hang otherwise.
      if (r == FilterResult::kMalformed) return ResponseError(meta, "malformed request: " + error);
      m = &decoded;
    }
    KVPairs<Val> data;
    data.priority = msg.meta.priority;
    Status s = ParseRequest(*m, &data);
    if (!s.ok()) return ResponseError(meta, s.message());
    // Shared, not copied: a handle with state (a store) must see every request.
    std::shared_ptr<ReqHandle> handle;
    {
      std::unique_lock<std::mutex> lk(kv_mu_);
      kv_cv_.wait_for(lk, std::chrono::seconds(30), [&] { return request_handle_ != nullptr; });
      handle = request_handle_;
    }
    if (!handle) {
      return ResponseError(meta, "KVServer app " + std::to_string(app_id_) +
                                     " has no request handle (set_request_handle)");
    }
    (*handle)(meta, data, this);
  }

  template <typename Handle>
  static auto NeverBlocks(const Handle& h, int) -> decltype(bool(h.never_blocks())) {
    return h.never_blocks();
  }
  template <typename Handle>
  static bool NeverBlocks(const Handle&, long) {
    return false;
  }

  // Whether request "msg" may run on the receiving thread (Customer::RunHere).
  bool MayRunHere(const Message& msg) {
    // Replicated requests wait on the chain (and an update may wait for its handle): they
    // stay on the server's thread.
    if (replica_) {
      AckIfWaits(msg);
      return false;
    }
    if (msg.meta.simple_app || !msg.meta.filters.empty()) return false;
    if (!resumed_) {
      // Nothing to load (known since Start: no I/O here) means no wait for the server's thread.
      std::optional<CheckpointInfo> info;
      if (!postoffice_->ResumeCheckpoint(&info).ok() || ResumesFrom(info)) return false;
      resumed_ = true;
    }
    size_t bytes = 0;
    for (const auto& d : msg.data) bytes += d.size();
    if (bytes > kRunHereMaxBytes) return false;
    std::lock_guard<std::mutex> lk(kv_mu_);
    return request_handle_ && never_blocks_;
  }

  const std::unique_ptr<FilterChain> filters_;  // constant after construction; thread-safe

  // Under replication; constant after construction.
  std::unique_ptr<ReplicaChain> replica_;

  mutable std::mutex kv_mu_;
  std::condition_variable kv_cv_;
  // Protected by kv_mu_.
  std::shared_ptr<ReqHandle> request_handle_;
  std::shared_ptr<UpdateHandle> update_handle_;
  std::shared_ptr<SnapshotHandle> snapshot_;
  std::shared_ptr<RestoreHandle> restore_;

  // Replacement servers; protected by copy_mu_.
  mutable std::mutex copy_mu_;
  std::map<int, int> offered_;                // range -> the replacement this server copies to
  std::set<int> copied_;                      // ranges held from a copy (on a replacement)
  bool copied_all_ = false;                   // every range this replacement replicates
  std::map<int, std::vector<Message>> held_;  // range -> chain messages waiting for its copy
  struct Pieces {
    int from = 0;      // the predecessor sending them
    int received = 0;  // pieces taken so far
  };
  std::map<int, Pieces> pieces_;  // range -> the copy coming in
  struct Outgoing {
    int to = 0;  // the replacement
    std::chrono::steady_clock::time_point start;
    KVPairs<Val> state;  // the snapshot
    SArray<int> seen;    // its exactly-once records
    size_t pieces = 0, sent = 0, val_at = 0, bytes = 0;
  };
  std::map<int, Outgoing> outgoing_;  // range -> the copy going out
  bool never_blocks_ = false;
  std::atomic<bool> updates_{false};  // update_handle_ is set
  // The checkpoint to resume from, if any, is loaded (set once, on the customer thread).
  std::atomic<bool> resumed_{false};
};

}  // namespace ps
#endif  // PS_KV_SERVER_H_
