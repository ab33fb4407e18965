#include "ps/internal/van.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "message/codec.h"
#include "ps/base.h"

namespace ps {
namespace {

// How long Register() on a node waits beyond PS_START_TIMEOUT: the scheduler's own deadline,
// whose message says which nodes are missing, should arrive first.
constexpr double kStartGraceSeconds = 5;

// Data messages kept while this node waits for the node list, at most.
constexpr size_t kMaxEarlyMessages = 1 << 16;

// The van whose receive socket the current thread holds, if any (see Van::ReceiveUntil).
thread_local const Van* receiving_van = nullptr;

int GroupOf(Node::Role role) {
  switch (role) {
    case Node::SCHEDULER:
      return kScheduler;
    case Node::SERVER:
      return kServerGroup;
    default:
      return kWorkerGroup;
  }
}

std::string FormatSeconds(double s) {
  std::ostringstream os;
  os << std::round(s * 10) / 10;
  return os.str();
}

// The IPv4 address of interface "name", or "" if it has none.
std::string InterfaceAddress(const std::string& name) {
  struct ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return "";
  std::string found;
  for (struct ifaddrs* ifa = list; ifa; ifa = ifa->ifa_next) {
    if (!ifa->ifa_addr || ifa->ifa_addr->sa_family != AF_INET || name != ifa->ifa_name) continue;
    char buf[INET_ADDRSTRLEN];
    auto* sin = reinterpret_cast<struct sockaddr_in*>(ifa->ifa_addr);
    if (inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf))) found = buf;
    break;
  }
  freeifaddrs(list);
  return found;
}

// The local address on the route to host:port: the one the scheduler can reach us at.
// Connecting a UDP socket sends nothing; it only picks the route.
Status RouteAddress(const std::string& host, int port, std::string* addr) {
  struct addrinfo hints = {};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  struct addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res) {
    return Status::InvalidArgument("DMLC_PS_ROOT_URI=" + host + " does not resolve to an address");
  }
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in local = {};
  socklen_t len = sizeof(local);
  bool ok = fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) == 0 &&
            getsockname(fd, reinterpret_cast<struct sockaddr*>(&local), &len) == 0;
  if (fd >= 0) close(fd);
  freeaddrinfo(res);
  char buf[INET_ADDRSTRLEN];
  if (ok && inet_ntop(AF_INET, &local.sin_addr, buf, sizeof(buf))) {
    *addr = buf;
  } else {
    *addr = "127.0.0.1";
  }
  return Status::OK();
}

}  // namespace

const char* DropReasonName(DropReason r) {
  static const char* kNames[] = {"no frames",
                                 "bad meta",
                                 "frame count mismatch",
                                 "frame size mismatch",
                                 "bad control message",
                                 "unknown sender or receiver",
                                 "sender already dead",
                                 "no customer can take it"};
  return kNames[static_cast<int>(r)];
}

Van::Van() = default;

Van::~Van() = default;

Status Van::Start(const VanOptions& options, DataHandler on_data, FailureHandler on_failure) {
  options_ = options;
  on_data_ = std::move(on_data);
  on_failure_ = std::move(on_failure);
  is_scheduler_ = options.role == Node::SCHEDULER;

  Node me;
  me.role = options.role;
  if (is_scheduler_) {
    me.hostname = options.scheduler_host;
  } else if (!options.node_host.empty()) {
    me.hostname = options.node_host;
  } else if (!options.interface.empty()) {
    me.hostname = InterfaceAddress(options.interface);
    if (me.hostname.empty()) {
      return Status::InvalidArgument("DMLC_INTERFACE=" + options.interface +
                                     ": no such interface with an IPv4 address");
    }
  } else {
    Status s = RouteAddress(options.scheduler_host, options.scheduler_port, &me.hostname);
    if (!s.ok()) return s;
  }

  int port = 0;
  Status s = Bind(is_scheduler_ ? options.scheduler_port : 0, &port);
  if (!s.ok()) {
    if (is_scheduler_) {
      return Status::IOError(
          "cannot listen on DMLC_PS_ROOT_PORT=" + std::to_string(options.scheduler_port) + ": " +
          s.message() + " (is another job or process using the port?)");
    }
    return s;
  }
  me.port = port;
  if (is_scheduler_) me.id = kScheduler;
  my_id_ = me.id;
  {
    std::lock_guard<std::mutex> lk(mu_);
    my_node_ = me;
  }
  if (!is_scheduler_) SetAddress(kScheduler, options.scheduler_host, options.scheduler_port);
  if (options.verbose >= 1) {
    LOG(INFO) << RoleName(me.role) << " listening on " << me.hostname << ":" << me.port;
  }

  start_time_ = Clock::now();
  last_heard_scheduler_ = start_time_;
  thread_ = std::thread(&Van::Loop, this);
  running_ = true;
  return Status::OK();
}

