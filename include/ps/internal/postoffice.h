// Postoffice is a node: its configuration, its van, its customers, and the membership the van
// learned (node ids, groups, server key ranges). ps-lite's free functions (ps::Start, ...) act on
// the default node, Postoffice::Get(); tests and embedders may create further, independent
// nodes in the same process, each with its own configuration.
//
// Thread safety: all methods are thread-safe. Start() may be called by several customer threads
// of one process concurrently; each Start() is matched by one Finalize().
//
// Delivery: messages reach customers on the van's receiving thread, with no lock of the
// postoffice held, so a handler or callback may construct and destroy apps (customers). A count
// of deliveries in flight keeps a customer registered until they finished: RemoveCustomer
// waits for its customer's deliveries to drain.
//
// When the job ends on this node (the scheduler ended it because a node died, or this node lost
// the scheduler), every pending request fails. The default node then also ends the process
// with the reason, as ps-lite's calls do; other nodes (tests, embedders) report it through
// their calls instead (set_exit_on_job_end).
#ifndef PS_INTERNAL_POSTOFFICE_H_
#define PS_INTERNAL_POSTOFFICE_H_

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "ps/base.h"
#include "ps/checkpoint.h"
#include "ps/internal/customer.h"
#include "ps/internal/env.h"
#include "ps/internal/transport.h"
#include "ps/internal/van.h"
#include "ps/range.h"
#include "ps/status.h"

namespace ps {

class MetricsExposer;  // src/metrics: serves the node's figures when PS_METRICS_PORT is set

class Postoffice {
 public:
  // The default node, configured by the process environment (and Environment::Init).
  static Postoffice* Get();

  // An independent node configured by "env", which takes precedence over the process
  // environment. Starts nothing.
  explicit Postoffice(std::unordered_map<std::string, std::string> env);
  // Stops the van if it still runs.
  ~Postoffice();

  Postoffice(const Postoffice&) = delete;
  Postoffice& operator=(const Postoffice&) = delete;

  // Starts this node for "customer_id": the first call reads the configuration, binds and
  // starts the van; every call registers its customer and blocks until the whole job has
  // registered; with "do_barrier" it then waits in a barrier of all nodes.
  // The Try form returns failures; the other reports them and ends the process.
  Status TryStart(int customer_id, const char* argv0 = nullptr, bool do_barrier = true);
  void Start(int customer_id, const char* argv0 = nullptr, bool do_barrier = true);

  // Ends "customer_id": with "do_barrier", waits in the final barrier of all nodes. The last
  // Finalize of the process stops the van and runs the exit callbacks.
  Status TryFinalize(int customer_id, bool do_barrier = true);
  void Finalize(int customer_id, bool do_barrier = true);

  // Blocks until every customer of every node in "node_group" called Barrier with that group.
  // Fails when a node of the group dies.
  Status TryBarrier(int customer_id, int node_group);
  void Barrier(int customer_id, int node_group);

  // Where the node's transport comes from; by default ZeroMQ. Tests give one that injects
  // faults. REQUIRES: before the first Start.
  using TransportFactory = std::function<std::unique_ptr<Transport>()>;
  void set_transport_factory(TransportFactory factory);
  // Whether the end of the job on this node (see above) ends the process. Default: true for
  // the default node, false for others.
  void set_exit_on_job_end(bool exit);

  // Customers register themselves; messages for a customer not registered yet wait for it.
  void AddCustomer(Customer* customer);
  void RemoveCustomer(Customer* customer);
  // The customer (app_id, customer_id), waiting up to "timeout" seconds for it to register.
  Customer* GetCustomer(int app_id, int customer_id, int timeout = 0) const;
  // Calls "fn" on each registered customer under the customers' lock, which keeps them alive
  // (the metrics read them so). "fn" must not block or call back into the postoffice.
  void ForEachCustomer(const std::function<void(Customer*)>& fn) const;

