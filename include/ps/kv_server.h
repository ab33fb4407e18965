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
#ifndef PS_KV_SERVER_H_
#define PS_KV_SERVER_H_

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>

#include "ps/base.h"
#include "ps/filter.h"
#include "ps/internal/filter_chain.h"
#include "ps/kv_pairs.h"
#include "ps/simple_app.h"

namespace ps {

template <typename Val>
class KVServer : public SimpleApp {
 public:
  using SimpleApp::obj_;
  using ReqHandle =
      std::function<void(const KVMeta& req_meta, const KVPairs<Val>& req_data, KVServer* server)>;

  // "postoffice" is the node the server lives on; null means the default node.
  explicit KVServer(int app_id, Postoffice* postoffice = nullptr)
      : SimpleApp(app_id, postoffice),
        filters_(new FilterChain(postoffice_, "KVServer app " + std::to_string(app_id))) {
    obj_.reset(new Customer(
        app_id, app_id, [this](const Message& msg) { Process(msg); }, postoffice_,
        [this](const Message& msg) { return MayRunHere(msg); }));
  }

  ~KVServer() override { obj_.reset(); }

  // Sets the handle of key-value requests; it runs on the customer thread, one request at a
  // time, and answers each with Response or ResponseError, then or later, from any thread.
  // Requests that arrive before it is set wait for it.
  void set_request_handle(const ReqHandle& request_handle) {
    CHECK(request_handle) << "invalid request handle";
    std::lock_guard<std::mutex> lk(kv_mu_);
    request_handle_ = std::make_shared<ReqHandle>(request_handle);
    kv_cv_.notify_all();
  }

  // The same for a handle that says whether it ever blocks. One that "never_blocks" (it
  // returns soon, waits for nothing, takes no lock held for long) runs small requests (up to
  // kRunHereMaxBytes of data, no filters) on the node's receiving thread when the server's own
  // thread is idle, which saves a thread hand-off per request; larger ones, and every request
  // of a handle that may block, run on the server's thread. A handle still runs one request
  // at a time, in order. Handles with a never_blocks() method (KVServerDefaultHandle,
  // KVServerSyncHandle) are set this way by the one-argument form.
  void set_request_handle(const ReqHandle& request_handle, bool never_blocks) {
    CHECK(request_handle) << "invalid request handle";
    std::lock_guard<std::mutex> lk(kv_mu_);
    request_handle_ = std::make_shared<ReqHandle>(request_handle);
    never_blocks_ = never_blocks;
    kv_cv_.notify_all();
  }
  template <typename Handle,
            typename = std::enable_if_t<!std::is_same<std::decay_t<Handle>, ReqHandle>::value &&
                                        std::is_constructible<ReqHandle, Handle>::value>>
  void set_request_handle(Handle&& request_handle) {
    const bool never_blocks = NeverBlocks(request_handle, 0);
    set_request_handle(ReqHandle(std::forward<Handle>(request_handle)), never_blocks);
  }

  // Requests with more data bytes than this run on the server's thread whatever the handle.
  static constexpr size_t kRunHereMaxBytes = 64 << 10;

  // Answers request "req"; for a pull, "res" holds the values of the requested keys, in order
  // (res.keys is not sent: the worker has them), and res.lens if their lengths differ.
  void Response(const KVMeta& req, const KVPairs<Val>& res = KVPairs<Val>()) {
    Message msg = Answer(req);
    if (req.pull) {
      msg.AddData(res.vals);
      if (!res.lens.empty()) msg.AddData(res.lens);
    }
    filters_->Encode(false, &msg);
    postoffice_->van()->Send(msg);
  }

  // Answers request "req" with an error; the worker's Wait reports "error".
  void ResponseError(const KVMeta& req, const std::string& error) {
    Message msg = Answer(req);
    msg.meta.error = error.empty() ? "error" : error;
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
  Message Answer(const KVMeta& req) const {
    Message msg;
    msg.meta.app_id = app_id_;
    msg.meta.customer_id = req.customer_id;
    msg.meta.request = false;
    msg.meta.push = req.push;
    msg.meta.pull = req.pull;
    msg.meta.head = req.cmd;
    msg.meta.timestamp = req.timestamp;
    msg.meta.recver = req.sender;
    return msg;
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

  void Process(const Message& msg) {
    if (msg.meta.simple_app) return SimpleApp::Process(msg);
    KVMeta meta{msg.meta.head,   msg.meta.push,      msg.meta.pull,
                msg.meta.sender, msg.meta.timestamp, msg.meta.customer_id};
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
    if (msg.meta.simple_app || !msg.meta.filters.empty()) return false;
    size_t bytes = 0;
    for (const auto& d : msg.data) bytes += d.size();
    if (bytes > kRunHereMaxBytes) return false;
    std::lock_guard<std::mutex> lk(kv_mu_);
    return request_handle_ && never_blocks_;
  }

  const std::unique_ptr<FilterChain> filters_;  // constant after construction; thread-safe

  std::mutex kv_mu_;
  std::condition_variable kv_cv_;
  // Protected by kv_mu_.
  std::shared_ptr<ReqHandle> request_handle_;
  bool never_blocks_ = false;
};

}  // namespace ps
#endif  // PS_KV_SERVER_H_
