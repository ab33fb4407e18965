#include "ps/internal/van.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "message/codec.h"
#include "ps/base.h"
#include "ps/internal/postoffice.h"
#include "van/address.h"
#include "van/job_key.h"
#include "van/peer_guard.h"
#include "van/scheduler_book.h"

namespace ps {
namespace {

// How long Register() on a node waits beyond PS_START_TIMEOUT: the scheduler's own deadline,
// whose message says which nodes are missing, should arrive first.
constexpr double kStartGraceSeconds = 5;

// A watched connection that broke is given this long to come back before its peer is declared
// dead: a peer that exits on an error says why first, and that notice should win.
constexpr double kReconnectGraceSeconds = 0.5;

// Data messages kept while this node waits for the node list, at most.
constexpr size_t kMaxEarlyMessages = 1 << 16;

// Refused registrations the scheduler answers per second, at most; beyond, it refuses in
// silence, so that a flood of registrations cannot make it open connections without bound.
constexpr int kMaxRefusalNoticesPerSecond = 20;

// Said once per process: a node without the job key.
std::atomic<bool> said_unauthenticated{false};

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

Clock::duration Seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
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
                                 "no customer can take it",
                                 "claimed sender does not match its connection",
                                 "over a limit"};
  return kNames[static_cast<int>(r)];
}

std::unique_ptr<Van> Van::Create(const std::string& type) {
  return std::unique_ptr<Van>(new Van(Transport::Create(type)));
}

Van::Van(std::unique_ptr<Transport> transport) : transport_(std::move(transport)) {}

Van::~Van() { Stop(); }

Status Van::ConfigureTransport() {
  Transport::Options t;
  guard_.reset(new PeerGuard(PeerGuard::NewToken()));
  refusal_warnings_.reset(new RateLimitedWarning());
  t.identity = guard_->token();
  t.max_message_bytes = options_.max_message_bytes;
  if (!options_.key_file.empty()) {
    Status s = LoadJobKey(options_.key_file, &t.public_key, &t.secret_key);
    if (!s.ok()) return s;
  } else if (!said_unauthenticated.exchange(true)) {
    LOG(WARNING) << RoleName(options_.role)
                 << ": PS_KEY_FILE is not set: this job is unauthenticated and unencrypted "
                    "(tracker/launch.py makes a job key unless given --insecure)";
  }
  return transport_->Configure(t);
}

Status Van::Start(const VanOptions& options, DataHandler on_data, FailureHandler on_failure,
                  FatalHandler on_fatal) {
  CHECK(state_.load() == State::kCreated) << "a van starts once";
  options_ = options;
  on_data_ = std::move(on_data);
  on_failure_ = std::move(on_failure);
  on_fatal_ = std::move(on_fatal);
  is_scheduler_ = options.role == Node::SCHEDULER;
  if (is_scheduler_) book_.reset(new SchedulerBook(options.num_servers, options.num_workers));
  chains_ = ServerChains(options.num_servers, std::max(1, options.replication));

  Node me;
  me.role = options.role;
  {
    // The role is known from here on, so that errors name it.
    std::lock_guard<std::mutex> lk(mu_);
    my_node_ = me;
  }
  // Every node, the scheduler included, needs the scheduler's address: fail at once, not at the
  // start-up deadline, when it names no host.
  Status resolves = CheckResolves(options.scheduler_host);
  if (!resolves.ok()) return resolves;
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

  Status configured = ConfigureTransport();
  if (!configured.ok()) return configured;
  int port = 0;
  Status s = transport_->Bind(is_scheduler_ ? options.scheduler_port : 0, options.linger_ms, &port);
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
  // Every node watches its connection to the scheduler: the scheduler's death is noticed at
  // once, not after a heartbeat timeout.
  if (!is_scheduler_) {
    transport_->SetAddress(kScheduler, options.scheduler_host, options.scheduler_port, true);
  }
  if (options.verbose >= 1) {
    LOG(INFO) << RoleName(me.role) << " listening on " << me.hostname << ":" << me.port;
  }

  start_time_ = Clock::now();
  last_heard_scheduler_ = start_time_;
  next_tick_ = start_time_;
  // The tick runs heartbeats and deadlines; twice per heartbeat interval is fine enough.
  double tick = options_.heartbeat_interval > 0 ? options_.heartbeat_interval / 2 : 0.2;
  tick_ms_ = std::max(5, std::min(200, static_cast<int>(tick * 1000)));
  on_peer_event_ = [this](int id, bool connected) { OnPeerEvent(id, connected); };
  state_ = State::kRunning;
  std::lock_guard<std::mutex> lk(join_mu_);
  thread_ = std::thread(&Van::Loop, this);
  return Status::OK();
}