  // Node ids of a group (or {id} for a single node id). REQUIRES: started.
  const std::vector<int>& GetNodeIDs(int node_id) const;
  // The key range of each server, by rank. Together they cover [0, kMaxKey]: each is
  // [begin, end) except the last, whose end kMaxKey belongs to it.
  const std::vector<Range>& GetServerKeyRanges();
  // The server rank that owns "key" under GetServerKeyRanges().
  int ServerRankForKey(Key key);

  // Figures a layer above offers the metrics (src/metrics, PS_METRICS_PORT): a counter or a
  // gauge, or a histogram when "buckets" (upper bound, count in that bucket) is not empty.
  struct MetricSample {
    std::string name, help;
    bool counter = true;
    std::vector<std::pair<std::string, std::string>> labels;
    double value = 0;  // histograms: the sum of the observations
    std::vector<std::pair<double, uint64_t>> buckets;
  };
  // Adds samples to each scrape until RemoveMetricsSource(the id returned) (the owner of what
  // it reads removes it when it goes, so that a new owner of the same labels, a KVWorker built
  // again, is not scraped next to the old one). A source is called on an exposer thread,
  // concurrently with everything else, and may run once more while it is removed: it must be
  // thread-safe and share ownership of what it reads (as exit callbacks do). Thread-safe.
  using MetricsSource = std::function<void(std::vector<MetricSample>* out)>;
  int AddMetricsSource(const MetricsSource& source);
  void RemoveMetricsSource(int id);
  std::vector<MetricsSource> metrics_sources() const;

  // Called after the van stopped, by the last Finalize.
  using Callback = std::function<void()>;
  void RegisterExitCallback(const Callback& cb);

  // A check of configuration that a layer above reads (the filters read PS_FILTERS): every node
  // runs the registered checks when it parses its configuration, and a failure fails Start like
  // a bad variable of its own. For static initializers; thread-safe.
  using ConfigCheck = std::function<Status(const Environment& env)>;
  static void AddConfigCheck(const ConfigCheck& check);

  static inline int WorkerRankToID(int rank) { return rank * 2 + 9; }
  static inline int ServerRankToID(int rank) { return rank * 2 + 8; }
  static inline int IDtoRank(int id) { return std::max((id - 8) / 2, 0); }

  // The configuration; zero or false if it does not parse (TryStart says why).
  int num_workers();
  int num_servers();
  bool is_worker();
  bool is_server();
  bool is_scheduler();
  int verbose();
  // PS_SPIN_US: microseconds a Wait keeps looking for its answer before it sleeps.
  int spin_us();
  // PS_REPLICATION: how many servers hold each key range (1: no replicas).
  int replication();
  // The node id of the server answering for key range "range" now (its chain's first live
  // server; see ps/internal/replication.h), or Node::kEmpty when the range is lost.
  int PrimaryOf(int range) const;
  // The rank of this node within its role, once started.
  int my_rank() const;
  // ps-lite's: this server was started into the running job in the place of a dead one (see
  // ps/internal/replication.h); it copies its key ranges from live replicas. Once started.
  bool is_recovery() const;
  // On a replacement server: KVServer app "app_id" copies key ranges from live replicas
  // (ExpectCopies, when it is constructed), and holds all of them (CopiesDone). Once every app
  // that copies holds its ranges, the scheduler is told: the server is a full replica then.
  // Thread-safe.
  void ExpectCopies(int app_id);
  void CopiesDone(int app_id);
  // PS_CHECKPOINT_DIR, PS_CHECKPOINT_EVERY, PS_CHECKPOINT_KEEP, PS_JOB_ID (ps/checkpoint.h);
  // the defaults if the configuration does not parse (TryStart says why).
  CheckpointConfig checkpoint_config();
  // The checkpoint this node resumes from (ps/checkpoint.h): the latest usable one in
  // PS_CHECKPOINT_DIR, looked for once, by the first Start of a server or worker or by the
  // first call. Fails when the folder holds checkpoints and none can be used.
  Status ResumeCheckpoint(std::optional<CheckpointInfo>* out);
  Van* van() const { return van_.get(); }
  Environment* env() const { return env_; }
  // OK while node "id" can answer, else why not (it died, or the job was ended).
  Status PeerStatus(int id) const;

