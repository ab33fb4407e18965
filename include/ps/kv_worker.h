// KVWorker, ps-lite's worker API: pushes values for sorted keys to the servers and pulls them
// back. Keys are split over the servers by key range (Postoffice::GetServerKeyRanges;
// set_slicer replaces the split). Values are either k per key (vals.size() a multiple of
// keys.size()) or given per key by lens. Pull responses carry values only: the worker already
// has the keys. Filters (ps/filter.h): requests go through the filters of PS_FILTERS or of
// set_filters; a key filter (set_key_filter) leaves keys out of requests altogether.
//
// What blocks: a call returns its timestamp without waiting for the servers, unless the
// consistency model holds it back until earlier requests finished (sequential and bounded
// delay; see ps/consistency.h): a fast worker cannot run ahead. Wait(timestamp) blocks until
// every server involved answered and the outputs and callback are done.
//
// Threads: callbacks run on the thread that receives the answer: the node's van thread, or a
// thread blocked in Wait, which takes answers off the socket itself to save a thread switch.
// A callback must not Wait (that is an error, not a hang); it may issue requests (they are
// queued behind what the model says they follow, not held back) and construct or destroy
// other apps. All methods are thread-safe.
#ifndef PS_KV_WORKER_H_
#define PS_KV_WORKER_H_

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "ps/base.h"
#include "ps/consistency.h"
#include "ps/filter.h"
#include "ps/internal/checkpoint_io.h"
#include "ps/internal/filter_chain.h"
#include "ps/kv_pairs.h"
#include "ps/simple_app.h"

namespace ps {

namespace kv {
// At Finalize, with PS_VERBOSE>=1: what the consistency model did to the worker of "customer".
void ReportAtExit(Customer* customer);
}  // namespace kv

template <typename Val>
class KVWorker : public SimpleApp {
 public:
  using SimpleApp::obj_;
  // Runs on the receiving thread once every server answered, before Wait returns.
  using Callback = std::function<void()>;
  // For each server rank: whether it gets anything, and what.
  using SlicedKVs = std::vector<std::pair<bool, KVPairs<Val>>>;
  using Slicer = std::function<void(const KVPairs<Val>& send, const std::vector<Range>& ranges,
                                    SlicedKVs* sliced)>;
  // Whether a request sends "key": in a push with its "len" values "vals", in a pull with
  // vals null and len 0.
  using KeyFilter = std::function<bool(Key key, const Val* vals, size_t len)>;

  // "postoffice" is the node the worker lives on; null means the default node.
  // REQUIRES: the node is a worker; (app_id, customer_id) unique on it.
  explicit KVWorker(int app_id, int customer_id, Postoffice* postoffice = nullptr)
      : SimpleApp(app_id, postoffice),
        filters_(new FilterChain(postoffice_, "KVWorker app " + std::to_string(app_id) +
                                                  " customer " + std::to_string(customer_id))),
        slicer_(std::make_shared<Slicer>(DefaultSlicer)),
        replicated_(postoffice_->replication() > 1) {
    obj_.reset(new Customer(
        app_id, customer_id, [this](const Message& msg) { Process(msg); }, postoffice_));
    // A dead server's ranges have new primaries: what it did not answer goes to them.
    if (replicated_) {
      obj_->set_failover_handle([this](int dead) {
        if (dead != Node::kEmpty) Resend(dead);  // a replacement joining changes no primary
      });
    }
    if (const char* spec = postoffice_->env()->find("PS_CONSISTENCY")) {
      Consistency c;
      // A bad value already failed Start (or will): the worker stays eventual meanwhile.
      if (Consistency::Parse(spec, &c).ok()) obj_->set_consistency(c);
    }
    if (postoffice_->verbose() >= 1) kv::ReportAtExit(obj_.get());
  }

  ~KVWorker() override { obj_.reset(); }

  // Pushes "vals" for "keys" (copied first: the vectors may be reused at once).
  int Push(const std::vector<Key>& keys, const std::vector<Val>& vals,
           const std::vector<int>& lens = {}, int cmd = 0, const Callback& cb = nullptr,
           int priority = 0) {
    return Push(keys, vals, lens, Options(cmd, cb, priority));
  }
  int Push(const std::vector<Key>& keys, const std::vector<Val>& vals, const std::vector<int>& lens,
           const TaskOptions& opts) {
    return ZPush(SArray<Key>(keys), SArray<Val>(vals), SArray<int>(lens), opts);
  }
  // A template only so that Push(keys, vals, {}) still means empty lens.
  template <typename O, typename = std::enable_if_t<std::is_same<O, TaskOptions>::value>>
  int Push(const std::vector<Key>& keys, const std::vector<Val>& vals, const O& opts) {
    return Push(keys, vals, std::vector<int>(), opts);
  }

