// SSPTableGroup, SSPWorker and SSPTable: the public face of the SSP tables. The group holds an
// SSPServer on server nodes and an SSPClient on worker nodes, behind one Customer.
#include "ps/ssp_table.h"

#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <limits>
#include <sstream>
#include <utility>

#include "ps/internal/checkpoint_io.h"
#include "ps/internal/customer.h"
#include "table/ssp_client.h"
#include "table/ssp_server.h"
#include "table/ssp_stats.h"
#include "table/ssp_wire.h"

namespace ps {

double SSPRow::Get(uint64_t col) const {
  if (cols.empty()) return col < values.size() ? values[col] : 0.0;
  auto it = std::lower_bound(cols.begin(), cols.end(), col);
  return it != cols.end() && *it == col ? values[it - cols.begin()] : 0.0;
}

std::string SSPStats::ToString() const {
  std::ostringstream os;
  os << std::fixed;
  if (reads || clocks) {
    os << "reads " << reads << ", cache hits " << cache_hits << " (" << std::setprecision(1)
       << 100.0 * cache_hit_rate() << "%), blocked " << blocked_reads << " (held by servers "
       << held_reads << ") for " << std::setprecision(3) << blocked_seconds << " s, clocks "
       << clocks << ", rows pushed " << rows_pushed << ", observed staleness";
    for (size_t d = 0; d < observed_staleness.size(); ++d) {
      if (observed_staleness[d]) {
        os << " " << d << (d + 1 == observed_staleness.size() ? "+" : "") << ":"
           << observed_staleness[d];
      }
    }
  } else {
    os << "reads served " << reads_served << ", held " << held_reads << ", rows pushed "
       << rows_pushed << ", global clock " << global_clock;
  }
  if (malformed) os << ", dropped " << malformed << " malformed";
  return os.str();
}

class SSPTableGroup::Impl {
 public:
  Impl(int app_id, const std::vector<SSPTableConfig>& tables, const SSPOptions& options,
       Postoffice* postoffice)
      : app_id_(app_id),
        postoffice_(postoffice ? postoffice : Postoffice::Get()),
        counters_(std::make_shared<SSPCounters>()) {
    for (const SSPTableConfig& t : tables) tables_[t.table_id] = t;
    if (postoffice_->is_server()) {
      server_.reset(new SSPServer(app_id, tables_, options, postoffice_, counters_));
    } else if (postoffice_->is_worker()) {
      client_.reset(new SSPClient(app_id, tables_, options, postoffice_, counters_));
    }
    if (server_ || client_) {
      metrics_source_ = postoffice_->AddMetricsSource([counters = counters_, app_id](auto* out) {
        const SSPStats s = counters->Snapshot();
        const std::vector<std::pair<std::string, std::string>> l = {
            {"app", std::to_string(app_id)}};
        auto add = [&](const char* name, const char* help, double v, bool counter = true) {
          out->push_back({name, help, counter, l, v, {}});
        };
        add("slackline_ssp_reads_total", "SSP Get calls", s.reads);
        add("slackline_ssp_cache_hits_total", "reads the process cache answered", s.cache_hits);
        add("slackline_ssp_cache_hit_rate", "cache hits per read", s.cache_hit_rate(), false);
        add("slackline_ssp_blocked_reads_total", "reads that waited", s.blocked_reads);
        add("slackline_ssp_blocked_seconds_total", "time reads waited", s.blocked_seconds);
        add("slackline_ssp_clocks_total", "Clock calls", s.clocks);
        add("slackline_ssp_global_clock", "servers: the slowest worker's clock", s.global_clock,
            false);
        Postoffice::MetricSample h{
            "slackline_ssp_staleness", "clocks by which a read's row was stale", true, l, 0, {}};
        for (size_t d = 0; d < s.observed_staleness.size(); ++d) {
          const bool last = d + 1 == s.observed_staleness.size();
          h.buckets.push_back(
              {last ? std::numeric_limits<double>::infinity() : static_cast<double>(d),
               s.observed_staleness[d]});
          h.value += static_cast<double>(d * s.observed_staleness[d]);
        }
        out->push_back(std::move(h));
      });
    }
    if (postoffice_->verbose() >= 1 && (server_ || client_)) {
      // Logged by the node's last Finalize, which may come after the group is gone.
      postoffice_->RegisterExitCallback([counters = counters_, app_id, po = postoffice_] {
        const std::string node = po->van() ? po->van()->my_node().ShortName() : "node";
        LOG(INFO) << node << ": SSP tables app " << app_id << ": "
                  << counters->Snapshot().ToString();
      });
    }
    customer_.reset(new Customer(
        app_id, 0, [this](const Message& msg) { Handle(msg); }, postoffice_));
  }