void Van::Stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lk(lead_mu_);
    stop_ = true;
  }
  lead_cv_.notify_all();
  Wake();
  thread_.join();
  closed_ = true;
  if (receiving_van == this) {
    // Called from a handler on the receiving thread (a failure that ends the process): the
    // socket is this thread's, and its receive loop ends on stop_.
    CloseTransport();
  } else {
    // A caller may still hold the socket; it gives it up within one receive timeout.
    std::lock_guard<std::mutex> rl(recv_mu_);
    CloseTransport();
  }
  std::lock_guard<std::mutex> lk(mu_);
  cv_.notify_all();
}

Status Van::Register(int customer_id) {
  std::unique_lock<std::mutex> lk(mu_);
  double wait = options_.start_timeout + kStartGraceSeconds;
  if (!is_scheduler_ && ready_) {
    // The scheduler counts customers: one that comes after the job started is not counted.
    return Status::InvalidArgument("customer " + std::to_string(customer_id) +
                                   " started after the job had started; start every customer of "
                                   "a process concurrently, before any of them proceeds");
  }
  if (!is_scheduler_) {
    Message msg;
    msg.meta.recver = kScheduler;
    msg.meta.request = true;
    msg.meta.control.cmd = Control::ADD_NODE;
    Node me = my_node_;
    me.customer_id = customer_id;
    msg.meta.control.node.push_back(me);
    lk.unlock();
    if (Send(msg) < 0) return Status::IOError("cannot send the registration to the scheduler");
    lk.lock();
  }
  auto deadline = start_time_ +
                  std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(wait));
  cv_.wait_until(lk, deadline, [&] { return ready_ || !fatal_.ok() || stop_; });
  if (!fatal_.ok()) return fatal_;
  if (ready_) return Status::OK();
  if (stop_) return Status::Shutdown("the node stopped during start-up");
  return Status::Timeout(
      "start-up timed out: no node list from the scheduler at " + options_.scheduler_host + ":" +
      std::to_string(options_.scheduler_port) + " after " + FormatSeconds(wait) +
      " s; is the scheduler running? (PS_START_TIMEOUT=" + FormatSeconds(options_.start_timeout) +
      ")");
}

Status Van::GroupStatusLocked(int group) const {
  for (const auto& kv : dead_) {
    auto it = nodes_.find(kv.first);
    // Every barrier goes through the scheduler, so its death fails all of them.
    if (kv.first == kScheduler || it == nodes_.end() || (GroupOf(it->second.role) & group)) {
      return kv.second;
    }
  }
  return Status::OK();
}

Status Van::Barrier(int customer_id, int group, bool finalize) {
  if (group < 1 || group > kScheduler + kServerGroup + kWorkerGroup) {
    return Status::InvalidArgument("barrier group " + std::to_string(group) +
                                   " is not a sum of kScheduler, kServerGroup, kWorkerGroup");
  }
  std::unique_lock<std::mutex> lk(mu_);
  if (!ready_) return Status::Shutdown("barrier on a node that has not started");
  if (!fatal_.ok()) return fatal_;
  if (!(GroupOf(my_node_.role) & group)) {
    return Status::InvalidArgument("barrier group " + std::to_string(group) + " does not include " +
                                   my_node_.ShortName());
  }
  Status dead = GroupStatusLocked(group);
  if (!dead.ok()) return Status::NodeFailed("barrier cannot complete: " + dead.message());
  barrier_result_.erase(customer_id);
  lk.unlock();

  Message msg;
  msg.meta.recver = kScheduler;
  msg.meta.request = true;
  msg.meta.customer_id = customer_id;
  msg.meta.control.cmd = Control::BARRIER;
  msg.meta.control.barrier_group = group;
  msg.meta.control.finalize = finalize;
  if (Send(msg) < 0) return Status::IOError("cannot send a barrier request to the scheduler");

  lk.lock();
  cv_.wait(lk, [&] {
    return barrier_result_.count(customer_id) || !fatal_.ok() || stop_ ||
           !GroupStatusLocked(group).ok();
  });
  auto it = barrier_result_.find(customer_id);
  if (it != barrier_result_.end()) {
    Status s = *it->second;
    barrier_result_.erase(it);
    if (s.ok() && finalize && group == kScheduler + kServerGroup + kWorkerGroup) finalizing_ = true;
    return s;
  }
  if (!fatal_.ok()) return fatal_;
  if (stop_) return Status::Shutdown("the node stopped during a barrier");
  return Status::NodeFailed("barrier cannot complete: " + GroupStatusLocked(group).message());
}