  // Pulls the values of "keys" into "vals" (and their lengths into "lens", if given). The
  // outputs are filled and sized when Wait returns or the callback runs; an output that is not
  // empty must already have the right size. They must stay alive until then.
  int Pull(const std::vector<Key>& keys, std::vector<Val>* vals, std::vector<int>* lens = nullptr,
           int cmd = 0, const Callback& cb = nullptr, int priority = 0) {
    return Pull(keys, vals, lens, Options(cmd, cb, priority));
  }
  int Pull(const std::vector<Key>& keys, std::vector<Val>* vals, std::vector<int>* lens,
           const TaskOptions& opts) {
    return Send(SArray<Key>(keys), nullptr, SArray<int>(), true, vals, lens, opts);
  }
  int Pull(const std::vector<Key>& keys, std::vector<Val>* vals, const TaskOptions& opts) {
    return Pull(keys, vals, nullptr, opts);
  }

  // Pushes "vals" and pulls the values after the push into "outs", in one round trip.
  int PushPull(const std::vector<Key>& keys, const std::vector<Val>& vals, std::vector<Val>* outs,
               std::vector<int>* lens = nullptr, int cmd = 0, const Callback& cb = nullptr,
               int priority = 0) {
    return PushPull(keys, vals, outs, lens, Options(cmd, cb, priority));
  }
  int PushPull(const std::vector<Key>& keys, const std::vector<Val>& vals, std::vector<Val>* outs,
               std::vector<int>* lens, const TaskOptions& opts) {
    SArray<Val> v(vals);
    return Send(SArray<Key>(keys), &v, SArray<int>(), true, outs, lens, opts);
  }
  int PushPull(const std::vector<Key>& keys, const std::vector<Val>& vals, std::vector<Val>* outs,
               const TaskOptions& opts) {
    return PushPull(keys, vals, outs, nullptr, opts);
  }

  // Zero-copy forms: the arrays are sent as they are and must not change until Wait returns.
  int ZPush(const SArray<Key>& keys, const SArray<Val>& vals, const SArray<int>& lens = {},
            int cmd = 0, const Callback& cb = nullptr, int priority = 0) {
    return ZPush(keys, vals, lens, Options(cmd, cb, priority));
  }
  int ZPush(const SArray<Key>& keys, const SArray<Val>& vals, const SArray<int>& lens,
            const TaskOptions& opts) {
    return Send(keys, &vals, lens, false, static_cast<SArray<Val>*>(nullptr),
                static_cast<SArray<int>*>(nullptr), opts);
  }
  template <typename O, typename = std::enable_if_t<std::is_same<O, TaskOptions>::value>>
  int ZPush(const SArray<Key>& keys, const SArray<Val>& vals, const O& opts) {
    return ZPush(keys, vals, SArray<int>(), opts);
  }

  // Pulls into "vals"; when it is empty and one server holds all the keys, the received buffer
  // is handed over without a copy.
  int ZPull(const SArray<Key>& keys, SArray<Val>* vals, SArray<int>* lens = nullptr, int cmd = 0,
            const Callback& cb = nullptr, int priority = 0) {
    return ZPull(keys, vals, lens, Options(cmd, cb, priority));
  }
  int ZPull(const SArray<Key>& keys, SArray<Val>* vals, SArray<int>* lens,
            const TaskOptions& opts) {
    return Send(keys, nullptr, SArray<int>(), true, vals, lens, opts);
  }
  int ZPull(const SArray<Key>& keys, SArray<Val>* vals, const TaskOptions& opts) {
    return ZPull(keys, vals, nullptr, opts);
  }

  int ZPushPull(const SArray<Key>& keys, const SArray<Val>& vals, SArray<Val>* outs,
                SArray<int>* lens = nullptr, int cmd = 0, const Callback& cb = nullptr,
                int priority = 0) {
    return ZPushPull(keys, vals, outs, lens, Options(cmd, cb, priority));
  }
  int ZPushPull(const SArray<Key>& keys, const SArray<Val>& vals, SArray<Val>* outs,
                SArray<int>* lens, const TaskOptions& opts) {
    return Send(keys, &vals, SArray<int>(), true, outs, lens, opts);
  }
  int ZPushPull(const SArray<Key>& keys, const SArray<Val>& vals, SArray<Val>* outs,
                const TaskOptions& opts) {
    return ZPushPull(keys, vals, outs, nullptr, opts);
  }

  // Sets how this worker orders its requests from now on (see ps/consistency.h), in place of
  // PS_CONSISTENCY. Thread-safe; callers held back by the old model are re-checked.
  void set_consistency(const Consistency& consistency) { obj_->set_consistency(consistency); }
  Consistency consistency() { return obj_->consistency(); }
  // The most requests in flight, and the time calls spent held back, so far. Thread-safe.
  ConsistencyStats consistency_stats() const { return obj_->consistency_stats(); }

  // Blocks until request "timestamp" finished. On a failure (bad arguments, a dead server, a
  // server's error answer) reports it and ends the process; TryWait returns it instead.
  // REQUIRES: not on this worker's customer thread.
  void Wait(int timestamp) override {
    Status s = TryWait(timestamp);
    if (!s.ok()) postoffice_->Die(s);
  }
  Status TryWait(int timestamp) { return obj_->TryWaitRequest(timestamp); }

