// Reads a fuzzer's input as a sequence of small fields, so that one input can describe several
// frames and choices. Past the end every read gives zeros or empty strings.
#ifndef PS_FUZZ_FUZZ_INPUT_H_
#define PS_FUZZ_FUZZ_INPUT_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace ps {
namespace fuzz {

class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool empty() const { return pos_ >= size_; }
  uint8_t Byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  // A length-prefixed string: two bytes of length (little-endian), then that many bytes.
  std::string Bytes() {
    size_t n = Byte();
    n |= static_cast<size_t>(Byte()) << 8;
    n = std::min(n, size_ - std::min(pos_, size_));
    std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return s;
  }
  // The rest of the input.
  std::string Rest() {
    std::string s(reinterpret_cast<const char*>(data_ + std::min(pos_, size_)),
                  size_ - std::min(pos_, size_));
    pos_ = size_;
    return s;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

}  // namespace fuzz
}  // namespace ps
#endif  // PS_FUZZ_FUZZ_INPUT_H_