int Van::Send(Message& msg) {
  if (closed_) return -1;
  const int me = my_id_.load(std::memory_order_acquire);
  msg.meta.sender = me;
  if (options_.verbose >= 2) LOG(INFO) << "send " << msg.DebugString();
  if (msg.meta.recver == me && me != Node::kEmpty) {
    int bytes = static_cast<int>(msg.data_bytes());
    {
      std::lock_guard<std::mutex> lk(local_mu_);
      local_.push_back(msg);
    }
    Wake();
    return bytes;
  }
  std::string meta;
  EncodeMeta(msg.meta, &meta);
  int bytes = SendFrames(msg.meta.recver, meta, msg.data);
  if (bytes > 0) {
    bytes_sent_ += bytes;
    CountTraffic(msg.meta.recver, bytes, true);
  }
  return bytes;
}

void Van::CountTraffic(int peer, uint64_t bytes, bool sent) {
  std::lock_guard<std::mutex> lk(traffic_mu_);
  PeerTraffic& t = traffic_[peer];
  (sent ? t.bytes_sent : t.bytes_received) += bytes;
  ++(sent ? t.messages_sent : t.messages_received);
}

std::map<int, Van::PeerTraffic> Van::peer_traffic() const {
  std::lock_guard<std::mutex> lk(traffic_mu_);
  return traffic_;
}

void Van::SendControl(int recver, Control control, bool request, int customer_id) {
  Message msg;
  msg.meta.recver = recver;
  msg.meta.request = request;
  msg.meta.customer_id = customer_id;
  msg.meta.control = std::move(control);
  Send(msg);
}

void Van::Loop() {
  // The tick runs heartbeats and deadlines; twice per heartbeat interval is fine enough.
  double tick = options_.heartbeat_interval > 0 ? options_.heartbeat_interval / 2 : 0.2;
  tick_ms_ = std::max(5, std::min(200, static_cast<int>(tick * 1000)));
  {
    std::lock_guard<std::mutex> rl(recv_mu_);
    next_tick_ = Clock::now();
  }
  while (!stop_) {
    if (caller_receives_.load(std::memory_order_acquire)) {
      // A waiting caller has the socket; it hands it back when its request finished.
      std::unique_lock<std::mutex> lk(lead_mu_);
      lead_cv_.wait(lk, [&] { return !caller_receives_ || stop_; });
      continue;
    }
    std::lock_guard<std::mutex> rl(recv_mu_);
    receiving_van = this;
    ReceiveOnce();
    receiving_van = nullptr;
  }
}

void Van::ReceiveOnce() {
  auto now = Clock::now();
  int timeout_ms = static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(next_tick_ - now).count());
  std::vector<SArray<char>> frames;
  if (RecvFrames(&frames, std::max(0, std::min(tick_ms_, timeout_ms)))) {
    ProcessFrames(std::move(frames));
  }
  std::deque<Message> local;
  {
    std::lock_guard<std::mutex> lk(local_mu_);
    local.swap(local_);
  }
  for (Message& m : local) Dispatch(std::move(m));
  now = Clock::now();
  if (now >= next_tick_) {
    Tick();
    next_tick_ = now + std::chrono::milliseconds(tick_ms_);
  }
}

