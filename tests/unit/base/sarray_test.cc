#include "ps/sarray.h"

#include <gtest/gtest.h>

#include <sstream>

namespace ps {
namespace {

TEST(SArray, CopiesShareTheBuffer) {
  SArray<int> a = {1, 2, 3};
  SArray<int> b = a;
  b[1] = 20;
  EXPECT_EQ(a[1], 20);
  EXPECT_EQ(a.data(), b.data());
}

TEST(SArray, SegmentIsZeroCopy) {
  SArray<int> a = {0, 1, 2, 3, 4, 5};
  SArray<int> s = a.segment(2, 5);
  ASSERT_EQ(s.size(), 3U);
  EXPECT_EQ(s.data(), a.data() + 2);
  s[0] = 42;
  EXPECT_EQ(a[2], 42);
  EXPECT_EQ(s.back(), 4);
}

TEST(SArray, SegmentKeepsBufferAlive) {
  SArray<int> s;
  {
    SArray<int> a(100, 7);
    s = a.segment(10, 20);
  }
  EXPECT_EQ(s.size(), 10U);
  EXPECT_EQ(s[9], 7);
  EXPECT_EQ(s.ptr().use_count(), 1);
}

TEST(SArray, ReinterpretSharesBytes) {
  SArray<float> f = {1.0f, 2.0f, 3.0f, 4.0f};
  SArray<char> bytes(f);
  EXPECT_EQ(bytes.size(), 16U);
  EXPECT_EQ(static_cast<void*>(bytes.data()), static_cast<void*>(f.data()));
  SArray<double> d(bytes);
  EXPECT_EQ(d.size(), 2U);
  SArray<float> back(bytes);
  EXPECT_EQ(back[3], 4.0f);
}

TEST(SArray, ReinterpretOfWrongSizeDies) {
  SArray<char> bytes(6);
  EXPECT_THROW(SArray<int> ints(bytes), dmlc::Error);
}

TEST(SArray, VectorCopyAndSharedVector) {
  std::vector<int> v = {1, 2, 3};
  SArray<int> copied(v);
  copied[0] = 9;
  EXPECT_EQ(v[0], 1);
  auto sv = std::make_shared<std::vector<int>>(v);
  SArray<int> shared(sv);
  shared[0] = 9;
  EXPECT_EQ((*sv)[0], 9);
}

TEST(SArray, WrapPointer) {
  int* raw = new int[4]{1, 2, 3, 4};
  {
    SArray<int> owned(raw, 4, true);  // freed with delete[] by the array
    EXPECT_EQ(owned[3], 4);
  }
  int stack[2] = {5, 6};
  SArray<int> borrowed(stack, 2);
  borrowed[0] = 50;
  EXPECT_EQ(stack[0], 50);
}

TEST(SArray, CopyFromResizeReserveAppend) {
  SArray<int> a;
  int src[3] = {1, 2, 3};
  a.CopyFrom(src, 3);
  EXPECT_EQ(a.size(), 3U);
  SArray<int> b = a;
  a.resize(10, 5);  // beyond capacity: a new buffer
  EXPECT_EQ(a.size(), 10U);
  EXPECT_EQ(a[9], 5);
  EXPECT_EQ(a[2], 3);
  EXPECT_NE(a.data(), b.data());
  a.reserve(100);
  EXPECT_GE(a.capacity(), 100U);
  EXPECT_EQ(a[0], 1);
  a.push_back(11);
  EXPECT_EQ(a.back(), 11);
  EXPECT_EQ(a.size(), 11U);
  a.append(b);
  EXPECT_EQ(a.size(), 14U);
  EXPECT_EQ(a[13], 3);
  a.pop_back();
  EXPECT_EQ(a.size(), 13U);
  a.clear();
  EXPECT_TRUE(a.empty());
  std::vector<int> v = {7, 8};
  a.CopyFrom(v.begin(), v.end());
  EXPECT_EQ(a.front(), 7);
  a.CopyFrom(b);
  EXPECT_EQ(a.size(), 3U);
}

TEST(SArray, FindRange) {
  SArray<uint64_t> keys = {1, 3, 5, 7, 9};
  EXPECT_EQ(FindRange(keys, uint64_t(3), uint64_t(8)), Range(1, 4));
  EXPECT_EQ(FindRange(keys, uint64_t(0), uint64_t(1)), Range(0, 0));
  EXPECT_EQ(FindRange(keys, uint64_t(10), uint64_t(20)), Range(5, 5));
  EXPECT_EQ(FindRange(keys, uint64_t(8), uint64_t(3)), Range(0, 0));
}

TEST(SArray, Prints) {
  std::ostringstream os;
  os << SArray<int>{1, 2, 3};
  EXPECT_EQ(os.str(), "[3]: 1 2 3");
  std::ostringstream longer;
  longer << SArray<char>(12, 1);
  EXPECT_EQ(longer.str(), "[12]: 1 1 1 1 1 ... 1 1");
}

}  // namespace
}  // namespace ps
