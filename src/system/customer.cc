#include "ps/internal/customer.h"

#include <algorithm>

#include "ps/internal/postoffice.h"

namespace ps {

Customer::Customer(int app_id, int customer_id, const RecvHandle& recv_handle,
                   Postoffice* postoffice)
    : app_id_(app_id),
      customer_id_(customer_id),
      recv_handle_(recv_handle),
      postoffice_(postoffice ? postoffice : Postoffice::Get()),
      spin_us_(postoffice_->spin_us()) {
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

int Customer::NewRequest(int recver) { return NewRequest(postoffice_->GetNodeIDs(recver)); }

int Customer::NewRequest(const std::vector<int>& recvers) {
  std::lock_guard<std::mutex> lk(mu_);
  int ts = next_timestamp_++;
  // Checked under mu_, like OnNodeFailed, so a death is seen either here or there.
  for (int id : recvers) {
    Status s = postoffice_->PeerStatus(id);
    if (!s.ok()) {
      failed_[ts] = Status::NodeFailed("request " + std::to_string(ts) + " failed: " + s.message());
      return ts;
    }
  }
  if (recvers.empty()) return ts;  // nothing to wait for: finished at once
  Pending& p = pending_[ts];
  p.awaiting = recvers;
  p.remaining = static_cast<int>(recvers.size());
  return ts;
}

Status Customer::TryWaitRequest(int timestamp) {
  if (std::this_thread::get_id() == recv_thread_.get_id()) {
    return Status::InvalidArgument(
        "Wait called from a handler or callback of the same customer; "
        "it would wait for itself");
  }
  Van* van = postoffice_->van();
  if (van && van->IsReceivingThread()) {
    return Status::InvalidArgument(
        "Wait called from a response handler or callback; it would wait for the thread that "
        "delivers the answer");
  }
  std::unique_lock<std::mutex> lk(mu_);
  if (timestamp < 0 || timestamp >= next_timestamp_) {
    return Status::InvalidArgument("timestamp " + std::to_string(timestamp) +
                                   " was not issued by this customer");
  }
  if (spin_us_ > 0 && pending_.count(timestamp)) {
    // A response often comes within microseconds: look again for a while before sleeping,
    // which saves the wake-up (PS_SPIN_US).
    auto until = Clock::now() + std::chrono::microseconds(spin_us_);
    while (pending_.count(timestamp) && Clock::now() < until) {
      lk.unlock();
      std::this_thread::yield();
      lk.lock();
    }
  }
  if (van && pending_.count(timestamp)) {
    // Take the answer from the socket on this thread rather than be woken by the van thread.
    lk.unlock();
    van->ReceiveUntil([&] {
      std::lock_guard<std::mutex> g(mu_);
      return !pending_.count(timestamp);
    });
    lk.lock();
  }
  cv_.wait(lk, [&] { return !pending_.count(timestamp); });
  auto it = failed_.find(timestamp);
  if (it == failed_.end()) return Status::OK();
  Status s = it->second;
  failed_.erase(it);
  return s;
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
  std::lock_guard<std::mutex> lk(mu_);
  auto it = pending_.find(timestamp);
  if (it == pending_.end()) return;
  it->second.remaining -= num;
  it->second.received += num;
  if (it->second.remaining <= 0) {
    FinishLocked(timestamp, it->second.status);
    cv_.notify_all();
  }
}

void Customer::FailRequest(int timestamp, const Status& why) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = pending_.find(timestamp);
  if (it != pending_.end() && it->second.status.ok()) it->second.status = why;
}

int Customer::NewFailedRequest(const Status& why) {
  std::lock_guard<std::mutex> lk(mu_);
  int ts = next_timestamp_++;
  failed_[ts] = why;
  return ts;
}

size_t Customer::pending_size() {
  std::lock_guard<std::mutex> lk(mu_);
  return pending_.size() + failed_.size();
}

void Customer::Accept(const Message& recved) {
  // Responses are handled here, on the van thread: that is bookkeeping and the app's short
  // response handling, and it saves a thread switch on every round trip. Requests run the
  // app's handler, which may take long or wait, so they go to this customer's own thread.
  if (!recved.meta.request) return Handle(recved);
  recv_queue_.Push(recved, recved.meta.priority);
}

void Customer::FinishLocked(int ts, Status status) {
  pending_.erase(ts);
  if (!status.ok()) failed_[ts] = std::move(status);
}

bool Customer::AddResponseLocked(int ts, int sender, const Status& error) {
  auto it = pending_.find(ts);
  if (it == pending_.end()) return false;  // failed meanwhile
  Pending& p = it->second;
  auto a = std::find(p.awaiting.begin(), p.awaiting.end(), sender);
  if (a != p.awaiting.end()) p.awaiting.erase(a);
  ++p.received;
  if (p.status.ok() && !error.ok()) p.status = error;
  if (--p.remaining > 0) return false;
  FinishLocked(ts, p.status);
  return true;
}

void Customer::OnNodeFailed(int node_id, const Status& why, bool everything) {
  std::lock_guard<std::mutex> lk(mu_);
  for (auto it = pending_.begin(); it != pending_.end();) {
    const auto& awaiting = it->second.awaiting;
    if (everything || std::find(awaiting.begin(), awaiting.end(), node_id) != awaiting.end()) {
      failed_[it->first] =
          Status::NodeFailed("request " + std::to_string(it->first) + " failed: " + why.message());
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  cv_.notify_all();
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
  {
    std::lock_guard<std::mutex> lk(mu_);
    finished = AddResponseLocked(ts, sender, error);
  }
  // Outside the lock, so that the waiter does not wake only to block on mu_. The customer
  // cannot be destroyed meanwhile: the postoffice holds its customers' lock while delivering.
  if (finished) cv_.notify_all();
}

}  // namespace ps
