// Van moves messages between the nodes of a job and runs the control protocol on top:
// registration with the scheduler, barriers, heartbeats and failure notices. Transports derive
// from it (ZMQVan); everything above the van sees Messages only.
//
// Threads: the van owns one thread, started by Start() and joined by Stop(), which receives
// messages, runs the control protocol and calls the handlers. A thread waiting for a response may
// take over receiving for a while (ReceiveUntil). Send(), Register(), Barrier() and the accessors
// are thread-safe. Handlers run on the receiving thread and must not block.
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
#include "ps/internal/utils.h"
#include "ps/status.h"

namespace ps {

// Configuration of a van, parsed from the environment by the postoffice.
struct VanOptions {
  Node::Role role = Node::WORKER;
  int num_servers = 0;            // DMLC_NUM_SERVER: server registrations the scheduler waits for
  int num_workers = 0;            // DMLC_NUM_WORKER: worker registrations (customers) it waits for
  std::string scheduler_host;     // DMLC_PS_ROOT_URI
  int scheduler_port = 0;         // DMLC_PS_ROOT_PORT
  std::string node_host;          // DMLC_NODE_HOST: the address others reach this node at
  std::string interface;          // DMLC_INTERFACE: take node_host from this interface
  double start_timeout = 60;      // PS_START_TIMEOUT, seconds
  double heartbeat_interval = 1;  // PS_HEARTBEAT_INTERVAL, seconds; 0 turns heartbeats off
  double heartbeat_timeout = 10;  // PS_HEARTBEAT_TIMEOUT, seconds
  int verbose = 0;                // PS_VERBOSE
  int linger_ms = 2000;           // how long closing waits for unsent messages
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
  kNumReasons
};
const char* DropReasonName(DropReason r);

class Van {
 public:
  // Called on the receiving thread for each data message addressed to this node.
  using DataHandler = std::function<void(Message&& msg)>;
  // Called on the receiving thread once per node declared dead ("node" is the dead one).
  using FailureHandler = std::function<void(const Node& node, const Status& why)>;

  // A van of the given transport; "zmq" is the one there is. Starts nothing.
  static std::unique_ptr<Van> Create(const std::string& type = "zmq");
  virtual ~Van();

  // Binds this node's socket and starts the van thread. Does not wait for other nodes.
  // Fails with a clear message on a busy scheduler port or an unusable host.
  Status Start(const VanOptions& options, DataHandler on_data, FailureHandler on_failure);

  // Registers one customer of this node with the scheduler and blocks until every node of the
  // job has registered, or start-up fails (the scheduler's deadline, a TERMINATE, or this
  // node's own deadline of PS_START_TIMEOUT plus a grace period). On the scheduler: blocks until
  // all nodes have registered. Several customers of one process may call it concurrently.
  Status Register(int customer_id);

  // Blocks until every customer of every node in "group" has entered this barrier, or a node of
  // the group is dead. "finalize" marks Finalize's barrier: after it heartbeats stop.
  // REQUIRES: Register() succeeded; one barrier at a time per customer.
  Status Barrier(int customer_id, int group, bool finalize = false);

  // Sends "msg" to msg.meta.recver (a node id), filling in the sender. Thread-safe.
  // Returns the bytes sent, or -1 if the message could not be sent.
  int Send(Message& msg);

  // Stops the van thread and closes the transport. Idempotent.
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
  bool IsReceivingThread() const;

  // Feeds raw frames [meta][data...] from the network into the receive path: validates, then
  // dispatches or drops. Called by the receiving thread; public so that tests can feed bytes.
  void ProcessFrames(std::vector<SArray<char>>&& frames);

  // This node; its id is Node::kEmpty until registration completes.
  Node my_node() const;
  // Every node of the job, scheduler first, once registration completed.
  std::vector<Node> nodes() const;
  // OK while node "id" is alive, else why it is considered dead.
  Status NodeStatus(int id) const;
  // A failure that ends the whole job on this node (start-up failed, TERMINATE), or OK.
  Status fatal() const;
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
  // Drops a message for reason "r": counts it, and logs the first of each reason.
  void Drop(DropReason r, const std::string& detail);

 protected:
  Van();

  // ---- the transport ----
  // Binds the receiving socket on "port" (0: one the OS chooses) and reports the bound port.
  virtual Status Bind(int port, int* bound_port) = 0;
  // Records where node "id" listens; a later send to "id" connects there. Thread-safe.
  virtual void SetAddress(int id, const std::string& host, int port) = 0;
  // Sends one message to node "id". Thread-safe. Returns bytes sent or -1.
  virtual int SendFrames(int id, const std::string& meta,
                         const std::vector<SArray<char>>& data) = 0;
  // Waits up to "timeout_ms" for one message; false on timeout or Wake().
  // REQUIRES: the receiving thread (recv_mu_ held).
  virtual bool RecvFrames(std::vector<SArray<char>>* frames, int timeout_ms) = 0;
  // Makes a blocked RecvFrames() return. Thread-safe.
  virtual void Wake() = 0;
  // Closes every socket, waiting at most linger_ms for unsent messages. After the thread joined.
  virtual void CloseTransport() = 0;

