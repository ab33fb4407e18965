// Slackline: a parameter server with ps-lite's API. This is the one header applications
// include. The free functions below act on the default node, configured by the DMLC_* and PS_*
// environment variables (see the README); failures they meet are reported in one line and end
// the process with a non-zero exit code. Postoffice offers Try* forms that return a Status.
#ifndef PS_PS_H_
#define PS_PS_H_

#include <functional>

#include "ps/base.h"
#include "ps/filter.h"
#include "ps/internal/postoffice.h"
#include "ps/internal/utils.h"
#include "ps/kkt_filter.h"
#include "ps/kv_app.h"
#include "ps/range.h"
#include "ps/sarray.h"
#include "ps/simple_app.h"
#include "ps/ssp_table.h"
#include "ps/status.h"

namespace ps {

// The number of worker customers in the job (DMLC_NUM_WORKER).
inline int NumWorkers() { return Postoffice::Get()->num_workers(); }
// The number of servers in the job (DMLC_NUM_SERVER).
inline int NumServers() { return Postoffice::Get()->num_servers(); }
inline bool IsWorker() { return Postoffice::Get()->is_worker(); }
inline bool IsServer() { return Postoffice::Get()->is_server(); }
inline bool IsScheduler() { return Postoffice::Get()->is_scheduler(); }
// This node's rank among the nodes of its role, from 0. Valid after Start.
inline int MyRank() { return Postoffice::Get()->my_rank(); }

// Starts the default node for "customer_id" and waits until every node of the job has started
// (a barrier of all nodes). Blocks; ends the process on failure, naming what went wrong.
inline void Start(int customer_id, const char* argv0 = nullptr) {
  Postoffice::Get()->Start(customer_id, argv0, true);
}
// Starts like Start, without the barrier: returns once every node has registered.
inline void StartAsync(int customer_id, const char* argv0 = nullptr) {
  Postoffice::Get()->Start(customer_id, argv0, false);
}
// Ends "customer_id"; with "do_barrier", first waits until every node reaches Finalize.
// The last Finalize of the process stops the node and runs the exit callbacks.
inline void Finalize(int customer_id, const bool do_barrier = true) {
  Postoffice::Get()->Finalize(customer_id, do_barrier);
}
// Runs "cb" after the node stopped, in the last Finalize.
inline void RegisterExitCallback(const std::function<void()>& cb) {
  Postoffice::Get()->RegisterExitCallback(cb);
}

}  // namespace ps
#endif  // PS_PS_H_
