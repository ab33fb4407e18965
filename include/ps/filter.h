// Filters transform the data frames of the key-value apps' messages on the way out and restore
// them on the way in: key caching, compression (zstd, lz4), fixed-point values, and filters users
// write themselves (top-k sparsification, a custom quantizer).
//
// Each KVWorker and KVServer has a chain of filters, in a configured order: PS_FILTERS for every
// app of a node ("key_cache,fixed:16,zstd"), or set_filters() per app. A message records in its
// meta the filters that changed it, each with its arguments, and the receiver undoes them in
// reverse order with decoders it makes by name. So a receiver decodes whatever its own
// configuration is; it needs only the filters registered in its program (the built-ins always
// are).
//
// A user-defined filter is a class that implements Filter, registered under a name:
//
//   class XorFilter : public ps::Filter { ... };
//   PS_REGISTER_FILTER("xor", [](const std::string& param, const ps::Environment&,
//                                std::unique_ptr<ps::Filter>* f) {
//     f->reset(new XorFilter(param));
//     return ps::Status::OK();
//   });
//
// and then named in PS_FILTERS or set_filters like a built-in: "xor:7,zstd".
//
// Threads: a filter instance belongs to one app and is used from several threads at once
// (Encode on every thread that sends, Decode on the threads that receive); a filter with state
// protects it. The registry is thread-safe.
#ifndef PS_FILTER_H_
#define PS_FILTER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ps/internal/env.h"
#include "ps/internal/message.h"
#include "ps/status.h"

namespace ps {

// Decode's verdict on one message.
enum class FilterResult {
  kOk,         // decoded
  kMalformed,  // the frames or arguments cannot be what Encode made: the message is dropped
  kMiss,       // the filter lacks state the sender assumed: the receiver asks for it in full
};

class Filter {
 public:
  virtual ~Filter() = default;

  // Encodes the data frames of "msg" in place, just before it is sent to msg->meta.recver: a
  // KVWorker request (frames: keys, then values and lens for a push) or a KVServer response
  // (values [, lens]). A frame it rewrites gets the data type it then holds (CHAR for bytes),
  // so that the receiver's size checks hold. It must not write into the frames it is given
  // (they share the application's arrays): it replaces them by new ones. Returns false when it
  // left the message as it was;
  // true when it changed it, with "args" holding what Decode needs: they travel in the meta
  // with the filter's name. "full": the receiver asked for this message again because it lacked
  // state, so encode it without reference to earlier messages.
  virtual bool Encode(bool full, Message* msg, std::vector<int64_t>* args) = 0;

  // Undoes Encode on "msg" in place, given the "args" Encode recorded; msg->meta.sender is the
  // node that encoded it. Frames and arguments come from the network: validate both, and say
  // in "error" why they are kMalformed. Must not depend on this instance's parameters: a
  // receiver makes its decoders from the name alone, without parameters.
  virtual FilterResult Decode(const std::vector<int64_t>& args, Message* msg,
                              std::string* error) = 0;
};

// Makes a filter from "param", the text after the colon of its name in a filter list ("16" in
// "fixed:16", "" when there is none). "env" is the node's configuration. Fails with a message
// that names the problem ("bits must be 8 or 16") on a bad parameter.
using FilterFactory = std::function<Status(const std::string& param, const Environment& env,
                                           std::unique_ptr<Filter>* filter)>;

// Registers a filter under "name" (letters, digits and '_'). Returns true, so that a static
// initializer can call it (PS_REGISTER_FILTER). REQUIRES: "name" not registered yet.
bool RegisterFilter(const std::string& name, FilterFactory factory);

// The registered names, sorted.
std::vector<std::string> RegisteredFilters();

// Makes the filter registered as "name". Fails on an unknown name or a bad parameter.
Status CreateFilter(const std::string& name, const std::string& param, const Environment& env,
                    std::unique_ptr<Filter>* filter);

#define PS_FILTER_CONCAT_(a, b) a##b
#define PS_FILTER_CONCAT(a, b) PS_FILTER_CONCAT_(a, b)
// Registers a filter factory under a name at program start:
// PS_REGISTER_FILTER("xor", factory);
#define PS_REGISTER_FILTER(name, factory)                                                       \
  static const bool PS_FILTER_CONCAT(ps_filter_registered_, __LINE__) __attribute__((unused)) = \
      ::ps::RegisterFilter(name, factory)

// What one filter of an app did. Bytes are data bytes (the frames, not the meta).
struct FilterStats {
  struct Direction {
    uint64_t messages = 0;      // messages that went through the filter
    uint64_t applied = 0;       // of which the filter changed
    uint64_t bytes_before = 0;  // data bytes going in
    uint64_t bytes_after = 0;   // data bytes coming out
  };
  std::string name;
  Direction encode;      // outgoing: before = as the app gave them, after = as passed on to be sent
  Direction decode;      // incoming: before = as received, after = as restored
  uint64_t dropped = 0;  // incoming messages the filter found malformed
  uint64_t misses = 0;   // incoming messages it lacked state for; their senders were asked again
  uint64_t resent = 0;   // outgoing messages sent again in full because a receiver missed
};

}  // namespace ps
#endif  // PS_FILTER_H_
