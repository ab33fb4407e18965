#include "ps/internal/postoffice.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "metrics/metrics_exposer.h"
#include "ps/internal/checkpoint_io.h"

namespace ps {
namespace {

// Requests kept for an app that does not exist yet, at most; and apps they may wait for.
constexpr size_t kMaxWaitingRequests = 1 << 16;
constexpr size_t kMaxWaitingApps = 64;

// "worker 0: sent 1200 bytes, received 3400 bytes, dropped 2 messages (bad meta 2)".
std::string TrafficSummary(const Van& van) {
  std::ostringstream os;
  os << van.my_node().ShortName() << ": sent " << van.bytes_sent() << " bytes, received "
     << van.bytes_received() << " bytes, dropped " << van.dropped_total() << " messages";
  std::string reasons;
  for (int r = 0; r < static_cast<int>(DropReason::kNumReasons); ++r) {
    uint64_t n = van.dropped(static_cast<DropReason>(r));
    if (n)
      reasons += (reasons.empty() ? "" : ", ") +
                 std::string(DropReasonName(static_cast<DropReason>(r))) + " " + std::to_string(n);
  }
  if (!reasons.empty()) os << " (" << reasons << ")";
  if (van.failovers() > 0) os << "; " << van.failovers() << " failovers";
  if (van.replacements() > 0) {
    os << "; " << van.replacements() << " replacement servers joined, " << van.synced()
       << " synced";
  }
  Van::Recoveries rec = van.recoveries();
  if (rec.count > 0) {
    os.precision(3);
    os << "; " << rec.count << " failovers recovered from, in " << rec.total_seconds
       << " s in all (the longest " << rec.max_seconds << " s)";
  }
  return os.str();
}

// The checks added by AddConfigCheck; with "add", adds one first. Returns a copy, so that the
// checks run without the lock.
std::vector<Postoffice::ConfigCheck> ConfigChecks(const Postoffice::ConfigCheck* add) {
  static std::mutex mu;
  static auto* checks = new std::vector<Postoffice::ConfigCheck>();  // never destroyed
  std::lock_guard<std::mutex> lk(mu);
  if (add) checks->push_back(*add);
  return *checks;
}

}  // namespace

void Postoffice::AddConfigCheck(const ConfigCheck& check) { ConfigChecks(&check); }

Postoffice* Postoffice::Get() {
  // Never destroyed: a static destructor must not tear down ZeroMQ while threads run.
  static Postoffice* po = new Postoffice();
  return po;
}

Postoffice::Postoffice() : env_(Environment::Get()), exit_on_job_end_(true) {}

Postoffice::Postoffice(std::unordered_map<std::string, std::string> env)
    : own_env_(new Environment(std::move(env))), env_(own_env_.get()), exit_on_job_end_(false) {}

Postoffice::~Postoffice() {
  metrics_.reset();
  if (van_) van_->Stop();
}

void Postoffice::set_transport_factory(TransportFactory factory) {
  std::lock_guard<std::mutex> lk(start_mu_);
  transport_factory_ = std::move(factory);
}

void Postoffice::set_exit_on_job_end(bool exit) { exit_on_job_end_ = exit; }

Status Postoffice::ParseConfigLocked() {
  if (config_parsed_) return config_status_;
  config_parsed_ = true;
  VanOptions o;
  Status s;
  auto check = [&](Status st) {
    if (s.ok() && !st.ok()) s = st;
  };
  const char* role = env_->find("DMLC_ROLE");
  std::string r = env_->GetString("DMLC_ROLE");
  if (!role) {
    check(Status::InvalidArgument("DMLC_ROLE is not set (scheduler, server or worker)"));
  } else if (r == "scheduler") {
    o.role = Node::SCHEDULER;
  } else if (r == "server") {
    o.role = Node::SERVER;
  } else if (r == "worker") {
    o.role = Node::WORKER;
  } else {
    check(Status::InvalidArgument(std::string("DMLC_ROLE=") + role +
                                  " is not one of scheduler, server, worker"));
  }
  check(env_->GetInt("DMLC_NUM_SERVER", 0, 0, 1000000, &o.num_servers, true));
  check(env_->GetInt("DMLC_NUM_WORKER", 0, 0, 1000000, &o.num_workers, true));
  check(env_->GetInt("PS_REPLICATION", 1, 1, 1000000, &o.replication));
  if (s.ok()) check(CheckReplication(o.replication, o.num_servers));
  o.scheduler_host = env_->GetString("DMLC_PS_ROOT_URI");
  if (o.scheduler_host.empty()) {
    check(Status::InvalidArgument("DMLC_PS_ROOT_URI is not set (the scheduler's host)"));
  }
  check(env_->GetInt("DMLC_PS_ROOT_PORT", 0, 1, 65535, &o.scheduler_port, true));
  o.node_host = env_->GetString("DMLC_NODE_HOST");
  o.interface = env_->GetString("DMLC_INTERFACE");
  check(env_->GetInt("PS_VERBOSE", 0, 0, 2, &o.verbose));
  check(env_->GetInt("PS_SPIN_US", 0, 0, 1000000, &spin_us_));
  check(env_->GetInt("PS_METRICS_PORT", -1, 0, 65535, &metrics_port_));
  check(env_->GetSeconds("PS_START_TIMEOUT", 60, 0.1, &o.start_timeout));
  check(env_->GetSeconds("PS_HEARTBEAT_INTERVAL", 1, 0, &o.heartbeat_interval));
  check(env_->GetSeconds("PS_HEARTBEAT_TIMEOUT", 10, 0.1, &o.heartbeat_timeout));
  o.key_file = env_->GetString("PS_KEY_FILE");
  long max_message_mb = 0, max_waiting_mb = 0;
  check(env_->GetInt("PS_MAX_MESSAGE_MB", 1024, 1, 1 << 20, &max_message_mb));
  o.max_message_bytes = static_cast<int64_t>(max_message_mb) << 20;
  check(env_->GetInt("PS_MAX_WAITING_MB", 256, 0, 1 << 20, &max_waiting_mb));
  max_waiting_bytes_ = static_cast<size_t>(max_waiting_mb) << 20;
  if (s.ok() && o.heartbeat_interval > 0 && o.heartbeat_timeout < 2 * o.heartbeat_interval) {
    std::ostringstream os;
    os << "PS_HEARTBEAT_TIMEOUT=" << o.heartbeat_timeout
       << " must be at least twice PS_HEARTBEAT_INTERVAL=" << o.heartbeat_interval;
    check(Status::InvalidArgument(os.str()));
  }
  if (s.ok() && o.num_servers + o.num_workers == 0) {
    check(Status::InvalidArgument("DMLC_NUM_SERVER and DMLC_NUM_WORKER are both 0"));
  }
  check(checkpoint::ParseConfig(*env_, &checkpoint_));
  for (const ConfigCheck& c : ConfigChecks(nullptr)) check(c(*env_));
  options_ = o;
  config_status_ = s;
  return s;
}

Status Postoffice::TryStart(int customer_id, const char* argv0, bool do_barrier) {
  Van* van;
  {
    std::lock_guard<std::mutex> life(lifecycle_mu_);
    std::lock_guard<std::mutex> lk(start_mu_);
    Status s = ParseConfigLocked();
    if (!s.ok()) return s;
    if (options_.role != Node::SCHEDULER) {
      // Before any request can arrive: a server restores from it before it handles one.
      s = FindResumeLocked();
      if (!s.ok()) return s;
    }
    if (active_customers_ == 0) {
      // First Start of this node (or the first after a complete Finalize): a fresh van.
      metrics_.reset();  // it reads van_, about to be replaced
      if (van_) van_->Stop();
      van_.reset(new Van(transport_factory_ ? transport_factory_() : Transport::Create("zmq")));
      van_->set_config_handler([this] { OnConfiguration(); });
      s = van_->Start(
          options_, [this](Message&& msg) { OnData(std::move(msg)); },
          [this](const Node& node, const Status& why) { OnNodeFailed(node, why); },
          [this](const Status& why) { OnJobEnd(why); });
      if (!s.ok()) return s;
      node_ids_.clear();
      if (metrics_port_ >= 0) {
        s = MetricsExposer::Start(this, metrics_port_, &metrics_);
        if (!s.ok()) {
          van_->Stop();
          return s;
        }
        LOG(INFO) << RoleName(options_.role) << " serves metrics at " << MetricsUrl();
      }
    }
    ++active_customers_;
    van = van_.get();
  }
  Status s = van->Register(customer_id);
  if (!s.ok()) return s;
  {
    std::lock_guard<std::mutex> lk(start_mu_);
    if (node_ids_.empty()) {
      BuildNodeIDs();
      ReportRank();
    }
  }
  // A replacement server joins a running job: the others passed the start barrier long ago.
  if (do_barrier && !van->is_recovery()) {
    return TryBarrier(customer_id, kScheduler + kServerGroup + kWorkerGroup);
  }
  return Status::OK();
}

void Postoffice::Start(int customer_id, const char* argv0, bool do_barrier) {
  Status s = TryStart(customer_id, argv0, do_barrier);
  if (!s.ok()) Die(s);
}

Status Postoffice::TryFinalize(int customer_id, bool do_barrier) {
  Van* van;
  {
    std::lock_guard<std::mutex> lk(start_mu_);
    if (active_customers_ == 0) return Status::Shutdown("Finalize without a matching Start");
    van = van_.get();
  }
  Status s;
  if (do_barrier && van->ready()) {
    s = van->Barrier(customer_id, kScheduler + kServerGroup + kWorkerGroup, true);
  }
  // Every request this node received before the final barrier is handled before Finalize
  // returns: ps-lite programs read what their handlers counted once it has.
  if (s.ok()) {
    std::vector<Registered*> held = Hold();
    for (Registered* r : held) r->customer->WaitIdle();
    Release(held);
  }
  std::vector<Callback> callbacks;
  {
    // A Start meanwhile waits on lifecycle_mu_, so van_ stays the van stopped here.
    std::lock_guard<std::mutex> life(lifecycle_mu_);
    {
      std::lock_guard<std::mutex> lk(start_mu_);
      if (--active_customers_ > 0) return s;
    }
    van->Stop();
    metrics_.reset();
    if (options_.verbose >= 1) LOG(INFO) << TrafficSummary(*van);
    std::lock_guard<std::mutex> lk(start_mu_);
    callbacks = exit_callbacks_;
  }
  for (const auto& cb : callbacks) cb();
  return s;
}

void Postoffice::Finalize(int customer_id, bool do_barrier) {
  Status s = TryFinalize(customer_id, do_barrier);
  if (!s.ok()) Die(s);
}

Status Postoffice::TryBarrier(int customer_id, int node_group) {
  Van* van;
  {
    std::lock_guard<std::mutex> lk(start_mu_);
    if (!van_ || active_customers_ == 0) return Status::Shutdown("Barrier before Start");
    van = van_.get();
  }
  return van->Barrier(customer_id, node_group);
}

void Postoffice::Barrier(int customer_id, int node_group) {
  Status s = TryBarrier(customer_id, node_group);
  if (!s.ok()) Die(s);
}

void Postoffice::ReportRank() {
  // tracker/launch.py labels a node's output by launch order until it reads this line; on both
  // streams, so that the lines each stream carries after it follow it.
  const char* report = env_->find("PS_REPORT_RANK");
  if (!report || std::string(report) != "1") return;
  const Node me = van_->my_node();
  for (FILE* f : {stdout, stderr}) {
    if (me.role != Node::SCHEDULER) {
      std::fprintf(f, "@@slackline-rank %s %d\n", RoleName(me.role), IDtoRank(me.id));
    }
    if (metrics_ && f == stderr) std::fprintf(f, "@@slackline-metrics %s\n", MetricsUrl().c_str());
    std::fflush(f);
  }
}

std::string Postoffice::MetricsUrl() const {
  return "http://" + van_->my_node().hostname + ":" + std::to_string(metrics_->port()) + "/metrics";
}

int Postoffice::AddMetricsSource(const MetricsSource& source) {
  std::lock_guard<std::mutex> lk(sources_mu_);
  metrics_sources_[next_source_id_] = source;
  return next_source_id_++;
}

void Postoffice::RemoveMetricsSource(int id) {
  std::lock_guard<std::mutex> lk(sources_mu_);
  metrics_sources_.erase(id);
}

std::vector<Postoffice::MetricsSource> Postoffice::metrics_sources() const {
  std::lock_guard<std::mutex> lk(sources_mu_);
  std::vector<MetricsSource> sources;
  for (const auto& [id, source] : metrics_sources_) sources.push_back(source);
  return sources;
}

void Postoffice::ForEachCustomer(const std::function<void(Customer*)>& fn) const {
  // Without the registry's lock, like every delivery; held against removal meanwhile.
  std::vector<Registered*> held = Hold();
  for (Registered* r : held) fn(r->customer);
  Release(held);
}

void Postoffice::BuildNodeIDs() {
  for (const Node& n : van_->nodes()) {
    int group = n.role == Node::SCHEDULER ? kScheduler
                : n.role == Node::SERVER  ? kServerGroup
                                          : kWorkerGroup;
    node_ids_[n.id].push_back(n.id);
    for (int g = 1; g <= kScheduler + kServerGroup + kWorkerGroup; ++g) {
      if (g & group) node_ids_[g].push_back(n.id);
    }
  }
}

const std::vector<int>& Postoffice::GetNodeIDs(int node_id) const {
  static const std::vector<int> kNone;
  std::lock_guard<std::mutex> lk(start_mu_);
  auto it = node_ids_.find(node_id);
  return it == node_ids_.end() ? kNone : it->second;
}

const std::vector<Range>& Postoffice::GetServerKeyRanges() {
  std::lock_guard<std::mutex> lk(start_mu_);
  ParseConfigLocked();
  int n = options_.num_servers;
  if (static_cast<int>(server_key_ranges_.size()) != n) server_key_ranges_ = DefaultKeyRanges(n);
  return server_key_ranges_;
}

int Postoffice::ServerRankForKey(Key key) {
  const std::vector<Range>& ranges = GetServerKeyRanges();
  CHECK(!ranges.empty()) << "the job has no servers";
  // The last range whose begin is <= key.
  auto it = std::upper_bound(ranges.begin(), ranges.end(), static_cast<uint64_t>(key),
                             [](uint64_t k, const Range& r) { return k < r.begin(); });
  return static_cast<int>(it - ranges.begin()) - 1;
}

void Postoffice::RegisterExitCallback(const Callback& cb) {
  std::lock_guard<std::mutex> lk(start_mu_);
  exit_callbacks_.push_back(cb);
}

int Postoffice::num_workers() {
  std::lock_guard<std::mutex> lk(start_mu_);
  return ParseConfigLocked().ok() ? options_.num_workers : 0;
}

int Postoffice::num_servers() {
  std::lock_guard<std::mutex> lk(start_mu_);
  return ParseConfigLocked().ok() ? options_.num_servers : 0;
}

bool Postoffice::is_worker() {
  std::lock_guard<std::mutex> lk(start_mu_);
  return ParseConfigLocked().ok() && options_.role == Node::WORKER;
}

bool Postoffice::is_server() {
  std::lock_guard<std::mutex> lk(start_mu_);
  return ParseConfigLocked().ok() && options_.role == Node::SERVER;
}

bool Postoffice::is_scheduler() {
  std::lock_guard<std::mutex> lk(start_mu_);
  return ParseConfigLocked().ok() && options_.role == Node::SCHEDULER;
}

int Postoffice::verbose() {
  std::lock_guard<std::mutex> lk(start_mu_);
  ParseConfigLocked();
  return options_.verbose;
}

int Postoffice::spin_us() {
  std::lock_guard<std::mutex> lk(start_mu_);
  ParseConfigLocked();
  return spin_us_;
}

int Postoffice::my_rank() const {
  std::lock_guard<std::mutex> lk(start_mu_);
  return van_ ? IDtoRank(van_->my_node().id) : 0;
}

Status Postoffice::PeerStatus(int id) const {
  Van* v = van();
  if (!v) return Status::Shutdown("the node has not started");
  Status fatal = v->fatal();
  return fatal.ok() ? v->NodeStatus(id) : fatal;
}

std::string Postoffice::MyName() const {
  std::lock_guard<std::mutex> lk(start_mu_);
  if (van_) {
    Node me = van_->my_node();
    return me.id != Node::kEmpty ? me.ShortName() : RoleName(me.role);
  }
  if (config_parsed_ && config_status_.ok()) return RoleName(options_.role);
  // A configuration error elsewhere still names the role, when DMLC_ROLE gives one.
  std::string role = env_->GetString("DMLC_ROLE");
  return role == "scheduler" || role == "server" || role == "worker" ? role : "node";
}

void Postoffice::Die(const Status& why) const {
  std::string name = MyName();
  Van* van = nullptr;
  {
    std::lock_guard<std::mutex> lk(start_mu_);
    van = van_.get();
  }
  fflush(stdout);
  fprintf(stderr, "error: %s: %s\n", name.c_str(), why.message().c_str());
  fflush(stderr);
  if (van) {
    // Tell the job why before leaving, so that it ends at once naming this node, then let
    // what is queued (that notice, a TERMINATE) leave, within the linger.
    van->ReportFailure(why);
    van->Stop();
  }
  std::_Exit(1);
}

void Postoffice::AddCustomer(Customer* customer) {
  std::lock_guard<std::mutex> lk(customers_mu_);
  auto& app = customers_[customer->app_id()];
  CHECK(!app.count(customer->customer_id())) << "customer " << customer->customer_id() << " of app "
                                             << customer->app_id() << " already exists";
  app.emplace(customer->customer_id(), Registered{customer, 0});
  customers_cv_.notify_all();
  auto it = waiting_.find(customer->app_id());
  if (it != waiting_.end()) {
    // Requests only (a response for no customer is dropped), which Accept just queues for the
    // customer's thread: no user code runs under the lock, and they keep their order.
    for (const Message& m : it->second) {
      waiting_bytes_ -= m.data_bytes();
      customer->Accept(m);
    }
    waiting_.erase(it);
  }
}

namespace {
// The customer a delivery on this thread is for, so that a callback that destroys its own
// customer's app does not wait for itself.
thread_local const Customer* delivering_to = nullptr;
}  // namespace

void Postoffice::RemoveCustomer(Customer* customer) {
  std::unique_lock<std::mutex> lk(customers_mu_);
  auto app = customers_.find(customer->app_id());
  if (app == customers_.end()) return;
  auto it = app->second.find(customer->customer_id());
  if (it == app->second.end() || it->second.customer != customer) return;
  const int own = delivering_to == customer ? 1 : 0;
  customers_cv_.wait(lk, [&] { return it->second.deliveries <= own; });
  app->second.erase(it);
  if (app->second.empty()) customers_.erase(app);
}

Customer* Postoffice::GetCustomer(int app_id, int customer_id, int timeout) const {
  std::unique_lock<std::mutex> lk(customers_mu_);
  Customer* found = nullptr;
  customers_cv_.wait_for(lk, std::chrono::seconds(timeout), [&] {
    auto app = customers_.find(app_id);
    if (app == customers_.end()) return false;
    auto c = app->second.find(customer_id);
    if (c == app->second.end()) return false;
    found = c->second.customer;
    return true;
  });
  return found;
}

std::vector<Postoffice::Registered*> Postoffice::Hold() const {
  std::lock_guard<std::mutex> lk(customers_mu_);
  std::vector<Registered*> held;
  for (auto& app : customers_) {
    for (auto& c : app.second) {
      ++c.second.deliveries;
      held.push_back(const_cast<Registered*>(&c.second));
    }
  }
  return held;
}

void Postoffice::Release(const std::vector<Registered*>& held) const {
  if (held.empty()) return;
  std::lock_guard<std::mutex> lk(customers_mu_);
  for (Registered* r : held) --r->deliveries;
  customers_cv_.notify_all();
}

void Postoffice::OnData(Message&& msg) {
  Registered* to = nullptr;
  {
    std::lock_guard<std::mutex> lk(customers_mu_);
    auto app = customers_.find(msg.meta.app_id);
    if (app != customers_.end()) {
      auto c = app->second.find(msg.meta.customer_id);
      // A response goes back to the customer that asked. A request goes to the customer of the
      // same id if there is one (workers with several customers), else to the app's first.
      if (c != app->second.end()) {
        to = &c->second;
      } else if (msg.meta.request) {
        to = &app->second.begin()->second;
      }
    }
    if (to) {
      ++to->deliveries;
    } else if (!msg.meta.request) {
      return van_->Drop(DropReason::kUnroutable,
                        "response for app " + std::to_string(msg.meta.app_id) + " customer " +
                            std::to_string(msg.meta.customer_id) + ", which does not exist");
    } else {
      // The app may not exist yet: servers often create it after Start. Keep the request for
      // it, up to a bound, so that requests for an app that never comes cannot exhaust memory.
      // Bounded in bytes, in requests per app and in apps, so that requests for apps that
      // never come cannot exhaust memory.
      auto it = waiting_.find(msg.meta.app_id);
      if (it == waiting_.end() && waiting_.size() >= kMaxWaitingApps) {
        return van_->Drop(DropReason::kOverLimit, "request for app " +
                                                      std::to_string(msg.meta.app_id) +
                                                      ": requests wait "
                                                      "for " +
                                                      std::to_string(waiting_.size()) +
                                                      " apps that do not exist yet already");
      }
      if (waiting_bytes_ + msg.data_bytes() > max_waiting_bytes_) {
        return van_->Drop(DropReason::kOverLimit,
                          "request for app " + std::to_string(msg.meta.app_id) +
                              ": requests for apps that do not exist yet hold " +
                              std::to_string(waiting_bytes_ >> 20) +
                              " MB already "
                              "(PS_MAX_WAITING_MB=" +
                              std::to_string(max_waiting_bytes_ >> 20) + ")");
      }
      auto& waiting = waiting_[msg.meta.app_id];
      if (waiting.size() >= kMaxWaitingRequests) {
        return van_->Drop(DropReason::kUnroutable,
                          "request for app " + std::to_string(msg.meta.app_id) + ", which has " +
                              std::to_string(waiting.size()) + " requests waiting for it already");
      }
      waiting_bytes_ += msg.data_bytes();
      waiting.push_back(std::move(msg));
      return;
    }
  }
  // Delivered without the registry's lock: the handler may construct or destroy apps.
  const Customer* outer = delivering_to;
  delivering_to = to->customer;
  to->customer->Accept(msg);
  delivering_to = outer;
  Release({to});
}

void Postoffice::OnNodeFailed(const Node& node, const Status& why) {
  // Without the scheduler the job cannot go on: fail everything that is pending.
  bool everything = node.role == Node::SCHEDULER;
  // A server that the replicas cover: the apps route around it (workers resend to the new
  // primaries, servers forward to their new successors).
  const bool replaced = node.role == Node::SERVER && options_.replication > 1 &&
                        van_->chains().dead(IDtoRank(node.id));
  std::vector<Registered*> held = Hold();
  for (Registered* r : held) {
    r->customer->OnNodeFailed(node.id, why, everything);
    if (replaced) r->customer->OnServerReplaced(node.id);
  }
  Release(held);
}

void Postoffice::OnConfiguration() {
  std::vector<Registered*> held = Hold();
  for (Registered* r : held) r->customer->OnServerReplaced(Node::kEmpty);
  Release(held);
}

bool Postoffice::is_recovery() const {
  Van* v = van();
  return v && v->is_recovery();
}

void Postoffice::ExpectCopies(int app_id) {
  std::lock_guard<std::mutex> lk(copies_mu_);
  copying_apps_.insert(app_id);
}

void Postoffice::CopiesDone(int app_id) {
  {
    std::lock_guard<std::mutex> lk(copies_mu_);
    copied_apps_.insert(app_id);
    for (int app : copying_apps_) {
      if (!copied_apps_.count(app)) return;
    }
  }
  if (Van* v = van()) v->ReportSynced();
}

CheckpointConfig Postoffice::checkpoint_config() {
  std::lock_guard<std::mutex> lk(start_mu_);
  return ParseConfigLocked().ok() ? checkpoint_ : CheckpointConfig();
}

Status Postoffice::ResumeCheckpoint(std::optional<CheckpointInfo>* out) {
  std::lock_guard<std::mutex> lk(start_mu_);
  Status s = ParseConfigLocked();
  if (s.ok()) s = FindResumeLocked();
  if (s.ok()) *out = resume_;
  return s;
}

Status Postoffice::FindResumeLocked() {
  if (!resume_found_) {
    resume_found_ = true;
    resume_status_ = checkpoint::FindLatest(checkpoint_, &resume_);
    if (resume_status_.ok() && resume_) {
      LOG(INFO) << RoleName(options_.role) << " resumes from checkpoint " << resume_->path
                << " (step " << resume_->step << ")";
    }
  }
  return resume_status_;
}

int Postoffice::replication() {
  std::lock_guard<std::mutex> lk(start_mu_);
  ParseConfigLocked();
  return options_.replication;
}

int Postoffice::PrimaryOf(int range) const {
  Van* v = van();
  int rank = v ? v->chains().Primary(range) : range;
  return rank < 0 ? Node::kEmpty : ServerRankToID(rank);
}

void Postoffice::OnJobEnd(const Status& why) {
  if (options_.replication > 1) {
    // Requests to key ranges wait for a range, not a node: the end of the job fails them.
    std::vector<Registered*> held = Hold();
    for (Registered* r : held) r->customer->OnNodeFailed(0, why, true);
    Release(held);
  }
  // What needs a dead node failed already. A process that is a node of the job ends with it,
  // naming the reason; other nodes report it through their calls.
  if (exit_on_job_end_) Die(why);
}

}  // namespace ps
