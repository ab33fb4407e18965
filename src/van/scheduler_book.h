// SchedulerBook is the scheduler's record of the job's membership: which nodes registered, with
// how many customers each, the ids they were given, and who is in which barrier. It decides;
// the van sends what it decided.
//
// Not thread-safe: it belongs to the scheduler's receiving thread (see Van).
#ifndef PS_VAN_SCHEDULER_BOOK_H_
#define PS_VAN_SCHEDULER_BOOK_H_

#include <map>
#include <string>
#include <vector>

#include "ps/internal/message.h"

namespace ps {

class SchedulerBook {
 public:
  SchedulerBook(int num_servers, int num_workers);

  // Registers one customer of "node" (its id unset): the first customer of a host:port gives
  // the node its id (ps-lite's: server rank r is 8 + 2r, worker rank r is 9 + 2r). Returns
  // false, saying why in "why", when the role already has all its registrations, or when the
  // address is registered already with another connection key (Node::conn_key).
  bool Register(const Node& node, Node* registered, std::string* why);
  // Every registration the job waits for came in.
  bool complete() const;
  // The registered nodes, in registration order of their first customer.
  std::vector<Node> nodes() const;
  // "1 of 2 workers" for the roles that lack registrations, and the others in "present".
  std::string Missing(std::string* present) const;
  // Registration counts, for logging.
  std::string Counts() const;

  struct BarrierEntry {
    int node_id;
    int customer_id;
    bool finalize;
    int group = 0;  // set by EnterBarrier
  };
  // Enters "entry" into the barrier of "group". When that completes the barrier, returns every
  // entry to release and forgets the barrier; else returns nothing.
  std::vector<BarrierEntry> EnterBarrier(int group, const BarrierEntry& entry);
  // Leaves node "id" out of every barrier from now on (a dead server that the replicas cover):
  // its customers no longer count, and what it entered is forgotten. Returns the entries of
  // barriers that this completes, to release.
  std::vector<BarrierEntry> Remove(int id);
  // The id of a removed server (the lowest), or 0 when no server is removed.
  int RemovedServer() const;
  // Registers one customer of "node", a server started into the running job: the first takes
  // the place (the id) of removed server "id", whose barriers count it again from now on; the
  // node's further customers (the same address and connection key) count too, and set "*again".
  // Returns false, saying why, when "id" is not removed, or the node's address is registered to
  // a live node.
  bool Replace(const Node& node, int id, Node* registered, bool* again, std::string* why);

 private:
  int Participants(int group) const;

  const int expected_[2];  // registrations per role: SERVER, WORKER
  struct Registration {
    Node node;  // with its id
    int customers = 0;
    bool removed = false;
  };
  std::vector<Registration> registered_;
  std::map<std::string, size_t> by_address_;           // host:port -> index in registered_
  int customers_[2] = {0, 0};                          // registrations per role
  int removed_[2] = {0, 0};                            // customers of removed nodes per role
  int nodes_[2] = {0, 0};                              // distinct nodes per role
  std::map<int, std::vector<BarrierEntry>> barriers_;  // group -> who entered
};

}  // namespace ps
#endif  // PS_VAN_SCHEDULER_BOOK_H_
