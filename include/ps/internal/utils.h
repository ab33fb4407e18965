// Small helpers shared by the public headers: logging macros and timing.
#ifndef PS_INTERNAL_UTILS_H_
#define PS_INTERNAL_UTILS_H_

#include <chrono>

#include "dmlc/logging.h"

namespace ps {

// ps-lite's shorthand for an error-level log line.
#ifndef LL
#define LL LOG(ERROR)
#endif

// A steady-clock time point and the seconds since one, for deadlines and statistics.
using Clock = std::chrono::steady_clock;
inline double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace ps
#endif  // PS_INTERNAL_UTILS_H_
