// FilterChain is the filters of one key-value app (a KVWorker or KVServer): the configured ones
// that encode its outgoing messages in order, and the decoders, made by name on first use, that
// restore its incoming messages whatever filters their senders used. It counts what each filter
// did (FilterStats) and, with PS_VERBOSE>=1, logs the counts at the node's last Finalize.
//
// Thread-safe: Encode and Decode run concurrently on the threads that send and receive.
#ifndef PS_INTERNAL_FILTER_CHAIN_H_
#define PS_INTERNAL_FILTER_CHAIN_H_

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "ps/filter.h"
#include "ps/internal/env.h"
#include "ps/internal/message.h"
#include "ps/status.h"

namespace ps {

class Postoffice;

class FilterChain {
 public:
  // The filters of an app on "postoffice", configured by its PS_FILTERS. "app" names the app in
  // logs ("KVWorker app 0 customer 0"). A bad PS_FILTERS leaves the chain without filters and
  // is kept in status() (Start fails with the same error). Starts nothing.
  FilterChain(Postoffice* postoffice, std::string app);
  ~FilterChain();

  FilterChain(const FilterChain&) = delete;
  FilterChain& operator=(const FilterChain&) = delete;

  // Replaces the filters that encode outgoing messages by those of "spec", a comma-separated
  // list of names with optional parameters ("key_cache,fixed:16,zstd"; "" for none). Fails,
  // changing nothing, on an unknown name, a name listed twice or a bad parameter.
  Status Configure(const std::string& spec);
  // The error of PS_FILTERS at construction, or OK.
  Status status() const;
  // The configured list, as Configure took it.
  std::string spec() const;
  // True when no filter encodes outgoing messages.
  bool empty() const;

  // Encodes "msg" (its recver set) with the configured filters in order, recording each that
  // changed it in msg->meta.filters. "full": the receiver asked for the message again.
  void Encode(bool full, Message* msg);

  // Decodes "msg" by its filter records, in reverse order, and checks the restored frames
  // against their data types. kMalformed: counted, logged once, "error" says why. kMiss:
  // counted; "filter" names the filter that lacked state, and the caller asks the sender for
  // the message in full (MissNotice).
  FilterResult Decode(Message* msg, std::string* filter, std::string* error);

  // The message that asks the sender of request "msg" to send it again in full because filter
  // "filter" lacked state to decode it. The caller sends it.
  static Message MissNotice(const Message& msg, const std::string& filter);
  // Counts that a request was sent again in full because a receiver's "filter" missed.
  void CountResend(const std::string& filter);

  // What each filter did so far: the configured ones in order, then the decoders by name.
  std::vector<FilterStats> stats() const;

  // Parses a filter list into names and parameters, checking every name against the registry
  // and every parameter by making the filter. Errors name the entry: "unknown filter zsdt
  // (known: fixed, key_cache, lz4, zstd)".
  static Status Parse(const std::string& spec, const Environment& env,
                      std::vector<std::pair<std::string, std::string>>* filters);

 private:
  struct Counters;
  class Table;
  struct Stage {
    std::string name;
    std::shared_ptr<Filter> filter;
    Counters* counters;
  };

  // The decoder of filter "name", made on first use; null when "name" is not registered.
  std::shared_ptr<Filter> DecoderFor(const std::string& name, Counters** counters);

  // Constant after construction.
  Postoffice* const postoffice_;
  const Environment* const env_;
  const std::string app_;
  const std::shared_ptr<Table> table_;  // counters; shared with the Finalize report and metrics
  int metrics_source_ = -1;             // the postoffice's source of this chain's figures

  // Protected by mu_.
  mutable std::mutex mu_;
  Status status_;
  std::string spec_;
  std::shared_ptr<const std::vector<Stage>> stages_;  // replaced whole by Configure
  std::unordered_map<std::string, std::shared_ptr<Filter>> decoders_;
};

}  // namespace ps
#endif  // PS_INTERNAL_FILTER_CHAIN_H_
