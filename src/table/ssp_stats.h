// SSPCounters: the counts behind SSPStats, shared by a group's client or server and by the
// report that the node's last Finalize logs, which may run after the group is gone.
// Thread-safe.
#ifndef PS_TABLE_SSP_STATS_H_
#define PS_TABLE_SSP_STATS_H_

#include <mutex>

#include "ps/ssp_table.h"

namespace ps {

class SSPCounters {
 public:
  SSPCounters() { stats_.observed_staleness.assign(SSPTableGroup::kStalenessBuckets, 0); }

  // Runs "fn" on the counts under the lock.
  template <typename Fn>
  void Update(Fn fn) {
    std::lock_guard<std::mutex> lk(mu_);
    fn(&stats_);
  }

  SSPStats Snapshot() const {
    std::lock_guard<std::mutex> lk(mu_);
    return stats_;
  }

 private:
  mutable std::mutex mu_;
  SSPStats stats_;  // protected by mu_
};

}  // namespace ps
#endif  // PS_TABLE_SSP_STATS_H_