  // Reports "why" as this node's one-line error and ends the process with exit code 1, without
  // running destructors (other threads are still running). ps-lite's void calls end here.
  [[noreturn]] void Die(const Status& why) const;

 private:
  Postoffice();  // the default node
  Status ParseConfigLocked();
  // Looks for the checkpoint to resume from, once. REQUIRES: start_mu_ held, config parsed.
  Status FindResumeLocked();
  void OnData(Message&& msg);
  void OnNodeFailed(const Node& node, const Status& why);
  void OnJobEnd(const Status& why);
  // A replacement server joined or synced: the apps' failover handles run (node id kEmpty).
  void OnConfiguration();
  // The registered customers, each held against removal until Release. Thread-safe.
  struct Registered;
  std::vector<Registered*> Hold() const;
  void Release(const std::vector<Registered*>& held) const;
  // "worker 1", or the role alone before the node has its id.
  std::string MyName() const;
  void BuildNodeIDs();
  // With PS_REPORT_RANK=1 (set by tracker/launch.py), prints this node's role and rank once
  // it has registered. REQUIRES: start_mu_ held.
  void ReportRank();
  // Where the metrics are served. REQUIRES: metrics_ set, start_mu_ held.
  std::string MetricsUrl() const;

  // Constant after construction.
  std::unique_ptr<Environment> own_env_;
  Environment* const env_;
  std::atomic<bool> exit_on_job_end_;

  // Held by Start and Finalize while they create or stop the van, which they do without
  // start_mu_: the receiving thread may need start_mu_ (GetNodeIDs, GetServerKeyRanges in a
  // callback) to finish what it is doing before the van can stop. Taken before start_mu_.
  std::mutex lifecycle_mu_;

  // Protected by start_mu_.
  mutable std::mutex start_mu_;
  bool config_parsed_ = false;
  Status config_status_;
  VanOptions options_;
  int spin_us_ = 0;
  std::unique_ptr<Van> van_;  // set once by the first Start; reset by the next Start after stop
  int active_customers_ = 0;  // Start calls not yet matched by Finalize
  std::map<int, std::vector<int>> node_ids_;  // group or id -> node ids
  std::vector<Range> server_key_ranges_;
  std::vector<Callback> exit_callbacks_;
  TransportFactory transport_factory_;
  int metrics_port_ = -1;                    // PS_METRICS_PORT; -1: off
  std::unique_ptr<MetricsExposer> metrics_;  // while the van runs, with PS_METRICS_PORT
  CheckpointConfig checkpoint_;
  bool resume_found_ = false;  // resume_ and resume_status_ are set
  Status resume_status_;
  std::optional<CheckpointInfo> resume_;

  // Protected by sources_mu_, which a scrape takes (never start_mu_: Start and Finalize stop
  // the exposer, waiting for scrapes, while they hold start_mu_).
  mutable std::mutex sources_mu_;
  std::map<int, MetricsSource> metrics_sources_;  // by id, in the order they were added
  int next_source_id_ = 0;

  // Protected by customers_mu_.
  mutable std::mutex customers_mu_;
  mutable std::condition_variable customers_cv_;
  struct Registered {
    Customer* customer;
    mutable int deliveries = 0;  // deliveries in flight; RemoveCustomer waits for 0
  };
  std::map<int, std::map<int, Registered>> customers_;  // app id -> customer id -> customer
  std::map<int, std::vector<Message>> waiting_;         // app id -> requests before its customer
  size_t waiting_bytes_ = 0;                            // data bytes in waiting_
  size_t max_waiting_bytes_ = 256u << 20;               // PS_MAX_WAITING_MB; set by the config

  // Protected by copies_mu_: KVServer apps copying key ranges on a replacement server, and
  // those that hold them.
  std::mutex copies_mu_;
  std::set<int> copying_apps_, copied_apps_;
};

}  // namespace ps
#endif  // PS_INTERNAL_POSTOFFICE_H_
