// Range is an interval of keys or indices, [begin, end).
#ifndef PS_RANGE_H_
#define PS_RANGE_H_

#include <cstdint>
#include <ostream>

#include "ps/internal/utils.h"

namespace ps {

class Range {
 public:
  Range() : Range(0, 0) {}
  Range(uint64_t begin, uint64_t end) : begin_(begin), end_(end) {}

  uint64_t begin() const { return begin_; }
  uint64_t end() const { return end_; }
  uint64_t size() const { return end_ - begin_; }

  bool operator==(const Range& o) const { return begin_ == o.begin_ && end_ == o.end_; }

 private:
  uint64_t begin_;
  uint64_t end_;
};

inline std::ostream& operator<<(std::ostream& os, const Range& r) {
  return os << "[" << r.begin() << ", " << r.end() << ")";
}

}  // namespace ps
#endif  // PS_RANGE_H_
