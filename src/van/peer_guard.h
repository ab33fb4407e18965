// PeerGuard binds node ids to the connections their messages arrive on, so that a peer cannot
// claim to be another node.
//
// Every node makes a random token at start: a CURVE secret key in Z85, which its connections
// carry as their ZeroMQ routing id (the receiver sees it with every message; under CURVE it
// travels encrypted). At registration the scheduler derives the token's public key and
// publishes it with the node (Node::conn_key); a receiver accepts a message that claims sender
// "n" only when its connection's routing id derives to n's key. Tokens themselves are never
// sent in a message, so another member of the job cannot take them over.
//
// The scheduler's connection to a node carries "S" followed by that node's own token, which
// only the node and the scheduler know: a node recognises its scheduler before it has the
// node list, and nobody else can speak as the scheduler.
//
// Not thread-safe: it belongs to the van's receiving thread.
#ifndef PS_VAN_PEER_GUARD_H_
#define PS_VAN_PEER_GUARD_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>

#include "ps/internal/message.h"

namespace ps {

class PeerGuard {
 public:
  // A fresh random token (40 Z85 characters).
  static std::string NewToken();
  // The Z85 public key "token" derives to, or "" when it is not a token.
  static std::string KeyOf(const std::string& token);
  // The routing id of the scheduler's connection to the node whose token is "token".
  static std::string SchedulerRoutingId(const std::string& token) { return "S" + token; }

  explicit PeerGuard(std::string token) : token_(std::move(token)) {}
  const std::string& token() const { return token_; }

  // "peer" (a routing id) is the scheduler's connection to this node.
  bool FromScheduler(const std::string& peer) const {
    return peer.size() == token_.size() + 1 && peer[0] == 'S' &&
           peer.compare(1, peer.npos, token_) == 0;
  }
  // "peer" is a connection of "node": its routing id derives to node.conn_key.
  bool IsNode(const std::string& peer, const Node& node);

 private:
  const std::string token_;
  // Routing id -> the key it derives to: each connection's key is computed once (a scalar
  // multiplication). Bounded: cleared when full, so a flood of routing ids costs time only.
  std::unordered_map<std::string, std::string> keys_;
};

// RateLimitedWarning logs its first warning, then at most one line per interval that says how
// many more there were. Not thread-safe.
class RateLimitedWarning {
 public:
  explicit RateLimitedWarning(double interval_seconds = 10) : interval_(interval_seconds) {}
  // Logs "message" now, or counts it for a later summary line "what".
  void Warn(const std::string& message, const char* what);
  uint64_t total() const { return total_; }

 private:
  const double interval_;
  uint64_t total_ = 0;
  uint64_t unlogged_ = 0;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace ps
#endif  // PS_VAN_PEER_GUARD_H_
