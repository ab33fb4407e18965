#include "van/job_key.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "van/peer_guard.h"

namespace ps {

Status LoadJobKey(const std::string& path, std::string* public_key, std::string* secret_key) {
  const std::string name = "PS_KEY_FILE=" + path;
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return Status::InvalidArgument(name + ": cannot read the job key: " + strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return Status::InvalidArgument(name + " is not a file");
  if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    return Status::InvalidArgument(name +
                                   " is open to other users; the job key must be "
                                   "readable by its owner only (chmod 600)");
  }
  std::ifstream in(path);
  if (!in) return Status::InvalidArgument(name + ": cannot read the job key: " + strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  std::string key = text.str();
  while (!key.empty() && (key.back() == '\n' || key.back() == '\r')) key.pop_back();
  std::string derived = PeerGuard::KeyOf(key);
  if (derived.empty()) {
    return Status::InvalidArgument(name +
                                   " does not hold a job key (40 Z85 characters, as "
                                   "tracker/launch.py writes them)");
  }
  *secret_key = key;
  *public_key = derived;
  return Status::OK();
}

}  // namespace ps
