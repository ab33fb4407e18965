#include "table/ssp_server.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <optional>
#include <utility>

#include "ps/internal/checkpoint_io.h"
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
  if (!resumed_) {
    resumed_ = true;
    Status s = Resume();
    if (!s.ok()) postoffice_->Die(s);
  }
  switch (msg.meta.head) {
    case ssp::kCheckpoint:
      return HandleCheckpoint(msg);
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
    expected = base_clock_;
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
  if (checkpoint_node_ >= 0 && global_clock_ >= checkpoint_clock_) WriteCheckpoint();
}

void SSPServer::HandleCheckpoint(const Message& msg) {
  SArray<int64_t> h;
  Status s = ssp::HeaderFrame(msg, 0, 1, &h);
  if (s.ok() && !IsWorkerId(msg.meta.sender)) s = Status::InvalidArgument("not from a worker");
  if (s.ok() && (h[0] < 0 || h[0] > INT32_MAX)) s = Status::InvalidArgument("bad clock");
  if (!s.ok()) return Drop(msg, s);
  checkpoint_node_ = msg.meta.sender;
  checkpoint_clock_ = static_cast<int>(h[0]);
  if (global_clock_ >= checkpoint_clock_) WriteCheckpoint();
}

namespace {

// The header of a server's checkpoint file; the rows follow as the three frames of a row
// batch (ssp_wire.h), each padded to 8 bytes (they are 8-byte elements).
struct SSPFileHeader {
  char magic[8];
  uint32_t version;
  int32_t clock;
  uint64_t num_meta, num_cols, num_vals;
  uint64_t reserved;
};
constexpr char kSSPMagic[8] = {'S', 'L', 'C', 'K', 'S', 'S', 'P', '\n'};

}  // namespace

void SSPServer::WriteCheckpoint() {
  const int clock = checkpoint_clock_, node = checkpoint_node_;
  checkpoint_node_ = -1;
  const std::string me = "SSP server " + std::to_string(postoffice_->my_rank());
  std::string error;
  CheckpointFile f;
  const CheckpointConfig config = postoffice_->checkpoint_config();
  if (config.dir.empty()) {
    error = me + " has no PS_CHECKPOINT_DIR";
  } else if (global_clock_ != clock) {
    error = me + ": a checkpoint at clock " + std::to_string(clock) +
            " was asked for at global clock " + std::to_string(global_clock_) +
            " (every worker calls SSPWorker::Checkpoint at the same clock)";
  } else {
    // Rows in a stable order (table, row), so that a checkpoint's bytes do not depend on the
    // hash map's.
    std::vector<const ssp::RowKey*> keys;
    for (const auto& kv : rows_) keys.push_back(&kv.first);
    std::sort(keys.begin(), keys.end(), [](const ssp::RowKey* a, const ssp::RowKey* b) {
      return a->table != b->table ? a->table < b->table : a->row < b->row;
    });
    std::vector<const ssp::RowData*> data;
    for (const ssp::RowKey* k : keys) data.push_back(&rows_.at(*k).data);
    Message batch;
    ssp::AppendRows(tables_, keys, data, &batch);
    SSPFileHeader h;
    std::memset(&h, 0, sizeof(h));
    std::memcpy(h.magic, kSSPMagic, sizeof(kSSPMagic));
    h.version = 1;
    h.clock = clock;
    h.num_meta = batch.data[0].size() / sizeof(int64_t);
    h.num_cols = batch.data[1].size() / sizeof(uint64_t);
    h.num_vals = batch.data[2].size() / sizeof(double);
    std::vector<std::pair<const void*, size_t>> parts = {{&h, sizeof(h)}};
    for (const SArray<char>& d : batch.data) parts.emplace_back(d.data(), d.size());
    Status s = checkpoint::WriteFile(
        checkpoint::StepPath(config.dir, clock) + "/ssp-" + std::to_string(postoffice_->my_rank()),
        parts, &f);
    if (!s.ok()) error = me + ": " + s.message();
  }
  Van* van = postoffice_->van();
  if (!van) return;
  Message msg = ssp::NewMessage(app_id_, ssp::kCheckpointDone, node);
  msg.meta.body = error;
  msg.AddData(
      SArray<int64_t>{clock, static_cast<int64_t>(f.bytes), static_cast<int64_t>(f.checksum)});
  van->Send(msg);
}

Status SSPServer::Resume() {
  std::optional<CheckpointInfo> info;
  Status s = postoffice_->ResumeCheckpoint(&info);
  if (!s.ok() || !info || info->kind != "ssp" || info->app_id != app_id_) return s;
  const int rank = postoffice_->my_rank(), servers = postoffice_->num_servers();
  size_t loaded = 0;
  for (const CheckpointFile& f : info->files) {
    if (f.name.rfind("ssp-", 0) != 0) continue;  // a worker's own state
    const std::string path = info->path + "/" + f.name;
    SArray<char> bytes;
    s = checkpoint::ReadFile(*info, f, &bytes);
    if (!s.ok()) return s;
    SSPFileHeader h;
    if (bytes.size() < sizeof(h)) return Status::IOError("checkpoint " + path + " has no header");
    std::memcpy(&h, bytes.data(), sizeof(h));
    const size_t mb = h.num_meta * 8, cb = h.num_cols * 8, vb = h.num_vals * 8;
    if (std::memcmp(h.magic, kSSPMagic, sizeof(kSSPMagic)) != 0 || h.version != 1 ||
        h.num_meta > bytes.size() || h.num_cols > bytes.size() || h.num_vals > bytes.size() ||
        sizeof(h) + mb + cb + vb != bytes.size()) {
      return Status::IOError("checkpoint " + path + " is not an SSP server file of version 1");
    }
    if (h.clock != info->step) {
      return Status::IOError("checkpoint " + path + " is of clock " + std::to_string(h.clock) +
                             ", its manifest says " + std::to_string(info->step));
    }
    Message batch;
    batch.data = {bytes.segment(sizeof(h), sizeof(h) + mb),
                  bytes.segment(sizeof(h) + mb, sizeof(h) + mb + cb),
                  bytes.segment(sizeof(h) + mb + cb, bytes.size())};
    batch.meta.data_type = {INT64, UINT64, DOUBLE};
    ssp::RowBatch rows;
    s = ssp::ParseRows(tables_, batch, 0, &rows);
    if (!s.ok()) {
      return Status::InvalidArgument("checkpoint " + path +
                                     " does not fit this group's tables: " + s.message());
    }
    for (size_t i = 0; i < rows.keys.size(); ++i) {
      if (ssp::ServerOf(rows.keys[i], servers) != rank) continue;
      RowOf(rows.keys[i]).data = std::move(rows.rows[i]);
      ++loaded;
    }
  }
  base_clock_ = global_clock_ = info->step;
  counters_->Update([&](SSPStats* st) { st->global_clock = global_clock_; });
  LOG(INFO) << "SSP server " << rank << " restored " << loaded << " rows at clock " << info->step
            << " from checkpoint " << info->path;
  return Status::OK();
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
  if (num_threads_ < num_workers_) return base_clock_;
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
  Message msg = ssp::NewMessage(app_id_, ssp::kRows, node);
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
