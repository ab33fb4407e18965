// What KVWorker does that does not depend on its value type.
#include "ps/kv_worker.h"

#include <iomanip>

namespace ps {
namespace kv {

void ReportAtExit(Customer* customer) {
  auto counters = customer->task_counters();
  Postoffice* po = customer->postoffice();
  const int app_id = customer->app_id();
  const int customer_id = customer->customer_id();
  po->RegisterExitCallback([counters, po, app_id, customer_id] {
    ConsistencyStats s = counters->Snapshot();
    const std::string model = counters->consistency().ToString();
    LOG(INFO) << (po->van() ? po->van()->my_node().ShortName() : "node") << ": KVWorker app "
              << app_id << " customer " << customer_id << ": consistency " << model << ", "
              << s.requests << " requests, at most " << s.max_in_flight << " in flight, "
              << s.held_back << " calls held back for " << std::fixed << std::setprecision(3)
              << s.held_back_seconds << " s, " << s.deferred << " queued behind others";
  });
}

}  // namespace kv
}  // namespace ps
