#include "metrics/metrics_exposer.h"

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>

#include <cmath>
#include <exception>
#include <limits>
#include <map>
#include <vector>

#include "ps/internal/customer.h"
#include "ps/internal/postoffice.h"
#include "ps/internal/van.h"

namespace ps {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

using Labels = std::vector<std::pair<std::string, std::string>>;

std::string PeerName(const Node& n) {
  if (n.role == Node::SCHEDULER) return "scheduler";
  return std::string(RoleName(n.role)) + "-" + std::to_string(Postoffice::IDtoRank(n.id));
}

const char* KindName(int kind) {
  static const char* kNames[] = {"other", "push", "pull", "pushpull"};
  return kNames[kind];
}

// Families of one scrape, built in the order they are first used.
class Families {
 public:
  explicit Families(Labels node) : node_(std::move(node)) {}

  ClientMetric* Add(const std::string& name, const std::string& help, MetricType type,
                    const Labels& labels) {
    auto it = index_.find(name);
    if (it == index_.end()) {
      it = index_.emplace(name, families_.size()).first;
      families_.push_back(MetricFamily{name, help, type, {}});
    }
    ClientMetric m;
    for (const auto& [k, v] : node_) m.label.push_back({k, v});
    for (const auto& [k, v] : labels) m.label.push_back({k, v});
    families_[it->second].metric.push_back(std::move(m));
    return &families_[it->second].metric.back();
  }
  void Counter(const std::string& name, const std::string& help, double v,
               const Labels& labels = {}) {
    Add(name, help, MetricType::Counter, labels)->counter.value = v;
  }
  void Gauge(const std::string& name, const std::string& help, double v,
             const Labels& labels = {}) {
    Add(name, help, MetricType::Gauge, labels)->gauge.value = v;
  }
  std::vector<MetricFamily> Take() { return std::move(families_); }

 private:
  const Labels node_;
  std::map<std::string, size_t> index_;
  std::vector<MetricFamily> families_;
};

}  // namespace

// Reads the node's counters at each scrape. Thread-safe: Collect may run on several exposer
// threads at once; everything it reads is thread-safe.
class NodeCollectable : public prometheus::Collectable {
 public:
  explicit NodeCollectable(Postoffice* po) : po_(po) {}

