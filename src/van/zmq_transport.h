// ZMQTransport is the transport over ZeroMQ. Each node binds one ROUTER socket that receives
// everything; it sends through one DEALER socket per peer, created on first use. Data frames go
// out zero-copy (the frame keeps a reference to the SArray buffer) and come in zero-copy (the
// SArray keeps the received ZeroMQ frame alive).
//
// A watched peer's DEALER has a socket monitor: its connection breaking (the peer's process
// died, so the kernel closed its sockets) and being made again are reported by ReadPeerEvents.
//
// Security (Configure): every DEALER carries this node's routing id (or the one SetAddress gave
// for that peer). With the job's CURVE key, the ROUTER is a CURVE server and every DEALER a
// CURVE client, all with that one key pair, and a ZAP handler (a thread of this transport,
// answering on the context's inproc://zeromq.zap.01) admits only clients whose public key is
// the job's. ZMQ_MAXMSGSIZE on the ROUTER disconnects a peer that announces a larger message.
// A monitor on the ROUTER counts accepted, closed and refused connections.
//
// Thread safety: the ROUTER and the monitors' sockets are used by the receiving thread only;
// each DEALER is used under its peer's mutex, so Send may be called from any thread. Close
// takes close_mu_ exclusively, every Send holds it shared: a send never meets a closing socket.
// Lock order: close_mu_, then peers_mu_, then a peer's mu, then monitors_mu_.
#ifndef PS_VAN_ZMQ_TRANSPORT_H_
#define PS_VAN_ZMQ_TRANSPORT_H_

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>
#include <zmq.hpp>

#include "ps/internal/transport.h"

namespace ps {

class ZMQTransport : public Transport {
 public:
  ZMQTransport() = default;  // starts nothing; the context is made by Bind()
  ~ZMQTransport() override { Close(); }

  Status Configure(const Options& options) override;
  Status Bind(int port, int linger_ms, int* bound_port) override;
  void SetAddress(int id, const std::string& host, int port, bool watch,
                  const std::string& routing_id) override;
  void Forget(int id) override;
  Status Send(int id, const std::string& meta, const std::vector<SArray<char>>& data,
              size_t* bytes) override;
  bool Recv(std::vector<SArray<char>>* frames, std::string* peer, int timeout_ms) override;
  void ReadPeerEvents(const PeerEvent& on_event) override;
  bool HandshakeFailed(int id) override;
  ConnectionCounts connection_counts() const override;
  void Wake() override;
  void Close() override;

 private:
  struct Peer {
    Peer(std::string addr, bool w, std::string rid)
        : address(std::move(addr)), watch(w), routing_id(std::move(rid)) {}
    const std::string address;
    const bool watch;
    const std::string routing_id;  // empty: options_.identity
    std::mutex mu;                 // protects socket
    std::unique_ptr<zmq::socket_t> socket;
  };
  struct Monitor {
    int id;
    std::unique_ptr<zmq::socket_t> socket;  // PAIR, receives the DEALER's events
  };

  // Creates peer "id"'s DEALER (and its monitor when watched). REQUIRES: peer.mu held.
  void Connect(int id, Peer* peer);
  // Sets the CURVE options of a socket. REQUIRES: options_ has a key.
  void SetCurve(zmq::socket_t* socket, bool server);
  // The ZAP handler's thread: answers authentication requests until zap_stop_.
  void ServeZap(std::unique_ptr<zmq::socket_t> socket);
  // Reads the ROUTER's monitor into the counts.
  void ReadReceiverEvents();

  // Constant after Configure().
  Options options_;
  std::string public_key_bin_;  // the job's public key, 32 bytes, as ZAP requests carry it

  // Constant after Bind().
  std::unique_ptr<zmq::context_t> context_;
  std::string wake_endpoint_;
  int linger_ms_ = 0;

  // The receiving thread's (after Bind).
  std::unique_ptr<zmq::socket_t> receiver_;
  int receive_timeout_ms_ = -2;
  std::vector<Monitor> monitors_;
  std::unique_ptr<zmq::socket_t> receiver_monitor_;
  struct Handshakes {
    int failed = 0;
    bool succeeded = false;
  };
  std::map<int, Handshakes> handshakes_;  // watched peer -> its handshakes

  std::atomic<uint64_t> accepted_{0}, closed_connections_{0}, auth_refused_{0};
  std::thread zap_thread_;
  std::atomic<bool> zap_stop_{false};

  // Exclusive in Close, shared in Send; protects closed_ and the sockets' existence.
  std::shared_mutex close_mu_;
  bool closed_ = false;

  // Protected by wake_mu_.
  std::mutex wake_mu_;
  std::unique_ptr<zmq::socket_t> waker_;

  // Protected by peers_mu_.
  std::mutex peers_mu_;
  std::unordered_map<int, std::shared_ptr<Peer>> peers_;

  // Monitors made by senders, taken over by the receiving thread. Protected by monitors_mu_.
  std::mutex monitors_mu_;
  std::vector<Monitor> new_monitors_;
  int monitor_count_ = 0;
};

}  // namespace ps
#endif  // PS_VAN_ZMQ_TRANSPORT_H_