  // Writes a checkpoint of the servers' state at "step", with "app_state" (the application's
  // own small state: its iteration, its options) in its manifest; see ps/checkpoint.h. Every
  // worker calls it with the same step, once its requests of that step finished (Wait); it
  // blocks until the checkpoint is complete, and returns at once when PS_CHECKPOINT_DIR is
  // not set or PS_CHECKPOINT_EVERY does not divide "step". The app state of worker 0
  // (customer 0) is the one kept. On a failure (a dead node, a server that cannot write its
  // file) reports it and ends the process; TryCheckpoint returns it instead, and the job can
  // go on without that checkpoint. The servers' handles need state (Snapshot and Restore).
  // The checkpoint holds the keys of each default key range (Postoffice::GetServerKeyRanges);
  // a slicer that sends keys elsewhere (set_slicer) is not supported.
  // REQUIRES: not on this worker's customer thread; step >= 0.
  void Checkpoint(int step, const std::string& app_state = "") {
    Status s = TryCheckpoint(step, app_state);
    if (!s.ok()) postoffice_->Die(s);
  }
  Status TryCheckpoint(int step, const std::string& app_state = "") {
    const CheckpointConfig config = postoffice_->checkpoint_config();
    if (config.dir.empty() || step < 0 || step % config.every != 0) return Status::OK();
    const int customer = obj_->customer_id();
    // Every worker finished its requests of "step": the servers hold the cut.
    Status s = postoffice_->TryBarrier(customer, kWorkerGroup);
    if (!s.ok()) return s;
    Status w;
    if (postoffice_->my_rank() == 0 && customer == 0) w = WriteCheckpoint(config, step, app_state);
    // No worker pushes for the next step before every range was written.
    s = postoffice_->TryBarrier(customer, kWorkerGroup);
    return w.ok() ? s : w;
  }

  // Replaces how keys are split over the servers. REQUIRES: no request in flight.
  void set_slicer(const Slicer& slicer) {
    CHECK(slicer) << "invalid slicer";
    std::lock_guard<std::mutex> lk(mu_);
    slicer_ = std::make_shared<Slicer>(slicer);
  }

  // Sets the filters this worker's requests go through, in order ("key_cache,fixed:16,zstd";
  // "" for none), in place of PS_FILTERS. Fails, changing nothing, on an unknown name, a name
  // listed twice or a bad parameter. Responses are decoded whatever filters they went through.
  // Thread-safe; requests already sent are not affected.
  Status set_filters(const std::string& spec) { return filters_->Configure(spec); }
  // What each filter did so far, encoding requests and decoding responses. Thread-safe.
  std::vector<FilterStats> filter_stats() const { return filters_->stats(); }

  // Sets a predicate that decides which keys a request sends (KKTFilter is one): a push sends
  // the keys it accepts with their values, a pull asks for the keys it accepts only. A key left
  // out of a pull reads as zeros, as many as each pulled key has (one when they differ or no
  // key is pulled), like a key a server never saw; the outputs keep the size of the whole key
  // list. It runs on the thread that calls Push or Pull, once per key. Null sends every key.
  // Thread-safe; requests already sent are not affected.
  void set_key_filter(const KeyFilter& filter) {
    std::lock_guard<std::mutex> lk(mu_);
    key_filter_ = filter ? std::make_shared<KeyFilter>(filter) : nullptr;
  }

  // Requests whose responses are not all in, and failures not waited for (bookkeeping check).
  size_t pending_requests() { return obj_->pending_size(); }

  // The default split: server i gets the keys in ranges[i] (the last range includes its end),
  // with their values. Segments share the buffers of "send": nothing is copied.
  static void DefaultSlicer(const KVPairs<Val>& send, const std::vector<Range>& ranges,
                            SlicedKVs* sliced) {
    const size_t num = ranges.size();
    const size_t n = send.keys.size();
    sliced->assign(num, std::make_pair(false, KVPairs<Val>()));
    std::vector<size_t> pos(num + 1, n);
    pos[0] = 0;
    for (size_t i = 1; i < num; ++i) {
      pos[i] = std::lower_bound(send.keys.begin() + pos[i - 1], send.keys.end(),
                                static_cast<Key>(ranges[i].begin())) -
               send.keys.begin();
    }
    const bool has_lens = !send.lens.empty();
    const size_t k = !has_lens && n ? send.vals.size() / n : 0;
    size_t val_pos = 0;
    for (size_t i = 0; i < num; ++i) {
      size_t kb = pos[i], ke = pos[i + 1];
      if (kb == ke) continue;
      KVPairs<Val>& kv = (*sliced)[i].second;
      (*sliced)[i].first = true;
      kv.keys = send.keys.segment(kb, ke);
      if (has_lens) {
        kv.lens = send.lens.segment(kb, ke);
        size_t len = 0;
        for (int l : kv.lens) len += static_cast<size_t>(l);
        kv.vals = send.vals.segment(val_pos, val_pos + len);
        val_pos += len;
      } else if (!send.vals.empty()) {
        kv.vals = send.vals.segment(kb * k, ke * k);
      }
    }
  }

