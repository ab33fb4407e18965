#include "ps/internal/customer.h"

#include <algorithm>

#include "ps/internal/postoffice.h"

namespace ps {
namespace {

// Every node checks PS_CONSISTENCY with its configuration: a bad value stops Start with a
// one-line error, whether or not the node has a KVWorker.
Status CheckConsistencyConfig(const Environment& env) {
  const char* spec = env.find("PS_CONSISTENCY");
  Consistency unused;
  return spec ? Consistency::Parse(spec, &unused) : Status::OK();
}

[[maybe_unused]] const bool kConfigChecked =
    (Postoffice::AddConfigCheck(CheckConsistencyConfig), true);

}  // namespace

const double Customer::TaskCounters::kLatencyBounds[kLatencyBuckets - 1] = {
    50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 0.1, 0.25, 0.5, 1, 5};

void Customer::TaskCounters::ObserveLatency(int kind, Clock::duration d) {
  const double s = std::chrono::duration<double>(d).count();
  int b = 0;
  while (b < kLatencyBuckets - 1 && s > kLatencyBounds[b]) ++b;
  latency[kind][b].fetch_add(1, std::memory_order_relaxed);
  latency_ns[kind].fetch_add(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count(),
                             std::memory_order_relaxed);
}

ConsistencyStats Customer::TaskCounters::Snapshot() const {
  ConsistencyStats s;
  s.requests = requests.load();
  s.max_in_flight = max_in_flight.load();
  s.held_back = held_back.load();
  s.held_back_seconds = static_cast<double>(held_back_ns.load()) * 1e-9;
  s.deferred = deferred.load();
  return s;
}

Customer::Customer(int app_id, int customer_id, const RecvHandle& recv_handle,
                   Postoffice* postoffice, RunHere run_here)
    : app_id_(app_id),
      customer_id_(customer_id),
      recv_handle_(recv_handle),
      postoffice_(postoffice ? postoffice : Postoffice::Get()),
      spin_us_(postoffice_->spin_us()),
      run_here_(std::move(run_here)),
      counters_(std::make_shared<TaskCounters>()) {
  table_.set_latency_observer(
      [counters = counters_](int kind, Clock::duration d) { counters->ObserveLatency(kind, d); });
  recv_thread_ = std::thread(&Customer::Receiving, this);
  postoffice_->AddCustomer(this);
}

Customer::~Customer() {
  postoffice_->RemoveCustomer(this);
  // A control message never reaches a customer otherwise: it is the stop signal.
  Message stop;
  stop.meta.control.cmd = Control::TERMINATE;
  recv_queue_.Push(stop, std::numeric_limits<int>::min());
  recv_thread_.join();
}

bool Customer::FailIfReceiverDeadLocked(int ts, const std::vector<int>& recvers) {
  // Checked under mu_, like OnNodeFailed, so a death is seen either here or there.
  for (int id : recvers) {
    if (id < 0) continue;  // a key range (SliceResponder), not a node
    Status s = postoffice_->PeerStatus(id);
    if (!s.ok()) {
      std::vector<Ready> none;
      table_.Fail(ts,
                  Status::NodeFailed("request " + std::to_string(ts) + " failed: " + s.message()),
                  &none);
      return true;
    }
  }
  return false;
}

void Customer::NoteInFlightLocked() {
  counters_->max_in_flight.store(table_.max_in_flight(), std::memory_order_relaxed);
}

int Customer::NewRequest(int recver) { return NewRequest(postoffice_->GetNodeIDs(recver)); }

int Customer::NewRequest(const std::vector<int>& recvers) {
  std::lock_guard<std::mutex> lk(mu_);
  int ts = table_.Issue();
  if (FailIfReceiverDeadLocked(ts, recvers)) return ts;
  if (recvers.empty()) return ts;  // nothing to wait for: finished at once
  table_.Create(ts, recvers, false);
  return ts;
}

int Customer::NewTask(const std::vector<int>& recvers, const std::vector<int>& after) {
  std::unique_lock<std::mutex> lk(mu_);
  const int window = consistency_.window();
  const bool may_block = MayBlock();
  if (window > 0 && may_block) {
    // Request t may go once every request up to t - window finished: the oldest unfinished
    // one is younger. t is whatever the next timestamp is when that holds.
    // The model may change meanwhile (set_consistency): read it each time.
    auto may_issue = [&] {
      const int w = consistency_.window();
      return w == 0 || table_.oldest_pending() > table_.next() - w;
    };
    if (!may_issue()) {
      auto start = Clock::now();
      WaitLocked(&lk, may_issue);
      counters_->held_back.fetch_add(1, std::memory_order_relaxed);
      counters_->held_back_ns.fetch_add(
          std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count(),
          std::memory_order_relaxed);
    }
  }
  const int ts = table_.Issue();
  counters_->requests.fetch_add(1, std::memory_order_relaxed);
  if (FailIfReceiverDeadLocked(ts, recvers)) return ts;
  const std::string name = "request " + std::to_string(ts) + " failed: ";
  std::vector<Ready> none;
  for (int a : after) {
    if (a < 0 || a >= ts) {
      table_.Fail(ts,
                  Status::InvalidArgument(
                      name + "it executes after timestamp " + std::to_string(a) +
                      (a == ts ? ", itself" : ", which this customer has not issued yet")),
                  &none);
      return ts;
    }
    if (const Status* f = table_.failure(a)) {
      table_.Fail(
          ts,
          f->Prefixed(name + "it executes after request " + std::to_string(a) + ", which failed: "),
          &none);
      return ts;
    }
  }
  table_.Create(ts, recvers, true);
  std::vector<int> deps = after;
  std::sort(deps.begin(), deps.end());
  deps.erase(std::unique(deps.begin(), deps.end()), deps.end());
  bool deferred = false;
  for (int a : deps) {
    deferred = deferred || table_.pending(a);
    table_.AddDependency(ts, a, true);
  }
  if (window > 0 && !may_block) {
    // Not held back (that would wait for this thread): queued behind the requests the model
    // says it follows.
    for (int p : table_.PendingUpTo(ts - window)) {
      if (std::binary_search(deps.begin(), deps.end(), p)) continue;
      table_.AddDependency(ts, p, false);
      deferred = true;
    }
  }
  if (deferred) counters_->deferred.fetch_add(1, std::memory_order_relaxed);
  return ts;
}

void Customer::Attach(int timestamp, std::shared_ptr<void> data, TaskTable::Complete complete) {
  std::lock_guard<std::mutex> lk(mu_);
  table_.Attach(timestamp, std::move(data), std::move(complete));
}

void Customer::Submit(int timestamp, std::function<void()> send) {
  std::vector<Ready> ready;
  {
    std::lock_guard<std::mutex> lk(mu_);
    table_.Submit(timestamp, std::move(send), &ready);
    NoteInFlightLocked();
  }
  RunReady(std::move(ready));
}

void Customer::RunReady(std::vector<Ready> ready) {
  while (!ready.empty()) {
    std::sort(ready.begin(), ready.end(),
              [](const Ready& a, const Ready& b) { return a.timestamp < b.timestamp; });
    std::vector<Ready> more;
    bool finished = false;
    for (Ready& r : ready) {
      if (r.send) r.send();
      if (!r.empty) continue;
      std::lock_guard<std::mutex> lk(mu_);
      table_.FinishEmpty(r.timestamp, &more);
      NoteInFlightLocked();
      finished = true;
    }
    if (finished) cv_.notify_all();
    ready = std::move(more);
  }
}

void Customer::Settle(int ts, TaskTable::Step step, TaskTable::Complete complete,
                      std::vector<Ready> ready) {
  if (step == TaskTable::Step::kComplete) {
    // Without the lock: the completion delivers values and runs the user's callback.
    Status result = complete();
    std::lock_guard<std::mutex> lk(mu_);
    table_.EndComplete(ts, result, &ready);
    NoteInFlightLocked();
    step = TaskTable::Step::kFinished;
  }
  // Outside the lock, so that the waiter does not wake only to block on mu_.
  if (step == TaskTable::Step::kFinished) cv_.notify_all();
  // Tasks that executed after this one go now, from this thread.
  RunReady(std::move(ready));
}

void Customer::set_consistency(const Consistency& consistency) {
  std::lock_guard<std::mutex> lk(mu_);
  consistency_ = consistency;
  counters_->model = static_cast<int>(consistency.model);
  counters_->tau = consistency.tau;
  // A wider window may let held-back callers go.
  cv_.notify_all();
}

Consistency Customer::consistency() {
  std::lock_guard<std::mutex> lk(mu_);
  return consistency_;
}

ConsistencyStats Customer::consistency_stats() const { return counters_->Snapshot(); }

bool Customer::MayBlock(Status* why) const {
  if (std::this_thread::get_id() == recv_thread_.get_id()) {
    if (why) {
      *why = Status::InvalidArgument(
          "Wait called from a handler or callback of the same customer; it would wait for "
          "itself");
    }
    return false;
  }
  Van* van = postoffice_->van();
  if (van && van->IsReceivingThread()) {
    if (why) {
      *why = Status::InvalidArgument(
          "Wait called from a response handler or callback; it would wait for the thread that "
          "delivers the answer");
    }
    return false;
  }
  return true;
}

void Customer::WaitLocked(std::unique_lock<std::mutex>* lk, const std::function<bool()>& done) {
  if (done()) return;
  if (spin_us_ > 0) {
    // A response often comes within microseconds: look again for a while before sleeping,
    // which saves the wake-up (PS_SPIN_US).
    auto until = Clock::now() + std::chrono::microseconds(spin_us_);
    while (!done() && Clock::now() < until) {
      lk->unlock();
      std::this_thread::yield();
      lk->lock();
    }
  }
  Van* van = postoffice_->van();
  if (van && !done()) {
    // Take the answer from the socket on this thread rather than be woken by the van thread.
    lk->unlock();
    van->ReceiveUntil([&] {
      std::lock_guard<std::mutex> g(mu_);
      return done();
    });
    lk->lock();
  }
  cv_.wait(*lk, done);
}

Status Customer::TryWaitRequest(int timestamp) {
  Status why;
  if (!MayBlock(&why)) return why;
  std::unique_lock<std::mutex> lk(mu_);
  if (timestamp < 0 || timestamp >= table_.next()) {
    return Status::InvalidArgument("timestamp " + std::to_string(timestamp) +
                                   " was not issued by this customer");
  }
  WaitLocked(&lk, [&] { return !table_.pending(timestamp); });
  return table_.result(timestamp, true);
}

void Customer::WaitRequest(int timestamp) {
  Status s = TryWaitRequest(timestamp);
  if (!s.ok()) postoffice_->Die(s);
}

int Customer::NumResponse(int timestamp) {
  std::lock_guard<std::mutex> lk(mu_);
  return table_.responses(timestamp);
}

void Customer::AddResponse(int timestamp, int num) {
  std::vector<Ready> ready;
  TaskTable::Complete complete;
  TaskTable::Step step;
  {
    std::lock_guard<std::mutex> lk(mu_);
    step = table_.AddResponses(timestamp, num, &ready, &complete);
  }
  Settle(timestamp, step, std::move(complete), std::move(ready));
}

void Customer::FailRequest(int timestamp, const Status& why) {
  std::lock_guard<std::mutex> lk(mu_);
  table_.MarkFailed(timestamp, why);
}

int Customer::NewFailedRequest(const Status& why) {
  std::lock_guard<std::mutex> lk(mu_);
  int ts = table_.Issue();
  std::vector<Ready> none;
  table_.Fail(ts, why, &none);
  return ts;
}

void Customer::FailSend(int timestamp, int recver, const Status& why) {
  std::vector<Ready> ready;
  TaskTable::Complete complete;
  TaskTable::Step step;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (!table_.BeginResponse(timestamp, recver)) return;
    step = table_.EndResponse(timestamp, why, &ready, &complete);
  }
  Settle(timestamp, step, std::move(complete), std::move(ready));
}

