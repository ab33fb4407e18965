#include "ps/internal/replica_chain.h"

#include <algorithm>
#include <string>

#include "ps/base.h"
#include "ps/internal/postoffice.h"

namespace ps {

ReplicaChain::ReplicaChain(Postoffice* postoffice) : postoffice_(postoffice) {}

ReplicaChain::Id ReplicaChain::IdOf(const Meta& m, int origin) {
  return Id{origin, m.customer_id, m.timestamp, m.slice};
}

std::pair<int, int> ReplicaChain::SeenKey(const Id& id) {
  // Updates of one primary and key range arrive in order: "below" alone records them.
  return id.customer == kUpdateCustomer ? std::make_pair(id.origin, -2 - id.slice)
                                        : std::make_pair(id.origin, id.customer);
}

void ReplicaChain::Forget(int origin, int customer, int done_below) {
  Seen& s = seen_[{origin, customer}];
  if (done_below <= s.below) return;
  s.below = done_below;
  s.ids.erase(s.ids.begin(), s.ids.lower_bound({done_below, -1}));
}

bool ReplicaChain::SeenLocked(const Id& id) const {
  auto it = seen_.find(SeenKey(id));
  if (it == seen_.end()) return false;
  return id.ts < it->second.below || it->second.ids.count({id.ts, id.slice});
}

void ReplicaChain::MarkSeenLocked(const Id& id) {
  Seen& s = seen_[SeenKey(id)];
  if (id.customer == kUpdateCustomer) {
    s.below = std::max(s.below, id.ts + 1);
  } else if (id.ts >= s.below) {
    s.ids.emplace(id.ts, id.slice);
  }
}

int ReplicaChain::Successor(int slice) const {
  Van* van = postoffice_->van();
  if (!van) return 0;
  int next = van->chains().Successor(slice, postoffice_->my_rank());
  return next < 0 ? 0 : Postoffice::ServerRankToID(next);
}

void ReplicaChain::SendAck(int to, const Id& id, const Meta& like) {
  Message ack;
  ack.meta.app_id = like.app_id;
  ack.meta.customer_id = id.customer;  // an update's is kUpdateCustomer
  ack.meta.timestamp = id.ts;
  ack.meta.slice = id.slice;
  ack.meta.origin = id.origin;
  ack.meta.chain = Meta::kAck;
  ack.meta.request = true;  // taken by the server's handler, not its response matching
  ack.meta.priority = like.priority;
  ack.meta.recver = to;
  if (Van* van = postoffice_->van()) van->Send(ack);
}

ReplicaChain::Action ReplicaChain::OnRequest(Message* msg) {
  const Meta& m = msg->meta;
  if (!m.push) return Action::kHandle;  // reads are served by the primary as they are
  const Id id = IdOf(m, m.sender);
  std::lock_guard<std::mutex> lk(mu_);
  Forget(id.origin, id.customer, m.done_below);
  if (!SeenLocked(id)) {
    MarkSeenLocked(id);
    Entry& e = pending_[id];
    e.request = *msg;
    e.from = m.sender;
    e.from_worker = true;
    return Action::kHandle;
  }
  // Applied here already: the worker resent it to a new primary.
  auto it = pending_.find(id);
  if (it != pending_.end()) {
    // The chain still holds it: the answer goes to the worker once acknowledged.
    it->second.from = m.sender;
    it->second.from_worker = true;
    return Action::kDone;
  }
  if (m.pull) {
    // A push-pull whose push is in: read the values now, as a pull.
    msg->meta.push = false;
    msg->data.resize(1);
    msg->meta.data_type.resize(1);
    return Action::kHandle;
  }
  Message answer;
  answer.meta.app_id = m.app_id;
  answer.meta.customer_id = m.customer_id;
  answer.meta.timestamp = m.timestamp;
  answer.meta.head = m.head;
  answer.meta.slice = m.slice;
  answer.meta.push = true;
  answer.meta.recver = m.sender;
  if (Van* van = postoffice_->van()) van->Send(answer);
  return Action::kDone;
}

ReplicaChain::Action ReplicaChain::OnForward(Message* msg) {
  const Meta& m = msg->meta;
  const Id id = IdOf(m, m.origin);
  std::lock_guard<std::mutex> lk(mu_);
  Forget(id.origin, id.customer, m.done_below);
  if (SeenLocked(id)) {
    auto it = pending_.find(id);
    if (it != pending_.end()) {
      // Forwarded again by a new predecessor: acknowledged to it once the chain holds it.
      it->second.from = m.sender;
      it->second.from_worker = false;
    } else {
      SendAck(m.sender, id, m);
    }
    return Action::kDone;
  }
  MarkSeenLocked(id);
  Entry& e = pending_[id];
  e.request = *msg;
  e.from = m.sender;
  msg->meta.sender = m.origin;  // the handle sees the worker
  msg->meta.chain = Meta::kNoChain;
  return Action::kHandle;
}

bool ReplicaChain::OnAnswer(const KVMeta& req, Message* answer, bool updates) {
  if (!req.push || req.slice < 0) return false;
  std::lock_guard<std::mutex> lk(mu_);
  auto it = pending_.find(Id{req.sender, req.customer_id, req.timestamp, req.slice});
  if (it == pending_.end()) return false;
  Entry& e = it->second;
  e.answer = std::move(*answer);
  e.answered = true;
  if (!e.answer.meta.error.empty()) {
    // Not applied: the error goes back now, and a resend is applied afresh.
    auto s = seen_.find(SeenKey(it->first));
    if (s != seen_.end()) s->second.ids.erase({it->first.ts, it->first.slice});
    DeliverLocked(it);
    return true;
  }
  if (updates) {
    if (e.acked) DeliverLocked(it);
    return true;
  }
  ForwardLocked(it->first, &e);
  return true;
}

void ReplicaChain::ForwardLocked(const Id& id, Entry* e) {
  const int next = Successor(id.slice);
  if (next == 0) {
    // The tail: the chain holds it.
    DeliverLocked(pending_.find(id));
    return;
  }
  Message f = e->request;
  if (f.meta.chain != Meta::kUpdate) f.meta.chain = Meta::kForward;
  f.meta.origin = id.origin;
  f.meta.request = true;
  f.meta.recver = next;
  e->sent_to = next;
  if (Van* van = postoffice_->van()) van->Send(f);
}

void ReplicaChain::DeliverLocked(std::map<Id, Entry>::iterator it) {
  if (it == pending_.end()) return;
  const Id id = it->first;
  Entry e = std::move(it->second);
  pending_.erase(it);
  for (const Id& c : e.covers) {
    auto w = pending_.find(c);
    if (w == pending_.end()) continue;
    w->second.acked = true;
    if (w->second.answered) DeliverLocked(w);
  }
  if (e.from == 0) return;  // an update this server started
  if (e.from_worker) {
    if (Van* van = postoffice_->van()) van->Send(e.answer);
  } else {
    SendAck(e.from, id, e.request.meta);
  }
}

void ReplicaChain::OnAck(const Message& ack) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = pending_.find(IdOf(ack.meta, ack.meta.origin));
  if (it == pending_.end()) return;  // delivered already (an acknowledgement sent twice)
  DeliverLocked(it);
}

