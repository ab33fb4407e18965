// The codec turns a Meta into bytes and back. It is the only code that touches protobuf.
// Decoding treats the bytes as untrusted input: anything that is not a well-formed meta of this
// format version is an error, never a crash.
#ifndef PS_MESSAGE_CODEC_H_
#define PS_MESSAGE_CODEC_H_

#include <string>

#include "ps/internal/message.h"
#include "ps/status.h"

namespace ps {

// Version of the wire format; bumped on incompatible changes of meta.proto. Version 2 added
// the filter records: a version 1 node would ignore them and take encoded frames for data.
constexpr unsigned kWireVersion = 2;

// At most this many filter records per message, and arguments per record.
constexpr size_t kMaxFilterRecords = 64;
constexpr size_t kMaxFilterArgs = 1 << 16;

// Appends the encoding of "meta" to "out" (cleared first).
void EncodeMeta(const Meta& meta, std::string* out);

// Decodes "size" bytes at "data" into "meta". Fails, naming the problem, when the bytes do not
// parse, the version is not kWireVersion, an enum value is out of range, or the filter records
// are out of bounds (an empty name, too many records or arguments).
Status DecodeMeta(const char* data, size_t size, Meta* meta);

}  // namespace ps
#endif  // PS_MESSAGE_CODEC_H_