size_t Customer::requests_in_flight() {
  std::lock_guard<std::mutex> lk(mu_);
  return table_.pending_count();
}

size_t Customer::pending_size() {
  std::lock_guard<std::mutex> lk(mu_);
  return table_.held();
}

void Customer::Accept(const Message& recved) {
  // Responses are handled here, on the van thread: that is bookkeeping and the app's short
  // response handling, and it saves a thread switch on every round trip. Requests run the
  // app's handler, which may take long or wait, so they go to this customer's own thread.
  if (!recved.meta.request) return Handle(recved);
  if (TryHandleHere(recved)) return;
  {
    std::lock_guard<std::mutex> lk(idle_mu_);
    ++accepted_;
  }
  recv_queue_.Push(recved, recved.meta.priority);
}

bool Customer::TryHandleHere(const Message& request) {
  if (!run_here_) return false;
  Van* van = postoffice_->van();
  if (!van || !van->IsReceivingThread() || !run_here_(request)) return false;
  {
    std::lock_guard<std::mutex> lk(idle_mu_);
    // The receive thread is idle only when it has handled everything accepted: otherwise this
    // request would overtake queued ones, or run beside the one being handled. The receiving
    // thread is the only one that accepts, so it stays idle until this request is handled.
    if (handled_ != accepted_) return false;
    ++accepted_;
  }
  Handle(request);
  {
    std::lock_guard<std::mutex> lk(idle_mu_);
    ++handled_;
  }
  idle_cv_.notify_all();
  return true;
}

