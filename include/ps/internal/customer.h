// Customer is one app's endpoint on a node: it issues timestamps for requests, matches the
// responses to them, and runs the app's handler on every message it receives.
//
// Threads: the customer owns one receive thread, started by the constructor and joined by the
// destructor. The handler runs there for requests, one at a time, highest priority first; for
// responses it runs on the node's receiving thread: the van thread, or a thread blocked in
// TryWaitRequest, which receives for the node meanwhile (Van::ReceiveUntil). Either way it must
// not wait for a request (a response handler would wait for the thread that delivers the answer;
// that wait fails with an error). All other methods are
// thread-safe.
#ifndef PS_INTERNAL_CUSTOMER_H_
#define PS_INTERNAL_CUSTOMER_H_

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "ps/consistency.h"
#include "ps/internal/message.h"
#include "ps/internal/task_table.h"
#include "ps/internal/threadsafe_queue.h"
#include "ps/status.h"

namespace ps {

class Postoffice;

class Customer {
 public:
  using RecvHandle = std::function<void(const Message& recved)>;
  // Says whether "request" may be handled on the thread that received it (see Accept). Runs
  // there; must be quick, and must not block.
  using RunHere = std::function<bool(const Message& request)>;

  // Registers with "postoffice" (the default node when null) under (app_id, customer_id) and
  // starts the receive thread. Messages for this customer that arrived earlier are delivered now.
  // "run_here", when given, picks the requests that skip the receive thread.
  Customer(int app_id, int customer_id, const RecvHandle& recv_handle,
           Postoffice* postoffice = nullptr, RunHere run_here = nullptr);
  // Unregisters and joins the receive thread. Requests still pending are abandoned.
  ~Customer();

  Customer(const Customer&) = delete;
  Customer& operator=(const Customer&) = delete;

  int app_id() const { return app_id_; }
  int customer_id() const { return customer_id_; }
  Postoffice* postoffice() const { return postoffice_; }

  // Starts tracking a request to "recver" (a node id or a group) and returns its timestamp; the
  // request finishes when every node of "recver" has answered. A dead receiver fails it at once.
  int NewRequest(int recver);
  // The same for an explicit list of node ids (a request that goes to some servers only).
  int NewRequest(const std::vector<int>& recvers);

  // Issues a task: a request to "recvers" that executes after the requests "after" and after
  // what the consistency model asks. The caller builds its messages with the timestamp, then
  // hands them to Submit, which sends them when the task may execute.
  // Blocks while the model holds the caller back (see consistency.h), receiving for the node
  // meanwhile if no other thread does; never on the node's receiving thread or this customer's
  // own thread, where the task is queued behind the requests it must follow instead.
  // A task with a named timestamp that failed, or that was not issued, fails at once.
  int NewTask(const std::vector<int>& recvers, const std::vector<int>& after);
  // Sends task "timestamp" by calling "send" (without locks held): now, on this thread, if
  // everything it executes after finished; else later, on the thread that finishes the last of
  // them. Never if the task failed meanwhile. A task without receivers finishes once "send"
  // returned. REQUIRES: "timestamp" from NewTask, submitted once.
  void Submit(int timestamp, std::function<void()> send);

  // The model that orders the tasks issued from now on. Thread-safe.
  void set_consistency(const Consistency& consistency);
  Consistency consistency();
  // Counters of the tasks so far. Thread-safe.
  ConsistencyStats consistency_stats() const;
  // The same counters, shared, so that a report at exit can outlive the customer.
  struct TaskCounters;
  std::shared_ptr<const TaskCounters> task_counters() const { return counters_; }

  // Blocks until request "timestamp" finished. Returns its failure, if any: a receiver died, or
  // answered with an error, or a task it executes after failed. A failure is returned again by
  // later calls. While it waits, it receives the node's messages itself if no other
  // thread does (see Van::ReceiveUntil). REQUIRES: not on this customer's receive thread, nor
  // on the node's receiving thread (both fail with kInvalidArgument).
  Status TryWaitRequest(int timestamp);
  // ps-lite's wait: on failure, reports it and ends the process (see Postoffice::Die).
  void WaitRequest(int timestamp);

  // Responses received so far by pending request "timestamp"; 0 once it finished.
  int NumResponse(int timestamp);
  // Counts "num" responses for "timestamp" without a message (ps-lite: nodes skipped).
  void AddResponse(int timestamp, int num = 1);

  // Marks pending request "timestamp" as failed with "why" (the first failure wins); it still
  // finishes only when its responses are in. For apps that find a response unusable.
  void FailRequest(int timestamp, const Status& why);
  // Issues a timestamp whose request has already failed with "why" (a call with bad arguments).
  int NewFailedRequest(const Status& why);

  // Attaches an app's state to pending request "timestamp", and the step that completes it
  // once every response is in (it runs on the thread that counted the last one, before Wait
  // returns; a failure it returns fails the request). REQUIRES: before Submit.
  void Attach(int timestamp, std::shared_ptr<void> data, TaskTable::Complete complete);
  // The state attached to pending request "timestamp"; null once it finished.
  template <typename T>
  std::shared_ptr<T> data(int timestamp) {
    std::lock_guard<std::mutex> lk(mu_);
    return std::static_pointer_cast<T>(table_.data(timestamp));
  }

  // Counts request "timestamp"'s message to "recver" as answered with "why": its send failed.
  // The request fails with "why" (the first failure wins) and finishes once the others are in.
  void FailSend(int timestamp, int recver, const Status& why);