 private:
  // What a request needs besides its record in the customer's task table, attached to it.
  struct Request {
    Callback cb;
    bool pull = false;
    Status error;                             // a response that could not be used
    std::vector<size_t> keys_of;              // by server rank: keys sent there
    std::vector<int> order;                   // server ranks in the order of their keys
    std::vector<KVPairs<Val>> got;            // by server rank: values received
    std::function<Status(Request*)> deliver;  // writes the pulled values to the outputs
    std::vector<Message> sent;  // by server rank, with filters: the request before encoding
    // Under replication, by key range: where each slice went, whether it was answered.
    // Protected by mu (a failover resends from the receiving thread while a send may run).
    std::mutex mu;
    std::vector<int> target;
    std::vector<bool> answered;
    std::vector<bool> resent;  // by a failover not recovered from yet
  };

  // Validates, slices and sends one request; "vals" null for a pull, "outs" null for a push.
  static TaskOptions Options(int cmd, const Callback& cb, int priority) {
    TaskOptions o;
    o.cmd = cmd;
    o.callback = cb;
    o.priority = priority;
    return o;
  }

  template <typename C, typename D>
  int Send(const SArray<Key>& keys, const SArray<Val>* vals, const SArray<int>& lens, bool pull,
           C* outs, D* out_lens, const TaskOptions& opts) {
    const int cmd = opts.cmd;
    const int priority = opts.priority;
    const Callback& cb = opts.callback;
    Status s = kv::CheckOrder(keys);
    if (s.ok() && vals) s = kv::CheckValues(keys.size(), *vals, lens);
    if (s.ok() && !postoffice_->van()) s = Status::Shutdown("KVWorker used before Start");
    if (s.ok()) s = filters_->status();
    if (!s.ok()) {
      LOG(ERROR) << s.message();
      return obj_->NewFailedRequest(s);
    }
    KVPairs<Val> send;
    send.keys = keys;
    if (vals) send.vals = *vals;
    send.lens = lens;
    std::shared_ptr<Slicer> slicer;
    std::shared_ptr<KeyFilter> key_filter;
    {
      std::lock_guard<std::mutex> lk(mu_);
      slicer = slicer_;
      key_filter = key_filter_;
    }
    // The user's key filter and slicer run without our lock.
    std::vector<size_t> kept;  // when the key filter leaves keys out: where the sent ones are
    const bool left_out = key_filter && LeaveOut(*key_filter, vals != nullptr, &send, &kept);
    SlicedKVs sliced;
    (*slicer)(send, postoffice_->GetServerKeyRanges(), &sliced);
    const bool filtered = !filters_->empty();
    auto req = std::make_shared<Request>();
    Request& p = *req;
    p.cb = cb;
    p.pull = pull;
    p.keys_of.assign(sliced.size(), 0);
    if (pull) p.got.resize(sliced.size());
    if (filtered || replicated_) p.sent.resize(sliced.size());
    if (replicated_) {
      p.target.assign(sliced.size(), 0);
      p.answered.assign(sliced.size(), false);
      p.resent.assign(sliced.size(), false);
    }
    std::vector<int> recvers;
    std::vector<std::pair<Key, int>> first_keys;
    for (size_t i = 0; i < sliced.size(); ++i) {
      if (!sliced[i].first || sliced[i].second.keys.empty()) continue;
      // Under replication a slice awaits its key range, whichever server answers for it.
      recvers.push_back(replicated_ ? Customer::SliceResponder(static_cast<int>(i))
                                    : Postoffice::ServerRankToID(static_cast<int>(i)));
      p.keys_of[i] = sliced[i].second.keys.size();
      first_keys.emplace_back(sliced[i].second.keys[0], static_cast<int>(i));
    }
    std::sort(first_keys.begin(), first_keys.end());
    for (const auto& fk : first_keys) p.order.push_back(fk.second);
    if (pull && left_out) {
      // Pulled into arrays of our own, then spread over the outputs with the left-out keys.
      p.deliver = [outs, out_lens, n = keys.size(), kept = std::move(kept)](Request* q) {
        SArray<Val> got;
        SArray<int> got_lens;
        Status st = Deliver(q, kept.size(), &got, &got_lens);
        return st.ok() ? Expand(n, kept, got, got_lens, outs, out_lens) : st;
      };
    } else if (pull) {
      p.deliver = [outs, out_lens, n = keys.size()](Request* q) {
        return Deliver(q, n, outs, out_lens);
      };
    }

    const int ts = obj_->NewTask(recvers, opts.after);
    if (recvers.empty()) {
      // Nothing to send: the request finishes once "sent", with empty outputs.
      obj_->Submit(ts, [this, ts, req, pull] {
        Status empty = pull ? req->deliver(req.get()) : Status::OK();
        if (!empty.ok()) {
          obj_->FailRequest(ts, empty);
        } else if (req->cb) {
          req->cb();
        }
      });
      return ts;
    }
    std::vector<Message> msgs;
    for (size_t i = 0; i < sliced.size(); ++i) {
      if (!sliced[i].first || sliced[i].second.keys.empty()) continue;
      const KVPairs<Val>& kv = sliced[i].second;
      msgs.emplace_back();
      Message& msg = msgs.back();
      msg.meta.app_id = app_id_;
      msg.meta.customer_id = obj_->customer_id();
      msg.meta.request = true;
      msg.meta.push = vals != nullptr;
      msg.meta.pull = pull;
      msg.meta.head = cmd;
      msg.meta.timestamp = ts;
      msg.meta.priority = priority;
      msg.meta.recver = Postoffice::ServerRankToID(static_cast<int>(i));
      if (replicated_) msg.meta.slice = static_cast<int>(i);
      msg.AddData(kv.keys);
      if (vals) {
        msg.AddData(kv.vals);
        if (!kv.lens.empty()) msg.AddData(kv.lens);
      }
      // Kept as it is before filtering, should a server's filter ask for it again (or a
      // failover need it sent to another server).
      if (filtered || replicated_) p.sent[i] = msg;
    }
    // The last response delivers the pulled values, then runs the callback, before Wait returns.
    obj_->Attach(ts, req, [req] {
      Status st = req->error;
      if (st.ok() && req->pull) st = req->deliver(req.get());
      if (st.ok() && req->cb) req->cb();
      return st;
    });
    if (replicated_) {
      obj_->Submit(ts, [this, req] {
        std::lock_guard<std::mutex> lk(req->mu);
        for (size_t i = 0; i < req->sent.size(); ++i) {
          if (!req->sent[i].data.empty()) SendSliceLocked(req.get(), i);
        }
      });
      return ts;
    }
    // Now, or once the requests it executes after finished.
    obj_->Submit(ts, [this, ts, filtered, msgs = std::move(msgs)]() mutable {
      for (Message& msg : msgs) {
        if (filtered) filters_->Encode(false, &msg);
        SendRequest(ts, msg);
      }
    });
    return ts;
  }