void Customer::WaitIdle() {
  if (std::this_thread::get_id() == recv_thread_.get_id()) return;
  std::unique_lock<std::mutex> lk(idle_mu_);
  idle_cv_.wait(lk, [&] { return handled_ == accepted_; });
}

void Customer::OnNodeFailed(int node_id, const Status& why, bool everything) {
  std::vector<Ready> ready;
  {
    std::lock_guard<std::mutex> lk(mu_);
    table_.FailAwaiting(
        node_id, everything,
        [&](int ts) {
          return Status::NodeFailed("request " + std::to_string(ts) + " failed: " + why.message());
        },
        &ready);
    NoteInFlightLocked();
  }
  cv_.notify_all();
  RunReady(std::move(ready));
}

void Customer::set_failover_handle(FailoverHandle handle) {
  std::lock_guard<std::mutex> lk(mu_);
  failover_ = handle ? std::make_shared<FailoverHandle>(std::move(handle)) : nullptr;
}

void Customer::OnServerReplaced(int node_id) {
  std::shared_ptr<FailoverHandle> handle;
  {
    std::lock_guard<std::mutex> lk(mu_);
    handle = failover_;
  }
  if (handle) (*handle)(node_id);
}

int Customer::oldest_pending() {
  std::lock_guard<std::mutex> lk(mu_);
  return table_.oldest_pending();
}

