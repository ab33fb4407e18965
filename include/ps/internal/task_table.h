// TaskTable is the one record of every request a customer issues, from its timestamp to its end:
// created, what it executes after, submitted, sent, each response, finished or failed. An app
// attaches its own per-request state to the record (the KVWorker's slices and outputs) and a
// step that completes the request once every response is in (the KVWorker's delivery of pulled
// values and the user's callback). Resend and failover extend this record.
//
// It knows no postoffice, van or thread: it only decides. The owner (Customer) serialises every
// call under one mutex and runs what the table hands back (sends, completions) without it.
//
// A response is handled in two steps, BeginResponse then EndResponse, so that the app's handler
// runs between them without the owner's lock; a failure that arrives meanwhile (a receiver's
// death) waits for the handler to end, so a request never finishes while its handler writes
// the outputs. Failures cascade through tasks that execute after the failed one.
#ifndef PS_INTERNAL_TASK_TABLE_H_
#define PS_INTERNAL_TASK_TABLE_H_

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ps/status.h"

namespace ps {

class TaskTable {
 public:
  // A task that may be sent now: the owner runs "send" without its lock; "empty" tasks have no
  // receivers and finish once "send" ran (FinishEmpty).
  struct Ready {
    int timestamp;
    bool empty;
    std::function<void()> send;
  };
  // Completes a request whose responses are all in; a failure fails it.
  using Complete = std::function<Status()>;
  // What ending a response left to do.
  enum class Step {
    kPending,   // more responses to come (or a handler still runs)
    kFinished,  // the request finished: wake its waiters
    kComplete,  // run the completion, then EndComplete
  };

  // The next timestamp; no record yet.
  int Issue() { return next_++; }
  int next() const { return next_; }

  // Records request "ts" (from Issue) awaiting one answer from each of "recvers". A plain
  // request is submitted and sent at once; a task waits for Submit and its dependencies.
  void Create(int ts, const std::vector<int>& recvers, bool task);
  // Makes task "ts" execute after request "on": with "fails_with", it fails if "on" fails (an
  // explicit dependency); else it is only ordered after it (a consistency model). Returns the
  // failure of "on" if it failed already (the task is then to be failed).
  Status AddDependency(int ts, int on, bool fails_with);
  // Attaches the app's state and completion to pending request "ts".
  void Attach(int ts, std::shared_ptr<void> data, Complete complete);
  // The app's state of pending request "ts"; null once it finished.
  std::shared_ptr<void> data(int ts) const;

  // Hands task "ts" its send. It goes into "ready" now if nothing holds it back.
  void Submit(int ts, std::function<void()> send, std::vector<Ready>* ready);
  // Finishes an empty task once its send ran.
  void FinishEmpty(int ts, std::vector<Ready>* ready);

  // Claims the response of "sender" to "ts": false for a stray (a request that finished, a
  // sender it does not wait for, a second answer). "kind" (0 other, 1 push, 2 pull, 3 push-pull)
  // classifies the request by its first response, for the latency observer.
  bool BeginResponse(int ts, int sender, int kind = 0);
  // Counts the response begun, failed with "error" if not OK. kComplete hands out the
  // completion in "complete".
  Step EndResponse(int ts, const Status& error, std::vector<Ready>* ready, Complete* complete);
  // Ends a completion with its result: the request finishes.
  void EndComplete(int ts, const Status& result, std::vector<Ready>* ready);
  // Counts "num" answers without a message (ps-lite's AddResponse).
  Step AddResponses(int ts, int num, std::vector<Ready>* ready, Complete* complete);

  // Records that request "ts" failed with "why" (the first failure wins); it still finishes
  // only once its responses are in. For apps that find a response unusable.
  void MarkFailed(int ts, const Status& why);
  // Fails request "ts" with "why" (the first failure wins) now: a pending request finishes
  // once no handler of it runs; one never created is recorded as failed.
  Step Fail(int ts, const Status& why, std::vector<Ready>* ready);
  // Fails every pending request that awaits node "node" (or all with "everything") with
  // "why(ts)". Returns how many finished.
  int FailAwaiting(int node, bool everything, const std::function<Status(int ts)>& why,
                   std::vector<Ready>* ready);

  // Whether "ts" is still pending (issued, not finished).
  bool pending(int ts) const { return pending_.count(ts) > 0; }
  // The failure of finished request "ts", or OK; with "waited", marks it returned by a Wait.
  Status result(int ts, bool waited);
  // The failure of "ts" if it failed already.
  const Status* failure(int ts) const;
  // Responses received so far by pending request "ts"; 0 once it finished.
  int responses(int ts) const;
  // Pending requests and failures not waited for: what the table holds.
  size_t held() const;
  // The oldest pending timestamp, or next() when none is.
  int oldest_pending() const { return pending_.empty() ? next_ : pending_.begin()->first; }
  // Tasks sent and not finished, now and at most so far.
  int in_flight() const { return in_flight_; }
  int max_in_flight() const { return max_in_flight_; }
  // Called when a request that received responses finishes: its kind and the time from its
  // send (its creation, for a plain request) to its end.
  using LatencyObserver = std::function<void(int kind, std::chrono::steady_clock::duration)>;
  void set_latency_observer(LatencyObserver observer) { latency_ = std::move(observer); }
  // Pending requests, sent or not.
  size_t pending_count() const { return pending_.size(); }

  // Pending requests with timestamp <= "ts", oldest first (for consistency models).
  std::vector<int> PendingUpTo(int ts) const;

 private:
  struct Record {
    std::vector<int> awaiting;  // nodes that have not answered yet
    int remaining = 0;          // answers still expected
    int received = 0;
    int handling = 0;            // responses begun, not ended (and a completion running)
    bool failing = false;        // failed while handling: finishes when handling ends
    Status status;               // the first failure
    bool submitted = true;       // false for a task until Submit
    bool sent = true;            // false for a task until its send was handed out
    bool in_flight = false;      // a task sent to receivers, counted in in_flight_
    int blockers = 0;            // unfinished requests it executes after
    std::function<void()> send;  // a submitted task's, until it is sent
    // Tasks that execute after this one; true: they fail if it fails.
    std::vector<std::pair<int, bool>> dependents;
    std::shared_ptr<void> data;
    Complete complete;
    std::chrono::steady_clock::time_point sent_at;  // for the latency observer
    int kind = 0;
  };
  struct Failure {
    Status status;
    bool waited = false;
  };

  Ready Send(int ts, Record* r);
  // The step after a response or failure changed record "ts".
  Step Settle(int ts, Record* r, std::vector<Ready>* ready, Complete* complete);
  // Removes "ts" with "status", failing the tasks that fail with it and releasing those
  // ordered after it. A worklist, not recursion: a failure may fail a long chain.
  void Finish(int ts, Status status, std::vector<Ready>* ready);

  LatencyObserver latency_;
  int next_ = 0;
  int in_flight_ = 0;
  int max_in_flight_ = 0;
  std::map<int, Record> pending_;            // by timestamp; finished ones are erased
  std::unordered_map<int, Failure> failed_;  // kept: a later task may name one
};

}  // namespace ps
#endif  // PS_INTERNAL_TASK_TABLE_H_
