// Server replication (PS_REPLICATION=k): which servers hold each key range, and which of them
// answers for it now.
//
// Placement: server rank r keeps its key range (GetServerKeyRanges), and the replicas of range r
// live on the next k - 1 ranks in a ring: the chain of range r is r, r + 1, ..., r + k - 1
// (mod the number of servers). The first live server of a chain is the range's primary: workers
// push to and pull from it; it applies a push, forwards it down the chain, and answers the
// worker once the acknowledgement came back from the tail. When a server dies, the scheduler
// publishes a new configuration (one epoch more) with the server marked dead; every node
// applies it, workers resend what the dead server had not answered to the new primaries. A
// range whose whole chain is dead is lost: the job ends naming it.
//
// Replacement: a server started into the running job takes the rank of a dead one (Revive). It
// joins the chains of that rank's ranges at their tails, syncing: it gets every request the
// chain applies from then on, and a copy of each range from its predecessor, and answers for no
// range. Once it holds them all the scheduler publishes it as a full replica (MarkSynced): the
// replication factor is back to k. A revived rank stays behind the original ones in its chains.
//
// ServerChains is that bookkeeping, for one configuration; it decides and sends nothing.
// Not thread-safe: its owner locks.
#ifndef PS_INTERNAL_REPLICATION_H_
#define PS_INTERNAL_REPLICATION_H_

#include <string>
#include <vector>

#include "ps/range.h"
#include "ps/status.h"

namespace ps {

class ServerChains {
 public:
  ServerChains() = default;
  // "num_servers" ranks, each range on "k" of them. REQUIRES: 1 <= k <= num_servers.
  ServerChains(int num_servers, int k);

  int num_servers() const { return num_servers_; }
  int k() const { return k_; }
  // Failovers applied (the configuration's epoch).
  int epoch() const { return epoch_; }
  bool dead(int rank) const { return rank >= 0 && rank < num_servers_ && dead_[rank]; }

  // Marks server "rank" dead and starts a new epoch. Returns false when a range lost every
  // server of its chain (the configuration is then unusable).
  bool MarkDead(int rank);
  // Dead server "rank" comes back as a replacement, syncing, at the tails of its chains; starts
  // a new epoch. Returns false (changing nothing) when it is not dead.
  bool Revive(int rank);
  // Syncing server "rank" holds its ranges: it is a full replica from now on; starts a new
  // epoch. Returns false (changing nothing) when it is not syncing.
  bool MarkSynced(int rank);
  bool syncing(int rank) const { return rank >= 0 && rank < num_servers_ && syncing_[rank]; }

  // The configuration as integers, for the node list a replacement server gets, and back.
  // Decode fails on a list that does not fit this job's servers and k.
  std::vector<int> Encode() const;
  Status Decode(const std::vector<int>& encoded);
  // The first range whose chain is all dead, or -1.
  int LostRange() const;

  // The live ranks holding range "range" in chain order (the original ones in ring order,
  // then the revived ones in the order they came back), syncing ones included.
  std::vector<int> Chain(int range) const;
  // The live rank answering for "range" (the first of its chain that is not syncing), or -1
  // when it is lost.
  int Primary(int range) const;
  // The live rank after "rank" in the chain of "range", or -1 when "rank" is its tail.
  int Successor(int range, int rank) const;
  // Whether "rank" holds "range" (alive or not).
  bool Holds(int rank, int range) const;

  // "key range [a, b) is lost: servers 0 and 1 (nodes 8, 10) are dead and PS_REPLICATION=2".
  std::string LostMessage(int range, const std::vector<Range>& ranges) const;

 private:
  int num_servers_ = 0;
  int k_ = 1;
  int epoch_ = 0;
  std::vector<bool> dead_;
  std::vector<bool> syncing_;
  std::vector<int> revived_;  // rank -> when it was last revived (0: never), in revivals
  int revivals_ = 0;
};

// The default key ranges of "num_servers" servers: together they cover [0, kMaxKey], each
// [begin, end) except the last, whose end kMaxKey belongs to it.
std::vector<Range> DefaultKeyRanges(int num_servers);

// Checks PS_REPLICATION against the number of servers: 1 <= k <= max(num_servers, 1).
Status CheckReplication(int k, int num_servers);

}  // namespace ps
#endif  // PS_INTERNAL_REPLICATION_H_