bool ReplicaChain::OnUpdate(const Message& update) {
  const Meta& m = update.meta;
  const Id id{m.origin, kUpdateCustomer, m.timestamp, m.slice};
  std::lock_guard<std::mutex> lk(mu_);
  if (SeenLocked(id)) {
    auto it = pending_.find(id);
    if (it != pending_.end()) {
      it->second.from = m.sender;
    } else {
      SendAck(m.sender, id, m);
    }
    return false;
  }
  MarkSeenLocked(id);
  // The pushes it covers are applied here with it: a worker that resends one to this server,
  // once it is primary, gets its answer without applying it again.
  for (size_t i = 0; i + 4 < m.covered.size(); i += 5) {
    Id c{m.covered[i], m.covered[i + 1], m.covered[i + 2], m.covered[i + 3]};
    Forget(c.origin, c.customer, m.covered[i + 4]);
    MarkSeenLocked(c);
  }
  Entry& e = pending_[id];
  e.request = update;
  e.from = m.sender;
  return true;
}

void ReplicaChain::Applied(const Message& update) {
  const Meta& m = update.meta;
  const Id id{m.origin, kUpdateCustomer, m.timestamp, m.slice};
  std::lock_guard<std::mutex> lk(mu_);
  auto it = pending_.find(id);
  if (it != pending_.end()) ForwardLocked(id, &it->second);
}

