// Status reports the outcome of an operation that the world can make fail: bad configuration,
// a busy port, a dead peer, a timeout, an error answered by a server. A default Status is OK.
// Statuses are values: cheap to copy, safe to pass between threads.
#ifndef PS_STATUS_H_
#define PS_STATUS_H_

#include <string>
#include <utility>

namespace ps {

class Status {
 public:
  enum class Code {
    kOk = 0,
    kInvalidArgument,  // bad configuration or bad call arguments
    kTimeout,          // a deadline passed
    kNodeFailed,       // a node the operation depends on is dead
    kIOError,          // the transport failed (bind, connect)
    kShutdown,         // the node is stopping or stopped
    kRemoteError,      // the peer answered with an error
  };

  Status() = default;
  static Status OK() { return Status(); }
  static Status InvalidArgument(std::string msg) { return Status(Code::kInvalidArgument, msg); }
  static Status Timeout(std::string msg) { return Status(Code::kTimeout, std::move(msg)); }
  static Status NodeFailed(std::string msg) { return Status(Code::kNodeFailed, std::move(msg)); }
  static Status IOError(std::string msg) { return Status(Code::kIOError, std::move(msg)); }
  static Status Shutdown(std::string msg) { return Status(Code::kShutdown, std::move(msg)); }
  static Status RemoteError(std::string msg) { return Status(Code::kRemoteError, std::move(msg)); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "OK", or the message alone: messages are written to be read by a user as they are.
  std::string ToString() const { return ok() ? "OK" : message_; }
  // The same failure with "context" before its message ("request 3 failed: " + why).
  // REQUIRES: !ok().
  Status Prefixed(const std::string& context) const { return Status(code_, context + message_); }

 private:
  Status(Code code, std::string msg) : code_(code), message_(std::move(msg)) {}

  Code code_ = Code::kOk;
  std::string message_;
};

}  // namespace ps
#endif  // PS_STATUS_H_
