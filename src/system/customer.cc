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

Status Consistency::Parse(const std::string& spec, Consistency* out) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("PS_CONSISTENCY=" + spec + ": " + why +
                                   "; use sequential, bounded:N or eventual");
  };
  if (spec == "sequential") {
    *out = Sequential();
  } else if (spec == "eventual") {
    *out = Eventual();
  } else if (spec.compare(0, 8, "bounded:") == 0) {
    const std::string n = spec.substr(8);
    size_t used = 0;
    long tau = -1;
    try {
      tau = std::stol(n, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (n.empty() || used != n.size() || tau < 0 || tau > (1 << 20)) {
      return bad("the delay " + n + " is not a number from 0 to 1048576");
    }
    *out = BoundedDelay(static_cast<int>(tau));
  } else {
    return bad("unknown model");
  }
  return Status::OK();
}

std::string Consistency::ToString() const {
  switch (model) {
    case Model::kSequential:
      return "sequential";
    case Model::kBoundedDelay:
      return "bounded:" + std::to_string(tau);
    default:
      return "eventual";
  }
}

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
                   Postoffice* postoffice)
    : app_id_(app_id),
      customer_id_(customer_id),
      recv_handle_(recv_handle),
      postoffice_(postoffice ? postoffice : Postoffice::Get()),
      spin_us_(postoffice_->spin_us()),
      counters_(std::make_shared<TaskCounters>()) {
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
    Status s = postoffice_->PeerStatus(id);
    if (!s.ok()) {
      failed_[ts].status =
          Status::NodeFailed("request " + std::to_string(ts) + " failed: " + s.message());
      return true;
    }
  }
  return false;
}

int Customer::NewRequest(int recver) { return NewRequest(postoffice_->GetNodeIDs(recver)); }

int Customer::NewRequest(const std::vector<int>& recvers) {
  std::lock_guard<std::mutex> lk(mu_);
  int ts = next_timestamp_++;
  if (FailIfReceiverDeadLocked(ts, recvers)) return ts;
  if (recvers.empty()) return ts;  // nothing to wait for: finished at once
  Pending& p = pending_[ts];
  p.awaiting = recvers;
  p.remaining = static_cast<int>(recvers.size());
  p.sent_at = Clock::now();
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
      return w == 0 || pending_.empty() || pending_.begin()->first > next_timestamp_ - w;
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
  const int ts = next_timestamp_++;
  counters_->requests.fetch_add(1, std::memory_order_relaxed);
  if (FailIfReceiverDeadLocked(ts, recvers)) return ts;
  const std::string name = "request " + std::to_string(ts) + " failed: ";
  for (int a : after) {
    if (a < 0 || a >= ts) {
      failed_[ts].status = Status::InvalidArgument(
          name + "it executes after timestamp " + std::to_string(a) +
          (a == ts ? ", itself" : ", which this customer has not issued yet"));
      return ts;
    }
    auto f = failed_.find(a);
    if (f != failed_.end()) {
      failed_[ts].status = f->second.status.Prefixed(name + "it executes after request " +
                                                     std::to_string(a) + ", which failed: ");
      return ts;
    }
  }
  Pending& p = pending_[ts];
  p.awaiting = recvers;
  p.remaining = static_cast<int>(recvers.size());
  p.submitted = false;
  p.sent = false;
  std::vector<int> deps = after;
  std::sort(deps.begin(), deps.end());
  deps.erase(std::unique(deps.begin(), deps.end()), deps.end());
  for (int a : deps) {
    auto it = pending_.find(a);
    if (it == pending_.end()) continue;  // finished
    it->second.dependents.emplace_back(ts, true);
    ++p.blockers;
  }
  if (window > 0 && !may_block) {
    // Not held back (that would wait for this thread): queued behind the requests the model
    // says it follows.
    for (auto it = pending_.begin(); it != pending_.end() && it->first <= ts - window; ++it) {
      if (std::binary_search(deps.begin(), deps.end(), it->first)) continue;
      it->second.dependents.emplace_back(ts, false);
      ++p.blockers;
    }
  }
  if (p.blockers > 0) counters_->deferred.fetch_add(1, std::memory_order_relaxed);
  return ts;
}

