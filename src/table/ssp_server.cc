#include "table/ssp_server.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "ps/internal/van.h"

namespace ps {

SSPServer::SSPServer(int app_id, const ssp::TableMap& tables, const SSPOptions& options,
                     Postoffice* postoffice, std::shared_ptr<SSPCounters> counters)
    : app_id_(app_id),
      tables_(tables),
      options_(options),
      postoffice_(postoffice),
      num_workers_(postoffice->num_workers()),
      counters_(std::move(counters)) {}

void SSPServer::Handle(const Message& msg) {
  switch (msg.meta.head) {
    case ssp::kRead:
      return HandleRead(msg);
    case ssp::kClock:
      return HandleClock(msg);
    default:
      return Drop(msg, Status::InvalidArgument("unknown command " + std::to_string(msg.meta.head)));
  }
}

void SSPServer::Drop(const Message& msg, const Status& why) {
  bool first = false;
  counters_->Update([&](SSPStats* s) { first = s->malformed++ == 0; });
  if (first) {
    LOG(WARNING) << "SSP server app " << app_id_ << ": dropped a message from node "
                 << msg.meta.sender << ": " << why.message() << " (logged once)";
  }
}

SSPServer::Row& SSPServer::RowOf(const ssp::RowKey& key) {
  auto it = rows_.find(key);
  if (it != rows_.end()) return it->second;
  Row& r = rows_[key];
  const int width = tables_.at(key.table).row_width;
  if (width > 0) r.data.dense.assign(width, 0.0);
  return r;
}

void SSPServer::MarkDirty(const ssp::RowKey& key) {
  if (!options_.eager || !subscribers_.count(key)) return;
  bool& d = is_dirty_[key];
  if (d) return;
  d = true;
  dirty_.push_back(key);
}

// Worker node ids are odd, from 9 on (Postoffice::WorkerRankToID).
static bool IsWorkerId(int id) { return id >= 9 && id % 2 == 1; }

void SSPServer::HandleRead(const Message& msg) {
  SArray<int64_t> h;
  Status s = ssp::HeaderFrame(msg, 0, 4, &h);
  if (s.ok() && !IsWorkerId(msg.meta.sender)) s = Status::InvalidArgument("not from a worker");
  if (s.ok() && (h[0] < 0 || h[0] > INT32_MAX || !tables_.count(static_cast<int>(h[0])))) {
    s = Status::InvalidArgument("read of unknown table " + std::to_string(h[0]));
  }
  if (s.ok() && (h[2] < 0 || h[2] >= ssp::kMaxThreads)) s = Status::InvalidArgument("bad thread");
  const ssp::RowKey key{static_cast<int>(h.empty() ? 0 : h[0]),
                        static_cast<uint64_t>(h.size() > 1 ? h[1] : 0)};
  if (s.ok() && ssp::ServerOf(key, postoffice_->num_servers()) != postoffice_->my_rank()) {
    s = Status::InvalidArgument("read of a row this server does not hold");
  }
  if (!s.ok()) return Drop(msg, s);
  const int node = msg.meta.sender, thread = static_cast<int>(h[2]);
  const int64_t need = h[3];
  RowOf(key);  // a row never written reads as zeros
  if (options_.eager) {
    std::vector<int>& subs = subscribers_[key];
    if (std::find(subs.begin(), subs.end(), node) == subs.end()) subs.push_back(node);
    subscriber_nodes_.insert(node);
  }
  if (need <= global_clock_) return SendRows(node, ssp::kReply, thread, 0, false, {key});
  // Too fresh for now: answered when the slowest worker reaches "need" (HandleClock).
  held_.emplace(static_cast<int>(std::min<int64_t>(need, std::numeric_limits<int>::max())),
                HeldRead{node, thread, key});
  counters_->Update([](SSPStats* st) { ++st->held_reads; });
}

void SSPServer::HandleClock(const Message& msg) {
  SArray<int64_t> h;
  Status s = ssp::HeaderFrame(msg, 0, 2, &h);
  if (s.ok() && !IsWorkerId(msg.meta.sender)) s = Status::InvalidArgument("not from a worker");
  if (s.ok() && (h[0] < 0 || h[0] >= ssp::kMaxThreads)) s = Status::InvalidArgument("bad thread");
  const int node = msg.meta.sender, thread = s.ok() ? static_cast<int>(h[0]) : 0;
  int expected = 0;  // the clock this thread ends next
  if (s.ok()) {
    auto n = clocks_.find(node);
    if (n != clocks_.end() && n->second.count(thread)) expected = n->second[thread];
    if (h[1] != expected) {
      s = Status::InvalidArgument("clock " + std::to_string(h[1]) + " of thread " +
                                  std::to_string(thread) + " out of order (expected " +
                                  std::to_string(expected) + ")");
    }
  }
  ssp::RowBatch batch;
  if (s.ok()) s = ssp::ParseRows(tables_, msg, 1, &batch);
  for (size_t i = 0; s.ok() && i < batch.keys.size(); ++i) {
    if (ssp::ServerOf(batch.keys[i], postoffice_->num_servers()) != postoffice_->my_rank()) {
      s = Status::InvalidArgument("increment of a row this server does not hold");
    }
  }
  if (!s.ok()) return Drop(msg, s);
  for (size_t i = 0; i < batch.keys.size(); ++i) {
    Row& row = RowOf(batch.keys[i]);
    if (Synchronous(batch.keys[i])) {
      // Visible once every worker ended this clock (below, when g passes it).
      if (row.pending.empty()) pending_rows_.push_back(batch.keys[i]);
      row.pending[expected].Add(batch.rows[i]);
    } else {
      row.data.Add(batch.rows[i]);
      MarkDirty(batch.keys[i]);
    }
  }
  auto& threads = clocks_[node];
  if (!threads.count(thread)) ++num_threads_;
  threads[thread] = expected + 1;
  const int global = ComputeGlobalClock();
  if (global != global_clock_) AdvanceTo(global);
  // Also tells the worker's process the global clock (see SSPClient).
  SendRows(node, ssp::kAck, thread, expected, false, {});
}

void SSPServer::AdvanceTo(int global) {
  global_clock_ = global;
  counters_->Update([&](SSPStats* st) { st->global_clock = global; });
  std::vector<ssp::RowKey> still;
  for (const ssp::RowKey& key : pending_rows_) {
    Row& row = rows_[key];
    if (row.pending.empty()) continue;  // listed twice
    while (!row.pending.empty() && row.pending.begin()->first < global_clock_) {
      row.data.Add(row.pending.begin()->second);
      row.pending.erase(row.pending.begin());
      MarkDirty(key);
    }
    if (!row.pending.empty()) still.push_back(key);
  }
  pending_rows_.swap(still);
  // Pushes go first: a reader woken by a held answer then finds its other rows fresh.
  if (options_.eager) Push();
  ReleaseHeld();
}

void SSPServer::Push() {
  // Every process that reads rows here learns the new clock, with the rows changed since the
  // last push among those it read; its other rows of this server are unchanged.
  std::map<int, std::vector<ssp::RowKey>> to;
  for (int n : subscriber_nodes_) to[n];
  for (const ssp::RowKey& k : dirty_) {
    for (int n : subscribers_[k]) to[n].push_back(k);
  }
  dirty_.clear();
  is_dirty_.clear();
  for (const auto& nk : to) SendRows(nk.first, ssp::kPush, -1, global_clock_, false, nk.second);
}

void SSPServer::ReleaseHeld() {
  // Reads that waited for this clock, in the order of the clocks they need.
  while (!held_.empty() && held_.begin()->first <= global_clock_) {
    HeldRead r = held_.begin()->second;
    held_.erase(held_.begin());
    SendRows(r.node, ssp::kReply, r.thread, 0, true, {r.key});
  }
}

int SSPServer::ComputeGlobalClock() const {
  if (num_threads_ < num_workers_) return 0;
  int low = std::numeric_limits<int>::max();
  for (const auto& node : clocks_) {
    for (const auto& t : node.second) low = std::min(low, t.second);
  }
  return low == std::numeric_limits<int>::max() ? 0 : low;
}

void SSPServer::SendRows(int node, ssp::RowsKind kind, int thread, int clock, bool held,
                         const std::vector<ssp::RowKey>& keys) {
  Van* van = postoffice_->van();
  if (!van) return;
  Message msg;
  msg.meta.app_id = app_id_;
  msg.meta.customer_id = 0;
  msg.meta.request = true;
  msg.meta.head = ssp::kRows;
  msg.meta.recver = node;
  msg.meta.timestamp = 0;
  auto header = std::make_shared<std::vector<int64_t>>(
      std::initializer_list<int64_t>{kind, global_clock_, held ? 1 : 0, thread, clock, 0});
  auto it = clocks_.find(node);
  if (it != clocks_.end()) {
    (*header)[5] = static_cast<int64_t>(it->second.size());
    for (const auto& t : it->second) {
      header->push_back(t.first);
      header->push_back(t.second);
    }
  }
  msg.AddData(SArray<int64_t>(header));
  std::vector<const ssp::RowKey*> k;
  std::vector<const ssp::RowData*> r;
  for (const ssp::RowKey& key : keys) {
    k.push_back(&key);
    r.push_back(&RowOf(key).data);
  }
  ssp::AppendRows(tables_, k, r, &msg);
  // Counted before sending: a worker that has its answer sees it counted.
  counters_->Update([&](SSPStats* st) {
    if (kind == ssp::kReply) ++st->reads_served;
    if (kind == ssp::kPush) st->rows_pushed += keys.size();
  });
  van->Send(msg);
}

}  // namespace ps
