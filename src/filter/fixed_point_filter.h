// FixedPointFilter ("fixed:8", "fixed:16") sends float and double frames as 8- or 16-bit
// integers. Each frame is scaled by its own range: with lo and hi its smallest and largest
// value, a value x travels as q in [0, 2^bits - 1], rounded at random from
// t = (x - lo) / step, step = (hi - lo) / (2^bits - 1): up with probability t - floor(t). So the
// expected decoded value lo + q * step is x (unbiased), and the error is below one step.
//
// On the wire a converted frame is CHAR: lo and hi as doubles, then the integers. Frames with a
// value that is not finite, and frames that conversion would not make smaller, travel as they
// are. Arguments: the bits, then for each converted frame its index, data type and number of
// values.
// Thread-safe: each thread has its own random generator.
#ifndef PS_FILTER_FIXED_POINT_FILTER_H_
#define PS_FILTER_FIXED_POINT_FILTER_H_

#include <string>
#include <vector>

#include "ps/filter.h"

namespace ps {

class FixedPointFilter : public Filter {
 public:
  static constexpr size_t kHeaderBytes = 2 * sizeof(double);  // lo, hi

  // REQUIRES: bits is 8 or 16.
  explicit FixedPointFilter(int bits) : bits_(bits) {}

  bool Encode(bool full, Message* msg, std::vector<int64_t>* args) override;
  FilterResult Decode(const std::vector<int64_t>& args, Message* msg, std::string* error) override;

 private:
  const int bits_;
};

}  // namespace ps
#endif  // PS_FILTER_FIXED_POINT_FILTER_H_
