// Feeds random, truncated and malformed messages to a running node over a real socket: the node
// must drop each one, count it under the right reason, and keep working. The socket is not the
// connection of any node of the job, so even well-formed messages from known senders are
// dropped, as forged.
#include <gtest/gtest.h>

#include <random>
#include <zmq.hpp>

#include "common/test_util.h"
#include "message/codec.h"

namespace ps {
namespace {

struct Forged {
  std::vector<std::string> frames;  // [meta][data...]
};

// What the receive path must do with "f" on a node with id "me" in a job whose nodes are
// "known": the drop reason. A message that would be acceptable is forged: it does not come on
// its sender's connection.
DropReason Expected(const Forged& f, int me, const std::set<int>& known) {
  Meta meta;
  if (!DecodeMeta(f.frames[0].data(), f.frames[0].size(), &meta).ok()) return DropReason::kBadMeta;
  if (f.frames.size() - 1 != meta.data_type.size()) return DropReason::kFrameCount;
  for (size_t i = 1; i < f.frames.size(); ++i) {
    if (f.frames[i].size() % DataTypeSize(meta.data_type[i - 1])) return DropReason::kFrameSize;
  }
  if (!meta.control.empty()) {
    // A node takes control messages from the scheduler only, and only answers.
    if (meta.sender != kScheduler || meta.request) return DropReason::kBadControl;
    return DropReason::kForgedSender;
  }
  if (!known.count(meta.sender) || meta.recver != me) return DropReason::kUnknownSender;
  return DropReason::kForgedSender;
}

std::string Encode(const Meta& m) {
  std::string s;
  EncodeMeta(m, &s);
  return s;
}

Forged Generate(std::mt19937* rng, int me) {
  auto rnd = [&](int n) { return static_cast<int>((*rng)() % n); };
  Meta data;
  data.app_id = 0;
  data.customer_id = 0;
  data.sender = 9;
  data.recver = me;
  data.request = true;
  data.push = true;
  data.data_type = {UINT64, FLOAT};
  Forged f;
  switch (rnd(7)) {
    case 0: {  // random bytes
      std::string b(rnd(64), '\0');
      for (char& c : b) c = static_cast<char>((*rng)());
      f.frames = {b};
      break;
    }
    case 1: {  // a valid meta cut short, with its frames
      std::string m = Encode(data);
      f.frames = {m.substr(0, rnd(static_cast<int>(m.size()))), std::string(16, 'k'),
                  std::string(8, 'v')};
      break;
    }
    case 2: {  // one bit flipped
      std::string m = Encode(data);
      m[rnd(static_cast<int>(m.size()))] ^= static_cast<char>(1 << rnd(8));
      f.frames = {m, std::string(16, 'k'), std::string(8, 'v')};
      break;
    }
    case 3:  // frames that do not match the data types
      f.frames = {Encode(data), std::string(16, 'k')};
      if (rnd(2)) f.frames.push_back(std::string(7, 'v'));
      break;
    case 4: {  // a data message from a node that is not in the job
      Meta m = data;
      m.sender = 99 + rnd(100);
      f.frames = {Encode(m), std::string(16, 'k'), std::string(8, 'v')};
      break;
    }
    case 5: {  // control messages a node must not accept
      Meta m;
      m.sender = rnd(2) ? 9 : kScheduler;
      m.request = rnd(3) > 0;  // answers claiming the scheduler are forged
      m.control.cmd = static_cast<Control::Command>(1 + rnd(Control::kNumCommands - 1));
      f.frames = {Encode(m)};
      break;
    }
    default:  // nothing but an empty meta
      f.frames = {std::string()};
      break;
  }
  return f;
}

TEST(ReceivePath, MalformedMessagesAreDroppedAndCounted) {
  test::LocalJob job(1, 1);
  job.Run([&](Postoffice* po, const std::string& role, int) {
    ASSERT_TRUE(po->TryStart(0).ok());
    if (role == "server") {
      Van* van = po->van();
      int me = van->my_node().id;
      std::set<int> known;
      for (const Node& n : van->nodes()) known.insert(n.id);

      zmq::context_t ctx(1);
      zmq::socket_t sock(ctx, zmq::socket_type::dealer);
      sock.set(zmq::sockopt::linger, 0);
      sock.connect("tcp://127.0.0.1:" + std::to_string(van->my_node().port));

      std::mt19937 rng(2024);
      uint64_t expected[static_cast<int>(DropReason::kNumReasons)] = {};
      uint64_t total = 0;
      const uint64_t before = van->dropped_total();
      const int kMessages = 12000;
      for (int i = 0; i < kMessages; ++i) {
        Forged f = Generate(&rng, me);
        DropReason r = Expected(f, me, known);
        ++expected[static_cast<int>(r)];
        ++total;
        for (size_t j = 0; j < f.frames.size(); ++j) {
          sock.send(zmq::buffer(f.frames[j]),
                    j + 1 < f.frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
        }
      }
      EXPECT_EQ(total, static_cast<uint64_t>(kMessages));
      EXPECT_GT(expected[static_cast<int>(DropReason::kForgedSender)], 1000U);
      ASSERT_TRUE(test::WaitFor([&] { return van->dropped_total() - before >= total; }, 30))
          << van->dropped_total() - before << " of " << total << " dropped";
      for (int r = 0; r < static_cast<int>(DropReason::kNumReasons); ++r) {
        EXPECT_EQ(van->dropped(static_cast<DropReason>(r)), expected[r])
            << DropReasonName(static_cast<DropReason>(r));
      }
    }
    // The node still works: a barrier and an orderly finish.
    EXPECT_TRUE(po->TryBarrier(0, kScheduler + kServerGroup + kWorkerGroup).ok());
    EXPECT_TRUE(po->TryFinalize(0).ok());
  });
}

}  // namespace
}  // namespace ps
