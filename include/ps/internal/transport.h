// Transport moves the frames of messages between nodes: one receiving endpoint per node, and a
// way to send to every peer by its node id. The van (ps/internal/van.h) runs the control
// protocol on top of a transport; the transport knows nothing of messages, only frames.
//
// This is the seam for fault injection: the Postoffice takes its transport from a factory
// (Postoffice::set_transport_factory), and tests wrap the real one (ZeroMQ) in a transport
// that drops, delays, duplicates or reorders messages (tests/common/fault_injecting_transport.h).
//
// Security: Configure() (before Bind) gives the routing id this node's connections carry, which
// receivers see with every message and the van binds to node ids (src/van/peer_guard.h), and
// optionally the job's CURVE key: then every connection is encrypted and only peers that hold
// the key get in. It also sets the largest message a peer may send; a peer that sends a larger
// one is disconnected before its bytes are buffered.
//
// Threads: Recv() and ReadPeerEvents() run on the receiving thread only, one at a time (the van
// hands that role from thread to thread; see Van::ReceiveUntil). Send(), SetAddress() and Wake()
// may be called from any thread. Close() may be called from any thread, once the receiving thread
// no longer receives; after it Send() fails with kShutdown.
#ifndef PS_INTERNAL_TRANSPORT_H_
#define PS_INTERNAL_TRANSPORT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ps/sarray.h"
#include "ps/status.h"

namespace ps {

class Transport {
 public:
  // What the transport saw of the connection to a watched peer: "connected" false when it
  // broke, true when it was made again.
  using PeerEvent = std::function<void(int id, bool connected)>;

  struct Options {
    std::string identity;    // routing id of this node's connections (1 to 255 bytes)
    std::string public_key;  // the job's CURVE key in Z85 (40 characters); empty: no CURVE
    std::string secret_key;
    int64_t max_message_bytes = -1;  // largest message accepted; -1: no limit
  };
  // What the receiving endpoint saw of incoming connections, for counters and tests.
  struct ConnectionCounts {
    uint64_t accepted = 0;      // connections accepted
    uint64_t closed = 0;        // of those, closed again (by either side, a limit included)
    uint64_t auth_refused = 0;  // refused in the security handshake (no or a wrong key)
  };

  // The transport named "type"; "zmq" is the one there is. Starts nothing.
  static std::unique_ptr<Transport> Create(const std::string& type);
  virtual ~Transport() = default;

  // Sets identity, key and limits. REQUIRES: before Bind.
  virtual Status Configure(const Options& options) = 0;
  // Binds the receiving endpoint on "port" (0: one the OS chooses) and reports the bound port.
  // Closing waits at most "linger_ms" for unsent messages.
  virtual Status Bind(int port, int linger_ms, int* bound_port) = 0;
  // Records where node "id" listens; a later Send to "id" connects there. With "watch", the
  // connection is watched and its breaking reported by ReadPeerEvents. The connection carries
  // "routing_id" (empty: the identity given to Configure). Thread-safe.
  virtual void SetAddress(int id, const std::string& host, int port, bool watch,
                          const std::string& routing_id = "") = 0;
  // Closes the connection to node "id" (unsent messages get the linger) and forgets its
  // address. Thread-safe.
  virtual void Forget(int id) = 0;
  // Sends the frames [meta][data...] to node "id" and adds their size to "bytes". Fails, saying
  // why, when the peer is unknown, the transport is closed or the send itself fails.
  // Thread-safe.
  virtual Status Send(int id, const std::string& meta, const std::vector<SArray<char>>& data,
                      size_t* bytes) = 0;
  // Waits up to "timeout_ms" for one message and returns its frames and the routing id of the
  // connection it came on ("peer"); false on timeout or on Wake(). REQUIRES: the receiving
  // thread.
  virtual bool Recv(std::vector<SArray<char>>* frames, std::string* peer, int timeout_ms) = 0;
  // Passes what happened to the watched connections since the last call to "on_event", without
  // waiting. Kept off Recv, whose path every message takes. REQUIRES: the receiving thread.
  virtual void ReadPeerEvents(const PeerEvent& on_event) = 0;
  // True once the connection to watched peer "id" failed its security handshake: the peer
  // refused this node's key, or holds another one. REQUIRES: the receiving thread.
  virtual bool HandshakeFailed(int id) = 0;
  // Counts of incoming connections so far. Thread-safe.
  virtual ConnectionCounts connection_counts() const = 0;
  // Makes a blocked Recv() return. Thread-safe.
  virtual void Wake() = 0;
  // Closes every endpoint, waiting at most the linger for unsent messages. Idempotent.
  virtual void Close() = 0;
};

}  // namespace ps
#endif  // PS_INTERNAL_TRANSPORT_H_