void ReplicaChain::Replicate(Message update, int slice, const std::vector<KVMeta>& covered) {
  std::lock_guard<std::mutex> lk(mu_);
  const int me = postoffice_->van() ? postoffice_->van()->my_node().id : 0;
  const Id id{me, kUpdateCustomer, next_update_++, slice};
  Entry e;
  for (const KVMeta& c : covered) {
    Id cid{c.sender, c.customer_id, c.timestamp, c.slice};
    auto w = pending_.find(cid);
    const int done_below = w == pending_.end() ? 0 : w->second.request.meta.done_below;
    update.meta.covered.insert(update.meta.covered.end(),
                               {cid.origin, cid.customer, cid.ts, cid.slice, done_below});
    e.covers.push_back(cid);
  }
  update.meta.chain = Meta::kUpdate;
  update.meta.timestamp = id.ts;
  update.meta.slice = slice;
  update.meta.origin = me;
  update.meta.request = true;
  e.request = std::move(update);
  e.from = 0;
  Entry& placed = pending_[id] = std::move(e);
  ForwardLocked(id, &placed);
}

void ReplicaChain::OnFailover() {
  std::lock_guard<std::mutex> lk(mu_);
  std::vector<Id> moved;
  for (auto& kv : pending_) {
    if (kv.second.sent_to != 0 && kv.second.sent_to != Successor(kv.first.slice)) {
      moved.push_back(kv.first);
    }
  }
  // In order: updates of one range are applied in the order they were made.
  for (const Id& id : moved) {
    auto it = pending_.find(id);
    if (it != pending_.end()) ForwardLocked(id, &it->second);
  }
}

std::vector<int> ReplicaChain::CopySeen(int slice) const {
  std::lock_guard<std::mutex> lk(mu_);
  const int me = postoffice_->van() ? postoffice_->van()->my_node().id : 0;
  // (origin, customer, below, count, count timestamps) per record.
  std::vector<int> out;
  auto add = [&](int origin, int customer, int below, const std::vector<int>& ts) {
    out.insert(out.end(), {origin, customer, below, static_cast<int>(ts.size())});
    out.insert(out.end(), ts.begin(), ts.end());
  };
  bool own = false;
  for (const auto& kv : seen_) {
    const int origin = kv.first.first, customer = kv.first.second;
    if (customer < -1) {
      // A primary's updates of a range, in order: "below" alone records them.
      if (customer != -2 - slice) continue;
      int below = kv.second.below;
      if (origin == me) {
        below = std::max(below, next_update_);
        own = true;
      }
      add(origin, customer, below, {});
      continue;
    }
    std::vector<int> ts;
    for (const auto& id : kv.second.ids) {
      if (id.second != slice) continue;
      auto p = pending_.find(Id{origin, customer, id.first, slice});
      // Not answered yet: its handle has not applied it (the copy is taken between requests).
      if (p != pending_.end() && !p->second.answered) continue;
      ts.push_back(id.first);
    }
    add(origin, customer, kv.second.below, ts);
  }
  // This server's own updates: the copy holds every one made so far.
  if (!own && next_update_ > 0) add(me, -2 - slice, next_update_, {});
  return out;
}

void ReplicaChain::AckHeld(const Message& msg) {
  const Meta& m = msg.meta;
  const Id id = m.chain == Meta::kUpdate ? Id{m.origin, kUpdateCustomer, m.timestamp, m.slice}
                                         : IdOf(m, m.origin);
  std::lock_guard<std::mutex> lk(mu_);
  SendAck(m.sender, id, m);
}

Status ReplicaChain::LoadSeen(int slice, const std::vector<int>& seen) {
  std::map<std::pair<int, int>, ReplicaChain::Seen> add;
  for (size_t i = 0; i < seen.size();) {
    if (i + 4 > seen.size() || seen[i + 3] < 0 ||
        static_cast<size_t>(seen[i + 3]) > seen.size() - i - 4 ||
        (seen[i + 1] < -1 && seen[i + 1] != -2 - slice)) {
      return Status::InvalidArgument("a malformed exactly-once record in the copy of key range " +
                                     std::to_string(slice));
    }
    auto& s = add[{seen[i], seen[i + 1]}];
    s.below = seen[i + 2];
    for (int j = 0; j < seen[i + 3]; ++j) s.ids.emplace(seen[i + 4 + j], slice);
    i += 4 + seen[i + 3];
  }
  std::lock_guard<std::mutex> lk(mu_);
  for (auto& kv : add) {
    auto& s = seen_[kv.first];
    s.below = std::max(s.below, kv.second.below);
    for (const auto& id : kv.second.ids) {
      if (id.first >= s.below) s.ids.insert(id);
    }
  }
  return Status::OK();
}

size_t ReplicaChain::tracked() const {
  std::lock_guard<std::mutex> lk(mu_);
  size_t n = 0;
  for (const auto& kv : seen_) n += kv.second.ids.size() + 1;
  return n;
}

size_t ReplicaChain::pending() const {
  std::lock_guard<std::mutex> lk(mu_);
  return pending_.size();
}

}  // namespace ps
