// SSPServer holds one server's share of the rows of an SSP table group, tracks every worker
// thread's clock, answers reads once the slowest worker has reached the clock they need, and in
// eager mode pushes updated rows to the processes that read them when that clock advances.
//
// The global clock g is the slowest worker thread's clock. Rows of a table with staleness 0
// (bulk synchronous) are served as of g exactly: every update of clocks < g and none later, so
// such reads equal the exact sums of all earlier clocks; increments of clocks >= g wait in the
// row's pending log until g passes them. Rows of other tables apply increments on arrival and
// are served as fresh as they are.
//
// Checkpoints (ps/checkpoint.h, SSPWorker::Checkpoint): asked to write at clock c, the server
// writes its rows once the global clock is c (the workers wait in a barrier meanwhile, so the
// rows hold exactly the updates of clocks < c) to DIR/step-c/ssp-<rank>. A server whose node
// resumes from an SSP checkpoint loads, before it handles its first message, the rows it holds
// from every file of it (whatever number of servers wrote them), and every worker thread
// continues from the checkpoint's clock.
//
// Threads: Handle runs on the group's customer thread only, so the rows and clocks need no
// lock; stats() may be called from any thread.
#ifndef PS_TABLE_SSP_SERVER_H_
#define PS_TABLE_SSP_SERVER_H_

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <vector>

#include "table/ssp_stats.h"
#include "table/ssp_wire.h"

namespace ps {

class SSPServer {
 public:
  SSPServer(int app_id, const ssp::TableMap& tables, const SSPOptions& options,
            Postoffice* postoffice, std::shared_ptr<SSPCounters> counters);

  // Takes one request from a worker. Malformed ones are dropped and counted.
  void Handle(const Message& msg);

 private:
  struct HeldRead {
    int node;
    int thread;
    ssp::RowKey key;
  };

  void HandleRead(const Message& msg);
  void HandleCheckpoint(const Message& msg);
  // Writes the rows for the checkpoint asked for, and answers the worker that asked.
  void WriteCheckpoint();
  // Loads the rows and clock of the checkpoint the node resumes from, if it is an SSP one.
  Status Resume();
  void HandleClock(const Message& msg);
  // Moves the global clock to "global": pending increments become visible, held reads are
  // answered, and in eager mode rows are pushed.
  void AdvanceTo(int global);
  // Eager mode: sends each subscriber the rows changed since the last push, and the clock.
  void Push();
  // Answers the held reads that the global clock now allows.
  void ReleaseHeld();
  // The slowest worker's clock: 0 until every worker thread of the job has sent a clock.
  int ComputeGlobalClock() const;
  // Sends "keys" (at most one for a reply) with the clocks of node's threads.
  void SendRows(int node, ssp::RowsKind kind, int thread, int clock, bool held,
                const std::vector<ssp::RowKey>& keys);
  struct Row {
    ssp::RowData data;                    // what reads get
    std::map<int, ssp::RowData> pending;  // tables of staleness 0: increments of clocks >= g
  };

  Row& RowOf(const ssp::RowKey& key);
  bool Synchronous(const ssp::RowKey& key) const { return tables_.at(key.table).staleness == 0; }
  void MarkDirty(const ssp::RowKey& key);
  void Drop(const Message& msg, const Status& why);

  // Constant after construction.
  const int app_id_;
  const ssp::TableMap tables_;
  const SSPOptions options_;
  Postoffice* const postoffice_;
  const int num_workers_;
  const std::shared_ptr<SSPCounters> counters_;

  // Used by the customer thread only.
  std::unordered_map<ssp::RowKey, Row, ssp::RowKeyHash> rows_;
  std::vector<ssp::RowKey> pending_rows_;     // rows with pending increments (may repeat)
  std::map<int, std::map<int, int>> clocks_;  // node -> thread -> clocks ended
  int num_threads_ = 0;                       // entries of clocks_
  int global_clock_ = 0;
  std::multimap<int, HeldRead> held_;  // by the clock they need
  bool resumed_ = false;               // Resume ran
  int base_clock_ = 0;                 // the clock every worker thread starts at (resumed)
  int checkpoint_node_ = -1;           // the worker that asked for a checkpoint not written yet
  int checkpoint_clock_ = 0;           // and its clock
  // Eager mode: who read each row, and the rows updated since the last push.
  std::unordered_map<ssp::RowKey, std::vector<int>, ssp::RowKeyHash> subscribers_;
  std::set<int> subscriber_nodes_;
  std::vector<ssp::RowKey> dirty_;
  std::unordered_map<ssp::RowKey, bool, ssp::RowKeyHash> is_dirty_;
};

}  // namespace ps
#endif  // PS_TABLE_SSP_SERVER_H_