  const VanOptions& options() const { return options_; }

 private:
  void Loop();
  // Receives at most one message (waiting up to the next tick), delivers messages to this node
  // itself, and ticks when due. REQUIRES: recv_mu_ held.
  void ReceiveOnce();
  void Tick();
  void Dispatch(Message&& msg);
  void ProcessControlAtScheduler(Message& msg);
  void ProcessControlAtNode(Message& msg);
  void ProcessAddNode(const Message& msg);
  void ProcessBarrier(const Message& msg);
  void ReleaseBarrier(int group, bool ok, const std::string& reason);
  void SetBarrierResult(int customer_id, const Status& s);
  void FailStart(const Status& why);
  void MarkDead(int id, const Status& why);
  void SendControl(int recver, Control control, bool request, int customer_id = 0);
  // First dead node of "group" (or the scheduler), if any. REQUIRES: mu_ held.
  Status GroupStatusLocked(int group) const;
  int Participants(int group) const;

  // Constant after Start().
  VanOptions options_;
  DataHandler on_data_;
  FailureHandler on_failure_;
  bool is_scheduler_ = false;
  Clock::time_point start_time_;
  std::thread thread_;

  std::atomic<bool> running_{false};  // Start() started the van thread
  std::atomic<bool> ready_{false};
  std::atomic<int> my_id_{Node::kEmpty};  // my_node_.id, for Send without mu_
  std::atomic<bool> stop_{false};         // the van thread should end
  std::atomic<bool> closed_{false};       // the transport is closed: nothing can be sent
  std::atomic<bool> finalizing_{false};
  std::atomic<uint64_t> dropped_[static_cast<int>(DropReason::kNumReasons)] = {};
  std::atomic<uint64_t> bytes_sent_{0};
  std::atomic<uint64_t> bytes_received_{0};
  std::atomic<uint64_t> heartbeats_sent_{0};
  std::atomic<uint64_t> heartbeats_received_{0};
  mutable std::mutex traffic_mu_;       // protects traffic_ only; taken last
  std::map<int, PeerTraffic> traffic_;  // peer id -> counts
  void CountTraffic(int peer, uint64_t bytes, bool sent);

  // Protected by mu_.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  Node my_node_;
  std::map<int, Node> nodes_;             // id -> node, once ready
  std::unordered_map<int, Status> dead_;  // id -> why
  Status fatal_;
  std::unordered_map<int, std::unique_ptr<Status>> barrier_result_;  // customer -> result
  bool logged_drop_[static_cast<int>(DropReason::kNumReasons)] = {};

  // Messages to this node itself, delivered by the receiving thread. Protected by local_mu_.
  std::mutex local_mu_;
  std::deque<Message> local_;

  // The receive socket has one user at a time, the receiver: the van thread, or a caller in
  // ReceiveUntil (then caller_receives_ is set and the van thread sleeps on lead_cv_).
  // Whoever holds recv_mu_ receives, so the state below is touched under recv_mu_ only.
  std::mutex recv_mu_;
  std::atomic<bool> caller_receives_{false};
  std::mutex lead_mu_;  // with lead_cv_: the van thread waits while a caller receives
  std::condition_variable lead_cv_;

  // Protected by recv_mu_ (the receiving thread's).
  int tick_ms_ = 200;
  Clock::time_point next_tick_;
  std::vector<Message> early_;  // data that arrived before the node list
  Clock::time_point next_heartbeat_;
  Clock::time_point last_heard_scheduler_;
  // Scheduler's registration and barrier state.
  struct Registration {
    Node node;  // with its id
    int customers = 0;
  };
  std::map<std::string, Registration> registered_;  // host:port -> node
  int registered_count_[2] = {0, 0};                // customers per role (SERVER, WORKER)
  int node_count_[2] = {0, 0};                      // distinct nodes per role
  int next_reject_id_ = -1000;                      // throwaway ids of rejected nodes
  std::map<int, Clock::time_point> last_seen_;      // node id -> last message
  struct BarrierEntry {
    int node_id;
    int customer_id;
    bool finalize;
  };
  std::map<int, std::vector<BarrierEntry>> barriers_;  // group -> who entered
};

}  // namespace ps
#endif  // PS_INTERNAL_VAN_H_