std::vector<int> Customer::pending_timestamps() {
  std::lock_guard<std::mutex> lk(mu_);
  return table_.PendingUpTo(table_.next());
}

void Customer::Receiving() {
  while (true) {
    Message msg;
    recv_queue_.WaitAndPop(&msg, spin_us_);
    if (!msg.meta.control.empty()) break;
    Handle(msg);
    {
      std::lock_guard<std::mutex> lk(idle_mu_);
      ++handled_;
    }
    idle_cv_.notify_all();
  }
}

void Customer::Handle(const Message& msg) {
  if (msg.meta.request) {
    recv_handle_(msg);
    return;
  }
  const int ts = msg.meta.timestamp;
  const int sender = msg.meta.sender;
  const int responder = msg.meta.slice >= 0 ? SliceResponder(msg.meta.slice) : sender;
  {
    // Only a response that a pending request waits for counts; anything else is a stray
    // (a late answer to a failed request, a second copy, or a forged one) and must not reach
    // the handler.
    std::lock_guard<std::mutex> lk(mu_);
    if (!table_.BeginResponse(ts, responder, (msg.meta.push ? 1 : 0) + (msg.meta.pull ? 2 : 0))) {
      if (Van* van = postoffice_->van()) {
        van->Drop(DropReason::kUnroutable, "response to request " + std::to_string(ts) +
                                               " from node " + std::to_string(sender) +
                                               ", which it does not wait for");
      }
      return;
    }
  }
  // The request cannot finish meanwhile (a failure waits for this handler), and the customer
  // cannot be destroyed: the postoffice counts this delivery.
  Status error;
  if (msg.meta.error.empty()) {
    recv_handle_(msg);
  } else {
    error = Status::RemoteError("node " + std::to_string(sender) + " answered request " +
                                std::to_string(ts) + " with an error: " + msg.meta.error);
  }
  std::vector<Ready> ready;
  TaskTable::Complete complete;
  TaskTable::Step step;
  {
    std::lock_guard<std::mutex> lk(mu_);
    step = table_.EndResponse(ts, error, &ready, &complete);
    NoteInFlightLocked();
  }
  Settle(ts, step, std::move(complete), std::move(ready));
}

}  // namespace ps
