// Stale synchronous parallel (SSP) tables, after the SSPTable of Ho et al. (NIPS 2013), LazyTable
// and Petuum: tables of numeric rows that worker threads read with bounded staleness, increment,
// and advance with a clock.
//
//   ps::SSPTableGroup group(/*app_id=*/1, {{/*table_id=*/0, /*row_width=*/16, /*staleness=*/2}});
//   // on a server node: the group serves its share of the rows until it is destroyed
//   // on a worker node, in each worker thread:
//   ps::SSPWorker worker(&group, customer_id);
//   ps::SSPTable table = worker.table(0);
//   ps::SSPRow row;
//   table.Get(7, &row);            // row 7, at most 2 clocks stale
//   table.Inc(7, 3, 0.5);          // buffered in this thread's operation log
//   worker.Clock();                // flushes the log; the worker is now one clock further
//
// Clocks and the guarantee. Every worker thread starts at clock 0; Clock() ends its current
// clock. A read at clock c with staleness s returns a row that includes every update that any
// worker made in clocks < c - s, and every update of the reading thread itself (read-my-writes);
// it may include more. s = 0 is bulk synchronous; a large s approaches asynchronous execution.
// A worker more than s clocks ahead of the slowest worker blocks in Get until it catches up.
//
// Layers. Increments go to the calling thread's operation log, coalesced per row, and travel
// at Clock() to the servers; the rows of a table are spread over the servers by row id. Reads
// are answered by the process's row cache, shared by the worker threads of the group, when
// its copy is fresh enough; otherwise the row's server answers, and holds a read that needs a
// clock not reached yet until every worker has reached it. Servers know every worker's clock.
// In eager mode (ESSP, Dai et al. 2015) servers push the rows a process has read to its cache
// whenever the slowest worker's clock advances, so fewer reads wait.
//
// Workers. The job's worker customers (DMLC_NUM_WORKER) are the SSP workers: each worker
// thread builds one SSPWorker with its customer id, and every one of them must take part, or
// the others block once they are more than their staleness ahead.
//
// Values are doubles. Rows are dense (row_width values, columns 0 .. row_width-1) or sparse
// (row_width 0: any uint64 column, absent columns read 0). The process cache keeps every row
// it has read; there is no eviction.
//
// Ownership and threads. SSPTableGroup is per node and thread-safe; it owns one receive thread
// (its Customer), which applies what servers send; it must outlive its SSPWorkers. SSPWorker
// and SSPTable belong to one thread. Nothing here runs user callbacks.
#ifndef PS_SSP_TABLE_H_
#define PS_SSP_TABLE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "ps/base.h"
#include "ps/checkpoint.h"
#include "ps/internal/postoffice.h"
#include "ps/status.h"

namespace ps {

// One table of a group. Every node of the job must declare the same tables.
struct SSPTableConfig {
  int table_id = 0;
  int row_width = 0;  // values per dense row; 0 for sparse rows
  int staleness = 0;  // the default staleness of reads that give none
};

struct SSPOptions {
  bool eager = false;  // ESSP: servers push fresh rows to the caches that hold them
};

// A row as read: a dense row fills "values" (row_width of them) and leaves "cols" empty; a
// sparse row lists the columns it holds in increasing order in "cols", their values in "values".
struct SSPRow {
  std::vector<uint64_t> cols;
  std::vector<double> values;
  int clock = 0;  // the row includes every update of clocks < clock (the row's clock)

  // The value of column "col" (0 if absent or out of range).
  double Get(uint64_t col) const;
};

// What a worker process's reads did, or a server's, since the group started. Counts are
// summed over the group's worker threads.
struct SSPStats {
  uint64_t reads = 0;          // Get calls
  uint64_t cache_hits = 0;     // answered by the process cache at once
  uint64_t blocked_reads = 0;  // had to wait: for a server's answer or an eager push
  uint64_t held_reads = 0;     // of those, held by the server for slower workers
  double blocked_seconds = 0;  // time spent waiting in those reads
  // observed_staleness[d]: reads at clock c that got a row of clock c - d; the last bucket
  // counts d >= its index.
  std::vector<uint64_t> observed_staleness;
  uint64_t clocks = 0;        // Clock calls
  uint64_t rows_pushed = 0;   // rows received from eager pushes (workers) or sent (servers)
  uint64_t reads_served = 0;  // servers: read requests answered
  uint64_t malformed = 0;     // messages from peers dropped as malformed
  int global_clock = 0;       // servers: the slowest worker's clock

  double cache_hit_rate() const { return reads ? static_cast<double>(cache_hits) / reads : 0; }
  // One line: "reads 100, cache hits 90 (90.0%), blocked 10 (held 3) for 0.012 s, ...".
  std::string ToString() const;
};

class SSPWorker;

// The tables of one app on one node: on a server node it serves its share of the rows, on a
// worker node it is the process cache and the link to the servers. Thread-safe.
class SSPTableGroup {
 public:
  static constexpr int kStalenessBuckets = 16;