bool Van::ReceiveUntil(const std::function<bool()>& done) {
  if (!running_ || stop_ || receiving_van == this) return false;
  // One caller at a time; the others sleep until their answer is delivered, as without this.
  if (caller_receives_.exchange(true, std::memory_order_acq_rel)) return false;
  Wake();  // the van thread leaves its receive and waits on lead_cv_
  {
    std::lock_guard<std::mutex> rl(recv_mu_);
    receiving_van = this;
    while (!stop_ && !done()) ReceiveOnce();
    receiving_van = nullptr;
  }
  {
    std::lock_guard<std::mutex> lk(lead_mu_);
    caller_receives_ = false;
  }
  lead_cv_.notify_one();
  return true;
}

bool Van::IsReceivingThread() const { return receiving_van == this; }

void Van::Drop(DropReason r, const std::string& detail) {
  int i = static_cast<int>(r);
  ++dropped_[i];
  std::lock_guard<std::mutex> lk(mu_);
  if (logged_drop_[i]) return;
  logged_drop_[i] = true;
  LOG(WARNING) << "dropped a message: " << DropReasonName(r) << ": " << detail
               << " (further drops of this kind are counted, not logged)";
}

uint64_t Van::dropped_total() const {
  uint64_t n = 0;
  for (const auto& d : dropped_) n += d.load();
  return n;
}

void Van::ProcessFrames(std::vector<SArray<char>>&& frames) {
  if (frames.empty()) return Drop(DropReason::kEmpty, "");
  size_t bytes = 0;
  for (const auto& f : frames) bytes += f.size();
  bytes_received_ += bytes;

  Message msg;
  Status s = DecodeMeta(frames[0].data(), frames[0].size(), &msg.meta);
  if (!s.ok()) return Drop(DropReason::kBadMeta, s.message());
  CountTraffic(msg.meta.sender, bytes, false);
  if (frames.size() - 1 != msg.meta.data_type.size()) {
    return Drop(DropReason::kFrameCount, std::to_string(frames.size() - 1) + " data frames, " +
                                             std::to_string(msg.meta.data_type.size()) +
                                             " data types");
  }
  for (size_t i = 1; i < frames.size(); ++i) {
    if (frames[i].size() % DataTypeSize(msg.meta.data_type[i - 1]) != 0) {
      return Drop(DropReason::kFrameSize, "frame " + std::to_string(i) + " has " +
                                              std::to_string(frames[i].size()) + " bytes");
    }
  }
  msg.data.assign(std::make_move_iterator(frames.begin() + 1),
                  std::make_move_iterator(frames.end()));
  Dispatch(std::move(msg));
}

void Van::Dispatch(Message&& msg) {
  if (options_.verbose >= 2) LOG(INFO) << "recv " << msg.DebugString();
  if (!msg.meta.control.empty()) {
    if (is_scheduler_) {
      ProcessControlAtScheduler(msg);
    } else {
      ProcessControlAtNode(msg);
    }
    return;
  }
  if (!ready_) {
    // A peer that got the node list first may already send; keep it for when we have it.
    // Before the node list nobody may send much, so a flood is dropped, not kept.
    if (early_.size() >= kMaxEarlyMessages) {
      return Drop(DropReason::kUnknownSender, "data before this node joined the job");
    }
    early_.push_back(std::move(msg));
    return;
  }
  // nodes_ and dead_ change on the receiving thread only, so reading them here needs no lock.
  int sender = msg.meta.sender;
  if (!nodes_.count(sender) || msg.meta.recver != my_node_.id) {
    return Drop(DropReason::kUnknownSender, "from node " + std::to_string(sender) + " to node " +
                                                std::to_string(msg.meta.recver));
  }
  if (dead_.count(sender)) {
    return Drop(DropReason::kDeadSender, nodes_[sender].ShortName());
  }
  on_data_(std::move(msg));
}

