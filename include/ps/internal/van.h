// Van moves messages between the nodes of a job over a Transport and runs the control protocol
// on top: registration with the scheduler, barriers, heartbeats and failure notices. Everything
// above the van sees Messages only.
//
// Failure detection: a node whose process dies is noticed from its broken connection (the
// transport watches the scheduler's connections to every node and every node's connection to
// the scheduler); a node that hangs is noticed from missing heartbeats; a node that gives up on
// an error says why first (ReportFailure). The scheduler tells every node, and since a job
// cannot go on without one of its nodes, it then ends the job: every node learns why
// (the FatalHandler) within about a second of the death.
//
// Threads: the van owns one thread, started by Start() and joined by Stop(), which receives
// messages, runs the control protocol and calls the handlers. A thread waiting for a response
// may take over receiving for a while (ReceiveUntil; the hand-off is ReceiveBaton's). Send(),
// Register(), Barrier(), Stop() and the accessors are thread-safe; Stop() may be called from any
// thread, a handler included. Handlers run on the receiving thread and must not block.
//
// States move forward only: created, running, stopping, stopped. After Stop() sends fail
// cleanly (kShutdown) and waits return.
#ifndef PS_INTERNAL_VAN_H_
#define PS_INTERNAL_VAN_H_

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "ps/internal/message.h"
#include "ps/internal/receive_baton.h"
#include "ps/internal/replication.h"
#include "ps/internal/transport.h"
#include "ps/internal/utils.h"
#include "ps/status.h"

namespace ps {

class PeerGuard;
class RateLimitedWarning;
class SchedulerBook;

// Configuration of a van, parsed from the environment by the postoffice.
struct VanOptions {
  Node::Role role = Node::WORKER;
  int num_servers = 0;             // DMLC_NUM_SERVER: server registrations the scheduler waits for
  int num_workers = 0;             // DMLC_NUM_WORKER: worker registrations (customers) it waits for
  std::string scheduler_host;      // DMLC_PS_ROOT_URI
  int scheduler_port = 0;          // DMLC_PS_ROOT_PORT
  std::string node_host;           // DMLC_NODE_HOST: the address others reach this node at
  std::string interface;           // DMLC_INTERFACE: take node_host from this interface
  double start_timeout = 60;       // PS_START_TIMEOUT, seconds
  double heartbeat_interval = 1;   // PS_HEARTBEAT_INTERVAL, seconds; 0 turns heartbeats off
  double heartbeat_timeout = 10;   // PS_HEARTBEAT_TIMEOUT, seconds
  int verbose = 0;                 // PS_VERBOSE
  int linger_ms = 2000;            // how long closing waits for unsent messages
  std::string key_file;            // PS_KEY_FILE: the job key; empty: unauthenticated
  int64_t max_message_bytes = -1;  // PS_MAX_MESSAGE_MB, in bytes; -1: no limit
  int replication = 1;             // PS_REPLICATION: servers holding each key range
};

// Why the receive path dropped a message. Counted per reason.
enum class DropReason {
  kEmpty,          // no frame at all
  kBadMeta,        // meta does not parse, wrong version or unknown enum value
  kFrameCount,     // data frames do not match the meta's data types
  kFrameSize,      // a frame's size does not divide by its element size
  kBadControl,     // a control message that is malformed or unexpected here
  kUnknownSender,  // data from a node that is not in the job, or to another node
  kDeadSender,     // from a node already declared dead
  kUnroutable,     // no customer can take it (bad app or customer id, bad response)
  kForgedSender,   // its claimed sender is not the node whose connection it came on
  kOverLimit,      // it would make this node hold more than its limits allow
  kNumReasons
};
const char* DropReasonName(DropReason r);

class Van {
 public:
  // Called on the receiving thread for each data message addressed to this node.
  using DataHandler = std::function<void(Message&& msg)>;
  // Called on the receiving thread once per node declared dead ("node" is the dead one).
  using FailureHandler = std::function<void(const Node& node, const Status& why)>;
  // Called on the receiving thread once, when the running job ends on this node for "why": the
  // scheduler ended it (for a node's death, whose requests already failed through the
  // FailureHandler), or this node lost the scheduler (then every call fails from now on).
  // Not called for start-up failures, which Register() returns.
  using FatalHandler = std::function<void(const Status& why)>;
  // Called on the receiving thread after this node applied a configuration in which a
  // replacement server joined (REPLACE_NODE) or became a full replica (SYNCED).
  using ConfigHandler = std::function<void()>;

