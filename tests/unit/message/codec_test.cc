#include "message/codec.h"

#include <gtest/gtest.h>

#include <random>

namespace ps {
namespace {

Meta FullMeta() {
  Meta m;
  m.head = 7;
  m.app_id = 3;
  m.customer_id = 2;
  m.timestamp = 12345;
  m.sender = 9;
  m.recver = 8;
  m.request = true;
  m.push = true;
  m.pull = true;
  m.simple_app = true;
  m.priority = -4;
  m.body = std::string("body\0with nul", 13);
  m.data_type = {UINT64, FLOAT, INT32, DOUBLE, CHAR, OTHER};
  m.error = "disk full";
  m.control.cmd = Control::BARRIER;
  m.control.barrier_group = 6;
  m.control.finalize = true;
  m.control.barrier_ok = false;
  m.control.failed_node = 11;
  m.control.reason = "worker 1 died";
  Node n;
  n.role = Node::WORKER;
  n.id = 11;
  n.hostname = "10.0.0.7";
  n.port = 4242;
  n.customer_id = 1;
  m.control.node = {n, n};
  m.control.node[1].role = Node::SCHEDULER;
  m.filters = {{"key_cache", {1, UINT64}}, {"zstd", {1, FLOAT, 4000, -7, INT64_MIN, INT64_MAX}}};
  m.filter_miss = true;
  return m;
}

TEST(Codec, RoundTripKeepsEveryField) {
  Meta in = FullMeta();
  std::string bytes;
  EncodeMeta(in, &bytes);
  Meta out;
  ASSERT_TRUE(DecodeMeta(bytes.data(), bytes.size(), &out).ok());
  EXPECT_EQ(out.head, in.head);
  EXPECT_EQ(out.app_id, in.app_id);
  EXPECT_EQ(out.customer_id, in.customer_id);
  EXPECT_EQ(out.timestamp, in.timestamp);
  EXPECT_EQ(out.sender, in.sender);
  EXPECT_EQ(out.recver, in.recver);
  EXPECT_EQ(out.request, in.request);
  EXPECT_EQ(out.push, in.push);
  EXPECT_EQ(out.pull, in.pull);
  EXPECT_EQ(out.simple_app, in.simple_app);
  EXPECT_EQ(out.priority, in.priority);
  EXPECT_EQ(out.body, in.body);
  EXPECT_EQ(out.data_type, in.data_type);
  EXPECT_EQ(out.error, in.error);
  EXPECT_EQ(out.filters, in.filters);
  EXPECT_EQ(out.filter_miss, in.filter_miss);
  EXPECT_EQ(out.control.cmd, in.control.cmd);
  EXPECT_EQ(out.control.barrier_group, in.control.barrier_group);
  EXPECT_EQ(out.control.finalize, in.control.finalize);
  EXPECT_EQ(out.control.barrier_ok, in.control.barrier_ok);
  EXPECT_EQ(out.control.failed_node, in.control.failed_node);
  EXPECT_EQ(out.control.reason, in.control.reason);
  ASSERT_EQ(out.control.node.size(), 2U);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(out.control.node[i].role, in.control.node[i].role);
    EXPECT_EQ(out.control.node[i].id, in.control.node[i].id);
    EXPECT_EQ(out.control.node[i].hostname, in.control.node[i].hostname);
    EXPECT_EQ(out.control.node[i].port, in.control.node[i].port);
    EXPECT_EQ(out.control.node[i].customer_id, in.control.node[i].customer_id);
  }
}

TEST(Codec, DefaultMetaRoundTrips) {
  Meta in, out;
  std::string bytes;
  EncodeMeta(in, &bytes);
  ASSERT_TRUE(DecodeMeta(bytes.data(), bytes.size(), &out).ok());
  EXPECT_EQ(out.head, Meta::kEmpty);
  EXPECT_TRUE(out.control.empty());
  EXPECT_TRUE(out.control.barrier_ok);
  EXPECT_FALSE(out.request);
  EXPECT_TRUE(out.filters.empty());
  EXPECT_FALSE(out.filter_miss);
}

TEST(Codec, RejectsOtherVersion) {
  std::string bytes;
  EncodeMeta(Meta(), &bytes);
  ASSERT_EQ(bytes[0], 0x08);  // field 1, varint: the version comes first
  for (unsigned other : {kWireVersion - 1, kWireVersion + 1}) {
    bytes[1] = static_cast<char>(other);
    Meta out;
    Status s = DecodeMeta(bytes.data(), bytes.size(), &out);
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find("version " + std::to_string(other)), std::string::npos)
        << s.message();
  }
}

TEST(Codec, RejectsFilterRecordsOutOfBounds) {
  Meta m;
  m.filters = {{"", {1}}};
  std::string bytes;
  EncodeMeta(m, &bytes);
  Meta out;
  EXPECT_EQ(DecodeMeta(bytes.data(), bytes.size(), &out).message(),
            "a filter record without a name");
  m.filters.assign(kMaxFilterRecords + 1, FilterRecord{"zstd", {}});
  EncodeMeta(m, &bytes);
  EXPECT_EQ(DecodeMeta(bytes.data(), bytes.size(), &out).message(), "too many filter records");
  m.filters = {{"zstd", std::vector<int64_t>(kMaxFilterArgs + 1, 3)}};
  EncodeMeta(m, &bytes);
  EXPECT_EQ(DecodeMeta(bytes.data(), bytes.size(), &out).message(), "too many filter arguments");
}

TEST(Codec, RejectsUnknownEnumValues) {
  Meta m;
  m.control.cmd = static_cast<Control::Command>(99);
  std::string bytes;
  EncodeMeta(m, &bytes);
  Meta out;
  EXPECT_EQ(DecodeMeta(bytes.data(), bytes.size(), &out).message(), "unknown control command");
  m = Meta();
  m.data_type = {static_cast<DataType>(42)};
  EncodeMeta(m, &bytes);
  EXPECT_EQ(DecodeMeta(bytes.data(), bytes.size(), &out).message(), "unknown data type");
}

TEST(Codec, RandomAndTruncatedBytesNeverCrash) {
  std::mt19937 rng(7);
  std::string valid;
  EncodeMeta(FullMeta(), &valid);
  int rejected = 0;
  const int kRounds = 20000;
  for (int i = 0; i < kRounds; ++i) {
    std::string bytes;
    if (i % 2) {
      bytes.resize(rng() % 64);
      for (char& c : bytes) c = static_cast<char>(rng());
    } else {
      bytes = valid.substr(0, rng() % valid.size());
      if (!bytes.empty() && i % 4 == 0) bytes[rng() % bytes.size()] ^= 1 << (rng() % 8);
    }
    Meta out;
    if (!DecodeMeta(bytes.data(), bytes.size(), &out).ok()) ++rejected;
  }
  // Random bytes hardly ever form a meta of the right version.
  EXPECT_GT(rejected, kRounds * 9 / 10);
}

}  // namespace
}  // namespace ps
