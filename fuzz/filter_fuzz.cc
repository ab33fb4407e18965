// Each built-in filter's decoder on untrusted frames and arguments: the first byte picks the
// filter, then come the data types, the frames and the arguments. Decode says kOk, kMalformed
// or kMiss, and never crashes or reads out of bounds.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "fuzz/fuzz_input.h"
#include "ps/filter.h"
#include "ps/internal/env.h"
#include "ps/internal/message.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const char* kFilters[] = {"key_cache", "zstd", "lz4", "fixed"};
  ps::fuzz::FuzzInput in(data, size);
  const std::string name = kFilters[in.Byte() % 4];
  static ps::Environment env;
  std::unique_ptr<ps::Filter> filter;
  if (!ps::CreateFilter(name, "", env, &filter).ok()) abort();
  ps::Message msg;
  msg.meta.sender = 9;
  msg.meta.recver = 8;
  msg.meta.request = in.Byte() & 1;
  msg.meta.push = in.Byte() & 1;
  int frames = in.Byte() % 4;
  for (int i = 0; i < frames; ++i) {
    msg.meta.data_type.push_back(static_cast<ps::DataType>(in.Byte() % (ps::DOUBLE + 1)));
    std::string bytes = in.Bytes();
    ps::SArray<char> frame;
    frame.CopyFrom(bytes.data(), bytes.size());
    msg.data.push_back(frame);
  }
  std::vector<int64_t> args;
  int nargs = in.Byte() % 8;
  for (int i = 0; i < nargs; ++i) {
    int64_t a = 0;
    for (int b = 0; b < 8; ++b) a = (a << 8) | in.Byte();
    args.push_back(a);
  }
  std::string error;
  // Whatever the verdict: no crash, no leak, no undefined behaviour. (The chain checks the
  // restored frames against their types afterwards; a single decoder need not.)
  (void)filter->Decode(args, &msg, &error);
  return 0;
}