  // Blocks until every request accepted so far has been handled by the request handler.
  // Returns at once on this customer's own thread.
  void WaitIdle();

  // Requests not finished yet, and failures not yet waited for: what the customer holds.
  size_t pending_size();
  // Requests sent (or issued, for plain requests) and not finished yet. Thread-safe.
  size_t requests_in_flight();

  // Takes a message: queues a request for the receive thread, handles a response at once.
  // A request that "run_here" picks is handled at once too, on the node's receiving thread,
  // when this customer's thread is idle (so requests keep their order and the handler never
  // runs twice at once). Called by the postoffice on the receiving thread.
  void Accept(const Message& recved);
  // Fails pending requests that wait for node "node_id", or all of them with "everything".
  void OnNodeFailed(int node_id, const Status& why, bool everything);

  // Server replication. A request to a key range rather than to a node (a KVWorker's under
  // PS_REPLICATION >= 2) awaits a responder id of SliceResponder(range): its responses carry
  // the range (Meta::slice), and a server's death fails nothing; the app resends instead.
  static int SliceResponder(int slice) { return -1 - slice; }
  // Called on the receiving thread when server "node_id" died and the replicas took over its
  // ranges (after the new configuration is in place), and with node_id Node::kEmpty when a
  // replacement server joined or became a full replica. Thread-safe; null: nothing to do.
  using FailoverHandle = std::function<void(int node_id)>;
  void set_failover_handle(FailoverHandle handle);
  void OnServerReplaced(int node_id);
  // The oldest timestamp not finished yet (every earlier one is), and the pending ones.
  int oldest_pending();
  std::vector<int> pending_timestamps();

 private:
  using Ready = TaskTable::Ready;

  void Receiving();
  // Fails request "ts" at once if one of "recvers" is dead, and then returns true.
  // REQUIRES: mu_ held.
  bool FailIfReceiverDeadLocked(int ts, const std::vector<int>& recvers);
  // Blocks until "done" (evaluated under mu_) holds: spins for PS_SPIN_US, then receives for the
  // node if no other thread does, then sleeps on cv_. REQUIRES: "lk" holds mu_.
  void WaitLocked(std::unique_lock<std::mutex>* lk, const std::function<bool()>& done);
  // Whether this thread may block waiting for a response: not the node's receiving thread, not
  // ours. If not, says why in "why" (when given).
  bool MayBlock(Status* why = nullptr) const;
  // Runs the sends of "ready" in timestamp order, finishing tasks without receivers, and the
  // sends that releases. REQUIRES: mu_ not held.
  void RunReady(std::vector<Ready> ready);
  // Carries out what the table left to do after "ts" changed: runs its completion, wakes the
  // waiters, sends what was released. REQUIRES: mu_ not held.
  void Settle(int ts, TaskTable::Step step, TaskTable::Complete complete, std::vector<Ready> ready);
  // Runs the handler on one message and counts a response.
  void Handle(const Message& msg);
  // Handles "request" on this thread if run_here_ picks it, this is the node's receiving
  // thread, and the receive thread has nothing to do; returns whether it did.
  bool TryHandleHere(const Message& request);
  // Publishes the table's most tasks in flight. REQUIRES: mu_ held.
  void NoteInFlightLocked();

  // Constant after construction.
  const int app_id_;
  const int customer_id_;
  const RecvHandle recv_handle_;
  Postoffice* const postoffice_;
  const int spin_us_;       // PS_SPIN_US: how long a wait spins before it sleeps
  const RunHere run_here_;  // may be null

  const std::shared_ptr<TaskCounters> counters_;  // thread-safe

  ThreadsafePQueue<Message> recv_queue_;
  std::thread recv_thread_;

  // Requests accepted and handled, for WaitIdle. Protected by idle_mu_.
  std::mutex idle_mu_;
  std::condition_variable idle_cv_;
  uint64_t accepted_ = 0;
  uint64_t handled_ = 0;

  // Protected by mu_.
  std::mutex mu_;
  std::condition_variable cv_;
  TaskTable table_;  // every request, from its timestamp to its end
  Consistency consistency_;
  std::shared_ptr<FailoverHandle> failover_;
};

// Counters of a customer's tasks, updated under the customer's lock, read from anywhere.
struct Customer::TaskCounters {
  std::atomic<uint64_t> requests{0};
  std::atomic<int> max_in_flight{0};
  std::atomic<uint64_t> held_back{0};
  std::atomic<uint64_t> held_back_ns{0};
  std::atomic<uint64_t> deferred{0};
  std::atomic<int> model{0};  // the latest model, as Consistency::Model
  std::atomic<int> tau{0};
  // Latency of finished requests from send to last response, by kind of response (other,
  // push, pull, push-pull), in buckets of kLatencyBounds seconds (the last: above them).
  static constexpr int kKinds = 4;
  static constexpr int kLatencyBuckets = 16;
  static const double kLatencyBounds[kLatencyBuckets - 1];
  std::atomic<uint64_t> latency[kKinds][kLatencyBuckets] = {};
  std::atomic<uint64_t> latency_ns[kKinds] = {};
  void ObserveLatency(int kind, Clock::duration d);
  ConsistencyStats Snapshot() const;
  Consistency consistency() const {
    return Consistency{static_cast<Consistency::Model>(model.load()), tau.load()};
  }
};

}  // namespace ps
#endif  // PS_INTERNAL_CUSTOMER_H_
