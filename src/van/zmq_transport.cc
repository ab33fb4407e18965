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

Status ZMQTransport::Configure(const Options& options) {
  if (options.identity.empty() || options.identity.size() > 255 || options.identity[0] == '\0') {
    return Status::InvalidArgument("a routing id has 1 to 255 bytes and no leading zero byte");
  }
  if (!options.public_key.empty()) {
    if (!zmq_has("curve")) {
      return Status::InvalidArgument(
          "this libzmq has no CURVE security; run without PS_KEY_FILE (unauthenticated)");
    }
    uint8_t bin[32];
    if (options.public_key.size() != 40 || options.secret_key.size() != 40 ||
        !zmq_z85_decode(bin, options.public_key.c_str())) {
      return Status::InvalidArgument("the job key is not a Z85 CURVE key of 40 characters");
    }
    public_key_bin_.assign(reinterpret_cast<const char*>(bin), sizeof(bin));
  }
  options_ = options;
  return Status::OK();
}

void ZMQTransport::SetCurve(zmq::socket_t* socket, bool server) {
  if (server) {
    socket->set(zmq::sockopt::curve_server, 1);
    socket->set(zmq::sockopt::zap_domain, "slackline");
  } else {
    socket->set(zmq::sockopt::curve_serverkey, options_.public_key);
  }
  socket->set(zmq::sockopt::curve_publickey, options_.public_key);
  socket->set(zmq::sockopt::curve_secretkey, options_.secret_key);
}

void ZMQTransport::ServeZap(std::unique_ptr<zmq::socket_t> socket) {
  // A request is: version, request id, domain, address, routing id, mechanism, credentials
  // (for CURVE the client's 32-byte public key). The reply: version, request id, status code,
  // status text, user id, metadata.
  while (!zap_stop_.load()) {
    zmq::pollitem_t item{socket->handle(), 0, ZMQ_POLLIN, 0};
    try {
      if (zmq::poll(&item, 1, std::chrono::milliseconds(100)) <= 0) continue;
      std::vector<zmq::message_t> request;
      do {
        request.emplace_back();
        if (!socket->recv(request.back())) break;
      } while (socket->get(zmq::sockopt::rcvmore));
      bool ok = request.size() >= 7 && request[5].to_string() == "CURVE" &&
                request[6].to_string() == public_key_bin_;
      if (!ok) ++auth_refused_;
      const std::string id = request.size() > 1 ? request[1].to_string() : "";
      socket->send(zmq::str_buffer("1.0"), zmq::send_flags::sndmore);
      socket->send(zmq::buffer(id), zmq::send_flags::sndmore);
      socket->send(ok ? zmq::str_buffer("200") : zmq::str_buffer("400"), zmq::send_flags::sndmore);
      socket->send(ok ? zmq::str_buffer("OK") : zmq::str_buffer("not the job's key"),
                   zmq::send_flags::sndmore);
      socket->send(zmq::str_buffer(""), zmq::send_flags::sndmore);
      socket->send(zmq::str_buffer(""), zmq::send_flags::none);
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) return;
      LOG(WARNING) << "the authentication handler failed: " << e.what();
    }
  }
}

Status ZMQTransport::Bind(int port, int linger_ms, int* bound_port) {
  linger_ms_ = linger_ms;
  try {
    context_.reset(new zmq::context_t(1));
    context_->set(zmq::ctxopt::max_sockets, 65536);
    if (!options_.public_key.empty()) {
      // Bound before the ROUTER exists, so that no connection comes in unchecked.
      std::unique_ptr<zmq::socket_t> zap(new zmq::socket_t(*context_, zmq::socket_type::rep));
      zap->set(zmq::sockopt::linger, 0);
      zap->bind("inproc://zeromq.zap.01");
      zap_stop_ = false;
      zap_thread_ = std::thread(&ZMQTransport::ServeZap, this, std::move(zap));
    }
    receiver_.reset(new zmq::socket_t(*context_, zmq::socket_type::router));
    receiver_->set(zmq::sockopt::rcvhwm, 0);
    receiver_->set(zmq::sockopt::linger, 0);
    if (options_.max_message_bytes > 0) {
      receiver_->set(zmq::sockopt::maxmsgsize, options_.max_message_bytes);
    }
    if (!options_.public_key.empty()) SetCurve(receiver_.get(), true);
    const std::string monitor_endpoint =
        "inproc://slackline-receiver-monitor-" + std::to_string(reinterpret_cast<uintptr_t>(this));
    if (zmq_socket_monitor(
            receiver_->handle(), monitor_endpoint.c_str(),
            ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) == 0) {
      receiver_monitor_.reset(new zmq::socket_t(*context_, zmq::socket_type::pair));
      receiver_monitor_->set(zmq::sockopt::linger, 0);
      receiver_monitor_->connect(monitor_endpoint);
    }
    // Port 0 asks the OS for a free port, read back below: no probe-then-bind race.
    receiver_->bind(port > 0 ? "tcp://*:" + std::to_string(port) : std::string("tcp://*:*"));
    std::string endpoint = receiver_->get(zmq::sockopt::last_endpoint);
    *bound_port = std::stoi(endpoint.substr(endpoint.rfind(':') + 1));
    wake_endpoint_ = "inproc://slackline-van-" + std::to_string(reinterpret_cast<uintptr_t>(this));
    receiver_->bind(wake_endpoint_);
  } catch (const zmq::error_t& e) {
    receiver_monitor_.reset();
    receiver_.reset();
    zap_stop_ = true;
    if (zap_thread_.joinable()) zap_thread_.join();
    context_.reset();
    return Status::IOError(e.what());
  }
  return Status::OK();
}

