#include "ps/internal/env.h"

#include <cerrno>
#include <cmath>
#include <sstream>

namespace ps {

std::string Environment::Trim(const std::string& text) {
  size_t b = text.find_first_not_of(" \t\n\r");
  size_t e = text.find_last_not_of(" \t\n\r");
  return b == std::string::npos ? "" : text.substr(b, e - b + 1);
}

bool Environment::ParseInt(const std::string& text, long* out) {
  std::string v = Trim(text);
  char* end = nullptr;
  errno = 0;
  long n = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno == ERANGE) return false;
  *out = n;
  return true;
}

std::string Environment::GetString(const char* key, const std::string& def) const {
  const char* raw = find(key);
  return raw ? Trim(raw) : def;
}

Status Environment::GetInt(const char* key, long def, long min, long max, long* out,
                           bool required) const {
  const char* raw = find(key);
  if (!raw) {
    if (required) return Status::InvalidArgument(std::string(key) + " is not set");
    *out = def;
    return Status::OK();
  }
  long n;
  if (!ParseInt(raw, &n)) {
    return Status::InvalidArgument(std::string(key) + "=" + raw + " is not a number");
  }
  if (n < min || n > max) {
    return Status::InvalidArgument(std::string(key) + "=" + raw + " is out of range (" +
                                   std::to_string(min) + " to " + std::to_string(max) + ")");
  }
  *out = n;
  return Status::OK();
}

Status Environment::GetInt(const char* key, long def, long min, long max, int* out,
                           bool required) const {
  long n = 0;
  Status s = GetInt(key, def, min, max, &n, required);
  if (s.ok()) *out = static_cast<int>(n);
  return s;
}

Status Environment::GetSeconds(const char* key, double def, double min, double* out) const {
  const char* raw = find(key);
  if (!raw) {
    *out = def;
    return Status::OK();
  }
  std::string v = Trim(raw);
  char* end = nullptr;
  double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || !std::isfinite(d)) {
    return Status::InvalidArgument(std::string(key) + "=" + raw + " is not a number of seconds");
  }
  if (d < min) {
    std::ostringstream os;
    os << key << "=" << raw << " is too small (at least " << min << ")";
    return Status::InvalidArgument(os.str());
  }
  *out = d;
  return Status::OK();
}

}  // namespace ps
