// The meta decoder on untrusted bytes: it fails or succeeds, never crashes, and what it
// accepts encodes to bytes it accepts again, as the same meta.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "message/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ps::Meta meta;
  if (!ps::DecodeMeta(reinterpret_cast<const char*>(data), size, &meta).ok()) return 0;
  std::string again;
  ps::EncodeMeta(meta, &again);
  ps::Meta back;
  if (!ps::DecodeMeta(again.data(), again.size(), &back).ok()) abort();
  if (back.DebugString() != meta.DebugString()) abort();
  return 0;
}
