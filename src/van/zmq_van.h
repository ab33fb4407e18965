// ZMQVan is the van over ZeroMQ. Each node binds one ROUTER socket that receives everything;
// it sends through one DEALER socket per peer, created on first use. Data frames go out
// zero-copy (the frame keeps a reference to the SArray buffer) and come in zero-copy (the SArray
// keeps the received ZeroMQ frame alive).
//
// Thread safety: the ROUTER socket is used by the receiving thread only (see Van::ReceiveUntil);
// each DEALER is used under its peer's mutex, so Send may be called from any thread.
#ifndef PS_VAN_ZMQ_VAN_H_
#define PS_VAN_ZMQ_VAN_H_

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>
#include <zmq.hpp>

#include "ps/internal/van.h"

namespace ps {

class ZMQVan : public Van {
 public:
  ZMQVan() = default;  // starts nothing; the context is made by Bind()
  ~ZMQVan() override { Stop(); }

 protected:
  Status Bind(int port, int* bound_port) override;
  void SetAddress(int id, const std::string& host, int port) override;
  int SendFrames(int id, const std::string& meta, const std::vector<SArray<char>>& data) override;
  bool RecvFrames(std::vector<SArray<char>>* frames, int timeout_ms) override;
  void Wake() override;
  void CloseTransport() override;

 private:
  struct Peer {
    explicit Peer(std::string addr) : address(std::move(addr)) {}
    const std::string address;
    std::mutex mu;  // protects socket
    std::unique_ptr<zmq::socket_t> socket;
  };

  // Constant after Bind().
  std::unique_ptr<zmq::context_t> context_;
  std::string wake_endpoint_;

  // The receiving thread's (after Bind).
  std::unique_ptr<zmq::socket_t> receiver_;
  int receive_timeout_ms_ = -2;

  // Protected by wake_mu_.
  std::mutex wake_mu_;
  std::unique_ptr<zmq::socket_t> waker_;

  // Protected by peers_mu_.
  std::mutex peers_mu_;
  std::unordered_map<int, std::shared_ptr<Peer>> peers_;
};

}  // namespace ps
#endif  // PS_VAN_ZMQ_VAN_H_
