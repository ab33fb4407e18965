#include "van/peer_guard.h"

#include <zmq.h>

#include "ps/base.h"

namespace ps {
namespace {

// At most this many connections' keys are remembered.
constexpr size_t kMaxKeys = 4096;

}  // namespace

std::string PeerGuard::NewToken() {
  char public_key[41], secret_key[41];
  CHECK_EQ(zmq_curve_keypair(public_key, secret_key), 0)
      << "cannot make a connection token: " << zmq_strerror(zmq_errno());
  return std::string(secret_key, 40);
}

std::string PeerGuard::KeyOf(const std::string& token) {
  if (token.size() != 40) return "";
  for (char c : token) {
    // Z85's alphabet; zmq_curve_public does not check it.
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          std::string(".-:+=^!/*?&<>()[]{}@%$#").find(c) != std::string::npos)) {
      return "";
    }
  }
  char public_key[41];
  if (zmq_curve_public(public_key, token.c_str()) != 0) return "";
  return std::string(public_key, 40);
}

bool PeerGuard::IsNode(const std::string& peer, const Node& node) {
  if (node.conn_key.empty()) return false;
  auto it = keys_.find(peer);
  if (it == keys_.end()) {
    if (keys_.size() >= kMaxKeys) keys_.clear();
    it = keys_.emplace(peer, KeyOf(peer)).first;
  }
  return it->second == node.conn_key;
}

void RateLimitedWarning::Warn(const std::string& message, const char* what) {
  ++total_;
  auto now = std::chrono::steady_clock::now();
  if (total_ > 1 && std::chrono::duration<double>(now - last_).count() < interval_) {
    ++unlogged_;
    return;
  }
  if (unlogged_ > 0) {
    LOG(WARNING) << unlogged_ << " more " << what << " in the last "
                 << static_cast<int>(std::chrono::duration<double>(now - last_).count())
                 << " s; the latest: " << message;
  } else {
    LOG(WARNING) << message;
  }
  unlogged_ = 0;
  last_ = now;
}

}  // namespace ps
