// ReplicaChain's exactly-once bookkeeping, on a server node that is not started (no van: the
// server is the tail of every chain and sends nothing): each push is applied once, duplicates
// are recognised, and what is recorded stays bounded however many requests come.
#include "ps/internal/replica_chain.h"

#include <gtest/gtest.h>

#include "common/test_util.h"
#include "ps/internal/postoffice.h"

namespace ps {
namespace {

Message Push(int worker, int customer, int ts, int slice, int done_below, bool pull = false) {
  Message m;
  m.meta.app_id = 0;
  m.meta.customer_id = customer;
  m.meta.timestamp = ts;
  m.meta.sender = worker;
  m.meta.slice = slice;
  m.meta.request = true;
  m.meta.push = true;
  m.meta.pull = pull;
  m.meta.done_below = done_below;
  m.AddData(SArray<Key>{1, 2});
  m.AddData(SArray<float>{1, 1});
  return m;
}

KVMeta MetaOf(const Message& m) {
  return KVMeta{m.meta.head,      m.meta.push,        m.meta.pull, m.meta.sender,
                m.meta.timestamp, m.meta.customer_id, m.meta.slice};
}

class ReplicaChainTest : public ::testing::Test {
 protected:
  ReplicaChainTest() : po_(test::NodeEnv("server", 1, 3, 2, {{"PS_REPLICATION", "2"}})) {}
  Postoffice po_;
};

TEST_F(ReplicaChainTest, APushIsAppliedOnceAndItsResendIsNot) {
  ReplicaChain chain(&po_);
  Message m = Push(9, 0, 7, 1, 0);
  ASSERT_EQ(chain.OnRequest(&m), ReplicaChain::Action::kHandle);
  EXPECT_EQ(chain.pending(), 1u);
  Message answer;
  EXPECT_TRUE(chain.OnAnswer(MetaOf(m), &answer, false));  // the tail: answered at once
  EXPECT_EQ(chain.pending(), 0u);
  Message again = Push(9, 0, 7, 1, 0);
  EXPECT_EQ(chain.OnRequest(&again), ReplicaChain::Action::kDone);
  // The same timestamp for another key range, or another worker, is another request.
  Message other_range = Push(9, 0, 7, 2, 0);
  EXPECT_EQ(chain.OnRequest(&other_range), ReplicaChain::Action::kHandle);
  Message other_worker = Push(11, 0, 7, 1, 0);
  EXPECT_EQ(chain.OnRequest(&other_worker), ReplicaChain::Action::kHandle);
}

TEST_F(ReplicaChainTest, AResentPushPullReadsWithoutApplying) {
  ReplicaChain chain(&po_);
  Message m = Push(9, 0, 3, 0, 0, true);
  ASSERT_EQ(chain.OnRequest(&m), ReplicaChain::Action::kHandle);
  Message answer;
  chain.OnAnswer(MetaOf(m), &answer, false);
  Message again = Push(9, 0, 3, 0, 0, true);
  ASSERT_EQ(chain.OnRequest(&again), ReplicaChain::Action::kHandle);
  EXPECT_FALSE(again.meta.push);
  EXPECT_TRUE(again.meta.pull);
  EXPECT_EQ(again.data.size(), 1u);  // the keys only
}

TEST_F(ReplicaChainTest, AnErrorAnswerLetsTheResendApplyAfresh) {
  ReplicaChain chain(&po_);
  Message m = Push(9, 0, 5, 0, 0);
  ASSERT_EQ(chain.OnRequest(&m), ReplicaChain::Action::kHandle);
  Message error;
  error.meta.error = "does not fit";
  EXPECT_TRUE(chain.OnAnswer(MetaOf(m), &error, false));
  Message again = Push(9, 0, 5, 0, 0);
  EXPECT_EQ(chain.OnRequest(&again), ReplicaChain::Action::kHandle);
}

TEST_F(ReplicaChainTest, AForwardedPushIsHandledAsTheWorkersAndOnce) {
  ReplicaChain chain(&po_);
  Message f = Push(8, 0, 4, 0, 0);
  f.meta.chain = Meta::kForward;
  f.meta.origin = 9;
  ASSERT_EQ(chain.OnForward(&f), ReplicaChain::Action::kHandle);
  EXPECT_EQ(f.meta.sender, 9);
  Message answer;
  EXPECT_TRUE(chain.OnAnswer(MetaOf(f), &answer, false));
  // The worker resends it here once this server is the primary: not applied again.
  Message resent = Push(9, 0, 4, 0, 0);
  EXPECT_EQ(chain.OnRequest(&resent), ReplicaChain::Action::kDone);
}

// A replacement's copy of a range carries the records of what its state holds: a chain that
// loads them recognises those requests (and nothing of other ranges, nor a request whose
// handle had not answered when the copy was taken, which the state does not hold yet).
TEST_F(ReplicaChainTest, ACopysRecordsMakeItsRequestsKnownToTheReplacement) {
  ReplicaChain source(&po_);
  Message applied = Push(9, 0, 5, 1, 0);
  ASSERT_EQ(source.OnRequest(&applied), ReplicaChain::Action::kHandle);
  Message answer;
  ASSERT_TRUE(source.OnAnswer(MetaOf(applied), &answer, false));
  Message unanswered = Push(9, 0, 6, 1, 0);
  ASSERT_EQ(source.OnRequest(&unanswered), ReplicaChain::Action::kHandle);
  Message other_range = Push(11, 0, 2, 0, 0);
  ASSERT_EQ(source.OnRequest(&other_range), ReplicaChain::Action::kHandle);
  ASSERT_TRUE(source.OnAnswer(MetaOf(other_range), &answer, false));

  ReplicaChain replacement(&po_);
  ASSERT_TRUE(replacement.LoadSeen(1, source.CopySeen(1)).ok());
  Message again = Push(9, 0, 5, 1, 0);
  EXPECT_EQ(replacement.OnRequest(&again), ReplicaChain::Action::kDone);
  Message later = Push(9, 0, 6, 1, 0);
  EXPECT_EQ(replacement.OnRequest(&later), ReplicaChain::Action::kHandle);
  Message elsewhere = Push(11, 0, 2, 0, 0);
  EXPECT_EQ(replacement.OnRequest(&elsewhere), ReplicaChain::Action::kHandle);
  // A malformed list changes nothing.
  EXPECT_FALSE(replacement.LoadSeen(1, {9, 0, 0, 5, 1}).ok());
  EXPECT_FALSE(replacement.LoadSeen(1, {9, -7, 0, 0}).ok());
}

TEST_F(ReplicaChainTest, BookkeepingStaysBoundedOverAMillionRequests) {
  ReplicaChain chain(&po_);
  const int kRequests = 1000000, kInFlight = 8, kWorkers = 2;
  size_t most = 0;
  for (int ts = 0; ts < kRequests; ++ts) {
    for (int w = 0; w < kWorkers; ++w) {
      // Each worker has kInFlight requests outstanding: everything older is done.
      Message m = Push(9 + 2 * w, 0, ts, ts % 3, std::max(0, ts - kInFlight));
      ASSERT_EQ(chain.OnRequest(&m), ReplicaChain::Action::kHandle);
      Message answer;
      chain.OnAnswer(MetaOf(m), &answer, false);
    }
    most = std::max(most, chain.tracked());
  }
  EXPECT_LE(most, static_cast<size_t>(kWorkers * (kInFlight + 2)));
  EXPECT_EQ(chain.pending(), 0u);
  // A request older than what the worker said is done is recognised as a duplicate.
  Message old = Push(9, 0, 5, 2, 0);
  EXPECT_EQ(chain.OnRequest(&old), ReplicaChain::Action::kDone);
}

}  // namespace
}  // namespace ps
