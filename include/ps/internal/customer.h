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

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "ps/internal/message.h"
#include "ps/internal/threadsafe_queue.h"
#include "ps/status.h"

namespace ps {

class Postoffice;

class Customer {
 public:
  using RecvHandle = std::function<void(const Message& recved)>;

  // Registers with "postoffice" (the default node when null) under (app_id, customer_id) and
  // starts the receive thread. Messages for this customer that arrived earlier are delivered now.
  Customer(int app_id, int customer_id, const RecvHandle& recv_handle,
           Postoffice* postoffice = nullptr);
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

  // Blocks until request "timestamp" finished. Returns its failure, if any: a receiver died, or
  // answered with an error. While it waits, it receives the node's messages itself if no other
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

  // Requests not finished yet, and failures not yet waited for: what the customer holds.
  size_t pending_size();

  // Takes a message: queues a request for the receive thread, handles a response at once.
  // Called by the postoffice on the receiving thread.
  void Accept(const Message& recved);
  // Fails pending requests that wait for node "node_id", or all of them with "everything".
  void OnNodeFailed(int node_id, const Status& why, bool everything);

 private:
  struct Pending {
    std::vector<int> awaiting;  // nodes that have not answered yet
    int remaining = 0;          // answers still expected
    int received = 0;
    Status status;  // first error answered
  };

  void Receiving();
  // Runs the handler on one message and counts a response.
  void Handle(const Message& msg);
  // Records one response from "sender" to "ts"; finishes the request after the last one and
  // then returns true (the caller wakes the waiters). REQUIRES: mu_ held.
  bool AddResponseLocked(int ts, int sender, const Status& error);
  // Removes request "ts", keeping its failure for Wait. REQUIRES: mu_ held.
  void FinishLocked(int ts, Status status);

  // Constant after construction.
  const int app_id_;
  const int customer_id_;
  const RecvHandle recv_handle_;
  Postoffice* const postoffice_;
  const int spin_us_;  // PS_SPIN_US: how long a wait spins before it sleeps

  ThreadsafePQueue<Message> recv_queue_;
  std::thread recv_thread_;

  // Protected by mu_.
  std::mutex mu_;
  std::condition_variable cv_;
  int next_timestamp_ = 0;
  std::unordered_map<int, Pending> pending_;  // finished requests are erased
  std::unordered_map<int, Status> failed_;    // failed requests, until waited for
};

}  // namespace ps
#endif  // PS_INTERNAL_CUSTOMER_H_
