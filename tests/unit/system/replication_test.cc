// ServerChains: placement of key ranges on k servers in a ring, primaries and successors as
// servers die, and the message naming a lost range.
#include "ps/internal/replication.h"

#include <gtest/gtest.h>

namespace ps {
namespace {

TEST(ServerChains, RangeLivesOnTheNextKRanksInARing) {
  ServerChains c(4, 3);
  EXPECT_EQ(c.Chain(0), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(c.Chain(2), (std::vector<int>{2, 3, 0}));
  EXPECT_EQ(c.Chain(3), (std::vector<int>{3, 0, 1}));
  EXPECT_TRUE(c.Holds(0, 3));
  EXPECT_FALSE(c.Holds(0, 1));
  EXPECT_EQ(c.Primary(3), 3);
  EXPECT_EQ(c.Successor(3, 3), 0);
  EXPECT_EQ(c.Successor(3, 1), -1);  // the tail
  EXPECT_EQ(c.epoch(), 0);
}

TEST(ServerChains, DeadServersLeaveTheirChainsAndTheNextReplicaLeads) {
  ServerChains c(3, 2);
  EXPECT_TRUE(c.MarkDead(1));
  EXPECT_EQ(c.epoch(), 1);
  EXPECT_EQ(c.Primary(1), 2);
  EXPECT_EQ(c.Chain(1), (std::vector<int>{2}));
  EXPECT_EQ(c.Chain(0), (std::vector<int>{0}));
  EXPECT_EQ(c.Successor(0, 0), -1);
  EXPECT_EQ(c.LostRange(), -1);
  EXPECT_TRUE(c.MarkDead(1));  // again: nothing changes
  EXPECT_EQ(c.epoch(), 1);
  EXPECT_FALSE(c.MarkDead(2));  // range 1 had servers 1 and 2
  EXPECT_EQ(c.LostRange(), 1);
  EXPECT_EQ(c.Primary(1), -1);
  EXPECT_EQ(c.LostMessage(1, DefaultKeyRanges(3)),
            "key range [6148914691236517205, 12297829382473034410) is lost: servers 1 and 2 "
            "(nodes 10, 12) are dead and PS_REPLICATION=2");
}

// A replacement joins at the tails of its ranges' chains, answers for none while it syncs, does
// not keep a range alive until it is synced, and stays behind the original ranks afterwards.
TEST(ServerChains, ARevivedServerSyncsAtTheTailsAndThenCountsAsAReplica) {
  ServerChains c(3, 2);
  EXPECT_FALSE(c.Revive(1));  // alive
  ASSERT_TRUE(c.MarkDead(1));
  ASSERT_TRUE(c.Revive(1));
  EXPECT_EQ(c.epoch(), 2);
  EXPECT_TRUE(c.syncing(1));
  EXPECT_EQ(c.Chain(1), (std::vector<int>{2, 1}));  // it joined behind server 2
  EXPECT_EQ(c.Chain(0), (std::vector<int>{0, 1}));
  EXPECT_EQ(c.Primary(1), 2);
  EXPECT_EQ(c.Successor(1, 2), 1);
  EXPECT_EQ(c.Successor(1, 1), -1);
  // Syncing, it holds nothing yet: the death of server 2 loses range 1.
  ServerChains early = c;
  EXPECT_FALSE(early.MarkDead(2));
  EXPECT_EQ(early.LostRange(), 1);
  // The encoded configuration gives the same chains.
  ServerChains copy(3, 2);
  ASSERT_TRUE(copy.Decode(c.Encode()).ok());
  EXPECT_EQ(copy.epoch(), 2);
  EXPECT_EQ(copy.Chain(1), (std::vector<int>{2, 1}));
  EXPECT_TRUE(copy.syncing(1));
  EXPECT_FALSE(ServerChains(4, 2).Decode(c.Encode()).ok());
  EXPECT_FALSE(copy.Decode({3, 2, 1}).ok());
  ASSERT_TRUE(c.MarkSynced(1));
  EXPECT_FALSE(c.MarkSynced(1));
  EXPECT_EQ(c.epoch(), 3);
  EXPECT_EQ(c.Chain(1), (std::vector<int>{2, 1}));
  // Synced, it answers for range 1 once server 2 dies: the factor was restored.
  EXPECT_TRUE(c.MarkDead(2));
  EXPECT_EQ(c.Primary(1), 1);
  EXPECT_EQ(c.Primary(2), 0);
  EXPECT_EQ(c.LostRange(), -1);
}

TEST(ServerChains, WithoutReplicasEveryDeathLosesARange) {
  ServerChains c(2, 1);
  EXPECT_FALSE(c.MarkDead(0));
  EXPECT_EQ(c.LostMessage(0, DefaultKeyRanges(2)),
            "key range [0, 9223372036854775808) is lost: server 0 (node 8) is dead and "
            "PS_REPLICATION=1");
}

TEST(ServerChains, FactorMustFitTheServers) {
  EXPECT_TRUE(CheckReplication(1, 0).ok());
  EXPECT_TRUE(CheckReplication(3, 3).ok());
  EXPECT_EQ(CheckReplication(4, 3).message(),
            "PS_REPLICATION=4 must be between 1 and DMLC_NUM_SERVER=3");
  EXPECT_FALSE(CheckReplication(0, 3).ok());
}

}  // namespace
}  // namespace ps