void Van::Stop() {
  State s = State::kRunning;
  if (state_.compare_exchange_strong(s, State::kStopping)) {
    baton_.Stop();
    transport_->Wake();
    std::lock_guard<std::mutex> lk(mu_);
    cv_.notify_all();
  } else if (s == State::kCreated) {
    // Never ran (or Start failed): nothing to join, only a bound socket to close.
    state_ = State::kStopped;
    transport_->Close();
    return;
  }
  // The van thread is joined by any other thread; a handler that stops the node leaves that
  // to a later Stop (or the destructor).
  if (std::this_thread::get_id() != van_thread_id_.load()) {
    std::lock_guard<std::mutex> lk(join_mu_);
    if (thread_.joinable()) thread_.join();
  }
  // The socket belongs to the baton's holder: close it there, or once the holder let go.
  if (baton_.HeldByThisThread()) {
    transport_->Close();
  } else {
    auto held = baton_.TakeForClose();
    transport_->Close();
  }
  s = State::kStopping;
  state_.compare_exchange_strong(s, State::kStopped);
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
    Status s = TrySend(msg);
    if (!s.ok()) return s.Prefixed("cannot register: ");
    lk.lock();
  }
  auto deadline = start_time_ + Seconds(wait);
  cv_.wait_until(lk, deadline,
                 [&] { return ready_ || !fatal_.ok() || state_.load() != State::kRunning; });
  if (!fatal_.ok()) return fatal_;
  if (ready_) return Status::OK();
  if (state_.load() != State::kRunning) return Status::Shutdown("the node stopped during start-up");
  return Status::Timeout(
      "start-up timed out: no node list from the scheduler at " + options_.scheduler_host + ":" +
      std::to_string(options_.scheduler_port) + " after " + FormatSeconds(wait) +
      " s; is the scheduler running? (PS_START_TIMEOUT=" + FormatSeconds(options_.start_timeout) +
      ")");
}

