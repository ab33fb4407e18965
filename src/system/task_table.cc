#include "ps/internal/task_table.h"

#include <algorithm>

#include "ps/internal/utils.h"

namespace ps {

void TaskTable::Create(int ts, const std::vector<int>& recvers, bool task) {
  Record& r = pending_[ts];
  r.awaiting = recvers;
  r.remaining = static_cast<int>(recvers.size());
  r.submitted = !task;
  r.sent = !task;
  r.sent_at = std::chrono::steady_clock::now();
}

Status TaskTable::AddDependency(int ts, int on, bool fails_with) {
  auto f = failed_.find(on);
  if (f != failed_.end()) return fails_with ? f->second.status : Status::OK();
  auto it = pending_.find(on);
  if (it == pending_.end()) return Status::OK();  // finished
  it->second.dependents.emplace_back(ts, fails_with);
  ++pending_.at(ts).blockers;
  return Status::OK();
}

void TaskTable::Attach(int ts, std::shared_ptr<void> data, Complete complete) {
  auto it = pending_.find(ts);
  if (it == pending_.end()) return;
  it->second.data = std::move(data);
  it->second.complete = std::move(complete);
}

std::shared_ptr<void> TaskTable::data(int ts) const {
  auto it = pending_.find(ts);
  return it == pending_.end() ? nullptr : it->second.data;
}

TaskTable::Ready TaskTable::Send(int ts, Record* r) {
  r->sent = true;
  r->sent_at = std::chrono::steady_clock::now();
  r->in_flight = r->remaining > 0;
  if (r->in_flight) max_in_flight_ = std::max(max_in_flight_, ++in_flight_);
  return Ready{ts, r->remaining == 0, std::move(r->send)};
}

void TaskTable::Submit(int ts, std::function<void()> send, std::vector<Ready>* ready) {
  auto it = pending_.find(ts);
  if (it == pending_.end()) return;  // failed meanwhile: never sent
  Record& r = it->second;
  CHECK(!r.submitted) << "task " << ts << " submitted twice";
  r.submitted = true;
  r.send = std::move(send);
  if (r.blockers == 0) ready->push_back(Send(ts, &r));  // else by whoever ends the last blocker
}

void TaskTable::FinishEmpty(int ts, std::vector<Ready>* ready) {
  auto it = pending_.find(ts);
  if (it != pending_.end()) Finish(ts, it->second.status, ready);
}

bool TaskTable::BeginResponse(int ts, int sender, int kind) {
  auto it = pending_.find(ts);
  if (it == pending_.end()) return false;
  Record& r = it->second;
  auto a = std::find(r.awaiting.begin(), r.awaiting.end(), sender);
  if (a == r.awaiting.end()) return false;
  r.awaiting.erase(a);
  if (r.received == 0 && r.handling == 0) r.kind = kind;
  ++r.handling;
  return true;
}

TaskTable::Step TaskTable::Settle(int ts, Record* r, std::vector<Ready>* ready,
                                  Complete* complete) {
  if (r->handling > 0) return Step::kPending;
  if (r->failing || (r->remaining <= 0 && !r->status.ok())) {
    Finish(ts, r->status, ready);
    return Step::kFinished;
  }
  if (r->remaining > 0) return Step::kPending;
  if (r->complete) {
    *complete = std::move(r->complete);
    r->complete = nullptr;
    ++r->handling;  // the completion runs: a failure meanwhile waits for it
    return Step::kComplete;
  }
  Finish(ts, r->status, ready);
  return Step::kFinished;
}

TaskTable::Step TaskTable::EndResponse(int ts, const Status& error, std::vector<Ready>* ready,
                                       Complete* complete) {
  auto it = pending_.find(ts);
  if (it == pending_.end()) return Step::kPending;
  Record& r = it->second;
  --r.handling;
  ++r.received;
  --r.remaining;
  if (r.status.ok() && !error.ok()) r.status = error;
  return Settle(ts, &r, ready, complete);
}

void TaskTable::EndComplete(int ts, const Status& result, std::vector<Ready>* ready) {
  auto it = pending_.find(ts);
  if (it == pending_.end()) return;
  Record& r = it->second;
  --r.handling;
  if (r.status.ok() && !result.ok()) r.status = result;
  Finish(ts, r.status, ready);
}

TaskTable::Step TaskTable::AddResponses(int ts, int num, std::vector<Ready>* ready,
                                        Complete* complete) {
  auto it = pending_.find(ts);
  if (it == pending_.end()) return Step::kPending;
  Record& r = it->second;
  r.remaining -= num;
  r.received += num;
  return Settle(ts, &r, ready, complete);
}

void TaskTable::MarkFailed(int ts, const Status& why) {
  auto it = pending_.find(ts);
  if (it != pending_.end() && it->second.status.ok()) it->second.status = why;
}

TaskTable::Step TaskTable::Fail(int ts, const Status& why, std::vector<Ready>* ready) {
  auto it = pending_.find(ts);
  if (it == pending_.end()) {
    if (!failed_.count(ts)) failed_[ts].status = why;
    return Step::kFinished;
  }
  Record& r = it->second;
  if (r.status.ok()) r.status = why;
  r.failing = true;
  Complete unused;
  return Settle(ts, &r, ready, &unused);
}

int TaskTable::FailAwaiting(int node, bool everything, const std::function<Status(int)>& why,
                            std::vector<Ready>* ready) {
  std::vector<int> hit;
  for (const auto& [ts, r] : pending_) {
    if (everything || std::find(r.awaiting.begin(), r.awaiting.end(), node) != r.awaiting.end()) {
      hit.push_back(ts);
    }
  }
  int finished = 0;
  for (int ts : hit) {
    if (pending_.count(ts) && Fail(ts, why(ts), ready) == Step::kFinished) ++finished;
  }
  return finished;
}

void TaskTable::Finish(int ts, Status status, std::vector<Ready>* ready) {
  std::vector<std::pair<int, Status>> finish{{ts, std::move(status)}};
  while (!finish.empty()) {
    auto [t, st] = std::move(finish.back());
    finish.pop_back();
    auto it = pending_.find(t);
    if (it == pending_.end()) continue;
    Record r = std::move(it->second);
    pending_.erase(it);
    if (r.in_flight) --in_flight_;
    if (latency_ && r.received > 0) latency_(r.kind, std::chrono::steady_clock::now() - r.sent_at);
    if (!st.ok()) failed_[t].status = st;
    for (const auto& [d, fails_with] : r.dependents) {
      auto dit = pending_.find(d);
      if (dit == pending_.end()) continue;
      if (fails_with && !st.ok()) {
        finish.emplace_back(
            d, st.Prefixed("request " + std::to_string(d) + " failed: it executes after request " +
                           std::to_string(t) + ", which failed: "));
      } else if (--dit->second.blockers == 0 && dit->second.submitted && !dit->second.sent) {
        ready->push_back(Send(d, &dit->second));
      }
    }
  }
}

Status TaskTable::result(int ts, bool waited) {
  auto it = failed_.find(ts);
  if (it == failed_.end()) return Status::OK();
  if (waited) it->second.waited = true;
  return it->second.status;
}

const Status* TaskTable::failure(int ts) const {
  auto it = failed_.find(ts);
  return it == failed_.end() ? nullptr : &it->second.status;
}

int TaskTable::responses(int ts) const {
  auto it = pending_.find(ts);
  return it == pending_.end() ? 0 : it->second.received;
}

size_t TaskTable::held() const {
  size_t unwaited = 0;
  for (const auto& f : failed_) unwaited += !f.second.waited;
  return pending_.size() + unwaited;
}

std::vector<int> TaskTable::PendingUpTo(int ts) const {
  std::vector<int> out;
  for (auto it = pending_.begin(); it != pending_.end() && it->first <= ts; ++it) {
    out.push_back(it->first);
  }
  return out;
}

}  // namespace ps
