// SSP tables in whole jobs inside one process, over real sockets on loopback: the staleness
// bound, read-my-writes, the drift a straggler allows, exact BSP, and eager mode.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "common/test_util.h"
#include "ps/ssp_table.h"

namespace ps {
namespace {

constexpr int kServersAndWorkers = kServerGroup + kWorkerGroup;
constexpr int kApp = 7;

// Counts arrivals and wakes those who wait for all of them.
class Latch {
 public:
  void Arrive() {
    std::lock_guard<std::mutex> lk(mu_);
    ++count_;
    cv_.notify_all();
  }
  void Wait(int n) {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return count_ >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int count_ = 0;
};

struct Job {
  int servers = 1;
  int nodes = 2;    // worker processes
  int threads = 1;  // worker threads per process
  std::vector<SSPTableConfig> tables;
  SSPOptions options;
  // When set, each server waits (10 s at most) until its stats satisfy it before they are
  // read: a server counts an answer after sending it, so the worker may be done first.
  std::function<bool(const SSPStats&)> server_counted;
  int workers() const { return nodes * threads; }
};

// Runs "work" on every worker thread (index: 0 .. workers - 1, node by node) and returns the
// stats of each worker process.
// The worker nodes of the job RunSSP runs (for tests that send raw messages).
std::vector<Postoffice*>* current_nodes = nullptr;

// "work" may also look at the stats of its process's group.
using GroupWork = std::function<void(SSPWorker* w, int index, const SSPTableGroup& group)>;
std::vector<SSPStats> RunSSPWithGroup(const Job& j, const GroupWork& work,
                                      std::vector<SSPStats>* server_stats = nullptr) {
  test::LocalJob job(j.servers, j.nodes, {{"DMLC_NUM_WORKER", std::to_string(j.workers())}});
  if (server_stats) server_stats->assign(j.servers, SSPStats());
  std::vector<Postoffice*> worker_nodes;
  for (int i = 1 + j.servers; i < job.num_nodes(); ++i) worker_nodes.push_back(job.node(i));
  current_nodes = &worker_nodes;
  std::vector<SSPStats> stats(j.nodes);
  job.Run([&](Postoffice* po, const std::string& role, int node) {
    if (role == "scheduler") {
      ASSERT_TRUE(po->TryStart(0).ok());
      EXPECT_TRUE(po->TryFinalize(0).ok());
    } else if (role == "server") {
      ASSERT_TRUE(po->TryStart(0).ok());
      {
        SSPTableGroup group(kApp, j.tables, j.options, po);
        ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
        if (j.server_counted) {
          EXPECT_TRUE(test::WaitFor([&] { return j.server_counted(group.stats()); }, 10))
              << group.stats().ToString();
        }
        if (server_stats) {
          (*server_stats)[node] = group.stats();
        } else {
          EXPECT_EQ(group.stats().malformed, 0U);
        }
      }
      EXPECT_TRUE(po->TryFinalize(0).ok());
    } else {
      std::unique_ptr<SSPTableGroup> group;
      Latch started, go, done, gone;
      std::vector<std::thread> threads;
      for (int t = 0; t < j.threads; ++t) {
        threads.emplace_back([&, t] {
          ASSERT_TRUE(po->TryStart(t).ok());
          started.Arrive();
          go.Wait(1);
          {
            SSPWorker w(group.get(), t);
            work(&w, node * j.threads + t, *group);
          }
          EXPECT_TRUE(po->TryBarrier(t, kServersAndWorkers).ok());
          done.Arrive();
          gone.Wait(1);
          EXPECT_TRUE(po->TryFinalize(t).ok());
        });
      }
      started.Wait(j.threads);
      group.reset(new SSPTableGroup(kApp, j.tables, j.options, po));
      go.Arrive();
      done.Wait(j.threads);
      stats[node] = group->stats();
      group.reset();
      gone.Arrive();
      for (auto& t : threads) t.join();
    }
  });
  return stats;
}

std::vector<SSPStats> RunSSP(const Job& j, const std::function<void(SSPWorker* w, int index)>& work,
                             std::vector<SSPStats>* server_stats = nullptr) {
  return RunSSPWithGroup(
      j, [&](SSPWorker* w, int index, const SSPTableGroup&) { work(w, index); }, server_stats);
}

SSPStats Sum(const std::vector<SSPStats>& all) {
  SSPStats s;
  s.observed_staleness.assign(SSPTableGroup::kStalenessBuckets, 0);
  for (const SSPStats& x : all) {
    s.reads += x.reads;
    s.cache_hits += x.cache_hits;
    s.blocked_reads += x.blocked_reads;
    s.held_reads += x.held_reads;
    s.clocks += x.clocks;
    s.rows_pushed += x.rows_pushed;
    s.malformed += x.malformed;
    for (size_t d = 0; d < x.observed_staleness.size(); ++d) {
      s.observed_staleness[d] += x.observed_staleness[d];
    }
  }
  return s;
}

uint64_t StaleReads(const SSPStats& s) {
  uint64_t n = 0;
  for (size_t d = 1; d < s.observed_staleness.size(); ++d) n += s.observed_staleness[d];
  return n;
}

// Each worker adds 1 to its own column of every row once per clock, then reads every row: its
// own column must be exactly its clocks so far (read-my-writes, nothing counted twice), every
// other column at least the clocks older than c - s (the bound), at most what was written.
void CountersWithinBound(SSPWorker* w, int index, int workers, int staleness, int rows, int clocks,
                         int sleep_ms) {
  SSPTable t = w->table(0);
  for (int c = 0; c < clocks; ++c) {
    for (int r = 0; r < rows; ++r) ASSERT_TRUE(t.Inc(r, index, 1).ok());
    for (int r = 0; r < rows; ++r) {
      SSPRow row;
      ASSERT_TRUE(t.Get(r, &row).ok());
      ASSERT_EQ(row.values.size(), static_cast<size_t>(workers));
      EXPECT_GE(row.clock, c - staleness);
      for (int j = 0; j < workers; ++j) {
        if (j == index) {
          ASSERT_EQ(row.values[j], c + 1) << "own column, clock " << c << ", row " << r;
        } else {
          ASSERT_GE(row.values[j], c - staleness) << "worker " << j << ", clock " << c;
          ASSERT_LE(row.values[j], clocks);
        }
      }
    }
    if (sleep_ms) std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms * index));
    ASSERT_TRUE(w->Clock().ok());
  }
}

TEST(SSPTable, EveryReadIncludesEveryUpdateOlderThanItsStaleness) {
  const int s = 2, rows = 6, clocks = 12;
  Job j;
  j.servers = 2;
  j.nodes = 3;
  j.tables = {{0, 3, s}};
  SSPStats st = Sum(RunSSP(
      j, [&](SSPWorker* w, int index) { CountersWithinBound(w, index, 3, s, rows, clocks, 2); }));
  EXPECT_EQ(st.reads, 3U * rows * clocks);
  EXPECT_EQ(st.clocks, 3U * clocks);
  // The cache answered, and with rows older than the reader's clock.
  EXPECT_GT(st.cache_hits, 0U);
  EXPECT_GT(StaleReads(st), 0U);
  EXPECT_EQ(st.malformed, 0U);
}

TEST(SSPTable, ThreadsReadTheirOwnWritesInAThreadAndAcrossAProcess) {
  // Two processes of two threads; each thread increments its column of shared rows, half a
  // step at a time, and reads after each half step, before and after flushing.
  const int s = 3, rows = 4, clocks = 10, workers = 4;
  Job j;
  j.servers = 2;
  j.nodes = 2;
  j.threads = 2;
  j.tables = {{0, workers, s}, {1, 0, s}};
  SSPStats st = Sum(RunSSP(j, [&](SSPWorker* w, int index) {
    SSPTable dense = w->table(0), sparse = w->table(1);
    const uint64_t my_col = 1000 + 17 * index;  // sparse columns of one's own
    for (int c = 0; c < clocks; ++c) {
      for (int half = 1; half <= 2; ++half) {
        for (int r = 0; r < rows; ++r) {
          ASSERT_TRUE(dense.Inc(r, index, 0.5).ok());
          ASSERT_TRUE(sparse.BatchInc(r, {my_col, my_col + 1}, {0.5, -0.5}).ok());
          SSPRow row;
          ASSERT_TRUE(dense.Get(r, &row).ok());
          ASSERT_EQ(row.values[index], c + 0.5 * half) << "clock " << c << " row " << r;
          for (int o = 0; o < workers; ++o) ASSERT_GE(row.values[o], c - s);
          ASSERT_TRUE(sparse.Get(r, &row).ok());
          ASSERT_EQ(row.Get(my_col), c + 0.5 * half);
          ASSERT_EQ(row.Get(my_col + 1), -(c + 0.5 * half));
        }
      }
      if (index % 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      ASSERT_TRUE(w->Clock().ok());
      // Right after the flush, before any server answered: still exactly one's own.
      SSPRow row;
      ASSERT_TRUE(dense.Get(0, &row).ok());
      ASSERT_EQ(row.values[index], c + 1);
    }
  }));
  EXPECT_EQ(st.malformed, 0U);
}

TEST(SSPTable, AStragglerHoldsTheFastestWithinTheStaleness) {
  const int s = 2, clocks = 10, workers = 3;
  Job j;
  j.servers = 1;
  j.nodes = workers;
  j.tables = {{0, workers, s}};
  std::atomic<int> ending[workers] = {};   // clocks each worker has ended (or is ending)
  std::atomic<int> entered[workers] = {};  // the clock of each worker's last read that returned
  std::atomic<pid_t> tids[workers] = {};
  std::atomic<int> max_drift{0};
  bool synchronised = true;  // straggler only
  SSPStats st = Sum(RunSSP(j, [&](SSPWorker* w, int index) {
    tids[index] = test::ThreadId();
    SSPTable t = w->table(0);
    for (int c = 0; c < clocks; ++c) {
      SSPRow row;
      ASSERT_TRUE(t.Get(0, &row).ok());
      entered[index] = c;
      int slowest = clocks;
      for (int o = 0; o < workers; ++o) slowest = std::min(slowest, ending[o].load());
      const int drift = c - slowest;
      EXPECT_LE(drift, s) << "worker " << index << " at clock " << c;
      int m = max_drift.load();
      while (drift > m && !max_drift.compare_exchange_weak(m, drift)) {
      }
      ASSERT_TRUE(t.Inc(0, index, 1).ok());
      if (index == 0 && synchronised) {
        // The straggler ends clock c only once the others have read at clock c + s, as far as
        // the staleness lets them run ahead, and are blocked in their next read. (After one
        // failed wait it stops waiting: the test has failed.)
        const int ahead = std::min(c + s, clocks - 1);
        for (int o = 1; o < workers && synchronised; ++o) {
          synchronised = test::WaitFor([&] { return entered[o].load() >= ahead; }, 10);
          EXPECT_TRUE(synchronised) << "worker " << o << " did not reach clock " << ahead
                                    << " with the straggler at " << c;
          if (synchronised && ahead + 1 < clocks) {
            synchronised = test::WaitUntilBlocked(
                tids[o], [&] { return entered[o].load() == ahead; }, 10);
            EXPECT_TRUE(synchronised) << "worker " << o << " was not held at clock " << ahead + 1
                                      << " with the straggler at " << c;
          }
        }
      }
      ending[index]++;  // before Clock: the servers may see the new clock at once
      ASSERT_TRUE(w->Clock().ok());
    }
  }));
  // The fast workers ran ahead as far as allowed, and no further.
  EXPECT_EQ(max_drift.load(), s);
  EXPECT_GT(st.blocked_reads, 0U);
  EXPECT_GT(st.held_reads, 0U);
}

class Synchronous : public ::testing::TestWithParam<bool> {};

TEST_P(Synchronous, ReadsEqualTheExactSumsOfAllEarlierClocks) {
  const int clocks = 8, rows = 3, workers = 4;
  Job j;
  j.servers = 2;
  j.nodes = 2;
  j.threads = 2;
  j.tables = {{0, workers, 0}};
  j.options.eager = GetParam();
  // Worker i adds (c + 1) * (i + 1) at clock c: after clocks < c, column i holds
  // (i + 1) * c * (c + 1) / 2.
  auto sum = [](int i, int c) { return (i + 1) * c * (c + 1) / 2.0; };
  SSPStats st = Sum(RunSSP(j, [&](SSPWorker* w, int index) {
    SSPTable t = w->table(0);
    for (int c = 0; c < clocks; ++c) {
      for (int r = 0; r < rows; ++r) {
        SSPRow row;
        ASSERT_TRUE(t.Get(r, &row).ok());
        EXPECT_EQ(row.clock, c);
        for (int o = 0; o < workers; ++o) ASSERT_EQ(row.values[o], sum(o, c)) << "clock " << c;
        ASSERT_TRUE(t.Inc(r, index, (c + 1) * (index + 1)).ok());
        ASSERT_TRUE(t.Get(r, &row).ok());
        for (int o = 0; o < workers; ++o) {
          ASSERT_EQ(row.values[o], sum(o, c) + (o == index ? (c + 1) * (index + 1) : 0));
        }
      }
      if (index == 1) std::this_thread::sleep_for(std::chrono::milliseconds(3));
      ASSERT_TRUE(w->Clock().ok());
    }
  }));
  EXPECT_EQ(st.reads, 2U * workers * rows * clocks);
  EXPECT_EQ(st.observed_staleness[0], st.reads);  // s = 0: never stale
}

INSTANTIATE_TEST_SUITE_P(EagerOrNot, Synchronous, ::testing::Bool());

TEST(SSPTable, EagerModeBlocksFewerReadsThanPlainSSP) {
  // BSP in lockstep: each clock every worker reads every row, adds 1 to its column of each, and
  // ends the clock; the next clock starts once all have ended it and, in eager mode, the
  // server's push of the rows for the new clock arrived. Plain SSP must then fetch every row
  // again; eager mode finds them fresh in the cache. Which reads block follows from the
  // protocol, not from how fast anything runs.
  const int rows = 8, clocks = 6, workers = 2;
  auto run = [&](bool eager) {
    Job j;
    j.servers = 1;
    j.nodes = workers;
    j.tables = {{0, workers, 0}};
    j.options.eager = eager;
    std::atomic<int> ended{0};
    return Sum(RunSSPWithGroup(j, [&](SSPWorker* w, int index, const SSPTableGroup& group) {
      SSPTable t = w->table(0);
      for (int c = 0; c < clocks; ++c) {
        for (int r = 0; r < rows; ++r) {
          SSPRow row;
          ASSERT_TRUE(t.Get(r, &row).ok());
          EXPECT_EQ(row.clock, c);
          for (int o = 0; o < workers; ++o) ASSERT_EQ(row.values[o], c) << "clock " << c;
        }
        for (int r = 0; r < rows; ++r) ASSERT_TRUE(t.Inc(r, index, 1).ok());
        ASSERT_TRUE(w->Clock().ok());
        ++ended;
        ASSERT_TRUE(test::WaitFor([&] { return ended.load() >= workers * (c + 1); }, 10));
        if (eager) {
          ASSERT_TRUE(test::WaitFor(
              [&] { return group.stats().rows_pushed >= static_cast<uint64_t>(rows) * (c + 1); },
              10))
              << "no push of the rows for clock " << c + 1 << ": " << group.stats().ToString();
        }
      }
    }));
  };
  SSPStats ssp = run(false), essp = run(true);
  const uint64_t reads = static_cast<uint64_t>(rows) * clocks * workers;
  EXPECT_EQ(ssp.reads, reads);
  EXPECT_EQ(essp.reads, reads);
  EXPECT_EQ(ssp.blocked_reads, reads) << "SSP: " << ssp.ToString();
  EXPECT_EQ(ssp.rows_pushed, 0U);
  // Eager: only the first clock's reads went to the server; pushes served the rest.
  EXPECT_EQ(essp.blocked_reads, static_cast<uint64_t>(rows) * workers)
      << "ESSP: " << essp.ToString();
  EXPECT_GE(essp.rows_pushed, reads);
  EXPECT_LT(essp.blocked_reads, ssp.blocked_reads)
      << "SSP: " << ssp.ToString() << "\nESSP: " << essp.ToString();
  EXPECT_GT(essp.cache_hit_rate(), ssp.cache_hit_rate());
}

TEST(SSPTable, BadCallsFailWithAStatus) {
  Job j;
  j.servers = 1;
  j.nodes = 1;
  j.tables = {{0, 2, 0}};
  RunSSP(j, [&](SSPWorker* w, int) {
    SSPRow row;
    Status s = w->table(3).Get(0, &row);
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
    EXPECT_EQ(s.message(), "SSP table 3 is not in the group");
    s = w->table(0).Inc(0, 2, 1.0);
    EXPECT_EQ(s.message(), "column 2 is outside the rows of table 0 (width 2)");
    EXPECT_FALSE(w->table(0).IncRow(0, {1, 2, 3}).ok());
    EXPECT_FALSE(w->table(0).BatchInc(0, {0, 1}, {1}).ok());
    ASSERT_TRUE(w->table(0).IncRow(0, {1, 2}).ok());
    ASSERT_TRUE(w->table(0).Get(0, &row).ok());
    EXPECT_EQ(row.values, std::vector<double>({1, 2}));
    ASSERT_TRUE(w->Clock().ok());
  });
}

TEST(SSPTable, MalformedMessagesAreDroppedAndCounted) {
  Job j;
  j.servers = 1;
  j.nodes = 1;
  j.tables = {{0, 2, 1}};
  j.server_counted = [](const SSPStats& s) { return s.malformed >= 5 && s.reads_served >= 1; };
  std::vector<SSPStats> servers;
  RunSSP(
      j,
      [&](SSPWorker* w, int) {
        Postoffice* po = (*current_nodes)[0];
        auto send = [&](int head, std::vector<SArray<int64_t>> frames) {
          Message msg;
          msg.meta.app_id = kApp;
          msg.meta.customer_id = 0;
          msg.meta.request = true;
          msg.meta.head = head;
          msg.meta.recver = Postoffice::ServerRankToID(0);
          for (const auto& f : frames) msg.AddData(f);
          po->van()->Send(msg);
        };
        send(1, {SArray<int64_t>{0, 0}});        // a read header too short
        send(1, {SArray<int64_t>{9, 0, 0, 0}});  // a read of an unknown table
        send(2, {SArray<int64_t>{0, 5}});        // a clock out of order, no rows
        send(2, {SArray<int64_t>{0, 0}, SArray<int64_t>{0, 1, 7}, SArray<int64_t>{},
                 SArray<int64_t>{}});  // row batch of the wrong types
        send(42, {});                  // an unknown command
        // The server goes on serving.
        SSPTable t = w->table(0);
        ASSERT_TRUE(t.Inc(1, 0, 2.0).ok());
        ASSERT_TRUE(w->Clock().ok());
        SSPRow row;
        ASSERT_TRUE(t.Get(1, &row, 0).ok());
        EXPECT_EQ(row.values, std::vector<double>({2, 0}));
      },
      &servers);
  EXPECT_EQ(servers[0].malformed, 5U);
  EXPECT_EQ(servers[0].reads_served, 1U);
}

}  // namespace
}  // namespace ps
