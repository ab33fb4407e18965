#include "filter/fixed_point_filter.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "filter/builtin_filters.h"

namespace ps {
namespace {

std::mt19937& Rng() {
  thread_local std::mt19937 rng(std::random_device{}());
  return rng;
}

// Converts the values of "in" into "out" (header, then integers of type Q); false when a value
// is not finite.
template <typename T, typename Q>
bool Quantize(const SArray<char>& in, SArray<char>* out) {
  const T* x = reinterpret_cast<const T*>(in.data());
  const size_t n = in.size() / sizeof(T);
  T lo = x[0], hi = x[0];
  bool nan = false;
  for (size_t i = 0; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
    nan |= x[i] != x[i];  // min and max pass over NaN: look for it
  }
  if (nan || !std::isfinite(lo) || !std::isfinite(hi)) return false;
  const double levels = std::numeric_limits<Q>::max();
  const double dlo = lo, dhi = hi;
  const double scale = dhi > dlo ? levels / (dhi - dlo) : 0;
  SArray<char> buf(new char[FixedPointFilter::kHeaderBytes + n * sizeof(Q)],
                   FixedPointFilter::kHeaderBytes + n * sizeof(Q), true);
  std::memcpy(buf.data(), &dlo, sizeof(double));
  std::memcpy(buf.data() + sizeof(double), &dhi, sizeof(double));
  Q* q = reinterpret_cast<Q*>(buf.data() + FixedPointFilter::kHeaderBytes);
  std::mt19937& rng = Rng();
  constexpr double kUnit = 1.0 / 4294967296.0;  // 2^-32: a 32-bit draw as a fraction of one
  for (size_t i = 0; i < n; ++i) {
    double t = (static_cast<double>(x[i]) - dlo) * scale;
    double f = std::floor(t);
    // Up with probability t - f, so that the expected level is t.
    double up = (static_cast<double>(rng()) * kUnit < t - f) ? 1 : 0;
    q[i] = static_cast<Q>(std::min(f + up, levels));
  }
  *out = buf;
  return true;
}

template <typename T, typename Q>
void Dequantize(const SArray<char>& in, double lo, double hi, SArray<char>* out) {
  const size_t n = (in.size() - FixedPointFilter::kHeaderBytes) / sizeof(Q);
  const Q* q = reinterpret_cast<const Q*>(in.data() + FixedPointFilter::kHeaderBytes);
  const double levels = std::numeric_limits<Q>::max();
  const double step = (hi - lo) / levels;
  SArray<char> buf(new char[n * sizeof(T) + 1], n * sizeof(T), true);
  T* x = reinterpret_cast<T*>(buf.data());
  for (size_t i = 0; i < n; ++i) {
    // The top level is hi itself, not lo plus a sum that rounding may carry past it.
    x[i] = static_cast<T>(q[i] == std::numeric_limits<Q>::max() ? hi : lo + q[i] * step);
  }
  *out = buf;
}

}  // namespace

bool FixedPointFilter::Encode(bool full, Message* msg, std::vector<int64_t>* args) {
  args->assign(1, bits_);
  const size_t qbytes = static_cast<size_t>(bits_ / 8);
  for (size_t i = 0; i < msg->data.size(); ++i) {
    const DataType type = msg->meta.data_type[i];
    if (type != FLOAT && type != DOUBLE) continue;
    const SArray<char>& frame = msg->data[i];
    const size_t n = frame.size() / DataTypeSize(type);
    if (n == 0 || kHeaderBytes + n * qbytes >= frame.size()) continue;  // would not shrink
    SArray<char> packed;
    bool ok = type == FLOAT ? (bits_ == 8 ? Quantize<float, uint8_t>(frame, &packed)
                                          : Quantize<float, uint16_t>(frame, &packed))
                            : (bits_ == 8 ? Quantize<double, uint8_t>(frame, &packed)
                                          : Quantize<double, uint16_t>(frame, &packed));
    if (!ok) continue;
    args->insert(args->end(), {static_cast<int64_t>(i), type, static_cast<int64_t>(n)});
    msg->data[i] = packed;
    msg->meta.data_type[i] = CHAR;
  }
  if (args->size() > 1) return true;
  args->clear();
  return false;
}

FilterResult FixedPointFilter::Decode(const std::vector<int64_t>& args, Message* msg,
                                      std::string* error) {
  if (args.size() < 4 || args.size() % 3 != 1 || (args[0] != 8 && args[0] != 16)) {
    *error = "bad arguments";
    return FilterResult::kMalformed;
  }
  const int bits = static_cast<int>(args[0]);
  const size_t qbytes = static_cast<size_t>(bits / 8);
  int64_t last = -1;
  for (size_t a = 1; a < args.size(); a += 3) {
    const int64_t i = args[a], type = args[a + 1], n = args[a + 2];
    if (i <= last || i >= static_cast<int64_t>(msg->data.size()) ||
        (type != FLOAT && type != DOUBLE) || msg->meta.data_type[i] != CHAR) {
      *error = "bad arguments";
      return FilterResult::kMalformed;
    }
    last = i;
    const SArray<char>& frame = msg->data[i];
    double lo, hi;
    if (n < 0 || frame.size() < kHeaderBytes ||
        (frame.size() - kHeaderBytes) / qbytes != static_cast<uint64_t>(n) ||
        (frame.size() - kHeaderBytes) % qbytes != 0) {
      *error = "frame " + std::to_string(i) + ": " + std::to_string(frame.size()) +
               " bytes are not a range and " + std::to_string(n) + " " + std::to_string(bits) +
               "-bit values";
      return FilterResult::kMalformed;
    }
    std::memcpy(&lo, frame.data(), sizeof(double));
    std::memcpy(&hi, frame.data() + sizeof(double), sizeof(double));
    if (!std::isfinite(lo) || !std::isfinite(hi) || lo > hi) {
      *error = "frame " + std::to_string(i) + ": a range that is not one";
      return FilterResult::kMalformed;
    }
    SArray<char> raw;
    if (type == FLOAT) {
      bits == 8 ? Dequantize<float, uint8_t>(frame, lo, hi, &raw)
                : Dequantize<float, uint16_t>(frame, lo, hi, &raw);
    } else {
      bits == 8 ? Dequantize<double, uint8_t>(frame, lo, hi, &raw)
                : Dequantize<double, uint16_t>(frame, lo, hi, &raw);
    }
    msg->data[i] = raw;
    msg->meta.data_type[i] = static_cast<DataType>(type);
  }
  return FilterResult::kOk;
}

Status NewFixedPointFilter(const std::string& param, const Environment& env,
                           std::unique_ptr<Filter>* filter) {
  long bits = 16;
  if (!param.empty() && param != "8" && param != "16") {
    return Status::InvalidArgument("fixed takes 8 or 16 bits, not \"" + param + "\"");
  }
  if (param == "8") bits = 8;
  filter->reset(new FixedPointFilter(static_cast<int>(bits)));
  return Status::OK();
}

}  // namespace ps
