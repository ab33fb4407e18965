#include "filter/compress_filter.h"

#include <lz4.h>
#include <zstd.h>

#include <memory>
#include <new>

#include "filter/builtin_filters.h"

namespace ps {
namespace {

// Expansion a codec can reach at most: zstd's densest blocks (runs of one byte) take 4 bytes
// for 128 KiB; lz4 adds at most 255 bytes of output per byte of input.
constexpr size_t kZstdMaxRatio = 1 << 16;
constexpr size_t kLz4MaxRatio = 256;

struct ZstdContexts {
  std::unique_ptr<ZSTD_CCtx, size_t (*)(ZSTD_CCtx*)> c{ZSTD_createCCtx(), ZSTD_freeCCtx};
  std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> d{ZSTD_createDCtx(), ZSTD_freeDCtx};
};

// One pair of contexts per thread: they are not thread-safe, and making them per frame costs.
ZstdContexts& Zstd() {
  thread_local ZstdContexts contexts;
  return contexts;
}

// A buffer of "size" bytes, not initialised; empty when it cannot be allocated.
SArray<char> Allocate(size_t size) {
  char* p = new (std::nothrow) char[size ? size : 1];
  if (!p) return SArray<char>();
  return SArray<char>(p, size, true);
}

}  // namespace

bool CompressFilter::Compress(const SArray<char>& in, SArray<char>* out) const {
  if (codec_ == Codec::kZstd) {
    SArray<char> buf = Allocate(ZSTD_compressBound(in.size()));
    if (buf.empty()) return false;
    size_t n =
        ZSTD_compressCCtx(Zstd().c.get(), buf.data(), buf.size(), in.data(), in.size(), level_);
    if (ZSTD_isError(n) || n >= in.size()) return false;
    *out = buf.segment(0, n);
    return true;
  }
  if (in.size() > static_cast<size_t>(LZ4_MAX_INPUT_SIZE)) return false;
  const int src = static_cast<int>(in.size());
  SArray<char> buf = Allocate(static_cast<size_t>(LZ4_compressBound(src)));
  if (buf.empty()) return false;
  int n = LZ4_compress_fast(in.data(), buf.data(), src, static_cast<int>(buf.size()), level_);
  if (n <= 0 || static_cast<size_t>(n) >= in.size()) return false;
  *out = buf.segment(0, static_cast<size_t>(n));
  return true;
}

bool CompressFilter::Decompress(const SArray<char>& in, size_t size, SArray<char>* out,
                                std::string* error) const {
  const size_t ratio = codec_ == Codec::kZstd ? kZstdMaxRatio : kLz4MaxRatio;
  if (size > kMaxFrameBytes || size > in.size() * ratio + 64 ||
      (codec_ == Codec::kLz4 && size > static_cast<size_t>(LZ4_MAX_INPUT_SIZE))) {
    *error = std::to_string(in.size()) + " compressed bytes cannot hold " + std::to_string(size);
    return false;
  }
  if (codec_ == Codec::kZstd) {
    // One whole frame that says it holds exactly "size" bytes.
    unsigned long long stated = ZSTD_getFrameContentSize(in.data(), in.size());
    if (stated != size || ZSTD_findFrameCompressedSize(in.data(), in.size()) != in.size()) {
      *error = "not a zstd frame of " + std::to_string(size) + " bytes";
      return false;
    }
  }
  SArray<char> buf = Allocate(size);
  if (buf.empty() && size) {
    *error = "cannot allocate " + std::to_string(size) + " bytes";
    return false;
  }
  bool ok;
  if (codec_ == Codec::kZstd) {
    size_t n = ZSTD_decompressDCtx(Zstd().d.get(), buf.data(), size, in.data(), in.size());
    ok = !ZSTD_isError(n) && n == size;
  } else {
    ok = in.size() <= static_cast<size_t>(LZ4_MAX_INPUT_SIZE) &&
         LZ4_decompress_safe(in.data(), buf.data(), static_cast<int>(in.size()),
                             static_cast<int>(size)) == static_cast<int>(size);
  }
  if (!ok) {
    *error = "a frame that does not decompress to its " + std::to_string(size) + " bytes";
    return false;
  }
  *out = buf;
  return true;
}

bool CompressFilter::Encode(bool full, Message* msg, std::vector<int64_t>* args) {
  args->clear();
  for (size_t i = 0; i < msg->data.size(); ++i) {
    const SArray<char>& frame = msg->data[i];
    if (frame.size() < min_bytes_ || frame.empty()) continue;
    SArray<char> packed;
    if (!Compress(frame, &packed)) continue;  // it would not shrink: raw
    args->insert(args->end(), {static_cast<int64_t>(i), msg->meta.data_type[i],
                               static_cast<int64_t>(frame.size())});
    msg->data[i] = packed;
    msg->meta.data_type[i] = CHAR;
  }
  return !args->empty();
}

FilterResult CompressFilter::Decode(const std::vector<int64_t>& args, Message* msg,
                                    std::string* error) {
  if (args.empty() || args.size() % 3 != 0) {
    *error = "bad arguments";
    return FilterResult::kMalformed;
  }
  int64_t last = -1;
  for (size_t a = 0; a < args.size(); a += 3) {
    const int64_t i = args[a], type = args[a + 1], size = args[a + 2];
    if (i <= last || i >= static_cast<int64_t>(msg->data.size()) || type < 0 ||
        type >= kNumDataTypes || size < 0 || msg->meta.data_type[i] != CHAR) {
      *error = "bad arguments";
      return FilterResult::kMalformed;
    }
    last = i;
    SArray<char> raw;
    if (!Decompress(msg->data[i], static_cast<size_t>(size), &raw, error)) {
      *error = "frame " + std::to_string(i) + ": " + *error;
      return FilterResult::kMalformed;
    }
    msg->data[i] = raw;
    msg->meta.data_type[i] = static_cast<DataType>(type);
  }
  return FilterResult::kOk;
}

Status NewZstdFilter(const std::string& param, const Environment& env,
                     std::unique_ptr<Filter>* filter) {
  long level;
  size_t min_bytes;
  Status s = ParseFilterParam("zstd", param, 1, ZSTD_minCLevel(), ZSTD_maxCLevel(), &level);
  if (s.ok()) s = ReadCompressMinBytes(env, &min_bytes);
  if (s.ok()) {
    filter->reset(
        new CompressFilter(CompressFilter::Codec::kZstd, static_cast<int>(level), min_bytes));
  }
  return s;
}

Status NewLz4Filter(const std::string& param, const Environment& env,
                    std::unique_ptr<Filter>* filter) {
  long accel;
  size_t min_bytes;
  Status s = ParseFilterParam("lz4", param, 1, 1, 65537, &accel);
  if (s.ok()) s = ReadCompressMinBytes(env, &min_bytes);
  if (s.ok()) {
    filter->reset(
        new CompressFilter(CompressFilter::Codec::kLz4, static_cast<int>(accel), min_bytes));
  }
  return s;
}

}  // namespace ps