  ~Impl() {
    if (metrics_source_ >= 0) postoffice_->RemoveMetricsSource(metrics_source_);
    if (client_) client_->Stop();
    customer_.reset();  // joins the receive thread before the server or client goes
  }

  void Handle(const Message& msg) {
    if (server_) return server_->Handle(msg);
    if (client_) return client_->Handle(msg);
  }

  // Constant after construction.
  const int app_id_;
  Postoffice* const postoffice_;
  const std::shared_ptr<SSPCounters> counters_;
  ssp::TableMap tables_;
  std::unique_ptr<SSPServer> server_;
  std::unique_ptr<SSPClient> client_;
  std::unique_ptr<Customer> customer_;
  int metrics_source_ = -1;  // the postoffice's source of the group's figures; -1: none
};

SSPTableGroup::SSPTableGroup(int app_id, const std::vector<SSPTableConfig>& tables,
                             const SSPOptions& options, Postoffice* postoffice)
    : impl_(new Impl(app_id, tables, options, postoffice)) {}

SSPTableGroup::~SSPTableGroup() = default;

SSPStats SSPTableGroup::stats() const { return impl_->counters_->Snapshot(); }

// The current clock's increments of one thread, coalesced per row.
class SSPWorker::Log {
 public:
  ssp::RowMap rows;
};

SSPWorker::SSPWorker(SSPTableGroup* group, int customer_id)
    : group_(group->impl_.get()), customer_id_(customer_id), log_(new Log) {
  // Found when the node started (a failure there already stopped it).
  std::optional<CheckpointInfo> info;
  if (group_->postoffice_->ResumeCheckpoint(&info).ok() && info && info->kind == "ssp" &&
      info->app_id == group_->app_id_) {
    resumed_ = info;
    clock_ = info->step;
  }
}

namespace {
std::string WorkerStateFile(Postoffice* po, int customer_id) {
  return "worker-" + std::to_string(po->my_rank()) + "-" + std::to_string(customer_id);
}
}  // namespace

Status SSPWorker::Checkpoint(const std::string& state) {
  if (!group_->client_)
    return Status::InvalidArgument("SSP Checkpoint on a node that is no worker");
  Postoffice* po = group_->postoffice_;
  const CheckpointConfig config = po->checkpoint_config();
  if (config.dir.empty() || clock_ % config.every != 0) return Status::OK();
  const int clock = clock_;
  const std::string dir = checkpoint::StepPath(config.dir, clock);
  // Every thread ended "clock": the servers reach it and wait there.
  Status s = po->TryBarrier(customer_id_, kWorkerGroup);
  if (!s.ok()) return s;
  CheckpointFile mine;
  Status w = checkpoint::WriteFile(dir + "/" + WorkerStateFile(po, customer_id_),
                                   {{state.data(), state.size()}}, &mine);
  CheckpointInfo info;
  const bool leader = po->my_rank() == 0 && customer_id_ == 0;
  if (leader && w.ok()) w = group_->client_->CheckpointServers(clock, &info.files);
  // Every thread's state and every server's rows are written.
  s = po->TryBarrier(customer_id_, kWorkerGroup);
  if (s.ok() && leader && w.ok()) {
    info.step = clock;
    info.path = dir;
    info.job = config.job;
    info.kind = "ssp";
    info.app_id = group_->app_id_;
    info.val_type = DOUBLE;
    // The threads' files: every worker customer of the job, by rank and customer id.
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      const std::string name = e.path().filename().string();
      if (name.rfind("worker-", 0) != 0 || name.find(".tmp") != std::string::npos) continue;
      CheckpointFile f;
      f.name = name;
      w = checkpoint::DescribeFile(e.path().string(), &f);
      if (!w.ok()) break;
      info.files.push_back(f);
    }
    if (w.ok()) w = checkpoint::WriteManifest(info);
    if (w.ok()) checkpoint::Prune(config, clock);
  }
  // No thread goes on before the checkpoint is complete.
  Status b = po->TryBarrier(customer_id_, kWorkerGroup);
  if (!w.ok()) return w.Prefixed("SSP checkpoint at clock " + std::to_string(clock) + ": ");
  return s.ok() ? b : s;
}