  // Under replication: sends slice "i" of request "p" to the server answering for its key range
  // now. A send that fails is not an error: the server is dying, and its failover resends.
  // REQUIRES: p->mu held.
  void SendSliceLocked(Request* p, size_t i) {
    Message msg = p->sent[i];
    msg.meta.recver = postoffice_->PrimaryOf(static_cast<int>(i));
    msg.meta.done_below = obj_->oldest_pending();
    p->target[i] = msg.meta.recver;
    if (!filters_->empty()) filters_->Encode(false, &msg);
    Status sent = postoffice_->van()->TrySend(msg);
    if (!sent.ok() && postoffice_->verbose() >= 1) {
      LOG(WARNING) << sent.message() << " (the failover will send it again)";
    }
  }

  // Server "dead" failed over: every slice it had not answered goes to its range's new
  // primary, oldest request first (a synchronous round's pushes keep their order).
  void Resend(int dead) {
    size_t resent = 0;
    for (int ts : obj_->pending_timestamps()) {
      std::shared_ptr<Request> req = obj_->data<Request>(ts);
      if (!req) continue;
      std::lock_guard<std::mutex> lk(req->mu);
      for (size_t i = 0; i < req->target.size(); ++i) {
        if (req->target[i] == dead && !req->answered[i]) {
          SendSliceLocked(req.get(), i);
          if (!req->resent[i]) ++resent;
          req->resent[i] = true;
        }
      }
    }
    if (postoffice_->verbose() >= 1) {
      LOG(INFO) << "KVWorker app " << app_id_ << ": node " << dead << " failed over; resent "
                << resent << " unanswered request slices to the new primaries";
    }
    std::lock_guard<std::mutex> lk(failover_mu_);
    if (failover_outstanding_ == 0) failover_start_ = std::chrono::steady_clock::now();
    failover_outstanding_ += static_cast<int>(resent);
    if (failover_outstanding_ == 0) Recovered();
  }

  // Every slice the failovers resent is answered. REQUIRES: failover_mu_ held.
  void Recovered() {
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - failover_start_).count();
    if (Van* van = postoffice_->van()) van->NoteRecovery(s);
    if (postoffice_->verbose() >= 1) {
      LOG(INFO) << "KVWorker app " << app_id_ << ": failover recovered from in " << s
                << " s: the new primaries answered every request the dead server held";
    }
  }