  // A van over a transport of the given type ("zmq"). Starts nothing.
  static std::unique_ptr<Van> Create(const std::string& type = "zmq");
  // A van over "transport". Starts nothing.
  explicit Van(std::unique_ptr<Transport> transport);
  // Stops the van if it still runs.
  ~Van();

  Van(const Van&) = delete;
  Van& operator=(const Van&) = delete;

  // Binds this node's socket and starts the van thread. Does not wait for other nodes.
  // Fails with a clear message on a busy scheduler port or an unusable host.
  Status Start(const VanOptions& options, DataHandler on_data, FailureHandler on_failure,
               FatalHandler on_fatal);
  // Sets the handler of configuration changes (none by default). REQUIRES: before Start.
  void set_config_handler(ConfigHandler on_config) { on_config_ = std::move(on_config); }

  // Registers one customer of this node with the scheduler and blocks until every node of the
  // job has registered, or start-up fails (the scheduler's deadline, a TERMINATE, or this
  // node's own deadline of PS_START_TIMEOUT plus a grace period). On the scheduler: blocks until
  // all nodes have registered. Several customers of one process may call it concurrently.
  Status Register(int customer_id);

  // Blocks until every customer of every node in "group" has entered this barrier, or a node of
  // the group is dead. "finalize" marks Finalize's barrier: after it, nodes may leave.
  // REQUIRES: Register() succeeded; one barrier at a time per customer.
  Status Barrier(int customer_id, int group, bool finalize = false);

  // Sends "msg" to msg.meta.recver (a node id), filling in the sender. Thread-safe. Fails with
  // a message that names the receiver (kIOError) or, after Stop, with kShutdown.
  Status TrySend(Message& msg, size_t* bytes = nullptr);
  // ps-lite's form: the bytes sent, or -1 (the reason is logged).
  int Send(Message& msg);

  // Tells the job that this node gives up for "why", before it exits: a node tells the
  // scheduler, which ends the job naming it; the scheduler ends the job itself. Does nothing
  // before the job started or after the final barrier. Thread-safe; does not block.
  void ReportFailure(const Status& why);

  // Stops the van thread and closes the transport. Idempotent; safe from any thread, a
  // handler on the receiving thread included (the thread is then joined by a later Stop or
  // the destructor).
  void Stop();

  // Receives and processes messages on the calling thread until "done" returns true, instead of
  // leaving that to the van thread: a caller waiting for a response then takes it straight from
  // the socket, saving a thread switch. Returns false at once, having done nothing, when another
  // thread already does this, on the receiving thread itself, or before Start/after Stop; the
  // caller then waits as usual. "done" is called between messages and must not block.
  // Everything the van thread would run meanwhile (handlers, heartbeats) runs on this thread.
  bool ReceiveUntil(const std::function<bool()>& done);
  // True on the thread that currently receives for this van: the van thread, or a caller inside
  // ReceiveUntil. Handlers run there, and must not wait for a response.
  bool IsReceivingThread() const { return baton_.HeldByThisThread(); }

  // Feeds raw frames [meta][data...] from the network into the receive path: validates, then
  // dispatches or drops. "peer" is the routing id of the connection they came on; nullptr
  // means this process itself (tests, fuzzing): the claimed sender is then believed.
  // REQUIRES: the receiving thread; public so that tests can feed bytes.
  void ProcessFrames(std::vector<SArray<char>>&& frames, const std::string* peer = nullptr);

  // This node; its id is Node::kEmpty until registration completes.
  Node my_node() const;
  // Every node of the job, scheduler first, once registration completed.
  std::vector<Node> nodes() const;
  // "server 1 (node 10 at host:port)", or "node 10" for an id not in the job.
  std::string NodeName(int id) const;
  // OK while node "id" is alive, else why it is considered dead.
  Status NodeStatus(int id) const;
  // A failure that ends the whole job on this node (start-up failed, TERMINATE), or OK.
  Status fatal() const;
  // Server replication: the configuration now (which servers are dead), and its epoch. A dead
  // server that the replicas cover does not end the job: the scheduler publishes the new
  // configuration (NODE_FAILED with an epoch) and fences the dead one if it comes back.
  ServerChains chains() const;
  int epoch() const { return epoch_.load(); }
  // Blocks until this node applied configuration "epoch", up to "seconds"; false on timeout.
  bool WaitForEpoch(int epoch, double seconds);
  // This server was started into the running job in the place of a dead one (ps-lite's
  // is_recovery): it syncs its key ranges from live replicas before it counts as one.
  bool is_recovery() const { return recovery_.load(); }
  // On a replacement server: it holds every key range it replicates; the scheduler then
  // publishes it as a full replica. Thread-safe.
  void ReportSynced();
  // Replacement servers that joined and that synced, as the scheduler published them.
  int replacements() const { return replacements_.load(); }
  int synced() const { return synced_.load(); }
  // Failovers the scheduler published so far.
  int failovers() const { return failovers_.load(); }
  // Failovers the apps of this node recovered from, and how long they took (from the new
  // configuration to the last request the dead server held answered elsewhere).
  struct Recoveries {
    int count = 0;
    double total_seconds = 0, max_seconds = 0;
  };
  void NoteRecovery(double seconds);
  Recoveries recoveries() const;
  bool ready() const { return ready_.load(); }