Status SSPWorker::ResumedState(std::string* state) {
  state->clear();
  if (!resumed_) return Status::OK();
  const std::string name = WorkerStateFile(group_->postoffice_, customer_id_);
  for (const CheckpointFile& f : resumed_->files) {
    if (f.name != name) continue;
    SArray<char> bytes;
    Status s = checkpoint::ReadFile(*resumed_, f, &bytes);
    if (s.ok()) state->assign(bytes.data(), bytes.size());
    return s;
  }
  return Status::InvalidArgument("checkpoint " + resumed_->path + " has no state of worker " +
                                 std::to_string(group_->postoffice_->my_rank()) + " customer " +
                                 std::to_string(customer_id_) +
                                 " (it was written by a job with other workers)");
}

SSPWorker::~SSPWorker() = default;

SSPTable SSPWorker::table(int table_id) {
  auto it = group_->tables_.find(table_id);
  if (it == group_->tables_.end()) return SSPTable(this, table_id, -1, 0);
  return SSPTable(this, table_id, it->second.row_width, it->second.staleness);
}

static Status UnknownTable(int table_id) {
  return Status::InvalidArgument("SSP table " + std::to_string(table_id) + " is not in the group");
}

Status SSPWorker::Clock() {
  if (!group_->client_) return Status::InvalidArgument("SSP Clock on a node that is no worker");
  ssp::RowMap log;
  std::swap(log, log_->rows);
  Status s = group_->client_->Flush(customer_id_, clock_, std::move(log));
  if (s.ok()) ++clock_;
  return s;
}

Status SSPWorker::Get(int table_id, uint64_t row, SSPRow* out, int staleness) {
  if (!group_->client_) return Status::InvalidArgument("SSP Get on a node that is no worker");
  auto t = group_->tables_.find(table_id);
  if (t == group_->tables_.end()) return UnknownTable(table_id);
  if (staleness < 0) staleness = t->second.staleness;
  const ssp::RowKey key{table_id, row};
  auto pending = log_->rows.find(key);
  return group_->client_->Read(customer_id_, clock_, clock_ - staleness, key,
                               pending == log_->rows.end() ? nullptr : &pending->second, out);
}

Status SSPWorker::Inc(int table_id, uint64_t row, const uint64_t* cols, const double* deltas,
                      size_t n, bool dense_whole_row) {
  auto t = group_->tables_.find(table_id);
  if (t == group_->tables_.end()) return UnknownTable(table_id);
  const int width = t->second.row_width;
  if (dense_whole_row) {
    if (width <= 0 || n != static_cast<size_t>(width)) {
      return Status::InvalidArgument("IncRow of " + std::to_string(n) + " values on table " +
                                     std::to_string(table_id) + " with rows of width " +
                                     std::to_string(width));
    }
  } else if (width > 0) {
    for (size_t i = 0; i < n; ++i) {
      if (cols[i] >= static_cast<uint64_t>(width)) {
        return Status::InvalidArgument("column " + std::to_string(cols[i]) +
                                       " is outside the rows of table " + std::to_string(table_id) +
                                       " (width " + std::to_string(width) + ")");
      }
    }
  }
  ssp::RowData& r = log_->rows[ssp::RowKey{table_id, row}];
  if (width > 0) {
    if (r.dense.empty()) r.dense.assign(width, 0.0);
    for (size_t i = 0; i < n; ++i) r.dense[dense_whole_row ? i : cols[i]] += deltas[i];
  } else {
    for (size_t i = 0; i < n; ++i) r.sparse[cols[i]] += deltas[i];
  }
  return Status::OK();
}

Status SSPTable::Get(uint64_t row, SSPRow* out, int staleness) {
  return worker_->Get(table_id_, row, out, staleness);
}

Status SSPTable::Inc(uint64_t row, uint64_t col, double delta) {
  return worker_->Inc(table_id_, row, &col, &delta, 1, false);
}

Status SSPTable::BatchInc(uint64_t row, const std::vector<uint64_t>& cols,
                          const std::vector<double>& deltas) {
  if (cols.size() != deltas.size()) {
    return Status::InvalidArgument("BatchInc with " + std::to_string(cols.size()) +
                                   " columns and " + std::to_string(deltas.size()) + " deltas");
  }
  return worker_->Inc(table_id_, row, cols.data(), deltas.data(), cols.size(), false);
}

Status SSPTable::IncRow(uint64_t row, const std::vector<double>& deltas) {
  return worker_->Inc(table_id_, row, nullptr, deltas.data(), deltas.size(), true);
}

}  // namespace ps