Customer::Ready Customer::SendLocked(int ts, Pending* p) {
  p->sent = true;
  p->sent_at = Clock::now();
  p->in_flight = p->remaining > 0;
  if (p->in_flight && ++in_flight_ > counters_->max_in_flight.load(std::memory_order_relaxed)) {
    counters_->max_in_flight.store(in_flight_, std::memory_order_relaxed);
  }
  return Ready{ts, p->remaining == 0, std::move(p->send)};
}

void Customer::Submit(int timestamp, std::function<void()> send) {
  std::vector<Ready> ready;
  {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = pending_.find(timestamp);
    if (it == pending_.end()) return;  // failed meanwhile: never sent
    Pending& p = it->second;
    CHECK(!p.submitted) << "task " << timestamp << " submitted twice";
    p.submitted = true;
    p.send = std::move(send);
    if (p.blockers > 0) return;  // sent by whoever finishes the last blocker
    ready.push_back(SendLocked(timestamp, &p));
  }
  RunReady(std::move(ready));
}

void Customer::RunReady(std::vector<Ready> ready) {
  while (!ready.empty()) {
    std::sort(ready.begin(), ready.end(),
              [](const Ready& a, const Ready& b) { return a.timestamp < b.timestamp; });
    std::vector<Ready> more;
    for (Ready& r : ready) {
      if (r.send) r.send();
      if (!r.empty) continue;
      std::lock_guard<std::mutex> lk(mu_);
      auto it = pending_.find(r.timestamp);
      if (it != pending_.end()) FinishLocked(r.timestamp, it->second.status, &more);
    }
    if (std::any_of(ready.begin(), ready.end(), [](const Ready& r) { return r.empty; })) {
      cv_.notify_all();
    }
    ready = std::move(more);
  }
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
  if (timestamp < 0 || timestamp >= next_timestamp_) {
    return Status::InvalidArgument("timestamp " + std::to_string(timestamp) +
                                   " was not issued by this customer");
  }
  WaitLocked(&lk, [&] { return !pending_.count(timestamp); });
  auto it = failed_.find(timestamp);
  if (it == failed_.end()) return Status::OK();
  it->second.waited = true;
  return it->second.status;
}

void Customer::WaitRequest(int timestamp) {
  Status s = TryWaitRequest(timestamp);
  if (!s.ok()) postoffice_->Die(s);
}

int Customer::NumResponse(int timestamp) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = pending_.find(timestamp);
  return it == pending_.end() ? 0 : it->second.received;
}

void Customer::AddResponse(int timestamp, int num) {
  std::vector<Ready> ready;
  {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = pending_.find(timestamp);
    if (it == pending_.end()) return;
    it->second.remaining -= num;
    it->second.received += num;
    if (it->second.remaining > 0) return;
    FinishLocked(timestamp, it->second.status, &ready);
  }
  cv_.notify_all();
  RunReady(std::move(ready));
}

void Customer::FailRequest(int timestamp, const Status& why) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = pending_.find(timestamp);
  if (it != pending_.end() && it->second.status.ok()) it->second.status = why;
}

int Customer::NewFailedRequest(const Status& why) {
  std::lock_guard<std::mutex> lk(mu_);
  int ts = next_timestamp_++;
  failed_[ts].status = why;
  return ts;
}

size_t Customer::requests_in_flight() {
  std::lock_guard<std::mutex> lk(mu_);
  return pending_.size();
}

size_t Customer::pending_size() {
  std::lock_guard<std::mutex> lk(mu_);
  size_t unwaited = 0;
  for (const auto& f : failed_) unwaited += !f.second.waited;
  return pending_.size() + unwaited;
}

void Customer::Accept(const Message& recved) {
  // Responses are handled here, on the van thread: that is bookkeeping and the app's short
  // response handling, and it saves a thread switch on every round trip. Requests run the
  // app's handler, which may take long or wait, so they go to this customer's own thread.
  if (!recved.meta.request) return Handle(recved);
  recv_queue_.Push(recved, recved.meta.priority);
}