  uint64_t dropped(DropReason r) const { return dropped_[static_cast<int>(r)].load(); }
  uint64_t dropped_total() const;
  uint64_t bytes_sent() const { return bytes_sent_.load(); }
  uint64_t bytes_received() const { return bytes_received_.load(); }
  // Traffic with each peer, by node id (meta and data bytes, as counted above): sends that
  // went out, and received messages whose meta parsed (by their sender's claimed id).
  struct PeerTraffic {
    uint64_t bytes_sent = 0, messages_sent = 0, bytes_received = 0, messages_received = 0;
  };
  std::map<int, PeerTraffic> peer_traffic() const;
  uint64_t heartbeats_sent() const { return heartbeats_sent_.load(); }
  uint64_t heartbeats_received() const { return heartbeats_received_.load(); }
  // Registrations the scheduler refused (too many, a taken address, a bad connection).
  uint64_t refused_registrations() const { return refused_registrations_.load(); }
  // What the transport saw of incoming connections (accepted, closed, refused for the key).
  Transport::ConnectionCounts connection_counts() const { return transport_->connection_counts(); }
  // True when this node runs with the job key (CURVE on every connection).
  bool authenticated() const { return !options_.key_file.empty(); }
  // Drops a message for reason "r": counts it, and logs the first of each reason.
  void Drop(DropReason r, const std::string& detail);

 private:
  enum class State { kCreated, kRunning, kStopping, kStopped };

  void Loop();
  // Receives at most one message (waiting up to the next tick), delivers messages to this node
  // itself, and ticks when due. REQUIRES: the baton.
  void ReceiveOnce();
  void Tick();
  void OnPeerEvent(int id, bool connected);
  // "peer": as for ProcessFrames.
  void Dispatch(Message&& msg, const std::string* peer);
  void ProcessControlAtScheduler(Message& msg, const std::string* peer);
  void ProcessControlAtNode(Message& msg, const std::string* peer);
  void ProcessAddNode(const Message& msg, const std::string* peer);
  // On the scheduler: "node" (registered on connection "token") takes the place of a dead
  // server the replicas cover. Returns false, saying why, when it cannot.
  bool ReplaceServer(const Node& node, const std::string& token, std::string* why);
  // On the scheduler: the first spare server (and its other customers) takes the place of a
  // dead server, if one is dead; spares that waited past PS_START_TIMEOUT are refused.
  void UseSpares();
  // On a node: the scheduler's REPLACE_NODE or SYNCED.
  void ProcessReplacement(const Control& ctl);
  // Refuses a registration: tells the node why (at most a few per second) and closes the
  // connection again.
  void RefuseRegistration(const Node& node, const std::string& token, const std::string& why);
  // Loads the job key (if any) and configures the transport with it and the limits.
  Status ConfigureTransport();
  void ProcessBarrier(const Message& msg);
  void SetBarrierResult(int customer_id, const Status& s);
  void FailStart(const Status& why);
  // Declares node "id" dead: records why, tells the other nodes (on the scheduler) and the
  // handler; on the scheduler, then ends the job.
  void MarkDead(int id, const Status& why);
  // Ends the running job on this node for "why", caused by the death of "failed_node" (0: of
  // none); on the scheduler, tells every node first.
  void EndJob(const Status& why, int failed_node);
  // On the scheduler, for a dead server "id" under replication: publishes the configuration
  // without it and returns true, or returns false when that loses a key range (*lost says
  // which). REQUIRES: the receiving thread.
  bool FailOver(int id, const Status& why, Status* lost);
  // Tells replaced server "id" to exit (at most five times a second): it was declared dead.
  void Fence(int id);
  void SendControl(int recver, Control control, bool request, int customer_id = 0);
  // Sends "control" to every node of the job that is not dead, the scheduler excepted.
  void SendToLiveNodes(const Control& control);
  // First dead node of "group" (or the scheduler), if any. REQUIRES: mu_ held.
  Status GroupStatusLocked(int group) const;
  std::string NodeNameLocked(int id) const;

