// The filter registry, with the built-in filters, and the filters' configuration variables.
#include "ps/filter.h"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <map>
#include <mutex>

#include "filter/builtin_filters.h"
#include "ps/internal/utils.h"

namespace ps {
namespace {

struct Registry {
  std::mutex mu;
  std::map<std::string, FilterFactory> factories;  // protected by mu
};

// Built-ins are added here rather than by static initializers of their own files, which a
// static link would leave out when nothing else refers to them.
Registry* GetRegistry() {
  static Registry* registry = [] {
    auto* r = new Registry();  // never destroyed: filters may be made until exit
    r->factories = {{"key_cache", NewKeyCacheFilter},
                    {"zstd", NewZstdFilter},
                    {"lz4", NewLz4Filter},
                    {"fixed", NewFixedPointFilter}};
    return r;
  }();
  return registry;
}

bool ValidName(const std::string& name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

}  // namespace

bool RegisterFilter(const std::string& name, FilterFactory factory) {
  CHECK(ValidName(name)) << "filter name \"" << name << "\": use letters, digits and '_'";
  CHECK(factory) << "filter " << name << ": no factory";
  Registry* r = GetRegistry();
  std::lock_guard<std::mutex> lk(r->mu);
  CHECK(!r->factories.count(name)) << "filter " << name << " is registered twice";
  r->factories[name] = std::move(factory);
  return true;
}

std::vector<std::string> RegisteredFilters() {
  Registry* r = GetRegistry();
  std::lock_guard<std::mutex> lk(r->mu);
  std::vector<std::string> names;
  for (const auto& kv : r->factories) names.push_back(kv.first);
  return names;
}

Status CreateFilter(const std::string& name, const std::string& param, const Environment& env,
                    std::unique_ptr<Filter>* filter) {
  FilterFactory factory;
  {
    Registry* r = GetRegistry();
    std::lock_guard<std::mutex> lk(r->mu);
    auto it = r->factories.find(name);
    if (it != r->factories.end()) factory = it->second;
  }
  if (!factory) {
    std::string known;
    for (const std::string& n : RegisteredFilters()) known += (known.empty() ? "" : ", ") + n;
    return Status::InvalidArgument("unknown filter " + name + " (known: " + known + ")");
  }
  filter->reset();
  Status s = factory(param, env, filter);
  if (s.ok() && !*filter) return Status::InvalidArgument("filter " + name + " made no filter");
  return s;
}

Status ReadKeyCacheBytes(const Environment& env, size_t* bytes) {
  long mb;
  Status s = env.GetInt("PS_KEY_CACHE_MB", kDefaultKeyCacheMB, 0, 1L << 24, &mb);
  if (s.ok()) *bytes = static_cast<size_t>(mb) << 20;
  return s;
}

Status ReadCompressMinBytes(const Environment& env, size_t* bytes) {
  long n;
  Status s = env.GetInt("PS_COMPRESS_MIN_BYTES", kDefaultCompressMinBytes, 0, 1L << 40, &n);
  if (s.ok()) *bytes = static_cast<size_t>(n);
  return s;
}

Status ParseFilterParam(const std::string& name, const std::string& param, long def, long min,
                        long max, long* out) {
  if (Environment::Trim(param).empty()) {
    *out = def;
    return Status::OK();
  }
  long n;
  if (!Environment::ParseInt(param, &n) || n < min || n > max) {
    return Status::InvalidArgument(name + " takes a number from " + std::to_string(min) + " to " +
                                   std::to_string(max) + ", not \"" + param + "\"");
  }
  *out = n;
  return Status::OK();
}

}  // namespace ps
