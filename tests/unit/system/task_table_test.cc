// TaskTable alone: no postoffice, no van, no threads.
#include "ps/internal/task_table.h"

#include <gtest/gtest.h>

namespace ps {
namespace {

using Step = TaskTable::Step;

// Runs the sends in "ready", in order, and returns their timestamps.
std::vector<int> RunSends(std::vector<TaskTable::Ready>* ready) {
  std::vector<int> ts;
  for (auto& r : *ready) {
    if (r.send) r.send();
    ts.push_back(r.timestamp);
  }
  ready->clear();
  return ts;
}

// Counts one answer of "sender" to "ts" with "error".
Step Answer(TaskTable* t, int ts, int sender, std::vector<TaskTable::Ready>* ready,
            const Status& error = Status::OK()) {
  TaskTable::Complete complete;
  EXPECT_TRUE(t->BeginResponse(ts, sender));
  Step step = t->EndResponse(ts, error, ready, &complete);
  if (step == Step::kComplete) {
    t->EndComplete(ts, complete(), ready);
    return Step::kFinished;
  }
  return step;
}

TEST(TaskTable, RequestFinishesAfterItsLastResponse) {
  TaskTable t;
  std::vector<TaskTable::Ready> ready;
  int ts = t.Issue();
  t.Create(ts, {8, 10}, false);
  EXPECT_EQ(Answer(&t, ts, 8, &ready), Step::kPending);
  EXPECT_TRUE(t.pending(ts));
  EXPECT_EQ(t.responses(ts), 1);
  EXPECT_EQ(Answer(&t, ts, 10, &ready), Step::kFinished);
  EXPECT_FALSE(t.pending(ts));
  EXPECT_TRUE(t.result(ts, true).ok());
  EXPECT_EQ(t.held(), 0U);
}

TEST(TaskTable, StrayAndSecondResponsesAreNotCounted) {
  TaskTable t;
  int ts = t.Issue();
  t.Create(ts, {8}, false);
  EXPECT_FALSE(t.BeginResponse(ts, 10));     // not a receiver
  EXPECT_FALSE(t.BeginResponse(ts + 1, 8));  // not issued
  EXPECT_TRUE(t.BeginResponse(ts, 8));
  EXPECT_FALSE(t.BeginResponse(ts, 8));  // the same answer twice
}

TEST(TaskTable, CompletionRunsOnceAfterAllResponsesAndItsFailureFailsTheRequest) {
  TaskTable t;
  std::vector<TaskTable::Ready> ready;
  int ts = t.Issue();
  t.Create(ts, {8, 10}, false);
  int runs = 0;
  t.Attach(ts, std::make_shared<int>(5), [&] {
    ++runs;
    return Status::InvalidArgument("bad values");
  });
  EXPECT_EQ(*std::static_pointer_cast<int>(t.data(ts)), 5);
  Answer(&t, ts, 8, &ready);
  EXPECT_EQ(runs, 0);
  Answer(&t, ts, 10, &ready);
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(t.data(ts), nullptr);
  EXPECT_EQ(t.result(ts, true).message(), "bad values");
}

TEST(TaskTable, FailureWhileAHandlerRunsWaitsForIt) {
  TaskTable t;
  std::vector<TaskTable::Ready> ready;
  int ts = t.Issue();
  t.Create(ts, {8, 10}, false);
  ASSERT_TRUE(t.BeginResponse(ts, 8));  // the handler of 8's answer runs
  EXPECT_EQ(t.FailAwaiting(
                10, false, [](int) { return Status::NodeFailed("10 died"); }, &ready),
            0);
  EXPECT_TRUE(t.pending(ts));  // not while the handler may write outputs
  TaskTable::Complete complete;
  EXPECT_EQ(t.EndResponse(ts, Status::OK(), &ready, &complete), Step::kFinished);
  EXPECT_EQ(complete, nullptr);
  EXPECT_EQ(t.result(ts, true).message(), "10 died");
}

TEST(TaskTable, TaskWaitsForWhatItExecutesAfter) {
  TaskTable t;
  std::vector<TaskTable::Ready> ready;
  int a = t.Issue();
  t.Create(a, {8}, true);
  t.Submit(a, nullptr, &ready);
  EXPECT_EQ(RunSends(&ready), std::vector<int>{a});
  int b = t.Issue();
  t.Create(b, {8}, true);
  EXPECT_TRUE(t.AddDependency(b, a, true).ok());
  bool sent = false;
  t.Submit(
      b, [&] { sent = true; }, &ready);
  EXPECT_TRUE(ready.empty());
  EXPECT_EQ(t.in_flight(), 1);
  Answer(&t, a, 8, &ready);
  EXPECT_EQ(RunSends(&ready), std::vector<int>{b});
  EXPECT_TRUE(sent);
  EXPECT_EQ(t.max_in_flight(), 1);
}

TEST(TaskTable, FailureCascadesThroughADiamondButNotAlongOrderingEdges) {
  TaskTable t;
  std::vector<TaskTable::Ready> ready;
  auto task = [&](std::vector<std::pair<int, bool>> deps) {
    int ts = t.Issue();
    t.Create(ts, {8}, true);
    for (auto [on, fails] : deps) EXPECT_TRUE(t.AddDependency(ts, on, fails).ok());
    t.Submit(ts, nullptr, &ready);
    return ts;
  };
  int a = task({});
  int b = task({{a, true}});
  int c = task({{a, true}});
  int d = task({{b, true}, {c, true}});
  int e = task({{a, false}});  // only ordered after a
  RunSends(&ready);
  t.FailAwaiting(
      8, false, [](int ts) { return Status::NodeFailed("node 8 died"); }, &ready);
  // a, b, c, d fail: a directly, the others because they execute after it. e failed directly
  // too (it awaits 8 itself), but not with a's cascade message.
  for (int ts : {b, c, d}) {
    EXPECT_NE(t.result(ts, true).message().find("executes after request"), std::string::npos);
  }
  EXPECT_EQ(t.result(a, true).message(), "node 8 died");
  EXPECT_EQ(t.result(e, true).message(), "node 8 died");
  EXPECT_EQ(t.held(), 0U);
  // A task naming a failed request fails at once.
  int f = t.Issue();
  t.Create(f, {8}, true);
  EXPECT_EQ(t.AddDependency(f, a, true).message(), "node 8 died");
}

TEST(TaskTable, OrderingEdgeReleasesWithoutFailing) {
  TaskTable t;
  std::vector<TaskTable::Ready> ready;
  int a = t.Issue();
  t.Create(a, {8}, true);
  t.Submit(a, nullptr, &ready);
  RunSends(&ready);
  int b = t.Issue();
  t.Create(b, {10}, true);
  t.AddDependency(b, a, false);
  t.Submit(b, nullptr, &ready);
  EXPECT_TRUE(ready.empty());
  Answer(&t, a, 8, &ready, Status::RemoteError("a failed"));
  EXPECT_EQ(RunSends(&ready), std::vector<int>{b});  // sent all the same
  EXPECT_TRUE(t.pending(b));
  EXPECT_EQ(t.result(a, true).message(), "a failed");
}

TEST(TaskTable, MarkedFailureWaitsForTheResponses) {
  TaskTable t;
  std::vector<TaskTable::Ready> ready;
  int ts = t.Issue();
  t.Create(ts, {8, 10}, false);
  t.MarkFailed(ts, Status::InvalidArgument("unusable"));
  EXPECT_EQ(Answer(&t, ts, 8, &ready), Step::kPending);
  EXPECT_EQ(Answer(&t, ts, 10, &ready), Step::kFinished);
  EXPECT_EQ(t.result(ts, false).message(), "unusable");
  EXPECT_EQ(t.held(), 1U);  // not waited for yet
  t.result(ts, true);
  EXPECT_EQ(t.held(), 0U);
}

TEST(TaskTable, EmptyTaskFinishesOnceSent) {
  TaskTable t;
  std::vector<TaskTable::Ready> ready;
  int ts = t.Issue();
  t.Create(ts, {}, true);
  t.Submit(ts, nullptr, &ready);
  ASSERT_EQ(ready.size(), 1U);
  EXPECT_TRUE(ready[0].empty);
  t.FinishEmpty(ts, &ready);
  EXPECT_FALSE(t.pending(ts));
}

}  // namespace
}  // namespace ps
