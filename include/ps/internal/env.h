// Environment answers configuration lookups: values given to the instance first, then the
// process environment. Each Postoffice has one, so nodes in one process can differ.
// Thread-safe for lookups; Init() must happen before the node starts.
#ifndef PS_INTERNAL_ENV_H_
#define PS_INTERNAL_ENV_H_

#include <cstdlib>
#include <string>
#include <unordered_map>

namespace ps {

class Environment {
 public:
  Environment() = default;
  explicit Environment(std::unordered_map<std::string, std::string> values)
      : values_(std::move(values)) {}

  // The environment of the default node (ps::Start and friends).
  static Environment* Get() {
    static Environment* env = new Environment();  // never destroyed: no teardown at exit
    return env;
  }
  // ps-lite: sets values of the default node's environment that take precedence over the
  // process environment. REQUIRES: before ps::Start.
  static Environment* Init(const std::unordered_map<std::string, std::string>& envs) {
    Environment* env = Get();
    for (const auto& kv : envs) env->values_[kv.first] = kv.second;
    return env;
  }

  // The value of "key", or nullptr when it is not set.
  const char* find(const char* key) const {
    auto it = values_.find(key);
    return it != values_.end() ? it->second.c_str() : std::getenv(key);
  }

 private:
  std::unordered_map<std::string, std::string> values_;
};

}  // namespace ps
#endif  // PS_INTERNAL_ENV_H_
