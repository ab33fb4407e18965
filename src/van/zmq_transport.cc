#include "van/zmq_transport.h"

#include <zmq.h>

#include <cstdint>
#include <cstring>

#include "ps/internal/utils.h"

namespace ps {
namespace {

// Frames up to this size are copied rather than shared: a copy is cheaper than the
// bookkeeping of a zero-copy frame.
constexpr size_t kCopyBytes = 1024;
// Received frames must be aligned for the widest element type before they are reinterpreted.
constexpr uintptr_t kAlign = 8;
// The routing id of the socket that wakes the receiving thread.
const char kWakeId[] = "\0wake";
constexpr size_t kWakeIdSize = sizeof(kWakeId) - 1;

void ReleaseSArray(void* /*data*/, void* hint) { delete static_cast<SArray<char>*>(hint); }

SArray<char> ToSArray(zmq::message_t&& msg) {
  size_t n = msg.size();
  char* data = msg.data<char>();
  SArray<char> out;
  if (n <= kCopyBytes || reinterpret_cast<uintptr_t>(data) % kAlign != 0) {
    out.CopyFrom(data, n);
  } else {
    auto* held = new zmq::message_t(std::move(msg));
    out.reset(data, n, [held](char*) { delete held; });
  }
  return out;
}

}  // namespace

std::unique_ptr<Transport> Transport::Create(const std::string& type) {
  CHECK_EQ(type, "zmq") << "unknown transport";
  return std::unique_ptr<Transport>(new ZMQTransport());
}

Status ZMQTransport::Bind(int port, int linger_ms, int* bound_port) {
  linger_ms_ = linger_ms;
  try {
    context_.reset(new zmq::context_t(1));
    context_->set(zmq::ctxopt::max_sockets, 65536);
    receiver_.reset(new zmq::socket_t(*context_, zmq::socket_type::router));
    receiver_->set(zmq::sockopt::rcvhwm, 0);
    receiver_->set(zmq::sockopt::linger, 0);
    // Port 0 asks the OS for a free port, read back below: no probe-then-bind race.
    receiver_->bind(port > 0 ? "tcp://*:" + std::to_string(port) : std::string("tcp://*:*"));
    std::string endpoint = receiver_->get(zmq::sockopt::last_endpoint);
    *bound_port = std::stoi(endpoint.substr(endpoint.rfind(':') + 1));
    wake_endpoint_ = "inproc://slackline-van-" + std::to_string(reinterpret_cast<uintptr_t>(this));
    receiver_->bind(wake_endpoint_);
  } catch (const zmq::error_t& e) {
    receiver_.reset();
    context_.reset();
    return Status::IOError(e.what());
  }
  return Status::OK();
}

void ZMQTransport::SetAddress(int id, const std::string& host, int port, bool watch) {
  std::string address = "tcp://" + host + ":" + std::to_string(port);
  std::lock_guard<std::mutex> lk(peers_mu_);
  auto it = peers_.find(id);
  if (it != peers_.end() && it->second->address == address && it->second->watch == watch) return;
  peers_[id] = std::make_shared<Peer>(address, watch);
}

void ZMQTransport::Connect(int id, Peer* peer) {
  peer->socket.reset(new zmq::socket_t(*context_, zmq::socket_type::dealer));
  peer->socket->set(zmq::sockopt::sndhwm, 0);
  peer->socket->set(zmq::sockopt::linger, linger_ms_);
  if (peer->watch) {
    // The monitor's reader connects before the DEALER does, so no event is missed.
    std::string endpoint;
    {
      std::lock_guard<std::mutex> lk(monitors_mu_);
      endpoint = wake_endpoint_ + "-monitor-" + std::to_string(monitor_count_++);
    }
    if (zmq_socket_monitor(peer->socket->handle(), endpoint.c_str(),
                           ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED) == 0) {
      Monitor m{
          id, std::unique_ptr<zmq::socket_t>(new zmq::socket_t(*context_, zmq::socket_type::pair))};
      m.socket->set(zmq::sockopt::linger, 0);
      m.socket->connect(endpoint);
      std::lock_guard<std::mutex> lk(monitors_mu_);
      new_monitors_.push_back(std::move(m));
    } else {
      LOG(WARNING) << "cannot watch the connection to node " << id << ": "
                   << zmq_strerror(zmq_errno()) << "; only heartbeats will notice its death";
    }
  }
  peer->socket->connect(peer->address);
}

Status ZMQTransport::Send(int id, const std::string& meta, const std::vector<SArray<char>>& data,
                          size_t* bytes) {
  std::shared_lock<std::shared_mutex> closing(close_mu_);
  if (closed_ || !context_) return Status::Shutdown("this node's transport is closed");
  std::shared_ptr<Peer> peer;
  {
    std::lock_guard<std::mutex> lk(peers_mu_);
    auto it = peers_.find(id);
    if (it != peers_.end()) peer = it->second;
  }
  if (!peer) return Status::IOError("its address is unknown");
  std::lock_guard<std::mutex> lk(peer->mu);
  size_t sent = meta.size();
  try {
    if (!peer->socket) Connect(id, peer.get());
    zmq::socket_t& sock = *peer->socket;
    sock.send(zmq::buffer(meta), data.empty() ? zmq::send_flags::none : zmq::send_flags::sndmore);
    for (size_t i = 0; i < data.size(); ++i) {
      const SArray<char>& d = data[i];
      auto flags = i + 1 < data.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
      if (d.size() <= kCopyBytes) {
        sock.send(zmq::const_buffer(d.data(), d.size()), flags);
      } else {
        zmq::message_t part(d.data(), d.size(), ReleaseSArray, new SArray<char>(d));
        sock.send(part, flags);
      }
      sent += d.size();
    }
  } catch (const zmq::error_t& e) {
    return Status::IOError("sending to " + peer->address + " failed: " + e.what());
  }
  *bytes += sent;
  return Status::OK();
}

void ZMQTransport::ReadPeerEvents(const PeerEvent& on_event) {
  {
    std::lock_guard<std::mutex> lk(monitors_mu_);
    for (Monitor& m : new_monitors_) monitors_.push_back(std::move(m));
    new_monitors_.clear();
  }
  try {
    for (Monitor& m : monitors_) {
      while (true) {
        // An event is two frames: 16-bit event id and 32-bit value, then the endpoint.
        zmq::message_t head, address;
        if (!m.socket->recv(head, zmq::recv_flags::dontwait)) break;
        if (m.socket->get(zmq::sockopt::rcvmore)) (void)m.socket->recv(address);
        if (head.size() < sizeof(uint16_t)) continue;
        uint16_t event;
        memcpy(&event, head.data(), sizeof(event));
        if (event == ZMQ_EVENT_CONNECTED) on_event(m.id, true);
        if (event == ZMQ_EVENT_DISCONNECTED) on_event(m.id, false);
      }
    }
  } catch (const zmq::error_t& e) {
    LOG(WARNING) << "reading connection events failed: " << e.what();
  }
}

bool ZMQTransport::Recv(std::vector<SArray<char>>* frames, int timeout_ms) {
  frames->clear();
  if (!receiver_) return false;  // closed
  try {
    if (timeout_ms != receive_timeout_ms_) {
      receiver_->set(zmq::sockopt::rcvtimeo, timeout_ms);
      receive_timeout_ms_ = timeout_ms;
    }
    zmq::message_t routing_id;
    if (!receiver_->recv(routing_id)) return false;  // timed out
    bool wake =
        routing_id.size() == kWakeIdSize && memcmp(routing_id.data(), kWakeId, kWakeIdSize) == 0;
    while (receiver_->get(zmq::sockopt::rcvmore)) {
      zmq::message_t part;
      if (!receiver_->recv(part)) break;
      if (!wake) frames->push_back(ToSArray(std::move(part)));
    }
    return !wake;
  } catch (const zmq::error_t& e) {
    if (e.num() != EINTR) LOG(WARNING) << "receive failed: " << e.what();
    frames->clear();
    return false;
  }
}

void ZMQTransport::Wake() {
  std::lock_guard<std::mutex> lk(wake_mu_);
  if (!context_) return;
  try {
    if (!waker_) {
      waker_.reset(new zmq::socket_t(*context_, zmq::socket_type::dealer));
      waker_->set(zmq::sockopt::routing_id, zmq::const_buffer(kWakeId, kWakeIdSize));
      waker_->set(zmq::sockopt::linger, 0);
      waker_->connect(wake_endpoint_);
    }
    waker_->send(zmq::const_buffer("", 0), zmq::send_flags::dontwait);
  } catch (const zmq::error_t& e) {
    LOG(WARNING) << "cannot wake the receiving thread: " << e.what();
  }
}

void ZMQTransport::Close() {
  std::unique_lock<std::shared_mutex> closing(close_mu_);
  if (closed_) return;
  closed_ = true;
  monitors_.clear();
  {
    std::lock_guard<std::mutex> lk(monitors_mu_);
    new_monitors_.clear();
  }
  {
    std::lock_guard<std::mutex> lk(peers_mu_);
    for (auto& kv : peers_) {
      std::lock_guard<std::mutex> plk(kv.second->mu);
      kv.second->socket.reset();  // linger was set at creation: bounded wait for unsent data
    }
    peers_.clear();
  }
  std::lock_guard<std::mutex> lk(wake_mu_);
  waker_.reset();
  receiver_.reset();
  context_.reset();
}

}  // namespace ps