  // Constant after construction.
  const std::unique_ptr<Transport> transport_;  // thread-safe as its header says

  // Constant after Start().
  VanOptions options_;
  DataHandler on_data_;
  FailureHandler on_failure_;
  FatalHandler on_fatal_;
  ConfigHandler on_config_;
  bool is_scheduler_ = false;
  Clock::time_point start_time_;

  std::atomic<State> state_{State::kCreated};
  std::atomic<bool> ready_{false};
  std::atomic<int> my_id_{Node::kEmpty};  // my_node_.id, for Send without mu_
  std::atomic<bool> finalizing_{false};   // past the final barrier: nodes may leave
  std::atomic<bool> job_ended_{false};    // EndJob ran
  std::atomic<int> epoch_{0};             // chains_.epoch(), for Send without mu_
  std::atomic<int> failovers_{0};
  std::atomic<int> replacements_{0};
  std::atomic<int> synced_{0};
  std::atomic<bool> recovery_{false};
  std::atomic<bool> reported_synced_{false};
  std::atomic<uint64_t> dropped_[static_cast<int>(DropReason::kNumReasons)] = {};
  std::atomic<uint64_t> bytes_sent_{0};
  std::atomic<uint64_t> bytes_received_{0};
  std::atomic<uint64_t> heartbeats_sent_{0};
  std::atomic<uint64_t> heartbeats_received_{0};
  std::atomic<uint64_t> refused_registrations_{0};
  mutable std::mutex traffic_mu_;       // protects traffic_ only; taken last
  std::map<int, PeerTraffic> traffic_;  // peer id -> counts
  void CountTraffic(int peer, uint64_t bytes, bool sent);

  // The thread, joined by a Stop on another thread; protected by join_mu_, which the van
  // thread never takes.
  std::mutex join_mu_;
  std::thread thread_;

  // Protected by mu_.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  Node my_node_;
  std::map<int, Node> nodes_;             // id -> node, once ready
  std::unordered_map<int, Status> dead_;  // id -> why
  Recoveries recoveries_;
  ServerChains chains_;                      // server replication's configuration
  std::map<int, Clock::time_point> fenced_;  // replaced server -> when last told to exit
  Status fatal_;
  std::unordered_map<int, std::unique_ptr<Status>> barrier_result_;  // customer -> result
  bool logged_drop_[static_cast<int>(DropReason::kNumReasons)] = {};

  // The van thread's id, for Stop to know it is called there (it cannot join itself).
  std::atomic<std::thread::id> van_thread_id_{};

  // Messages to this node itself, delivered by the receiving thread. Protected by local_mu_.
  std::mutex local_mu_;
  std::deque<Message> local_;

  // Who receives; the state below belongs to the baton's holder and needs no other lock.
  // Exception: nodes_ and dead_ change on the receiving thread only (under mu_), so the
  // receiving thread reads them without mu_.
  ReceiveBaton baton_;
  Transport::PeerEvent on_peer_event_;  // set by Start
  int tick_ms_ = 200;
  Clock::time_point next_tick_;
  std::vector<std::pair<Message, std::string>> early_;  // data before the node list, and its peer
  std::unique_ptr<PeerGuard> guard_;                    // set by Start
  Clock::time_point next_heartbeat_;
  Clock::time_point last_heard_scheduler_;
  std::map<int, Clock::time_point> disconnected_;  // watched peer -> when its connection broke
  // The scheduler's.
  std::unique_ptr<SchedulerBook> book_;
  int next_reject_id_ = -1000;  // throwaway ids of rejected nodes
  std::unique_ptr<RateLimitedWarning> refusal_warnings_;
  Clock::time_point refusal_second_;  // refusal notices sent in the second from here
  int refusal_notices_ = 0;
  std::map<int, Clock::time_point> last_seen_;  // node id -> last message
  struct Spare {
    Node node;
    std::string token;
    Clock::time_point since;
  };
  std::vector<Spare> spares_;  // servers started into the job while no server was dead
};

}  // namespace ps
#endif  // PS_INTERNAL_VAN_H_
