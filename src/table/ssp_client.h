// SSPClient is the process side of an SSP table group on a worker node: the row cache shared by
// the process's worker threads, the reads that go to the servers, and the operation logs that
// threads flushed but the servers have not acknowledged yet.
//
// How read-my-writes holds without counting an update twice: a cached row carries, besides
// its clock, for each thread of this process the clock up to which the row holds that thread's
// increments ("own clocks": the thread's clock at the server for rows served fresh, the global
// clock for rows of synchronous tables, served as of it). A thread reading the row adds its
// flushed logs from its own clock on, and its current log. Every message from a server carries
// its global clock g; once a server reports g > k, everything it sends includes every thread's
// increments of clock k, so the cached rows of that server whose own clock for a thread is at
// most k get the thread's log of clock k added, and their own clock becomes k + 1; when every
// server has passed k, the log is dropped. This relies on one order: everything a server sends
// to this process arrives, and is applied, in the order it was sent (every SSP message is a
// request, taken in order by the group's customer thread).
//
// Threads: Handle runs on the group's customer thread; Read and Flush on worker threads. All
// methods are thread-safe.
#ifndef PS_TABLE_SSP_CLIENT_H_
#define PS_TABLE_SSP_CLIENT_H_

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "table/ssp_stats.h"
#include "table/ssp_wire.h"

namespace ps {

class SSPClient {
 public:
  SSPClient(int app_id, const ssp::TableMap& tables, const SSPOptions& options,
            Postoffice* postoffice, std::shared_ptr<SSPCounters> counters);

  // Takes one message from a server (kRows). Malformed ones are dropped and counted.
  void Handle(const Message& msg);

  // Row "key" for thread "thread" at clock "clock", including every update of clocks <
  // "need" and the thread's own (flushed logs, then "pending", its current log, may be null).
  // Blocks until the cache holds the row at clock "need" or later. Fails when a server or a
  // worker dies or Stop is called.
  Status Read(int thread, int clock, int need, const ssp::RowKey& key, const ssp::RowData* pending,
              SSPRow* out);

  // Sends thread "thread"'s increments of clock "clock", which it ends, to the servers.
  Status Flush(int thread, int clock, ssp::RowMap log);

  // Asks every server to write its rows for the checkpoint of clock "clock" and waits for
  // their files (name, bytes, checksum), in server order. Fails on a server's error, a dead
  // peer, or Stop.
  Status CheckpointServers(int clock, std::vector<CheckpointFile>* files);

  // Wakes and fails every read; later reads fail at once. Idempotent.
  void Stop();

 private:
  struct CachedRow {
    ssp::RowData data;
    int clock = 0;         // includes every update of clocks < clock
    std::vector<int> own;  // by thread: includes its increments of clocks < own[thread]
    int own_floor = 0;     // the own clock of threads beyond own.size()
    int server = 0;

    int OwnOf(int thread) const {
      return thread < static_cast<int>(own.size()) ? own[thread] : own_floor;
    }
  };
  struct Flushed {
    std::shared_ptr<const ssp::RowMap> log;
    int servers_left = 0;  // servers whose global clock has not passed this clock yet
  };
  struct InFlight {
    int max_need = 0;
    int outstanding = 0;
  };

  void Drop(const Message& msg, const Status& why);
  // Asks the server of "key" for its row at clock "need" or later; fails, naming the server,
  // when the request cannot be sent. REQUIRES: mu_ held.
  Status SendRead(int thread, int need, const ssp::RowKey& key);
  // Why a read waiting for server "server" cannot finish, if it cannot: a dead peer, or Stop.
  Status CheckPeers(int server);
  // Caches a row that server "server" sent at global clock "global"; "own" are the clocks of
  // this process's threads there. REQUIRES: mu_ held.
  void InstallLocked(const ssp::RowKey& key, ssp::RowData&& data, int global,
                     const std::vector<int>& own, int server);
  // Server "server" reports global clock "global": folds the logs it passed into its rows.
  // REQUIRES: mu_ held.
  void PassLocked(int server, int global);

  // Constant after construction.
  const int app_id_;
  const ssp::TableMap tables_;
  const SSPOptions options_;
  Postoffice* const postoffice_;
  const int num_servers_;
  const std::shared_ptr<SSPCounters> counters_;

  // Protected by mu_.
  std::mutex mu_;
  std::condition_variable cv_;  // the cache changed, or Stop
  bool stopped_ = false;
  std::unordered_map<ssp::RowKey, CachedRow, ssp::RowKeyHash> cache_;
  std::vector<std::vector<ssp::RowKey>> by_server_;  // cached keys by server rank
  std::vector<int> server_clock_;                    // by server rank: the last g it reported
  std::unordered_map<ssp::RowKey, InFlight, ssp::RowKeyHash> inflight_;
  std::map<int, std::map<int, Flushed>> flushed_;  // thread -> clock -> log not acked by all
  // Servers' answers to CheckpointServers: server rank -> (error, file).
  std::map<int, std::pair<std::string, CheckpointFile>> checkpoint_answers_;
};

}  // namespace ps
#endif  // PS_TABLE_SSP_CLIENT_H_
