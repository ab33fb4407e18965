// SArray<V> is a shared array: copies share one buffer, and a segment or a reinterpretation as
// SArray<W> shares it too, so data moves between the application and the network without
// copying. The buffer is freed when the last SArray that refers to it goes away.
//
// Thread safety: as for std::shared_ptr. Distinct SArray objects that share a buffer may be used
// from different threads; writing the buffer while another thread reads it is a data race.
// V must be trivially copyable: buffers are copied and reinterpreted bytewise.
#ifndef PS_SARRAY_H_
#define PS_SARRAY_H_

#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <ostream>
#include <type_traits>
#include <vector>

#include "ps/internal/utils.h"
#include "ps/range.h"

namespace ps {

template <typename V>
class SArray {
  static_assert(std::is_trivially_copyable<V>::value, "SArray<V> needs a trivially copyable V");

 public:
  SArray() = default;

  // An array of "size" elements, each "val".
  explicit SArray(size_t size, V val = 0) { resize(size, val); }

  // Wraps "data". With deletable, the array owns it and frees it with delete[] at the end;
  // otherwise the caller keeps "data" alive for as long as any SArray refers to it.
  SArray(V* data, size_t size, bool deletable = false) {
    if (deletable) {
      reset(data, size, [](V* p) { delete[] p; });
    } else {
      reset(data, size, [](V*) {});
    }
  }

  // Copies the vector.
  explicit SArray(const std::vector<V>& vec) { CopyFrom(vec.data(), vec.size()); }

  // Shares the vector: no copy; the vector lives as long as the array.
  explicit SArray(const std::shared_ptr<std::vector<V>>& vec) {
    ptr_ = std::shared_ptr<V>(vec, vec->data());
    size_ = capacity_ = vec->size();
  }

  SArray(const std::initializer_list<V>& list) { CopyFrom(list.begin(), list.end()); }

  // Reinterprets the buffer of an SArray<W>: no copy. Its byte size must divide by sizeof(V).
  template <typename W>
  explicit SArray(const SArray<W>& arr) {
    *this = arr;
  }
  template <typename W>
  void operator=(const SArray<W>& arr) {
    size_ = arr.size() * sizeof(W);
    CHECK_EQ(size_ % sizeof(V), 0U)
        << "cannot reinterpret " << size_ << " bytes as elements of " << sizeof(V) << " bytes";
    size_ /= sizeof(V);
    capacity_ = arr.capacity() * sizeof(W) / sizeof(V);
    ptr_ = std::shared_ptr<V>(arr.ptr(), reinterpret_cast<V*>(arr.data()));
  }

  // Replaces the content by "data", freed by "deleter" when the last reference goes.
  template <typename Deleter>
  void reset(V* data, size_t size, Deleter deleter) {
    size_ = capacity_ = size;
    ptr_.reset(data, deleter);
  }

  // Copies "size" elements from "data" into a new buffer.
  void CopyFrom(const V* data, size_t size) {
    resize(size);
    if (size) memcpy(this->data(), data, size * sizeof(V));
  }
  void CopyFrom(const SArray<V>& other) {
    if (this != &other) CopyFrom(other.data(), other.size());
  }
  template <typename ForwardIt>
  void CopyFrom(const ForwardIt& first, const ForwardIt& last) {
    size_t size = static_cast<size_t>(std::distance(first, last));
    resize(size);
    std::copy(first, last, data());
  }

  // Resizes; new elements are "val". Growing beyond the capacity reallocates, and the array then
  // no longer shares its buffer with the arrays it was copied from.
  void resize(size_t size, V val = 0) {
    size_t old = size_;
    if (capacity_ >= size) {
      size_ = size;
    } else {
      reserve(std::max(size + 5, capacity_ * 2));
      size_ = size;
    }
    if (size > old) std::fill(data() + old, data() + size, val);
  }

  // Makes room for "size" elements, copying the content to a new buffer if needed.
  void reserve(size_t size) {
    if (capacity_ >= size) return;
    size_t old_size = size_;
    SArray<V> bigger;
    bigger.ptr_ = std::shared_ptr<V>(new V[size], [](V* p) { delete[] p; });
    bigger.capacity_ = size;
    if (old_size) memcpy(bigger.data(), data(), old_size * sizeof(V));
    *this = std::move(bigger);
    size_ = old_size;
  }

  void clear() {
    reset(nullptr, 0, [](V*) {});
  }

  bool empty() const { return size() == 0; }
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }

  void push_back(const V& val) {
    if (size_ == capacity_) reserve(size_ * 2 + 5);
    data()[size_++] = val;
  }
  void pop_back() {
    CHECK(!empty()) << "pop_back on an empty SArray";
    --size_;
  }
  void append(const SArray<V>& arr) {
    if (arr.empty()) return;
    size_t orig = size_;
    resize(size_ + arr.size());
    memcpy(data() + orig, arr.data(), arr.size() * sizeof(V));
  }

  // Elements [begin, end) as an array sharing this buffer: no copy.
  SArray<V> segment(size_t begin, size_t end) const {
    CHECK_GE(end, begin);
    CHECK_LE(end, size());
    SArray<V> seg;
    seg.ptr_ = std::shared_ptr<V>(ptr_, data() + begin);
    seg.size_ = end - begin;
    seg.capacity_ = end - begin;
    return seg;
  }

  V back() const {
    CHECK(!empty());
    return data()[size_ - 1];
  }
  V front() const {
    CHECK(!empty());
    return data()[0];
  }
  V& operator[](size_t i) { return data()[i]; }
  const V& operator[](size_t i) const { return data()[i]; }

  V* data() const { return ptr_.get(); }
  V* begin() { return data(); }
  const V* begin() const { return data(); }
  V* end() { return data() + size(); }
  const V* end() const { return data() + size(); }

  // The shared pointer behind the buffer; copies of it keep the buffer alive.
  const std::shared_ptr<V>& ptr() const { return ptr_; }

 private:
  template <typename W>
  friend class SArray;

  size_t size_ = 0;
  size_t capacity_ = 0;
  std::shared_ptr<V> ptr_;
};

// The index range [pos(begin), pos(end)) of the sorted array "arr" whose values lie in
// [lower, upper): found by binary search.
template <typename V>
Range FindRange(const SArray<V>& arr, V lower, V upper) {
  if (upper <= lower) return Range(0, 0);
  auto lb = std::lower_bound(arr.begin(), arr.end(), lower);
  auto ub = std::lower_bound(arr.begin(), arr.end(), upper);
  return Range(lb - arr.begin(), ub - arr.begin());
}

// Prints the size and, for short arrays, the elements; long arrays are shown abbreviated.
template <typename V>
std::ostream& operator<<(std::ostream& os, const SArray<V>& arr) {
  size_t n = arr.size();
  os << "[" << n << "]:";
  auto put = [&](size_t i) { os << " " << +arr[i]; };
  if (n <= 10) {
    for (size_t i = 0; i < n; ++i) put(i);
  } else {
    for (size_t i = 0; i < 5; ++i) put(i);
    os << " ...";
    for (size_t i = n - 2; i < n; ++i) put(i);
  }
  return os;
}

}  // namespace ps
#endif  // PS_SARRAY_H_