Status Van::GroupStatusLocked(int group) const {
  for (const auto& kv : dead_) {
    auto it = nodes_.find(kv.first);
    // A dead server that the replicas cover takes part in nothing any more.
    if (it != nodes_.end() && it->second.role == Node::SERVER &&
        chains_.dead(Postoffice::IDtoRank(kv.first))) {
      continue;
    }
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
  Status sent = TrySend(msg);
  if (!sent.ok()) return sent.Prefixed("barrier cannot complete: ");

  lk.lock();
  cv_.wait(lk, [&] {
    return barrier_result_.count(customer_id) || !fatal_.ok() || state_.load() != State::kRunning ||
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
  if (state_.load() != State::kRunning)
    return Status::Shutdown("the node stopped during a barrier");
  return Status::NodeFailed("barrier cannot complete: " + GroupStatusLocked(group).message());
}

Status Van::TrySend(Message& msg, size_t* bytes) {
  const int me = my_id_.load(std::memory_order_acquire);
  msg.meta.sender = me;
  msg.meta.epoch = epoch_.load(std::memory_order_acquire);
  if (options_.verbose >= 2) LOG(INFO) << "send " << msg.DebugString();
  size_t sent = 0;
  if (msg.meta.recver == me && me != Node::kEmpty) {
    if (state_.load() != State::kRunning) return Status::Shutdown("this node is stopping");
    sent = msg.data_bytes();
    {
      std::lock_guard<std::mutex> lk(local_mu_);
      local_.push_back(msg);
    }
    transport_->Wake();
  } else {
    std::string meta;
    EncodeMeta(msg.meta, &meta);
    Status s = transport_->Send(msg.meta.recver, meta, msg.data, &sent);
    if (!s.ok()) {
      return s.code() == Status::Code::kShutdown
                 ? s
                 : Status::IOError("cannot send to " + NodeName(msg.meta.recver) + ": " +
                                   s.message());
    }
    bytes_sent_ += sent;
    CountTraffic(msg.meta.recver, sent, true);
  }
  if (bytes) *bytes = sent;
  return Status::OK();
}

int Van::Send(Message& msg) {
  size_t bytes = 0;
  Status s = TrySend(msg, &bytes);
  if (s.ok()) return static_cast<int>(bytes);
  if (s.code() != Status::Code::kShutdown) LOG(WARNING) << s.message();
  return -1;
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

void Van::ReportFailure(const Status& why) {
  if (!ready_ || finalizing_ || job_ended_ || state_.load() != State::kRunning) return;
  if (!is_scheduler_) {
    Control notice;
    notice.cmd = Control::NODE_FAILED;
    notice.failed_node = my_id_.load();
    notice.reason = why.message();
    SendControl(kScheduler, notice, true);
    return;
  }
  if (job_ended_.exchange(true)) return;
  Control bye;
  bye.cmd = Control::TERMINATE;
  bye.failed_node = kScheduler;
  bye.reason = "the scheduler failed: " + why.message();
  SendToLiveNodes(bye);
}

void Van::SendToLiveNodes(const Control& control) {
  std::vector<int> alive;
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (const auto& kv : nodes_) {
      if (kv.first != kScheduler && !dead_.count(kv.first)) alive.push_back(kv.first);
    }
  }
  for (int id : alive) SendControl(id, control, false);
}

void Van::Loop() {
  van_thread_id_ = std::this_thread::get_id();
  while (true) {
    auto held = baton_.TakeForVanThread();
    if (!held.owns_lock()) break;
    ReceiveOnce();
    baton_.Release(&held, false);
  }
}

void Van::ReceiveOnce() {
  auto now = Clock::now();
  int timeout_ms = static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(next_tick_ - now).count());
  std::vector<SArray<char>> frames;
  std::string peer;
  if (transport_->Recv(&frames, &peer, std::max(0, std::min(tick_ms_, timeout_ms)))) {
    ProcessFrames(std::move(frames), &peer);
  }
  std::deque<Message> local;
  {
    std::lock_guard<std::mutex> lk(local_mu_);
    local.swap(local_);
  }
  for (Message& m : local) Dispatch(std::move(m), nullptr);
  now = Clock::now();
  if (now >= next_tick_) {
    Tick();
    next_tick_ = now + std::chrono::milliseconds(tick_ms_);
  }
}

bool Van::ReceiveUntil(const std::function<bool()>& done) {
  if (state_.load() != State::kRunning || baton_.HeldByThisThread()) return false;
  auto held = baton_.TryTakeForCaller([this] { transport_->Wake(); });
  if (!held.owns_lock()) return false;
  while (!baton_.stopped() && !done()) ReceiveOnce();
  baton_.Release(&held, true);
  return true;
}

void Van::OnPeerEvent(int id, bool connected) {
  if (connected) {
    disconnected_.erase(id);
  } else {
    disconnected_.emplace(id, Clock::now());
  }
}

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

void Van::ProcessFrames(std::vector<SArray<char>>&& frames, const std::string* peer) {
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
  Dispatch(std::move(msg), peer);
}

void Van::Dispatch(Message&& msg, const std::string* peer) {
  if (options_.verbose >= 2) LOG(INFO) << "recv " << msg.DebugString();
  if (!msg.meta.control.empty()) {
    if (is_scheduler_) {
      ProcessControlAtScheduler(msg, peer);
    } else {
      ProcessControlAtNode(msg, peer);
    }
    return;
  }
  if (!ready_) {
    // A peer that got the node list first may already send; keep it for when we have it.
    // Before the node list nobody may send much, so a flood is dropped, not kept.
    if (early_.size() >= kMaxEarlyMessages) {
      return Drop(DropReason::kUnknownSender, "data before this node joined the job");
    }
    // A routing id is never empty: empty marks a message from this process.
    early_.emplace_back(std::move(msg), peer ? *peer : std::string());
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
  if (peer && !(sender == kScheduler ? guard_->FromScheduler(*peer)
                                     : guard_->IsNode(*peer, nodes_[sender]))) {
    return Drop(
        DropReason::kForgedSender,
        "data claiming to be from " + nodes_[sender].ShortName() + " on another connection");
  }
  on_data_(std::move(msg));
}

void Van::ProcessControlAtScheduler(Message& msg, const std::string* peer) {
  const Control& ctl = msg.meta.control;
  if (ctl.cmd == Control::ADD_NODE && msg.meta.request) return ProcessAddNode(msg, peer);
  // Anything else comes from a registered node, on that node's own connection.
  if (peer) {
    auto node = nodes_.find(msg.meta.sender);
    if (node == nodes_.end() || msg.meta.sender == kScheduler) {
      return Drop(DropReason::kBadControl,
                  ctl.DebugString() + " from node " + std::to_string(msg.meta.sender));
    }
    if (!guard_->IsNode(*peer, node->second)) {
      return Drop(DropReason::kForgedSender, ctl.DebugString() + " claiming to be from " +
                                                 node->second.ShortName() +
                                                 " on another connection");
    }
  }
  // A server that was declared dead and replaced, heard from again: it was frozen or cut off,
  // and must not come back. It is told so (it exits); what it says is ignored.
  if (chains_.k() > 1 && dead_.count(msg.meta.sender) && nodes_.count(msg.meta.sender) &&
      nodes_[msg.meta.sender].role == Node::SERVER) {
    return Fence(msg.meta.sender);
  }
  auto seen = last_seen_.find(msg.meta.sender);
  if (seen != last_seen_.end()) seen->second = Clock::now();
  switch (ctl.cmd) {
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
    case Control::SYNCED: {
      // A replacement server holds its key ranges: it is a full replica from now on.
      const int id = msg.meta.sender;
      auto node = nodes_.find(id);
      if (msg.meta.request && node != nodes_.end() && node->second.role == Node::SERVER &&
          chains_.syncing(Postoffice::IDtoRank(id))) {
        Control done;
        done.cmd = Control::SYNCED;
        done.failed_node = id;
        int dead = 0;
        {
          std::lock_guard<std::mutex> lk(mu_);
          chains_.MarkSynced(Postoffice::IDtoRank(id));
          epoch_ = chains_.epoch();
          done.epoch = chains_.epoch();
          for (int r = 0; r < chains_.num_servers(); ++r) dead += chains_.dead(r);
          cv_.notify_all();
        }
        ++synced_;
        SendToLiveNodes(done);
        LOG(INFO) << NodeName(id) << " holds its key ranges (epoch " << done.epoch << "): "
                  << (dead == 0 ? "every key range is on " + std::to_string(chains_.k()) +
                                      " servers again"
                                : std::to_string(dead) + " servers are still dead");
        return;
      }
      break;
    }
    case Control::NODE_FAILED:
      // A node that gives up says why; it may speak for itself only.
      if (msg.meta.request && ready_ && ctl.failed_node == msg.meta.sender &&
          nodes_.count(msg.meta.sender) && msg.meta.sender != kScheduler) {
        return MarkDead(msg.meta.sender,
                        Status::NodeFailed(NodeNameLocked(msg.meta.sender) + " failed: " +
                                           (ctl.reason.empty() ? "no reason given" : ctl.reason)));
      }
      break;
    default:
      break;
  }
  Drop(DropReason::kBadControl, ctl.DebugString() + " from " + std::to_string(msg.meta.sender));
}

void Van::ProcessAddNode(const Message& msg, const std::string* peer) {
  const Control& ctl = msg.meta.control;
  if (ctl.node.size() != 1 || ctl.node[0].role == Node::SCHEDULER || ctl.node[0].port <= 0 ||
      ctl.node[0].port > 65535 || ctl.node[0].hostname.empty()) {
    ++refused_registrations_;
    return Drop(DropReason::kBadControl, "malformed registration " + ctl.DebugString());
  }
  // The registration's connection gives the node its key: its later messages must come on a
  // connection with the same token. One fed by this process (tests) gets a fresh token.
  const std::string token = peer ? *peer : PeerGuard::NewToken();
  Node node = ctl.node[0];
  node.conn_key = PeerGuard::KeyOf(token);
  if (node.conn_key.empty()) {
    ++refused_registrations_;
    return Drop(DropReason::kBadControl, "registration on a connection without a token");
  }
  Node registered;
  std::string why;
  if (!fatal_.ok()) {
    why = "the job failed to start: " + fatal_.message();
  } else if (ready_) {
    // A server started into the running job takes the place of a dead one, if there is one.
    if (node.role == Node::SERVER && chains_.k() > 1 && book_->RemovedServer() != 0) {
      if (ReplaceServer(node, token, &why)) return;
    } else if (node.role == Node::SERVER && chains_.k() > 1 && !finalizing_ && !job_ended_) {
      // No server is dead (yet: a server restarted at once may come before its death is
      // known): it waits to take the place of the next one that dies.
      spares_.push_back(Spare{node, token, Clock::now()});
      LOG(INFO) << "a server at " << node.hostname << ":" << node.port
                << " waits to replace the next server that dies";
      return;
    } else {
      book_->Register(node, &registered, &why);  // counts are full: only says why
    }
  } else if (book_->Register(node, &registered, &why)) {
    why.clear();
  }
  if (!why.empty()) return RefuseRegistration(node, token, why);
  // Watched from now on: its process dying breaks this connection. The connection carries the
  // node's own token, by which the node knows its scheduler.
  transport_->SetAddress(registered.id, registered.hostname, registered.port, true,
                         PeerGuard::SchedulerRoutingId(token));
  if (options_.verbose >= 1) {
    LOG(INFO) << "registered " << registered.DebugString() << " customer " << node.customer_id
              << " (" << book_->Counts() << ")";
  }
  if (!book_->complete()) return;

  // Everyone is here: announce the node list, scheduler first.
  Control list;
  list.cmd = Control::ADD_NODE;
  std::vector<Node> all = book_->nodes();
  {
    std::lock_guard<std::mutex> lk(mu_);
    nodes_[kScheduler] = my_node_;
    for (const Node& n : all) nodes_[n.id] = n;
    for (const auto& kv : nodes_) list.node.push_back(kv.second);
  }
  auto now = Clock::now();
  for (const Node& n : all) {
    SendControl(n.id, list, false);
    last_seen_[n.id] = now;
  }
  if (options_.verbose >= 1)
    LOG(INFO) << "all " << all.size() << " nodes registered; the job starts";
  std::lock_guard<std::mutex> lk(mu_);
  ready_ = true;
  cv_.notify_all();
}

bool Van::ReplaceServer(const Node& node, const std::string& token, std::string* why) {
  if (finalizing_ || job_ended_) {
    *why = "the job is finishing: a server cannot join it now";
    return false;
  }
  const int id = book_->RemovedServer();
  Node registered;
  bool again = false;
  if (!book_->Replace(node, id, &registered, &again, why)) return false;
  if (again) return true;  // counted; its node list went out with its first customer
  const int rank = Postoffice::IDtoRank(id);
  // The old incarnation's connection goes and the new one is watched like any node's, before
  // the configuration names it (see ProcessReplacement).
  disconnected_.erase(id);
  last_seen_[id] = Clock::now();
  transport_->Forget(id);
  transport_->SetAddress(id, registered.hostname, registered.port, true,
                         PeerGuard::SchedulerRoutingId(token));
  Control list;
  list.cmd = Control::ADD_NODE;
  list.recovery = true;
  {
    std::lock_guard<std::mutex> lk(mu_);
    chains_.Revive(rank);
    epoch_ = chains_.epoch();
    nodes_[id] = registered;
    dead_.erase(id);
    fenced_.erase(id);
    for (const auto& kv : nodes_) list.node.push_back(kv.second);
    list.chains = chains_.Encode();
    list.epoch = chains_.epoch();
    cv_.notify_all();
  }
  ++replacements_;
  Control joined;
  joined.cmd = Control::REPLACE_NODE;
  joined.node.push_back(registered);
  joined.epoch = list.epoch;
  {
    std::vector<int> others;
    {
      std::lock_guard<std::mutex> lk(mu_);
      for (const auto& kv : nodes_) {
        if (kv.first != kScheduler && kv.first != id && !dead_.count(kv.first)) {
          others.push_back(kv.first);
        }
      }
    }
    for (int other : others) SendControl(other, joined, false);
  }
  SendControl(id, list, false);
  LOG(INFO) << NodeName(id) << " joined in the place of the dead server " << rank
            << "; it copies its key ranges from live replicas (epoch " << list.epoch << ")";
  return true;
}

void Van::UseSpares() {
  while (!spares_.empty() && book_->RemovedServer() != 0) {
    const Spare first = spares_.front();
    // Its other customers come from the same address.
    std::vector<Spare> same, rest;
    for (const Spare& s : spares_) {
      (s.node.hostname == first.node.hostname && s.node.port == first.node.port ? same : rest)
          .push_back(s);
    }
    spares_ = rest;
    for (const Spare& s : same) {
      std::string why;
      if (!ReplaceServer(s.node, s.token, &why)) RefuseRegistration(s.node, s.token, why);
    }
  }
  for (auto it = spares_.begin(); it != spares_.end();) {
    if (SecondsSince(it->since) <= options_.start_timeout && !job_ended_ && !finalizing_) {
      ++it;
      continue;
    }
    RefuseRegistration(
        it->node, it->token,
        job_ended_ || finalizing_
            ? std::string("the job is finishing: a server cannot join it now")
            : "no server died within PS_START_TIMEOUT=" + FormatSeconds(options_.start_timeout) +
                  " s for this server to replace");
    it = spares_.erase(it);
  }
}

void Van::ProcessReplacement(const Control& ctl) {
  if (ctl.cmd == Control::REPLACE_NODE) {
    const bool valid = ctl.node.size() == 1 && ctl.node[0].role == Node::SERVER &&
                       nodes_.count(ctl.node[0].id) && ctl.node[0].id != my_id_.load() &&
                       chains_.dead(Postoffice::IDtoRank(ctl.node[0].id)) &&
                       ctl.epoch > epoch_.load();
    if (!valid) return Drop(DropReason::kBadControl, "unexpected replacement " + ctl.DebugString());
    const Node& n = ctl.node[0];
    // The new address first: once the configuration names the replacement, another thread
    // may send to its id at once (a forward down the chain), and that must not reach the old
    // incarnation's socket, where it would be lost with the chain waiting for its answer.
    disconnected_.erase(n.id);
    transport_->Forget(n.id);
    transport_->SetAddress(n.id, n.hostname, n.port, false);
    {
      std::lock_guard<std::mutex> lk(mu_);
      nodes_[n.id] = n;
      dead_.erase(n.id);
      chains_.Revive(Postoffice::IDtoRank(n.id));
      epoch_ = ctl.epoch;
      cv_.notify_all();
    }
    ++replacements_;
    if (options_.verbose >= 1) {
      LOG(INFO) << NodeName(n.id) << " replaces a dead server (epoch " << ctl.epoch << ")";
    }
  } else {
    const int rank = Postoffice::IDtoRank(ctl.failed_node);
    if (!chains_.syncing(rank) || ctl.epoch <= epoch_.load()) {
      return Drop(DropReason::kBadControl, "unexpected configuration " + ctl.DebugString());
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      chains_.MarkSynced(rank);
      epoch_ = ctl.epoch;
      cv_.notify_all();
    }
    ++synced_;
    if (ctl.failed_node == my_id_.load()) {
      LOG(INFO) << "this server holds its key ranges: a full replica from epoch " << ctl.epoch;
    }
  }
  if (on_config_) on_config_();
}

void Van::ReportSynced() {
  if (!recovery_ || reported_synced_.exchange(true)) return;
  Control synced;
  synced.cmd = Control::SYNCED;
  SendControl(kScheduler, synced, true);
}

void Van::RefuseRegistration(const Node& node, const std::string& token, const std::string& why) {
  ++refused_registrations_;
  refusal_warnings_->Warn(why, "registrations refused");
  auto now = Clock::now();
  if (now - refusal_second_ > std::chrono::seconds(1)) {
    refusal_second_ = now;
    refusal_notices_ = 0;
  }
  if (++refusal_notices_ > kMaxRefusalNoticesPerSecond) return;
  // One node too many: tell it so, on a throwaway id, rather than let it wait for nothing; then
  // close that connection (the linger lets the notice go out).
  int id = --next_reject_id_;
  if (next_reject_id_ < -1000000) next_reject_id_ = -1000;
  transport_->SetAddress(id, node.hostname, node.port, false, PeerGuard::SchedulerRoutingId(token));
  Control bye;
  bye.cmd = Control::TERMINATE;
  bye.reason = why;
  SendControl(id, bye, false);
  transport_->Forget(id);
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
  std::vector<SchedulerBook::BarrierEntry> done =
      book_->EnterBarrier(group, {msg.meta.sender, msg.meta.customer_id, ctl.finalize});
  if (done.empty()) return;
  bool final_all = group == 7;
  for (const auto& e : done) final_all = final_all && e.finalize;
  // Once everyone is in the final barrier, nodes may exit at any moment: stop watching them.
  if (final_all) finalizing_ = true;
  for (const auto& e : done) {
    Control release;
    release.cmd = Control::BARRIER;
    release.barrier_group = group;
    release.finalize = e.finalize;
    SendControl(e.node_id, release, false, e.customer_id);
  }
}

void Van::SetBarrierResult(int customer_id, const Status& s) {
  std::lock_guard<std::mutex> lk(mu_);
  barrier_result_[customer_id].reset(new Status(s));
  cv_.notify_all();
}

void Van::ProcessControlAtNode(Message& msg, const std::string* peer) {
  Control& ctl = msg.meta.control;
  bool from_scheduler = msg.meta.sender == kScheduler;
  if (!from_scheduler || msg.meta.request) {
    return Drop(DropReason::kBadControl,
                ctl.DebugString() + " from node " + std::to_string(msg.meta.sender));
  }
  // Only the scheduler's own connection to this node may speak as the scheduler.
  if (peer && !guard_->FromScheduler(*peer)) {
    return Drop(DropReason::kForgedSender,
                ctl.DebugString() + " claiming to be from the scheduler on another connection");
  }
  last_heard_scheduler_ = Clock::now();
  switch (ctl.cmd) {
    case Control::ADD_NODE: {
      bool mine = false;
      for (const Node& n : ctl.node) mine = mine || n.id == msg.meta.recver;
      if (ready_ || !mine) {
        return Drop(DropReason::kBadControl, "unexpected node list " + ctl.DebugString());
      }
      ServerChains joined = chains_;
      if (ctl.recovery && (options_.role != Node::SERVER || !joined.Decode(ctl.chains).ok() ||
                           !joined.syncing(Postoffice::IDtoRank(msg.meta.recver)))) {
        return Drop(DropReason::kBadControl, "unexpected node list " + ctl.DebugString());
      }
      {
        std::lock_guard<std::mutex> lk(mu_);
        for (const Node& n : ctl.node) nodes_[n.id] = n;
        my_node_.id = msg.meta.recver;
        my_id_ = msg.meta.recver;
        if (ctl.recovery) {
          // A replacement: the job's configuration now, with the servers dead meanwhile.
          chains_ = joined;
          epoch_ = joined.epoch();
          recovery_ = true;
          for (int r = 0; r < joined.num_servers(); ++r) {
            const int id = Postoffice::ServerRankToID(r);
            if (joined.dead(r) && nodes_.count(id)) {
              dead_[id] = Status::NodeFailed(NodeNameLocked(id) +
                                             " was dead when this server joined the job");
            }
          }
        }
      }
      for (const Node& n : ctl.node) {
        if (n.id != msg.meta.recver && n.id != kScheduler) {
          transport_->SetAddress(n.id, n.hostname, n.port, false);
        }
      }
      if (ctl.recovery) {
        LOG(INFO) << "joined the running job as " << my_node_.DebugString()
                  << " in the place of a dead server (epoch " << epoch_.load() << ")";
      } else if (options_.verbose >= 1) {
        LOG(INFO) << "joined the job as " << my_node_.DebugString() << " with " << ctl.node.size()
                  << " nodes";
      }
      next_heartbeat_ = Clock::now();
      {
        std::lock_guard<std::mutex> lk(mu_);
        ready_ = true;
        cv_.notify_all();
      }
      std::vector<std::pair<Message, std::string>> early;
      early.swap(early_);
      for (auto& m : early) {
        Dispatch(std::move(m.first), m.second.empty() ? nullptr : &m.second);
      }
      return;
    }
    case Control::BARRIER:
      if (ctl.finalize && ctl.barrier_ok && ctl.barrier_group == 7) finalizing_ = true;
      return SetBarrierResult(msg.meta.customer_id,
                              ctl.barrier_ok ? Status::OK() : Status::NodeFailed(ctl.reason));
    case Control::HEARTBEAT:
      ++heartbeats_received_;
      return;  // the acknowledgement; last_heard_scheduler_ is already updated
    case Control::REPLACE_NODE:
    case Control::SYNCED:
      if (!ready_) break;
      return ProcessReplacement(ctl);
    case Control::NODE_FAILED:
      if (ctl.epoch > 0) {
        // A server the replicas cover: the new configuration, applied before the failure
        // handlers run (workers route to the new primaries from now on).
        auto it = nodes_.find(ctl.failed_node);
        if (it == nodes_.end() || it->second.role != Node::SERVER || ctl.epoch <= epoch_.load()) {
          return Drop(DropReason::kBadControl, "unexpected configuration " + ctl.DebugString());
        }
        std::lock_guard<std::mutex> lk(mu_);
        chains_.MarkDead(Postoffice::IDtoRank(ctl.failed_node));
        epoch_ = ctl.epoch;
        cv_.notify_all();
      }
      return MarkDead(ctl.failed_node, Status::NodeFailed(ctl.reason));
    case Control::TERMINATE: {
      std::string reason = ctl.reason.empty() ? "the scheduler ended the job" : ctl.reason;
      if (!ready_) {
        // During start-up (a start-up failure, a rejection): Register returns it.
        std::lock_guard<std::mutex> lk(mu_);
        if (fatal_.ok()) fatal_ = Status::Shutdown(reason);
        cv_.notify_all();
        return;
      }
      // The scheduler gives up itself, or ends the job for a node it declared dead (told
      // already, by NODE_FAILED), or ends it for no node's fault.
      if (ctl.failed_node == kScheduler) return MarkDead(kScheduler, Status::NodeFailed(reason));
      if (ctl.failed_node) return EndJob(Status::NodeFailed(reason), ctl.failed_node);
      return EndJob(Status::Shutdown(reason), 0);
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
  // Not logged otherwise: the calls that fail say it, and a node that ends says it once.
  if (options_.verbose >= 1) LOG(WARNING) << why.message();
  // A server that the replicas cover: the job goes on without it.
  Status lost;
  const bool covered =
      is_scheduler_ && node.role == Node::SERVER && chains_.k() > 1 && FailOver(id, why, &lost);
  // Tell everyone before waking the waiters here: a waiter may stop this node at once.
  if (is_scheduler_) {
    Control notice;
    notice.cmd = Control::NODE_FAILED;
    notice.failed_node = id;
    // A lost key range is what the nodes must hear about, whatever fails first there.
    notice.reason = (lost.ok() ? why : lost).message();
    if (covered) notice.epoch = epoch_.load();
    SendToLiveNodes(notice);
  }
  on_failure_(node, why);
  {
    std::lock_guard<std::mutex> lk(mu_);
    cv_.notify_all();
  }
  if (covered) {
    // Barriers no longer wait for it; it is told to exit should it come back.
    for (const auto& e : book_->Remove(id)) {
      Control release;
      release.cmd = Control::BARRIER;
      release.barrier_group = e.group;
      release.finalize = e.finalize;
      SendControl(e.node_id, release, false, e.customer_id);
    }
    Fence(id);
    if (is_scheduler_) UseSpares();
    return;
  }
  // The job cannot go on without one of its nodes: the scheduler ends it, naming the node;
  // a node without its scheduler ends it for itself.
  if (is_scheduler_ || id == kScheduler) EndJob(lost.ok() ? why : lost, id);
}

bool Van::FailOver(int id, const Status& why, Status* lost) {
  auto start = Clock::now();
  std::lock_guard<std::mutex> lk(mu_);
  ServerChains next = chains_;
  if (!next.MarkDead(Postoffice::IDtoRank(id))) {
    *lost = Status::NodeFailed(
        next.LostMessage(next.LostRange(), DefaultKeyRanges(options_.num_servers)) + " (" +
        why.message() + ")");
    return false;
  }
  chains_ = next;
  epoch_ = chains_.epoch();
  ++failovers_;
  cv_.notify_all();
  if (options_.verbose >= 1) {
    LOG(INFO) << "failover to epoch " << chains_.epoch() << ": " << NodeNameLocked(id)
              << " is dead; the replicas answer for its key ranges ("
              << FormatSeconds(SecondsSince(start)) << " s)";
  }
  return true;
}

void Van::Fence(int id) {
  auto now = Clock::now();
  auto it = fenced_.find(id);
  if (it != fenced_.end() && now - it->second < std::chrono::milliseconds(200)) return;
  fenced_[id] = now;
  Control bye;
  bye.cmd = Control::TERMINATE;
  bye.failed_node = id;
  {
    std::lock_guard<std::mutex> lk(mu_);
    const int rank = Postoffice::IDtoRank(id);
    const int next = chains_.Primary(rank);
    bye.reason = NodeNameLocked(id) + " was replaced: it was declared dead (" +
                 (dead_.count(id) ? dead_.at(id).message() : std::string("no reason")) + "), and " +
                 (next >= 0 ? NodeNameLocked(Postoffice::ServerRankToID(next)) : "no server") +
                 " answers for its key range since epoch " + std::to_string(chains_.epoch());
  }
  SendControl(id, bye, false);
}

void Van::NoteRecovery(double seconds) {
  std::lock_guard<std::mutex> lk(mu_);
  ++recoveries_.count;
  recoveries_.total_seconds += seconds;
  recoveries_.max_seconds = std::max(recoveries_.max_seconds, seconds);
}

Van::Recoveries Van::recoveries() const {
  std::lock_guard<std::mutex> lk(mu_);
  return recoveries_;
}

ServerChains Van::chains() const {
  std::lock_guard<std::mutex> lk(mu_);
  return chains_;
}

bool Van::WaitForEpoch(int epoch, double seconds) {
  std::unique_lock<std::mutex> lk(mu_);
  return cv_.wait_for(lk, std::chrono::duration<double>(seconds), [&] {
    return epoch_.load() >= epoch || !fatal_.ok() || state_.load() != State::kRunning;
  }) && epoch_.load() >= epoch;
}

void Van::EndJob(const Status& why, int failed_node) {
  if (job_ended_.exchange(true)) return;
  if (is_scheduler_) {
    Control bye;
    bye.cmd = Control::TERMINATE;
    bye.failed_node = failed_node;
    bye.reason = why.message();
    SendToLiveNodes(bye);
  }
  if (failed_node == 0 || failed_node == kScheduler || failed_node == my_id_.load()) {
    // Nothing can work any more. For another node's death, only what needs it fails (it is
    // marked dead): the handler decides whether this node goes on.
    std::lock_guard<std::mutex> lk(mu_);
    if (fatal_.ok()) fatal_ = why;
    cv_.notify_all();
  }
  on_fatal_(why);
}

void Van::FailStart(const Status& why) {
  // Tell the registered nodes before waking the waiter here, which may end the process.
  Control bye;
  bye.cmd = Control::TERMINATE;
  bye.reason = why.message();
  for (const Node& n : book_->nodes()) SendControl(n.id, bye, false);
  std::lock_guard<std::mutex> lk(mu_);
  fatal_ = why;
  cv_.notify_all();
}

void Van::Tick() {
  transport_->ReadPeerEvents(on_peer_event_);
  auto now = Clock::now();
  const double timeout = options_.heartbeat_timeout;
  const bool watch = ready_ && !finalizing_;
  if (!is_scheduler_ && !ready_ && fatal_.ok() && transport_->HandshakeFailed(kScheduler)) {
    // Without the job's key the scheduler closes every connection in the handshake: waiting
    // for the start-up deadline would only hide why.
    std::lock_guard<std::mutex> lk(mu_);
    fatal_ = Status::InvalidArgument(
        "cannot authenticate with the scheduler at " + options_.scheduler_host + ":" +
        std::to_string(options_.scheduler_port) + ": " +
        (options_.key_file.empty()
             ? "the job is authenticated and this node has no key (set PS_KEY_FILE to the "
               "job's key file)"
             : "it refused this node's key (PS_KEY_FILE=" + options_.key_file +
                   " is not this job's key)"));
    cv_.notify_all();
  }
  if (is_scheduler_ && !ready_ && fatal_.ok() &&
      SecondsSince(start_time_) > options_.start_timeout) {
    // Name the missing roles first: that is what the user has to fix.
    std::string present;
    std::string missing = book_->Missing(&present);
    uint64_t refused = transport_->connection_counts().auth_refused;
    FailStart(
        Status::Timeout("start-up timed out: only " + missing + " registered after " +
                        FormatSeconds(options_.start_timeout) + " s" +
                        (present.empty() ? "" : " (" + present + ")") +
                        "; PS_START_TIMEOUT=" + FormatSeconds(options_.start_timeout) +
                        (refused ? "; " + std::to_string(refused) +
                                       " connections were refused for not holding the job's key"
                                 : "")));
  }
  if (is_scheduler_ && !spares_.empty()) UseSpares();
  if (!watch) return;
  // Broken connections that did not come back: the process at the other end died.
  std::vector<int> gone;
  for (const auto& kv : disconnected_) {
    if (std::chrono::duration<double>(now - kv.second).count() > kReconnectGraceSeconds &&
        !dead_.count(kv.first) && nodes_.count(kv.first)) {
      gone.push_back(kv.first);
    }
  }
  for (int id : gone) {
    MarkDead(id, Status::NodeFailed(
                     (id == kScheduler
                          ? "lost the connection to the scheduler at " + options_.scheduler_host +
                                ":" + std::to_string(options_.scheduler_port)
                          : NodeNameLocked(id) + ": its connection broke") +
                     " and did not come back within " + FormatSeconds(kReconnectGraceSeconds) +
                     " s; its process died or its host is unreachable"));
  }
  if (options_.heartbeat_interval <= 0) return;
  if (is_scheduler_) {
    for (const auto& kv : last_seen_) {
      double silent = std::chrono::duration<double>(now - kv.second).count();
      if (silent > timeout && !dead_.count(kv.first)) {
        MarkDead(kv.first,
                 Status::NodeFailed(
                     NodeNameLocked(kv.first) + " sent no heartbeat for " + FormatSeconds(silent) +
                     " s; it died or hangs (PS_HEARTBEAT_TIMEOUT=" + FormatSeconds(timeout) + ")"));
      }
    }
    return;
  }
  if (now >= next_heartbeat_) {
    Control beat;
    beat.cmd = Control::HEARTBEAT;
    SendControl(kScheduler, beat, true);
    ++heartbeats_sent_;
    next_heartbeat_ = now + Seconds(options_.heartbeat_interval);
  }
  double silent = std::chrono::duration<double>(now - last_heard_scheduler_).count();
  if (silent > timeout && !dead_.count(kScheduler)) {
    // A node that was frozen (or cut off) reads what waits for it before it judges: the
    // scheduler may have spoken meanwhile (a replaced server's notice to exit).
    std::vector<SArray<char>> frames;
    std::string peer;
    // (Waiting a little for each: after a freeze the transport's own threads catch up too.)
    for (int i = 0; i < 1024 && !job_ended_ && transport_->Recv(&frames, &peer, 100); ++i) {
      ProcessFrames(std::move(frames), &peer);
      frames.clear();
    }
    if (job_ended_) return;
    silent = std::chrono::duration<double>(Clock::now() - last_heard_scheduler_).count();
  }
  if (silent > timeout && !dead_.count(kScheduler)) {
    MarkDead(kScheduler,
             Status::NodeFailed("lost contact with the scheduler at " + options_.scheduler_host +
                                ":" + std::to_string(options_.scheduler_port) + ": no answer for " +
                                FormatSeconds(silent) +
                                " s (PS_HEARTBEAT_TIMEOUT=" + FormatSeconds(timeout) + ")"));
  }
}

std::string Van::NodeNameLocked(int id) const {
  auto it = nodes_.find(id);
  if (it == nodes_.end()) return "node " + std::to_string(id);
  const Node& n = it->second;
  return n.ShortName() + " (node " + std::to_string(n.id) + " at " + n.hostname + ":" +
         std::to_string(n.port) + ")";
}

std::string Van::NodeName(int id) const {
  std::lock_guard<std::mutex> lk(mu_);
  return NodeNameLocked(id);
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
