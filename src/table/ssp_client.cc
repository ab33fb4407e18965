#include "table/ssp_client.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "ps/internal/van.h"

namespace ps {

namespace {

// How often a blocked read looks whether the peers it waits for are still alive.
constexpr auto kPeerCheck = std::chrono::milliseconds(200);

// Server node ids are even, from 8 on (Postoffice::ServerRankToID).
bool IsServerId(int id) { return id >= 8 && id % 2 == 0; }

void ToRow(const SSPTableConfig& t, const ssp::RowData& d, SSPRow* out) {
  out->cols.clear();
  out->values.clear();
  if (t.row_width > 0) {
    out->values.assign(d.dense.begin(), d.dense.end());
    out->values.resize(t.row_width, 0.0);
    return;
  }
  out->cols.reserve(d.sparse.size());
  out->values.reserve(d.sparse.size());
  for (const auto& kv : d.sparse) {
    out->cols.push_back(kv.first);
    out->values.push_back(kv.second);
  }
}

}  // namespace

SSPClient::SSPClient(int app_id, const ssp::TableMap& tables, const SSPOptions& options,
                     Postoffice* postoffice, std::shared_ptr<SSPCounters> counters)
    : app_id_(app_id),
      tables_(tables),
      options_(options),
      postoffice_(postoffice),
      num_servers_(postoffice->num_servers()),
      counters_(std::move(counters)),
      by_server_(static_cast<size_t>(std::max(num_servers_, 0))),
      server_clock_(static_cast<size_t>(std::max(num_servers_, 0)), 0) {}

void SSPClient::Stop() {
  std::lock_guard<std::mutex> lk(mu_);
  stopped_ = true;
  cv_.notify_all();
}

void SSPClient::Drop(const Message& msg, const Status& why) {
  bool first = false;
  counters_->Update([&](SSPStats* s) { first = s->malformed++ == 0; });
  if (first) {
    LOG(WARNING) << "SSP client app " << app_id_ << ": dropped a message from node "
                 << msg.meta.sender << ": " << why.message() << " (logged once)";
  }
}

Status SSPClient::SendRead(int thread, int need, const ssp::RowKey& key) {
  Van* van = postoffice_->van();
  if (!van) return Status::Shutdown("SSP read before Start");
  Message msg = ssp::NewMessage(app_id_, ssp::kRead,
                                Postoffice::ServerRankToID(ssp::ServerOf(key, num_servers_)));
  msg.AddData(SArray<int64_t>{key.table, static_cast<int64_t>(key.row), thread, need});
  Status s = van->TrySend(msg);
  if (s.ok()) return s;
  return s.Prefixed("SSP read of row " + std::to_string(key.row) + " of table " +
                    std::to_string(key.table) + ": ");
}

Status SSPClient::CheckPeers(int server) {
  if (stopped_) return Status::Shutdown("SSP table group is stopping");
  Status s = postoffice_->PeerStatus(Postoffice::ServerRankToID(server));
  if (!s.ok()) return s;
  for (int id : postoffice_->GetNodeIDs(kWorkerGroup)) {
    s = postoffice_->PeerStatus(id);
    if (!s.ok()) return s;
  }
  return Status::OK();
}

Status SSPClient::Read(int thread, int clock, int need, const ssp::RowKey& key,
                       const ssp::RowData* pending, SSPRow* out) {
  using Clock = std::chrono::steady_clock;
  const int server = ssp::ServerOf(key, num_servers_);
  std::unique_lock<std::mutex> lk(mu_);
  Clock::time_point start;
  bool waited = false;
  auto it = cache_.find(key);
  while (it == cache_.end() || it->second.clock < need) {
    if (!waited) {
      waited = true;
      start = Clock::now();
    }
    Status s = CheckPeers(server);
    if (!s.ok()) return s;
    // One request per row at a time serves every thread that needs no fresher clock. In
    // eager mode a cached row is refreshed by the server's next push: no request needed.
    InFlight& f = inflight_[key];
    const bool pushed = options_.eager && it != cache_.end();
    if (!pushed && (f.outstanding == 0 || f.max_need < need)) {
      Status sent = SendRead(thread, need, key);
      if (!sent.ok()) {
        // Its answer will not come: the read fails naming the server.
        if (f.outstanding == 0) inflight_.erase(key);
        return sent;
      }
      f.max_need = f.outstanding == 0 ? need : std::max(f.max_need, need);
      ++f.outstanding;
    }
    cv_.wait_for(lk, kPeerCheck);
    it = cache_.find(key);
  }
  const CachedRow& row = it->second;
  ssp::RowData data = row.data;
  const int own = row.OwnOf(thread);
  auto f = flushed_.find(thread);
  if (f != flushed_.end()) {
    for (auto c = f->second.lower_bound(own); c != f->second.end(); ++c) {
      auto r = c->second.log->find(key);
      if (r != c->second.log->end()) data.Add(r->second);
    }
  }
  const int row_clock = row.clock;
  lk.unlock();
  if (pending) data.Add(*pending);
  ToRow(tables_.at(key.table), data, out);
  out->clock = row_clock;
  const double secs = waited ? std::chrono::duration<double>(Clock::now() - start).count() : 0.0;
  const int d = std::max(0, std::min(clock - row_clock, SSPTableGroup::kStalenessBuckets - 1));
  counters_->Update([&](SSPStats* st) {
    ++st->reads;
    if (waited) {
      ++st->blocked_reads;
      st->blocked_seconds += secs;
    } else {
      ++st->cache_hits;
    }
    ++st->observed_staleness[d];
  });
  return Status::OK();
}

Status SSPClient::Flush(int thread, int clock, ssp::RowMap log) {
  Van* van = postoffice_->van();
  if (!van) return Status::Shutdown("SSP Clock before Start");
  std::vector<std::vector<const ssp::RowKey*>> keys(num_servers_);
  std::vector<std::vector<const ssp::RowData*>> rows(num_servers_);
  auto shared = std::make_shared<const ssp::RowMap>(std::move(log));
  for (const auto& kv : *shared) {
    const int s = ssp::ServerOf(kv.first, num_servers_);
    keys[s].push_back(&kv.first);
    rows[s].push_back(&kv.second);
  }
  {
    // Recorded before sending: an acknowledgement may come back at once.
    std::lock_guard<std::mutex> lk(mu_);
    if (stopped_) return Status::Shutdown("SSP table group is stopping");
    // No server can have passed this clock yet (it needs this thread to end it), unless it
    // misreports its clock: such a server is not waited for.
    int left = 0;
    for (int s = 0; s < num_servers_; ++s) left += server_clock_[s] <= clock;
    if (left > 0) flushed_[thread][clock] = Flushed{shared, left};
  }
  // Every server learns the clock, whether or not it holds rows of this log.
  for (int s = 0; s < num_servers_; ++s) {
    Message msg = ssp::NewMessage(app_id_, ssp::kClock, Postoffice::ServerRankToID(s));
    msg.AddData(SArray<int64_t>{thread, clock});
    ssp::AppendRows(tables_, keys[s], rows[s], &msg);
    Status sent = van->TrySend(msg);
    if (!sent.ok()) return sent.Prefixed("SSP Clock: ");
  }
  counters_->Update([](SSPStats* st) { ++st->clocks; });
  return Status::OK();
}

void SSPClient::InstallLocked(const ssp::RowKey& key, ssp::RowData&& data, int global,
                              const std::vector<int>& own, int server) {
  auto ins = cache_.emplace(key, CachedRow());
  CachedRow& row = ins.first->second;
  if (ins.second) by_server_[server].push_back(key);
  row.data = std::move(data);
  row.clock = global;
  row.server = server;
  if (tables_.at(key.table).staleness == 0) {
    row.own.clear();  // served as of the global clock, for every thread alike
    row.own_floor = global;
  } else {
    row.own = own;
    row.own_floor = 0;
  }
}

void SSPClient::PassLocked(int server, int global) {
  const int from = server_clock_[server];
  if (global <= from) return;
  server_clock_[server] = global;
  for (auto& t : flushed_) {
    const int thread = t.first;
    auto end = t.second.lower_bound(global);
    for (auto f = t.second.lower_bound(from); f != end;) {
      const int clock = f->first;
      for (const auto& kv : *f->second.log) {
        if (ssp::ServerOf(kv.first, num_servers_) != server) continue;
        auto c = cache_.find(kv.first);
        if (c == cache_.end() || c->second.OwnOf(thread) > clock) continue;
        CachedRow& row = c->second;
        if (row.own.size() <= static_cast<size_t>(thread))
          row.own.resize(thread + 1, row.own_floor);
        row.data.Add(kv.second);
        row.own[thread] = clock + 1;
      }
      f = --f->second.servers_left <= 0 ? t.second.erase(f) : std::next(f);
    }
  }
}

Status SSPClient::CheckpointServers(int clock, std::vector<CheckpointFile>* files) {
  Van* van = postoffice_->van();
  if (!van) return Status::Shutdown("SSP checkpoint before Start");
  {
    std::lock_guard<std::mutex> lk(mu_);
    checkpoint_answers_.clear();
  }
  for (int s = 0; s < num_servers_; ++s) {
    Message msg = ssp::NewMessage(app_id_, ssp::kCheckpoint, Postoffice::ServerRankToID(s));
    msg.AddData(SArray<int64_t>{clock});
    Status sent = van->TrySend(msg);
    if (!sent.ok()) return sent.Prefixed("SSP checkpoint: ");
  }
  std::unique_lock<std::mutex> lk(mu_);
  while (static_cast<int>(checkpoint_answers_.size()) < num_servers_) {
    for (int s = 0; s < num_servers_; ++s) {
      if (checkpoint_answers_.count(s)) continue;
      Status st = CheckPeers(s);
      if (!st.ok()) return st;
    }
    cv_.wait_for(lk, kPeerCheck);
  }
  files->clear();
  for (const auto& a : checkpoint_answers_) {
    if (!a.second.first.empty()) return Status::IOError(a.second.first);
    files->push_back(a.second.second);
  }
  return Status::OK();
}

void SSPClient::Handle(const Message& msg) {
  if (msg.meta.head == ssp::kCheckpointDone) {
    SArray<int64_t> h;
    Status s = ssp::HeaderFrame(msg, 0, 3, &h);
    const int server = Postoffice::IDtoRank(msg.meta.sender);
    if (s.ok() && (!IsServerId(msg.meta.sender) || server >= num_servers_)) {
      s = Status::InvalidArgument("not from a server");
    }
    if (!s.ok()) return Drop(msg, s);
    CheckpointFile f;
    f.name = "ssp-" + std::to_string(server);
    f.bytes = static_cast<uint64_t>(h[1]);
    f.checksum = static_cast<uint64_t>(h[2]);
    std::lock_guard<std::mutex> lk(mu_);
    checkpoint_answers_[server] = {msg.meta.body, f};
    cv_.notify_all();
    return;
  }
  SArray<int64_t> h;
  Status s = msg.meta.head == ssp::kRows ? ssp::HeaderFrame(msg, 0, 6, &h)
                                         : Status::InvalidArgument("unknown command");
  const int sender = msg.meta.sender;
  const int server = Postoffice::IDtoRank(sender);
  if (s.ok() && (!IsServerId(sender) || server >= num_servers_)) {
    s = Status::InvalidArgument("not from a server");
  }
  if (s.ok() &&
      (h[0] < ssp::kReply || h[0] > ssp::kAck || h[1] < 0 || h[1] > INT32_MAX || h[3] < -1 ||
       h[3] >= ssp::kMaxThreads || h[4] < 0 || h[4] > INT32_MAX || h[5] < 0 ||
       h[5] > ssp::kMaxThreads || h.size() != 6 + 2 * static_cast<size_t>(h[5]))) {
    s = Status::InvalidArgument("bad rows header");
  }
  std::vector<int> own;
  for (int64_t i = 0; s.ok() && i < h[5]; ++i) {
    const int64_t t = h[6 + 2 * i], c = h[7 + 2 * i];
    if (t < 0 || t >= ssp::kMaxThreads || c < 0 || c > INT32_MAX) {
      s = Status::InvalidArgument("bad thread clock");
      break;
    }
    if (own.size() <= static_cast<size_t>(t)) own.resize(t + 1, 0);
    own[t] = static_cast<int>(c);
  }
  ssp::RowBatch batch;
  if (s.ok()) s = ssp::ParseRows(tables_, msg, 1, &batch);
  for (size_t i = 0; s.ok() && i < batch.keys.size(); ++i) {
    if (ssp::ServerOf(batch.keys[i], num_servers_) != server) {
      s = Status::InvalidArgument("a row from a server that does not hold it");
    }
  }
  if (s.ok() && h[0] == ssp::kReply && batch.keys.size() != 1) {
    s = Status::InvalidArgument("a read answered with " + std::to_string(batch.keys.size()) +
                                " rows");
  }
  if (!s.ok()) return Drop(msg, s);
  const int global = static_cast<int>(h[1]);
  const int64_t kind = h[0];
  std::lock_guard<std::mutex> lk(mu_);
  for (size_t i = 0; i < batch.keys.size(); ++i) {
    InstallLocked(batch.keys[i], std::move(batch.rows[i]), global, own, server);
  }
  if (kind == ssp::kReply) {
    auto f = inflight_.find(batch.keys[0]);
    if (f != inflight_.end() && --f->second.outstanding <= 0) inflight_.erase(f);
    if (h[2]) counters_->Update([](SSPStats* st) { ++st->held_reads; });
  } else if (kind == ssp::kPush) {
    // A push lists every row of ours that changed since the last one: the others are current.
    for (const ssp::RowKey& k : by_server_[server]) {
      CachedRow& row = cache_[k];
      if (row.clock >= global) continue;
      ssp::RowData same = std::move(row.data);
      InstallLocked(k, std::move(same), global, own, server);
    }
    counters_->Update([&](SSPStats* st) { st->rows_pushed += batch.keys.size(); });
  }
  PassLocked(server, global);
  cv_.notify_all();
}

}  // namespace ps
