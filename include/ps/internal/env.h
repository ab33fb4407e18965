// Environment answers configuration lookups: values given to the instance first, then the
// process environment. Each Postoffice has one, so nodes in one process can differ.
// Thread-safe for lookups; Init() must happen before the node starts.
#ifndef PS_INTERNAL_ENV_H_
#define PS_INTERNAL_ENV_H_

#include <cstdlib>
#include <string>
#include <unordered_map>

#include "ps/status.h"

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

  // Typed reads. Values are trimmed; "def" is taken when the variable is unset. A value that
  // does not parse, or lies outside [min, max], is an error that names the variable and says
  // what is wrong ("DMLC_NUM_WORKER=abc is not a number").
  // The trimmed value of "key", or "def" when it is not set.
  std::string GetString(const char* key, const std::string& def = "") const;
  // An integer; with "required", an unset variable is an error.
  Status GetInt(const char* key, long def, long min, long max, long* out,
                bool required = false) const;
  Status GetInt(const char* key, long def, long min, long max, int* out,
                bool required = false) const;
  // A duration in seconds, decimals allowed.
  Status GetSeconds(const char* key, double def, double min, double* out) const;

  // Text without the blanks around it.
  static std::string Trim(const std::string& text);
  // "text" as a whole decimal integer.
  static bool ParseInt(const std::string& text, long* out);

 private:
  std::unordered_map<std::string, std::string> values_;
};

}  // namespace ps
#endif  // PS_INTERNAL_ENV_H_