void Van::ProcessControlAtScheduler(Message& msg) {
  const Control& ctl = msg.meta.control;
  auto seen = last_seen_.find(msg.meta.sender);
  if (seen != last_seen_.end()) seen->second = Clock::now();
  switch (ctl.cmd) {
    case Control::ADD_NODE:
      if (msg.meta.request) return ProcessAddNode(msg);
      break;
    case Control::BARRIER:
      if (msg.meta.request) return ProcessBarrier(msg);
      // The scheduler's own barrier, released by itself.
      if (msg.meta.sender == kScheduler) {
        return SetBarrierResult(msg.meta.customer_id,
                                ctl.barrier_ok ? Status::OK() : Status::NodeFailed(ctl.reason));
      }
      break;
    case Control::HEARTBEAT:
      ++heartbeats_received_;
      if (msg.meta.request && seen != last_seen_.end()) {
        ++heartbeats_sent_;
        Control ack;
        ack.cmd = Control::HEARTBEAT;
        return SendControl(msg.meta.sender, ack, false);
      }
      break;
    default:
      break;
  }
  Drop(DropReason::kBadControl, ctl.DebugString() + " from " + std::to_string(msg.meta.sender));
}

void Van::ProcessAddNode(const Message& msg) {
  const Control& ctl = msg.meta.control;
  if (ctl.node.size() != 1 || ctl.node[0].role == Node::SCHEDULER || ctl.node[0].port <= 0 ||
      ctl.node[0].port > 65535 || ctl.node[0].hostname.empty()) {
    return Drop(DropReason::kBadControl, "malformed registration " + ctl.DebugString());
  }
  Node node = ctl.node[0];
  int r = node.role == Node::SERVER ? 0 : 1;
  int expected = r == 0 ? options_.num_servers : options_.num_workers;
  const char* role = RoleName(node.role);
  std::string key = node.hostname + ":" + std::to_string(node.port);

  if (ready_ || !fatal_.ok() || registered_count_[r] >= expected) {
    // One node too many: tell it so, on a throwaway id, rather than let it wait for nothing.
    int id = --next_reject_id_;
    SetAddress(id, node.hostname, node.port);
    Control bye;
    bye.cmd = Control::TERMINATE;
    bye.reason = std::string("the job already has its ") + std::to_string(expected) + " " + role +
                 "s (DMLC_NUM_" + (r == 0 ? "SERVER" : "WORKER") + "=" + std::to_string(expected) +
                 "); the " + role + " at " + key + " is one too many";
    LOG(WARNING) << bye.reason;
    return SendControl(id, bye, false);
  }

  auto it = registered_.find(key);
  if (it == registered_.end()) {
    node.id = r == 0 ? 8 + 2 * node_count_[0] : 9 + 2 * node_count_[1];
    ++node_count_[r];
    SetAddress(node.id, node.hostname, node.port);
    it = registered_.emplace(key, Registration{node, 0}).first;
  }
  ++it->second.customers;
  ++registered_count_[r];
  if (options_.verbose >= 1) {
    LOG(INFO) << "registered " << it->second.node.DebugString() << " customer " << node.customer_id
              << " (" << registered_count_[0] << " of " << options_.num_servers << " servers, "
              << registered_count_[1] << " of " << options_.num_workers << " workers)";
  }
  if (registered_count_[0] < options_.num_servers || registered_count_[1] < options_.num_workers) {
    return;
  }

  // Everyone is here: announce the node list, scheduler first.
  Control list;
  list.cmd = Control::ADD_NODE;
  {
    std::lock_guard<std::mutex> lk(mu_);
    nodes_[kScheduler] = my_node_;
    for (const auto& kv : registered_) nodes_[kv.second.node.id] = kv.second.node;
    for (const auto& kv : nodes_) list.node.push_back(kv.second);
  }
  auto now = Clock::now();
  for (const auto& kv : registered_) {
    SendControl(kv.second.node.id, list, false);
    last_seen_[kv.second.node.id] = now;
  }
  if (options_.verbose >= 1) {
    LOG(INFO) << "all " << registered_.size() << " nodes registered; the job starts";
  }
  std::lock_guard<std::mutex> lk(mu_);
  ready_ = true;
  cv_.notify_all();
}

int Van::Participants(int group) const {
  return ((group & kScheduler) ? 1 : 0) + ((group & kServerGroup) ? options_.num_servers : 0) +
         ((group & kWorkerGroup) ? options_.num_workers : 0);
}

