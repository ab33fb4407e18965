// The built-in filters' factories, registered by filter.cc under their names, and the
// configuration they read.
#ifndef PS_FILTER_BUILTIN_FILTERS_H_
#define PS_FILTER_BUILTIN_FILTERS_H_

#include <memory>
#include <string>

#include "ps/filter.h"

namespace ps {

// "key_cache": a request's key list already sent to the same receiver by the same app travels
// as its signature. No parameter; the cache size is PS_KEY_CACHE_MB.
Status NewKeyCacheFilter(const std::string& param, const Environment& env,
                         std::unique_ptr<Filter>* filter);
// "zstd[:level]" (level 1 by default) and "lz4[:acceleration]" (1 by default): frames of at
// least PS_COMPRESS_MIN_BYTES, sent compressed when that makes them smaller.
Status NewZstdFilter(const std::string& param, const Environment& env,
                     std::unique_ptr<Filter>* filter);
Status NewLz4Filter(const std::string& param, const Environment& env,
                    std::unique_ptr<Filter>* filter);
// "fixed[:bits]": float and double frames as 8- or 16-bit integers (16 by default).
Status NewFixedPointFilter(const std::string& param, const Environment& env,
                           std::unique_ptr<Filter>* filter);

// The filters' variables, with their defaults; a value that does not parse is an error naming
// it, as for the postoffice's own variables.
constexpr long kDefaultKeyCacheMB = 256;
constexpr long kDefaultCompressMinBytes = 1024;
Status ReadKeyCacheBytes(const Environment& env, size_t* bytes);
Status ReadCompressMinBytes(const Environment& env, size_t* bytes);

// Reads an integer parameter of filter "name" ("" gives "def") within [min, max].
Status ParseFilterParam(const std::string& name, const std::string& param, long def, long min,
                        long max, long* out);

}  // namespace ps
#endif  // PS_FILTER_BUILTIN_FILTERS_H_
