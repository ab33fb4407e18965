// CompressFilter compresses the data frames of a message with zstd ("zstd") or lz4 ("lz4"):
// each frame of at least "min_bytes" is compressed, and sent compressed only when that makes it
// smaller; other frames travel raw.
//
// Arguments: for each compressed frame, its index, its data type and its size in bytes. A
// compressed frame travels as CHAR. Decoding checks every size before it allocates: the size
// the arguments state must be within what the codec can expand the frame to, agree with what
// the frame itself says (zstd), and be exactly what decompression produces.
// Thread-safe: each thread has its own compression contexts.
#ifndef PS_FILTER_COMPRESS_FILTER_H_
#define PS_FILTER_COMPRESS_FILTER_H_

#include <string>
#include <vector>

#include "ps/filter.h"

namespace ps {

class CompressFilter : public Filter {
 public:
  enum class Codec { kZstd, kLz4 };
  // A decoded frame is at most this large, whatever its sender says.
  static constexpr size_t kMaxFrameBytes = size_t{1} << 36;

  // "level": zstd's compression level, or lz4's acceleration.
  CompressFilter(Codec codec, int level, size_t min_bytes)
      : codec_(codec), level_(level), min_bytes_(min_bytes) {}

  bool Encode(bool full, Message* msg, std::vector<int64_t>* args) override;
  FilterResult Decode(const std::vector<int64_t>& args, Message* msg, std::string* error) override;

 private:
  // Compresses "in" into "out"; false when that does not make it smaller.
  bool Compress(const SArray<char>& in, SArray<char>* out) const;
  // Decompresses "in" into "out" of exactly "size" bytes; false (with "error") otherwise.
  bool Decompress(const SArray<char>& in, size_t size, SArray<char>* out, std::string* error) const;

  // Constant after construction.
  const Codec codec_;
  const int level_;
  const size_t min_bytes_;
};

}  // namespace ps
#endif  // PS_FILTER_COMPRESS_FILTER_H_