void Van::ProcessBarrier(const Message& msg) {
  const Control& ctl = msg.meta.control;
  int group = ctl.barrier_group;
  auto node = nodes_.find(msg.meta.sender);
  if (!ready_ || group < 1 || group > 7 || node == nodes_.end() ||
      !(GroupOf(node->second.role) & group)) {
    return Drop(DropReason::kBadControl, "barrier request " + ctl.DebugString() + " from node " +
                                             std::to_string(msg.meta.sender));
  }
  auto& entered = barriers_[group];
  entered.push_back({msg.meta.sender, msg.meta.customer_id, ctl.finalize});
  if (static_cast<int>(entered.size()) < Participants(group)) return;

  bool final_all = group == 7;
  for (const auto& e : entered) final_all = final_all && e.finalize;
  // Once everyone is in the final barrier, nodes may exit at any moment: stop watching them.
  if (final_all) finalizing_ = true;
  for (const auto& e : entered) {
    Control done;
    done.cmd = Control::BARRIER;
    done.barrier_group = group;
    done.finalize = e.finalize;
    SendControl(e.node_id, done, false, e.customer_id);
  }
  barriers_.erase(group);
}

void Van::SetBarrierResult(int customer_id, const Status& s) {
  std::lock_guard<std::mutex> lk(mu_);
  barrier_result_[customer_id].reset(new Status(s));
  cv_.notify_all();
}

void Van::ProcessControlAtNode(Message& msg) {
  Control& ctl = msg.meta.control;
  bool from_scheduler = msg.meta.sender == kScheduler;
  if (from_scheduler) last_heard_scheduler_ = Clock::now();
  if (!from_scheduler || msg.meta.request) {
    return Drop(DropReason::kBadControl,
                ctl.DebugString() + " from node " + std::to_string(msg.meta.sender));
  }
  switch (ctl.cmd) {
    case Control::ADD_NODE: {
      bool mine = false;
      for (const Node& n : ctl.node) mine = mine || n.id == msg.meta.recver;
      if (ready_ || !mine) {
        return Drop(DropReason::kBadControl, "unexpected node list " + ctl.DebugString());
      }
      {
        std::lock_guard<std::mutex> lk(mu_);
        for (const Node& n : ctl.node) nodes_[n.id] = n;
        my_node_.id = msg.meta.recver;
        my_id_ = msg.meta.recver;
      }
      for (const Node& n : ctl.node) {
        if (n.id != msg.meta.recver && n.id != kScheduler) SetAddress(n.id, n.hostname, n.port);
      }
      if (options_.verbose >= 1) {
        LOG(INFO) << "joined the job as " << my_node_.DebugString() << " with " << ctl.node.size()
                  << " nodes";
      }
      next_heartbeat_ = Clock::now();
      {
        std::lock_guard<std::mutex> lk(mu_);
        ready_ = true;
        cv_.notify_all();
      }
      std::vector<Message> early;
      early.swap(early_);
      for (Message& m : early) Dispatch(std::move(m));
      return;
    }
    case Control::BARRIER:
      if (ctl.finalize && ctl.barrier_ok && ctl.barrier_group == 7) finalizing_ = true;
      return SetBarrierResult(msg.meta.customer_id,
                              ctl.barrier_ok ? Status::OK() : Status::NodeFailed(ctl.reason));
    case Control::HEARTBEAT:
      ++heartbeats_received_;
      return;  // the acknowledgement; last_heard_scheduler_ is already updated
    case Control::NODE_FAILED:
      return MarkDead(ctl.failed_node, Status::NodeFailed(ctl.reason));
    case Control::TERMINATE: {
      Status why =
          Status::Shutdown(ctl.reason.empty() ? "the scheduler ended the job" : ctl.reason);
      {
        std::lock_guard<std::mutex> lk(mu_);
        if (fatal_.ok()) fatal_ = why;
        cv_.notify_all();
      }
      Node scheduler;
      scheduler.role = Node::SCHEDULER;
      scheduler.id = kScheduler;
      on_failure_(scheduler, why);
      return;
    }
    default:
      break;
  }
  Drop(DropReason::kBadControl, ctl.DebugString());
}

