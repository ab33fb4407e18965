// MetricsExposer serves one node's figures in the Prometheus text format over HTTP
// (prometheus-cpp's pull exposer, on civetweb), at http://<node host>:<port>/metrics.
//
// Pull model: nothing is counted for it. Each scrape reads, on one of the exposer's threads, the
// counters the layers keep anyway: the van's traffic per peer, drops by reason, heartbeats and
// dead nodes; each customer's requests, requests in flight, calls held back by the consistency
// model and request latency by kind; and what the layers above add (Postoffice::
// AddMetricsSource): each filter's bytes in, out and saved, the SSP tables' cache hit rate,
// blocked reads and staleness histogram. Every sample carries the node's role and rank as labels
// (rank -1 until the node has registered).
//
// Ownership and threads: the postoffice owns the exposer; Start binds and starts its threads,
// the destructor stops and joins them. The postoffice (and its van) must outlive it.
#ifndef PS_METRICS_METRICS_EXPOSER_H_
#define PS_METRICS_METRICS_EXPOSER_H_

#include <memory>
#include <string>

#include "ps/status.h"

namespace prometheus {
class Exposer;
}

namespace ps {

class Postoffice;
class NodeCollectable;

class MetricsExposer {
 public:
  ~MetricsExposer();

  // Serves "postoffice"'s metrics on "port" (0: one the OS chooses) of every interface.
  // Fails with a clear message when the port cannot be bound.
  static Status Start(Postoffice* postoffice, int port, std::unique_ptr<MetricsExposer>* out);

  // The port it listens on.
  int port() const { return port_; }

 private:
  MetricsExposer() = default;

  // Constant after Start.
  std::shared_ptr<NodeCollectable> collectable_;
  std::unique_ptr<prometheus::Exposer> exposer_;  // destroyed first: joins its threads
  int port_ = 0;
};

}  // namespace ps
#endif  // PS_METRICS_METRICS_EXPOSER_H_
