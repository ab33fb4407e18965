#include "van/scheduler_book.h"

#include <algorithm>

#include "ps/base.h"

namespace ps {

SchedulerBook::SchedulerBook(int num_servers, int num_workers)
    : expected_{num_servers, num_workers} {}

bool SchedulerBook::Register(const Node& node, Node* registered, std::string* why) {
  const int r = node.role == Node::SERVER ? 0 : 1;
  if (customers_[r] >= expected_[r]) {
    const char* role = RoleName(node.role);
    *why = std::string("the job already has its ") + std::to_string(expected_[r]) + " " + role +
           "s (DMLC_NUM_" + (r == 0 ? "SERVER" : "WORKER") + "=" + std::to_string(expected_[r]) +
           "); the " + role + " at " + node.hostname + ":" + std::to_string(node.port) +
           " is one too many";
    return false;
  }
  const std::string key = node.hostname + ":" + std::to_string(node.port);
  auto it = by_address_.find(key);
  if (it != by_address_.end() && registered_[it->second].node.conn_key != node.conn_key) {
    // Another customer of a registered node comes on that node's connection; this one does not.
    *why = std::string("a ") + RoleName(node.role) + " at " + key +
           " registered on another connection than the node registered there";
    return false;
  }
  if (it == by_address_.end()) {
    Node n = node;
    n.id = r == 0 ? 8 + 2 * nodes_[0] : 9 + 2 * nodes_[1];
    ++nodes_[r];
    it = by_address_.emplace(key, registered_.size()).first;
    registered_.push_back(Registration{n, 0});
  }
  Registration& reg = registered_[it->second];
  ++reg.customers;
  ++customers_[r];
  *registered = reg.node;
  return true;
}

bool SchedulerBook::complete() const {
  return customers_[0] >= expected_[0] && customers_[1] >= expected_[1];
}

std::vector<Node> SchedulerBook::nodes() const {
  std::vector<Node> out;
  for (const Registration& r : registered_) out.push_back(r.node);
  return out;
}

std::string SchedulerBook::Missing(std::string* present) const {
  std::string missing;
  present->clear();
  for (int r = 0; r < 2; ++r) {
    std::string part = std::to_string(customers_[r]) + " of " + std::to_string(expected_[r]) +
                       (r == 0 ? " servers" : " workers");
    std::string& to = customers_[r] < expected_[r] ? missing : *present;
    to += (to.empty() ? "" : " and ") + part;
  }
  return missing;
}

std::string SchedulerBook::Counts() const {
  return std::to_string(customers_[0]) + " of " + std::to_string(expected_[0]) + " servers, " +
         std::to_string(customers_[1]) + " of " + std::to_string(expected_[1]) + " workers";
}

int SchedulerBook::Participants(int group) const {
  return ((group & kScheduler) ? 1 : 0) +
         ((group & kServerGroup) ? expected_[0] - removed_[0] : 0) +
         ((group & kWorkerGroup) ? expected_[1] - removed_[1] : 0);
}

std::vector<SchedulerBook::BarrierEntry> SchedulerBook::Remove(int id) {
  std::vector<BarrierEntry> done;
  for (Registration& r : registered_) {
    if (r.node.id != id || r.removed) continue;
    removed_[r.node.role == Node::SERVER ? 0 : 1] += r.customers;
    r.removed = true;
  }
  for (auto it = barriers_.begin(); it != barriers_.end();) {
    auto& entered = it->second;
    entered.erase(std::remove_if(entered.begin(), entered.end(),
                                 [id](const BarrierEntry& e) { return e.node_id == id; }),
                  entered.end());
    if (!entered.empty() && static_cast<int>(entered.size()) >= Participants(it->first)) {
      done.insert(done.end(), entered.begin(), entered.end());
      it = barriers_.erase(it);
    } else {
      ++it;
    }
  }
  return done;
}

int SchedulerBook::RemovedServer() const {
  int id = 0;
  for (const Registration& r : registered_) {
    if (r.removed && r.node.role == Node::SERVER && (id == 0 || r.node.id < id)) id = r.node.id;
  }
  return id;
}

bool SchedulerBook::Replace(const Node& node, int id, Node* registered, bool* again,
                            std::string* why) {
  const std::string key = node.hostname + ":" + std::to_string(node.port);
  auto at = by_address_.find(key);
  *again = false;
  if (at != by_address_.end()) {
    Registration& reg = registered_[at->second];
    if (reg.node.conn_key == node.conn_key && !reg.removed && reg.node.role == Node::SERVER) {
      // Another customer of the replacement.
      ++reg.customers;
      ++customers_[0];
      *registered = reg.node;
      *again = true;
      return true;
    }
    if (!reg.removed) {
      *why = "a server at " + key + " registered on another connection than the node there";
      return false;
    }
  }
  for (Registration& reg : registered_) {
    if (reg.node.id != id) continue;
    if (!reg.removed || reg.node.role != Node::SERVER) break;
    removed_[0] -= reg.customers;
    customers_[0] -= reg.customers - 1;
    reg.customers = 1;
    reg.removed = false;
    by_address_.erase(reg.node.hostname + ":" + std::to_string(reg.node.port));
    Node n = node;
    n.id = id;
    reg.node = n;
    by_address_[key] = static_cast<size_t>(&reg - registered_.data());
    *registered = n;
    return true;
  }
  *why = "no dead server to replace";
  return false;
}

std::vector<SchedulerBook::BarrierEntry> SchedulerBook::EnterBarrier(int group,
                                                                     const BarrierEntry& entry) {
  auto& entered = barriers_[group];
  entered.push_back(entry);
  entered.back().group = group;
  if (static_cast<int>(entered.size()) < Participants(group)) return {};
  std::vector<BarrierEntry> done = std::move(entered);
  barriers_.erase(group);
  return done;
}

}  // namespace ps