void Van::MarkDead(int id, const Status& why) {
  Node node;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (dead_.count(id) || id == my_node_.id) return;
    auto it = nodes_.find(id);
    if (it == nodes_.end()) return;
    node = it->second;
    dead_[id] = why;
  }
  LOG(ERROR) << why.message();
  // Tell everyone before waking the waiters here: a waiter may stop this node at once.
  if (is_scheduler_) {
    Control notice;
    notice.cmd = Control::NODE_FAILED;
    notice.failed_node = id;
    notice.reason = why.message();
    for (const auto& kv : nodes_) {
      if (kv.first != kScheduler && !dead_.count(kv.first)) SendControl(kv.first, notice, false);
    }
  }
  on_failure_(node, why);
  std::lock_guard<std::mutex> lk(mu_);
  cv_.notify_all();
}

void Van::FailStart(const Status& why) {
  // Tell the registered nodes before waking the waiter here, which may end the process.
  Control bye;
  bye.cmd = Control::TERMINATE;
  bye.reason = why.message();
  for (const auto& kv : registered_) SendControl(kv.second.node.id, bye, false);
  std::lock_guard<std::mutex> lk(mu_);
  fatal_ = why;
  cv_.notify_all();
}

void Van::Tick() {
  auto now = Clock::now();
  const double timeout = options_.heartbeat_timeout;
  const bool watch = options_.heartbeat_interval > 0 && ready_ && !finalizing_;
  if (is_scheduler_) {
    if (!ready_ && fatal_.ok() && SecondsSince(start_time_) > options_.start_timeout) {
      // Name the missing roles first: that is what the user has to fix.
      std::string missing, present;
      for (int r = 0; r < 2; ++r) {
        int want = r == 0 ? options_.num_servers : options_.num_workers;
        std::string part = std::to_string(registered_count_[r]) + " of " + std::to_string(want) +
                           (r == 0 ? " servers" : " workers");
        std::string& to = registered_count_[r] < want ? missing : present;
        to += (to.empty() ? "" : " and ") + part;
      }
      FailStart(Status::Timeout("start-up timed out: only " + missing + " registered after " +
                                FormatSeconds(options_.start_timeout) + " s" +
                                (present.empty() ? "" : " (" + present + ")") +
                                "; PS_START_TIMEOUT=" + FormatSeconds(options_.start_timeout)));
    }
    if (!watch) return;
    for (const auto& kv : last_seen_) {
      double silent = std::chrono::duration<double>(now - kv.second).count();
      if (silent > timeout && !dead_.count(kv.first)) {
        const Node& n = nodes_.at(kv.first);
        MarkDead(kv.first,
                 Status::NodeFailed(
                     n.ShortName() + " (node " + std::to_string(n.id) + " at " + n.hostname + ":" +
                     std::to_string(n.port) + ") sent no heartbeat for " + FormatSeconds(silent) +
                     " s; it died or hangs (PS_HEARTBEAT_TIMEOUT=" + FormatSeconds(timeout) + ")"));
      }
    }
    return;
  }
  if (!watch) return;
  if (now >= next_heartbeat_) {
    Control beat;
    beat.cmd = Control::HEARTBEAT;
    SendControl(kScheduler, beat, true);
    ++heartbeats_sent_;
    next_heartbeat_ = now + std::chrono::duration_cast<Clock::duration>(
                                std::chrono::duration<double>(options_.heartbeat_interval));
  }
  double silent = std::chrono::duration<double>(now - last_heard_scheduler_).count();
  if (silent > timeout && !dead_.count(kScheduler)) {
    MarkDead(kScheduler,
             Status::NodeFailed("lost contact with the scheduler at " + options_.scheduler_host +
                                ":" + std::to_string(options_.scheduler_port) + ": no answer for " +
                                FormatSeconds(silent) +
                                " s (PS_HEARTBEAT_TIMEOUT=" + FormatSeconds(timeout) + ")"));
  }
}

Node Van::my_node() const {
  std::lock_guard<std::mutex> lk(mu_);
  return my_node_;
}

std::vector<Node> Van::nodes() const {
  std::lock_guard<std::mutex> lk(mu_);
  std::vector<Node> out;
  for (const auto& kv : nodes_) out.push_back(kv.second);
  return out;
}

Status Van::NodeStatus(int id) const {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = dead_.find(id);
  return it == dead_.end() ? Status::OK() : it->second;
}

Status Van::fatal() const {
  std::lock_guard<std::mutex> lk(mu_);
  return fatal_;
}

}  // namespace ps