  // Runs "filter" over the keys of "send"; when it leaves some out, replaces "send" by the keys
  // it keeps, with their values, sets "kept" to their positions and returns true.
  static bool LeaveOut(const KeyFilter& filter, bool push, KVPairs<Val>* send,
                       std::vector<size_t>* kept) {
    const size_t n = send->keys.size();
    const bool has_lens = !send->lens.empty();
    const size_t k = push && !has_lens && n ? send->vals.size() / n : 0;
    std::vector<size_t> offset(push ? n + 1 : 0, 0);  // of each key's values
    kept->reserve(n);
    for (size_t i = 0; i < n; ++i) {
      size_t len = push ? (has_lens ? static_cast<size_t>(send->lens[i]) : k) : 0;
      if (push) offset[i + 1] = offset[i] + len;
      if (filter(send->keys[i], push ? send->vals.data() + offset[i] : nullptr, len)) {
        kept->push_back(i);
      }
    }
    if (kept->size() == n) {
      kept->clear();
      return false;
    }
    KVPairs<Val> out;
    out.keys.resize(kept->size());
    for (size_t j = 0; j < kept->size(); ++j) out.keys[j] = send->keys[(*kept)[j]];
    if (push) {
      size_t total = 0;
      for (size_t i : *kept) total += offset[i + 1] - offset[i];
      out.vals.resize(total);
      size_t at = 0;
      for (size_t i : *kept) {
        std::copy(send->vals.data() + offset[i], send->vals.data() + offset[i + 1],
                  out.vals.data() + at);
        at += offset[i + 1] - offset[i];
      }
      if (has_lens) {
        out.lens.resize(kept->size());
        for (size_t j = 0; j < kept->size(); ++j) out.lens[j] = send->lens[(*kept)[j]];
      }
    }
    *send = out;
    return true;
  }

  // Writes the values pulled for the keys at positions "kept" (values "got", per key
  // "got_lens") of a pull of "num_keys" keys into the outputs, with zeros for the keys left
  // out: as many as each pulled key has, or one when they differ or none was pulled.
  template <typename C, typename D>
  static Status Expand(size_t num_keys, const std::vector<size_t>& kept, const SArray<Val>& got,
                       const SArray<int>& got_lens, C* vals, D* lens) {
    bool uniform = true;
    for (int l : got_lens) uniform = uniform && l == got_lens[0];
    if (!lens && !uniform) {
      return Status::InvalidArgument(
          "the servers answered values of different lengths per key; pull with lens");
    }
    const size_t fill = uniform && !got_lens.empty() ? static_cast<size_t>(got_lens[0]) : 1;
    const size_t total = got.size() + (num_keys - kept.size()) * fill;
    if (vals->empty()) vals->resize(total);
    if (vals->size() != total) {
      return Status::InvalidArgument("the pull output holds " + std::to_string(vals->size()) +
                                     " values, but the servers answered " + std::to_string(total) +
                                     " (with the keys left out)");
    }
    if (lens) lens->resize(num_keys);
    size_t at = 0, from = 0, j = 0;
    for (size_t i = 0; i < num_keys; ++i) {
      size_t len = fill;
      if (j < kept.size() && kept[j] == i) {
        len = static_cast<size_t>(got_lens[j++]);
        std::copy(got.data() + from, got.data() + from + len, vals->data() + at);
        from += len;
      } else {
        std::fill(vals->data() + at, vals->data() + at + len, Val(0));
      }
      if (lens) (*lens)[i] = static_cast<int>(len);
      at += len;
    }
    return Status::OK();
  }

  // Copies the pulled values, in key order, into the outputs.
  template <typename C, typename D>
  static Status Deliver(Request* p, size_t num_keys, C* vals, D* lens) {
    // Without lens every key must have the same number of values.
    size_t total = 0;
    long k = -1;
    bool uneven = false;
    for (int r : p->order) {
      const KVPairs<Val>& kv = p->got[r];
      total += kv.vals.size();
      for (int l : kv.lens) {
        if (k >= 0 && l != k) uneven = true;
        k = l;
      }
      if (kv.lens.empty()) {
        long kr = static_cast<long>(kv.vals.size() / p->keys_of[r]);
        if (k >= 0 && kr != k) uneven = true;
        k = kr;
      }
    }
    if (!lens && uneven) {
      return Status::InvalidArgument(
          "the servers answered values of different lengths per key; pull with lens");
    }
    bool shared = false;
    if constexpr (std::is_same<C, SArray<Val>>::value) {
      if (vals->empty() && p->order.size() == 1) {
        *vals = p->got[p->order[0]].vals;  // the received buffer itself: no copy
        shared = true;
      }
    }
    if (!shared) {
      if (vals->empty()) vals->resize(total);
      if (vals->size() != total) {
        return Status::InvalidArgument("the pull output holds " + std::to_string(vals->size()) +
                                       " values, but the servers answered " +
                                       std::to_string(total));
      }
      size_t at = 0;
      for (int r : p->order) {
        kv::CopyInto(vals, at, p->got[r].vals);
        at += p->got[r].vals.size();
      }
    }
    if (lens) {
      lens->resize(num_keys);
      size_t at = 0;
      for (int r : p->order) {
        const KVPairs<Val>& kv = p->got[r];
        if (kv.lens.empty()) {
          std::fill(lens->data() + at, lens->data() + at + p->keys_of[r],
                    static_cast<int>(kv.vals.size() / p->keys_of[r]));
        } else {
          kv::CopyInto(lens, at, kv.lens);
        }
        at += p->keys_of[r];
      }
    }
    return Status::OK();
  }