void Customer::FinishLocked(int ts, Status status, std::vector<Ready>* ready) {
  // A worklist rather than recursion: a failure may fail a long chain of tasks.
  std::vector<std::pair<int, Status>> finish{{ts, std::move(status)}};
  while (!finish.empty()) {
    auto [t, st] = std::move(finish.back());
    finish.pop_back();
    auto it = pending_.find(t);
    if (it == pending_.end()) continue;
    Pending p = std::move(it->second);
    pending_.erase(it);
    if (p.in_flight) --in_flight_;
    if (p.received > 0) counters_->ObserveLatency(p.kind, Clock::now() - p.sent_at);
    if (!st.ok()) failed_[t].status = st;
    for (const auto& [d, fails_with] : p.dependents) {
      auto dit = pending_.find(d);
      if (dit == pending_.end()) continue;
      if (fails_with && !st.ok()) {
        finish.emplace_back(
            d, st.Prefixed("request " + std::to_string(d) + " failed: it executes after request " +
                           std::to_string(t) + ", which failed: "));
      } else if (--dit->second.blockers == 0 && dit->second.submitted) {
        ready->push_back(SendLocked(d, &dit->second));
      }
    }
  }
}

bool Customer::AddResponseLocked(int ts, int sender, const Status& error,
                                 std::vector<Ready>* ready) {
  auto it = pending_.find(ts);
  if (it == pending_.end()) return false;  // failed meanwhile
  Pending& p = it->second;
  auto a = std::find(p.awaiting.begin(), p.awaiting.end(), sender);
  if (a != p.awaiting.end()) p.awaiting.erase(a);
  ++p.received;
  if (p.status.ok() && !error.ok()) p.status = error;
  if (--p.remaining > 0) return false;
  FinishLocked(ts, p.status, ready);
  return true;
}

void Customer::OnNodeFailed(int node_id, const Status& why, bool everything) {
  std::vector<Ready> ready;
  {
    std::lock_guard<std::mutex> lk(mu_);
    std::vector<int> dead;
    for (const auto& [ts, p] : pending_) {
      if (everything ||
          std::find(p.awaiting.begin(), p.awaiting.end(), node_id) != p.awaiting.end()) {
        dead.push_back(ts);
      }
    }
    for (int ts : dead) {
      FinishLocked(
          ts, Status::NodeFailed("request " + std::to_string(ts) + " failed: " + why.message()),
          &ready);
    }
  }
  cv_.notify_all();
  RunReady(std::move(ready));
}

void Customer::Receiving() {
  while (true) {
    Message msg;
    recv_queue_.WaitAndPop(&msg, spin_us_);
    if (!msg.meta.control.empty()) break;
    Handle(msg);
  }
}

void Customer::Handle(const Message& msg) {
  if (msg.meta.request) {
    recv_handle_(msg);
    return;
  }
  int ts = msg.meta.timestamp;
  int sender = msg.meta.sender;
  {
    // Only a response that a pending request waits for counts; anything else is a stray
    // (a late answer to a failed request, or a forged one) and must not reach the handler.
    std::lock_guard<std::mutex> lk(mu_);
    auto it = pending_.find(ts);
    bool expected = it != pending_.end() &&
                    std::find(it->second.awaiting.begin(), it->second.awaiting.end(), sender) !=
                        it->second.awaiting.end();
    if (expected && it->second.received == 0) {
      it->second.kind = (msg.meta.push ? 1 : 0) + (msg.meta.pull ? 2 : 0);
    }
    if (!expected) {
      if (Van* van = postoffice_->van()) {
        van->Drop(DropReason::kUnroutable, "response to request " + std::to_string(ts) +
                                               " from node " + std::to_string(sender) +
                                               ", which it does not wait for");
      }
      return;
    }
  }
  Status error;
  if (msg.meta.error.empty()) {
    recv_handle_(msg);
  } else {
    error = Status::RemoteError("node " + std::to_string(sender) + " answered request " +
                                std::to_string(ts) + " with an error: " + msg.meta.error);
  }
  bool finished;
  std::vector<Ready> ready;
  {
    std::lock_guard<std::mutex> lk(mu_);
    finished = AddResponseLocked(ts, sender, error, &ready);
  }
  // Outside the lock, so that the waiter does not wake only to block on mu_. The customer
  // cannot be destroyed meanwhile: the postoffice holds its customers' lock while delivering.
  if (finished) cv_.notify_all();
  // Tasks that executed after this one go now, from this thread.
  RunReady(std::move(ready));
}

}  // namespace ps
