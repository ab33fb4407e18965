#include "filter/key_cache_filter.h"

#include <xxhash.h>

#include <cstring>

#include "filter/builtin_filters.h"
#include "ps/base.h"

namespace ps {

KeyCacheFilter::Signature KeyCacheFilter::Sign(const SArray<char>& keys) {
  XXH128_hash_t h = XXH3_128bits(keys.data(), keys.size());
  return Signature{h.low64, h.high64, keys.size()};
}

bool KeyCacheFilter::Encode(bool full, Message* msg, std::vector<int64_t>* args) {
  const Meta& meta = msg->meta;
  // Requests only: their first frame is the key list. Short lists are not worth a signature.
  if (!meta.request || msg->data.empty() || meta.data_type[0] != GetDataType<Key>() ||
      msg->data[0].size() <= kSignatureBytes) {
    return false;
  }
  const Signature sig = Sign(msg->data[0]);
  const Sent sent{meta.recver, sig};
  bool known;
  {
    std::lock_guard<std::mutex> lk(mu_);
    known = !full && sent_.Get(sent) != nullptr;
    if (!known) sent_.Put(sent, true, sig.bytes);
  }
  if (!known) {
    *args = {kStore};
    return true;
  }
  uint64_t words[3] = {sig.low, sig.high, sig.bytes};
  SArray<char> frame(new char[kSignatureBytes], kSignatureBytes, true);
  std::memcpy(frame.data(), words, kSignatureBytes);
  msg->data[0] = frame;
  msg->meta.data_type[0] = CHAR;
  *args = {kSignature, GetDataType<Key>()};
  return true;
}

FilterResult KeyCacheFilter::Decode(const std::vector<int64_t>& args, Message* msg,
                                    std::string* error) {
  if (msg->data.empty()) {
    *error = "no key frame";
    return FilterResult::kMalformed;
  }
  if (args.size() == 1 && args[0] == kStore) {
    const SArray<char>& keys = msg->data[0];
    Kept kept{msg->meta.sender, msg->meta.customer_id, Sign(keys)};
    std::lock_guard<std::mutex> lk(mu_);
    kept_.Put(kept, keys, keys.size());
    return FilterResult::kOk;
  }
  if (args.size() != 2 || args[0] != kSignature || args[1] < 0 || args[1] >= kNumDataTypes) {
    *error = "bad arguments";
    return FilterResult::kMalformed;
  }
  if (msg->meta.data_type[0] != CHAR || msg->data[0].size() != kSignatureBytes) {
    *error = "a signature of " + std::to_string(msg->data[0].size()) + " bytes, expected " +
             std::to_string(kSignatureBytes);
    return FilterResult::kMalformed;
  }
  uint64_t words[3];
  std::memcpy(words, msg->data[0].data(), kSignatureBytes);
  Kept kept{msg->meta.sender, msg->meta.customer_id, Signature{words[0], words[1], words[2]}};
  std::lock_guard<std::mutex> lk(mu_);
  SArray<char>* keys = kept_.Get(kept);
  if (!keys) return FilterResult::kMiss;
  msg->data[0] = *keys;
  msg->meta.data_type[0] = static_cast<DataType>(args[1]);
  return FilterResult::kOk;
}

size_t KeyCacheFilter::kept_lists() const {
  std::lock_guard<std::mutex> lk(mu_);
  return kept_.size();
}

size_t KeyCacheFilter::kept_bytes() const {
  std::lock_guard<std::mutex> lk(mu_);
  return kept_.charge();
}

Status NewKeyCacheFilter(const std::string& param, const Environment& env,
                         std::unique_ptr<Filter>* filter) {
  if (!param.empty()) {
    return Status::InvalidArgument("key_cache takes no parameter (its size is PS_KEY_CACHE_MB)");
  }
  size_t bytes;
  Status s = ReadKeyCacheBytes(env, &bytes);
  if (s.ok()) filter->reset(new KeyCacheFilter(bytes));
  return s;
}

}  // namespace ps
