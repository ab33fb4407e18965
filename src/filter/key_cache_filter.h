// KeyCacheFilter ("key_cache") replaces the key list of a request by its signature when the same
// app has sent that list to the same receiver before: a 128-bit XXH3 hash of its bytes and its
// length, 24 bytes in all, instead of 8 bytes per key.
//
// The sender remembers the lists it sent to each receiver; the receiver keeps the lists
// themselves, per sender node and customer. Both are bounded (PS_KEY_CACHE_MB each) and evict
// the least recently used lists. A list travels in full, marked for the receiver to keep, the
// first time, after the sender forgot it, and when the receiver asks for it (Encode with
// "full"). A signature the receiver does not hold (evicted, or a restarted receiver) is a miss:
// the receiver asks the sender for the request in full and never guesses a list.
//
// Arguments: {kStore} (frame 0 is the key list; keep it) or {kSignature, key data type}
// (frame 0 is the signature, CHAR). Thread-safe.
#ifndef PS_FILTER_KEY_CACHE_FILTER_H_
#define PS_FILTER_KEY_CACHE_FILTER_H_

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "filter/lru_cache.h"
#include "ps/filter.h"

namespace ps {

class KeyCacheFilter : public Filter {
 public:
  enum Mode : int64_t { kStore = 0, kSignature = 1 };
  static constexpr size_t kSignatureBytes = 24;  // hash low, hash high, list bytes

  // "capacity": bytes of key lists remembered as sent, and kept as received.
  explicit KeyCacheFilter(size_t capacity) : sent_(capacity), kept_(capacity) {}

  bool Encode(bool full, Message* msg, std::vector<int64_t>* args) override;
  FilterResult Decode(const std::vector<int64_t>& args, Message* msg, std::string* error) override;

  // Key lists kept as a receiver, and their bytes.
  size_t kept_lists() const;
  size_t kept_bytes() const;

 private:
  struct Signature {
    uint64_t low, high, bytes;
    bool operator==(const Signature& o) const {
      return low == o.low && high == o.high && bytes == o.bytes;
    }
  };
  struct Sent {
    int recver;
    Signature sig;
    bool operator==(const Sent& o) const { return recver == o.recver && sig == o.sig; }
  };
  struct Kept {
    int sender, customer;
    Signature sig;
    bool operator==(const Kept& o) const {
      return sender == o.sender && customer == o.customer && sig == o.sig;
    }
  };
  struct Hash {
    // The signature is a strong hash already: its low word spreads the table.
    size_t operator()(const Sent& s) const { return s.sig.low ^ static_cast<size_t>(s.recver); }
    size_t operator()(const Kept& k) const {
      return k.sig.low ^ (static_cast<size_t>(k.sender) << 20) ^ static_cast<size_t>(k.customer);
    }
  };

  static Signature Sign(const SArray<char>& keys);

  // Protected by mu_.
  mutable std::mutex mu_;
  LruCache<Sent, bool, Hash> sent_;          // lists sent to each receiver with kStore
  LruCache<Kept, SArray<char>, Hash> kept_;  // lists received, by sender and customer
};

}  // namespace ps
#endif  // PS_FILTER_KEY_CACHE_FILTER_H_