  // Reads one server's answer to a pull: values, and lens if the server sent them.
  static Status ParseResponse(const Message& msg, size_t num_keys, KVPairs<Val>* kv) {
    const auto& types = msg.meta.data_type;
    auto who = [&] { return "server " + std::to_string(Postoffice::IDtoRank(msg.meta.sender)); };
    if (types.empty() || types.size() > 2 || types[0] != GetDataType<Val>() ||
        (types.size() == 2 && types[1] != INT32)) {
      return Status::InvalidArgument(who() + " answered a pull with frames of the wrong types");
    }
    kv->vals = SArray<Val>(msg.data[0]);
    if (types.size() == 2) kv->lens = SArray<int>(msg.data[1]);
    Status s = kv::CheckValues(num_keys, kv->vals, kv->lens);
    if (!s.ok()) {
      return Status::InvalidArgument(who() + " answered a pull of " + std::to_string(num_keys) +
                                     " keys badly: " + s.message());
    }
    return Status::OK();
  }

  // The primary of key range "range" once it is no longer "dead" (a failover takes a moment
  // after the failure is known), or Node::kEmpty when none takes over within 10 s.
  int NextPrimary(int range, int dead) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    int next = postoffice_->PrimaryOf(range);
    while (next == dead && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      next = postoffice_->PrimaryOf(range);
    }
    return next == dead ? Node::kEmpty : next;
  }

  // Worker 0's part of a checkpoint: each range's server writes its file, then the manifest.
  Status WriteCheckpoint(const CheckpointConfig& config, int step, const std::string& app_state) {
    CheckpointInfo info;
    info.step = step;
    info.app_state = app_state;
    info.path = checkpoint::StepPath(config.dir, step);
    info.job = config.job;
    info.app_id = app_id_;
    info.val_type = GetDataType<Val>();
    // What a job that died while writing this step left behind is not part of it.
    std::error_code ec;
    std::filesystem::remove_all(info.path, ec);
    const std::vector<Range>& ranges = postoffice_->GetServerKeyRanges();
    auto ask = [&](size_t r, int server) {
      return SimpleApp::Request(checkpoint::kWriteHead,
                                std::to_string(step) + " " + std::to_string(r), server);
    };
    auto take_answer = [&](int ts) {
      std::lock_guard<std::mutex> lk(checkpoint_mu_);
      std::string answer = checkpoint_answers_[ts];
      checkpoint_answers_.erase(ts);
      return answer;
    };
    std::vector<int> ts(ranges.size()), asked(ranges.size());
    for (size_t r = 0; r < ranges.size(); ++r) {
      asked[r] = replicated_ ? postoffice_->PrimaryOf(static_cast<int>(r))
                             : Postoffice::ServerRankToID(static_cast<int>(r));
      ts[r] = ask(r, asked[r]);
    }
    Status failed;
    for (size_t r = 0; r < ranges.size(); ++r) {
      Status s = TryWait(ts[r]);
      // Under replication a dead server's ranges get a new primary, which holds them too:
      // it writes the range instead.
      for (size_t tries = 0; !s.ok() && replicated_ && tries < ranges.size(); ++tries) {
        const int next = NextPrimary(static_cast<int>(r), asked[r]);
        if (next == Node::kEmpty) break;
        take_answer(ts[r]);
        asked[r] = next;
        ts[r] = ask(r, next);
        s = TryWait(ts[r]);
      }
      if (failed.ok() && !s.ok()) {
        failed = s.Prefixed("checkpoint step " + std::to_string(step) + ": ");
      }
      const std::string answer = take_answer(ts[r]);
      if (!s.ok()) continue;
      CheckpointFile f;
      f.name = "range-" + std::to_string(r);
      f.begin = ranges[r].begin();
      f.end = ranges[r].end();
      std::istringstream in(answer);
      if (!(in >> f.bytes >> std::hex >> f.checksum)) {
        failed = Status::InvalidArgument("checkpoint step " + std::to_string(step) + ": range " +
                                         std::to_string(r) + "'s server answered '" + answer +
                                         "', not its file's bytes and checksum");
        continue;
      }
      info.files.push_back(f);
    }
    if (!failed.ok()) return failed;
    Status s = checkpoint::WriteManifest(info);
    if (!s.ok()) return s;
    checkpoint::Prune(config, step);
    return Status::OK();
  }

  void Process(const Message& msg) {
    if (msg.meta.simple_app) {
      if (!msg.meta.request && msg.meta.head == checkpoint::kWriteHead) {
        std::lock_guard<std::mutex> lk(checkpoint_mu_);
        checkpoint_answers_[msg.meta.timestamp] = msg.meta.body;
      }
      return SimpleApp::Process(msg);
    }
    if (msg.meta.request) return SendAgain(msg);
    const int ts = msg.meta.timestamp;
    // Decoded before the request is looked up: decompressing takes time.
    Status bad;
    Message decoded;
    const Message* m = &msg;
    if (!msg.meta.filters.empty()) {
      decoded = msg;
      std::string filter, error;
      FilterResult r = filters_->Decode(&decoded, &filter, &error);
      if (r == FilterResult::kMiss) {
        error = "filter " + filter + " lacks what it needs to decode it";
      }
      if (r != FilterResult::kOk) {
        bad = Status::InvalidArgument("server " +
                                      std::to_string(Postoffice::IDtoRank(msg.meta.sender)) +
                                      " answered with a message that does not decode: " + error);
      }
      m = &decoded;
    }
    std::shared_ptr<Request> req = obj_->data<Request>(ts);
    if (!req) return;
    // Responses to one request are handled one at a time, on the receiving thread, and the
    // request does not finish meanwhile: its state needs no lock.
    Request& p = *req;
    const size_t rank = replicated_ ? static_cast<size_t>(std::max(msg.meta.slice, 0))
                                    : static_cast<size_t>(Postoffice::IDtoRank(msg.meta.sender));
    if (replicated_ && rank < p.answered.size()) {
      bool was_resent;
      {
        std::lock_guard<std::mutex> lk(p.mu);
        p.answered[rank] = true;
        was_resent = p.resent[rank];
        p.resent[rank] = false;
      }
      if (was_resent) {
        std::lock_guard<std::mutex> lk(failover_mu_);
        if (--failover_outstanding_ == 0) Recovered();
      }
    }
    if (!bad.ok() && p.error.ok()) p.error = bad;
    if (p.pull && rank < p.got.size() && p.error.ok()) {
      Status s = ParseResponse(*m, p.keys_of[rank], &p.got[rank]);
      if (!s.ok()) p.error = s;
    }
  }

  // A server's filter could not decode request "notice.meta.timestamp" (a key list it no
  // longer holds) and asks for it again: it is encoded anew, in full, and sent again; if that
  // send fails, the request fails naming the server. Runs on the customer thread, which takes
  // the requests sent to a worker.
  void SendAgain(const Message& notice) {
    const int sender = notice.meta.sender;
    if (!notice.meta.filter_miss || notice.meta.filters.size() != 1) {
      if (Van* van = postoffice_->van()) {
        van->Drop(DropReason::kUnroutable,
                  "a request from node " + std::to_string(sender) + " to a KVWorker");
      }
      return;
    }
    // A request that finished or failed meanwhile needs nothing more.
    std::shared_ptr<Request> req = obj_->data<Request>(notice.meta.timestamp);
    if (!req) return;
    if (replicated_) {
      const size_t slice = static_cast<size_t>(std::max(notice.meta.slice, 0));
      std::lock_guard<std::mutex> lk(req->mu);
      if (slice >= req->sent.size() || req->target[slice] != sender) return;
      Message again = req->sent[slice];
      again.meta.recver = sender;
      again.meta.done_below = obj_->oldest_pending();
      filters_->CountResend(notice.meta.filters[0].name);
      filters_->Encode(true, &again);
      postoffice_->van()->Send(again);
      return;
    }
    const size_t rank = static_cast<size_t>(Postoffice::IDtoRank(sender));
    const std::vector<Message>& sent = req->sent;  // constant once the request was sent
    if (rank >= sent.size() || sent[rank].meta.recver != sender) return;
    Message again = sent[rank];
    filters_->CountResend(notice.meta.filters[0].name);
    filters_->Encode(true, &again);
    SendRequest(notice.meta.timestamp, again);
  }

  // Constant after construction; thread-safe.
  const std::unique_ptr<FilterChain> filters_;

  // Protected by mu_.
  std::mutex mu_;
  std::shared_ptr<Slicer> slicer_;         // shared, so that a request can run it without mu_
  std::shared_ptr<KeyFilter> key_filter_;  // likewise; null: every key is sent

  const bool replicated_;  // PS_REPLICATION >= 2; constant after construction

  // Failovers being recovered from: slices resent and not answered yet. Protected by
  // failover_mu_.
  std::mutex failover_mu_;
  int failover_outstanding_ = 0;
  std::chrono::steady_clock::time_point failover_start_;

  // Servers' answers to checkpoint requests (timestamp -> "<bytes> <checksum>"), taken by
  // WriteCheckpoint. Protected by checkpoint_mu_.
  std::mutex checkpoint_mu_;
  std::map<int, std::string> checkpoint_answers_;
};

}  // namespace ps
#endif  // PS_KV_WORKER_H_