void ZMQTransport::SetAddress(int id, const std::string& host, int port, bool watch,
                              const std::string& routing_id) {
  std::string address = "tcp://" + host + ":" + std::to_string(port);
  std::lock_guard<std::mutex> lk(peers_mu_);
  auto it = peers_.find(id);
  if (it != peers_.end() && it->second->address == address && it->second->watch == watch &&
      it->second->routing_id == routing_id) {
    return;
  }
  peers_[id] = std::make_shared<Peer>(address, watch, routing_id);
}

void ZMQTransport::Forget(int id) {
  std::shared_ptr<Peer> peer;
  {
    std::lock_guard<std::mutex> lk(peers_mu_);
    auto it = peers_.find(id);
    if (it == peers_.end()) return;
    peer = it->second;
    peers_.erase(it);
  }
  std::lock_guard<std::mutex> lk(peer->mu);
  peer->socket.reset();  // linger was set at creation: bounded wait for unsent data
}

void ZMQTransport::Connect(int id, Peer* peer) {
  peer->socket.reset(new zmq::socket_t(*context_, zmq::socket_type::dealer));
  peer->socket->set(zmq::sockopt::sndhwm, 0);
  peer->socket->set(zmq::sockopt::linger, linger_ms_);
  const std::string& rid = peer->routing_id.empty() ? options_.identity : peer->routing_id;
  if (!rid.empty()) peer->socket->set(zmq::sockopt::routing_id, zmq::buffer(rid));
  if (!options_.public_key.empty()) SetCurve(peer->socket.get(), false);
  if (peer->watch) {
    // The monitor's reader connects before the DEALER does, so no event is missed.
    std::string endpoint;
    {
      std::lock_guard<std::mutex> lk(monitors_mu_);
      endpoint = wake_endpoint_ + "-monitor-" + std::to_string(monitor_count_++);
    }
    if (zmq_socket_monitor(
            peer->socket->handle(), endpoint.c_str(),
            ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) == 0) {
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
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) handshakes_[m.id].succeeded = true;
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL ||
            event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
            event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
          ++handshakes_[m.id].failed;
        }
        // A connection the peer closes before the handshake completed means the peer could
        // not take our handshake: it holds another key, or wants one and we have none (a
        // CURVE server does not always say so before it closes).
        if (event == ZMQ_EVENT_DISCONNECTED && !handshakes_[m.id].succeeded) {
          ++handshakes_[m.id].failed;
        }
      }
    }
  } catch (const zmq::error_t& e) {
    LOG(WARNING) << "reading connection events failed: " << e.what();
  }
  ReadReceiverEvents();
}

void ZMQTransport::ReadReceiverEvents() {
  if (!receiver_monitor_) return;
  try {
    while (true) {
      zmq::message_t head, address;
      if (!receiver_monitor_->recv(head, zmq::recv_flags::dontwait)) break;
      if (receiver_monitor_->get(zmq::sockopt::rcvmore)) (void)receiver_monitor_->recv(address);
      if (head.size() < sizeof(uint16_t)) continue;
      uint16_t event;
      memcpy(&event, head.data(), sizeof(event));
      if (event == ZMQ_EVENT_ACCEPTED) ++accepted_;
      if (event == ZMQ_EVENT_DISCONNECTED) ++closed_connections_;
      if (event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL ||
          event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
        ++auth_refused_;  // the ZAP handler counts the refusals it decides itself
      }
    }
  } catch (const zmq::error_t& e) {
    LOG(WARNING) << "reading connection events failed: " << e.what();
  }
}

bool ZMQTransport::HandshakeFailed(int id) {
  auto it = handshakes_.find(id);
  // Two failures: one may be a peer that restarted mid-handshake.
  return it != handshakes_.end() && !it->second.succeeded && it->second.failed >= 2;
}

Transport::ConnectionCounts ZMQTransport::connection_counts() const {
  ConnectionCounts c;
  c.accepted = accepted_.load();
  c.closed = closed_connections_.load();
  c.auth_refused = auth_refused_.load();
  return c;
}

bool ZMQTransport::Recv(std::vector<SArray<char>>* frames, std::string* peer, int timeout_ms) {
  frames->clear();
  peer->clear();
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
    if (!wake) peer->assign(routing_id.data<char>(), routing_id.size());
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
  receiver_monitor_.reset();
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
  zap_stop_ = true;
  if (zap_thread_.joinable()) zap_thread_.join();
  context_.reset();
}

}  // namespace ps