  std::vector<MetricFamily> Collect() const override {
    Van* van = po_->van();
    if (!van) return {};
    const Node me = van->my_node();
    const bool registered = me.id != Node::kEmpty;
    const std::string rank = !registered || me.role == Node::SCHEDULER
                                 ? (registered ? "0" : "-1")
                                 : std::to_string(Postoffice::IDtoRank(me.id));
    Families f({{"role", RoleName(me.role)}, {"rank", rank}});

    f.Gauge("slackline_node_up", "1 while the node runs; 0 once it knows its job failed",
            van->fatal().ok() ? 1 : 0);
    f.Gauge("slackline_node_registered", "1 once the node has its id and the node list",
            van->ready() ? 1 : 0);
    f.Counter("slackline_sent_bytes_total", "bytes sent (meta and data), to every peer",
              static_cast<double>(van->bytes_sent()));
    f.Counter("slackline_received_bytes_total", "bytes received, from every peer",
              static_cast<double>(van->bytes_received()));

    std::map<int, std::string> names;
    int dead = 0;
    for (const Node& n : van->nodes()) {
      names[n.id] = PeerName(n);
      if (n.id != me.id && !van->NodeStatus(n.id).ok()) ++dead;
    }
    for (const auto& [id, t] : van->peer_traffic()) {
      auto it = names.find(id);
      Labels peer = {{"peer", it != names.end()    ? it->second
                              : id == Node::kEmpty ? "unregistered"
                                                   : "node-" + std::to_string(id)}};
      f.Counter("slackline_peer_sent_bytes_total", "bytes sent to a peer",
                static_cast<double>(t.bytes_sent), peer);
      f.Counter("slackline_peer_sent_messages_total", "messages sent to a peer",
                static_cast<double>(t.messages_sent), peer);
      f.Counter("slackline_peer_received_bytes_total", "bytes received from a peer",
                static_cast<double>(t.bytes_received), peer);
      f.Counter("slackline_peer_received_messages_total", "messages received from a peer",
                static_cast<double>(t.messages_received), peer);
    }
    for (int r = 0; r < static_cast<int>(DropReason::kNumReasons); ++r) {
      f.Counter("slackline_dropped_messages_total", "messages dropped by the receive path",
                static_cast<double>(van->dropped(static_cast<DropReason>(r))),
                {{"reason", DropReasonName(static_cast<DropReason>(r))}});
    }
    f.Counter("slackline_heartbeats_sent_total", "heartbeats (and the scheduler's answers) sent",
              static_cast<double>(van->heartbeats_sent()));
    f.Counter("slackline_heartbeats_received_total", "heartbeats (or answers) received",
              static_cast<double>(van->heartbeats_received()));
    f.Gauge("slackline_dead_nodes", "nodes of the job this node considers dead", dead);
    f.Gauge("slackline_replication_epoch", "configurations of server replication applied",
            van->epoch());
    f.Counter("slackline_failovers_total", "servers the replicas took over from (scheduler)",
              van->failovers());
    f.Counter("slackline_replacements_total", "replacement servers that joined the job",
              van->replacements());
    f.Counter("slackline_replacements_synced_total",
              "replacement servers that became full replicas", van->synced());
    if (me.role == Node::SERVER && registered) {
      f.Gauge("slackline_server_syncing",
              "1 while this replacement server copies its key ranges from live replicas",
              van->chains().syncing(Postoffice::IDtoRank(me.id)) ? 1 : 0);
    }

    po_->ForEachCustomer([&f](Customer* c) {
      const Labels app = {{"app", std::to_string(c->app_id())},
                          {"customer", std::to_string(c->customer_id())}};
      const ConsistencyStats s = c->consistency_stats();
      f.Counter("slackline_requests_total", "requests issued", static_cast<double>(s.requests),
                app);
      f.Gauge("slackline_requests_in_flight", "requests issued and not finished",
              static_cast<double>(c->requests_in_flight()), app);
      f.Gauge("slackline_requests_in_flight_max", "most tasks in flight at once", s.max_in_flight,
              app);
      f.Counter("slackline_held_back_total", "calls held back by the consistency model",
                static_cast<double>(s.held_back), app);
      f.Counter("slackline_held_back_seconds_total", "time calls were held back",
                s.held_back_seconds, app);
      f.Counter("slackline_deferred_total", "tasks sent later, after the tasks they follow",
                static_cast<double>(s.deferred), app);
      const auto& t = *c->task_counters();
      using TC = Customer::TaskCounters;
      for (int k = 0; k < TC::kKinds; ++k) {
        uint64_t count = 0;
        for (const auto& b : t.latency[k]) count += b.load(std::memory_order_relaxed);
        if (count == 0) continue;
        Labels l = app;
        l.push_back({"kind", KindName(k)});
        ClientMetric* m =
            f.Add("slackline_request_duration_seconds", "requests from send to their last response",
                  MetricType::Histogram, l);
        uint64_t cumulative = 0;
        for (int b = 0; b < TC::kLatencyBuckets; ++b) {
          cumulative += t.latency[k][b].load(std::memory_order_relaxed);
          m->histogram.bucket.push_back(
              {cumulative, b + 1 < TC::kLatencyBuckets ? TC::kLatencyBounds[b]
                                                       : std::numeric_limits<double>::infinity()});
        }
        m->histogram.sample_count = cumulative;
        m->histogram.sample_sum =
            static_cast<double>(t.latency_ns[k].load(std::memory_order_relaxed)) * 1e-9;
      }
    });
    for (const auto& source : po_->metrics_sources()) {
      std::vector<Postoffice::MetricSample> samples;
      source(&samples);
      for (const auto& s : samples) {
        if (s.buckets.empty()) {
          if (s.counter) {
            f.Counter(s.name, s.help, s.value, s.labels);
          } else {
            f.Gauge(s.name, s.help, s.value, s.labels);
          }
          continue;
        }
        ClientMetric* m = f.Add(s.name, s.help, MetricType::Histogram, s.labels);
        uint64_t cumulative = 0;
        for (const auto& [bound, count] : s.buckets) {
          cumulative += count;
          m->histogram.bucket.push_back({cumulative, bound});
        }
        m->histogram.sample_count = cumulative;
        m->histogram.sample_sum = s.value;
      }
    }
    return f.Take();
  }

 private:
  Postoffice* const po_;
};

MetricsExposer::~MetricsExposer() { exposer_.reset(); }

Status MetricsExposer::Start(Postoffice* postoffice, int port,
                             std::unique_ptr<MetricsExposer>* out) {
  std::unique_ptr<MetricsExposer> m(new MetricsExposer());
  try {
    m->exposer_.reset(new prometheus::Exposer("0.0.0.0:" + std::to_string(port), 2));
  } catch (const std::exception& e) {
    return Status::IOError("PS_METRICS_PORT=" + std::to_string(port) + ": cannot serve metrics: " +
                           e.what() + " (is the port in use? 0 picks a free one)");
  }
  std::vector<int> ports = m->exposer_->GetListeningPorts();
  m->port_ = ports.empty() ? port : ports[0];
  m->collectable_ = std::make_shared<NodeCollectable>(postoffice);
  m->exposer_->RegisterCollectable(m->collectable_);
  *out = std::move(m);
  return Status::OK();
}

}  // namespace ps