  // Registers app "app_id" (customer 0) on "postoffice" (the default node when null) with
  // "tables". Does no I/O. REQUIRES: the node started (ps::Start); the app id is used by
  // nothing else on the node; every node of the job passes the same tables and options.
  SSPTableGroup(int app_id, const std::vector<SSPTableConfig>& tables,
                const SSPOptions& options = SSPOptions(), Postoffice* postoffice = nullptr);
  // Joins the receive thread. REQUIRES: no SSPWorker of the group is left; on servers, every
  // worker is done (a barrier of servers and workers first).
  ~SSPTableGroup();

  SSPTableGroup(const SSPTableGroup&) = delete;
  SSPTableGroup& operator=(const SSPTableGroup&) = delete;

  // What the group did so far. Non-blocking.
  SSPStats stats() const;

  class Impl;

 private:
  friend class SSPWorker;
  std::unique_ptr<Impl> impl_;
};

// One table as seen by one worker thread; a cheap handle from SSPWorker::table(). Not
// thread-safe: used by the worker's thread only.
class SSPTable {
 public:
  // Row "row" including every update of clocks < clock() - staleness and this thread's own.
  // staleness < 0 takes the table's default. Blocks while the row is not in the process cache
  // fresh enough: for the server, which may hold the read until the slowest worker reaches
  // the clock it needs. Fails on an unknown table, or when a server or worker the read waits
  // for dies, or the node stops.
  Status Get(uint64_t row, SSPRow* out, int staleness = -1);
  // Adds "delta" to column "col" of "row", in this thread's operation log. Non-blocking.
  // Fails on a column outside a dense row.
  Status Inc(uint64_t row, uint64_t col, double delta);
  // Adds deltas[i] to column cols[i] of "row", all or nothing. Non-blocking.
  Status BatchInc(uint64_t row, const std::vector<uint64_t>& cols,
                  const std::vector<double>& deltas);
  // Adds deltas[j] to column j (a dense row's whole width). Non-blocking.
  Status IncRow(uint64_t row, const std::vector<double>& deltas);

  int table_id() const { return table_id_; }
  int staleness() const { return staleness_; }
  int row_width() const { return row_width_; }

 private:
  friend class SSPWorker;
  SSPTable(SSPWorker* worker, int table_id, int row_width, int staleness)
      : worker_(worker), table_id_(table_id), row_width_(row_width), staleness_(staleness) {}

  SSPWorker* worker_;
  int table_id_;
  int row_width_;
  int staleness_;
};

// One worker thread of a group: its clock and its operation log. Used by one thread only.
class SSPWorker {
 public:
  // "customer_id" is the thread's worker customer (ps::Start(customer_id)), unique in the
  // process. REQUIRES: a worker node; "group" outlives this.
  SSPWorker(SSPTableGroup* group, int customer_id = 0);
  // Updates not flushed by a last Clock() are dropped.
  ~SSPWorker();

  SSPWorker(const SSPWorker&) = delete;
  SSPWorker& operator=(const SSPWorker&) = delete;

  // A handle on table "table_id"; an unknown id gives a handle whose calls fail.
  SSPTable table(int table_id);

  // Ends this thread's current clock: sends its operation log to the servers and tells them
  // the new clock. Non-blocking (the servers acknowledge later). Fails after the node stopped.
  Status Clock();

  // The thread's current clock: the number of Clock() calls (plus the clock of the checkpoint
  // the job resumed from).
  int clock() const { return clock_; }

  // Checkpoints (ps/checkpoint.h, PS_CHECKPOINT_DIR): every worker thread of the job calls this
  // right after a Clock(), at the same clock(); it blocks until the servers wrote their rows
  // as of that clock (every update of the clocks before it, and none after) and the
  // checkpoint is complete. "state" is this thread's own state (its part of the model that no
  // table holds, say), kept per worker rank and customer. Returns at once when
  // PS_CHECKPOINT_DIR is not set or PS_CHECKPOINT_EVERY does not divide clock(). A job that
  // resumes from an SSP checkpoint starts every worker thread at its clock, with the servers'
  // rows as they were; ResumedState gives each thread its state back (the job must have as
  // many workers as the one that wrote it). Fails when a node dies or a file cannot be
  // written.
  Status Checkpoint(const std::string& state = "");
  // The state this thread gave Checkpoint in the checkpoint the job resumed from; "" when the
  // job did not resume. Reads it from its file (checked).
  Status ResumedState(std::string* state);

  class Log;

 private:
  friend class SSPTable;
  Status Get(int table_id, uint64_t row, SSPRow* out, int staleness);
  Status Inc(int table_id, uint64_t row, const uint64_t* cols, const double* deltas, size_t n,
             bool dense_whole_row);

  SSPTableGroup::Impl* const group_;
  const int customer_id_;
  int clock_ = 0;
  std::unique_ptr<Log> log_;               // this clock's increments, coalesced per row
  std::optional<CheckpointInfo> resumed_;  // the SSP checkpoint of this group resumed from
};

}  // namespace ps
#endif  // PS_SSP_TABLE_H_
