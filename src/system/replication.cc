#include "ps/internal/replication.h"

#include <algorithm>
#include <sstream>

#include "ps/base.h"

namespace ps {

ServerChains::ServerChains(int num_servers, int k)
    : num_servers_(num_servers),
      k_(k),
      dead_(num_servers, false),
      syncing_(num_servers, false),
      revived_(num_servers, 0) {}

bool ServerChains::MarkDead(int rank) {
  if (rank < 0 || rank >= num_servers_ || dead_[rank]) return LostRange() < 0;
  dead_[rank] = true;
  syncing_[rank] = false;
  ++epoch_;
  return LostRange() < 0;
}

bool ServerChains::Revive(int rank) {
  if (rank < 0 || rank >= num_servers_ || !dead_[rank]) return false;
  dead_[rank] = false;
  syncing_[rank] = true;
  revived_[rank] = ++revivals_;
  ++epoch_;
  return true;
}

bool ServerChains::MarkSynced(int rank) {
  if (!syncing(rank)) return false;
  syncing_[rank] = false;
  ++epoch_;
  return true;
}

std::vector<int> ServerChains::Encode() const {
  std::vector<int> out = {num_servers_, k_, epoch_, revivals_};
  for (int r = 0; r < num_servers_; ++r) {
    out.push_back((dead_[r] ? 1 : 0) | (syncing_[r] ? 2 : 0));
    out.push_back(revived_[r]);
  }
  return out;
}

Status ServerChains::Decode(const std::vector<int>& in) {
  if (in.size() != 4 + 2 * static_cast<size_t>(num_servers_) || in[0] != num_servers_ ||
      in[1] != k_ || in[2] < 0 || in[3] < 0) {
    return Status::InvalidArgument("a replication configuration for another job (" +
                                   std::to_string(in.size()) + " values)");
  }
  ServerChains c(num_servers_, k_);
  c.epoch_ = in[2];
  c.revivals_ = in[3];
  for (int r = 0; r < num_servers_; ++r) {
    const int flags = in[4 + 2 * r], when = in[5 + 2 * r];
    if (flags < 0 || flags > 2 || when < 0 || when > c.revivals_) {
      return Status::InvalidArgument("a malformed replication configuration");
    }
    c.dead_[r] = flags & 1;
    c.syncing_[r] = flags & 2;
    c.revived_[r] = when;
  }
  *this = c;
  return Status::OK();
}
int ServerChains::LostRange() const {
  for (int r = 0; r < num_servers_; ++r) {
    if (Primary(r) < 0) return r;
  }
  return -1;
}

std::vector<int> ServerChains::Chain(int range) const {
  std::vector<int> chain;
  for (int i = 0; i < k_; ++i) {
    int rank = (range + i) % num_servers_;
    if (!dead_[rank]) chain.push_back(rank);
  }
  // Revived ranks behind the others, in the order they came back: each joined at the tail.
  std::stable_sort(chain.begin(), chain.end(),
                   [this](int a, int b) { return revived_[a] < revived_[b]; });
  return chain;
}

int ServerChains::Primary(int range) const {
  for (int rank : Chain(range)) {
    if (!syncing_[rank]) return rank;
  }
  return -1;
}

int ServerChains::Successor(int range, int rank) const {
  std::vector<int> chain = Chain(range);
  auto it = std::find(chain.begin(), chain.end(), rank);
  if (it == chain.end() || ++it == chain.end()) return -1;
  return *it;
}

bool ServerChains::Holds(int rank, int range) const {
  return rank >= 0 && rank < num_servers_ && (rank - range + num_servers_) % num_servers_ < k_;
}

std::string ServerChains::LostMessage(int range, const std::vector<Range>& ranges) const {
  std::ostringstream os;
  os << "key range ";
  if (range >= 0 && range < static_cast<int>(ranges.size())) {
    os << "[" << ranges[range].begin() << ", " << ranges[range].end() << ")";
  } else {
    os << range;
  }
  os << " is lost: server" << (k_ > 1 ? "s " : " ");
  std::ostringstream ids;
  for (int i = 0; i < k_; ++i) {
    int rank = (range + i) % num_servers_;
    const char* sep = i == 0 ? "" : i + 1 == k_ ? " and " : ", ";
    os << sep << rank;
    ids << (i ? ", " : "") << 8 + 2 * rank;
  }
  os << " (node" << (k_ > 1 ? "s " : " ") << ids.str() << ") " << (k_ > 1 ? "are" : "is")
     << " dead and PS_REPLICATION=" << k_;
  return os.str();
}

std::vector<Range> DefaultKeyRanges(int n) {
  // Server i owns [i * 2^b / n, (i + 1) * 2^b / n), computed without overflow.
  std::vector<Range> ranges;
  using Wide = unsigned __int128;
  Wide space = static_cast<Wide>(kMaxKey) + 1;
  for (int i = 0; i < n; ++i) {
    uint64_t begin = static_cast<uint64_t>(space * i / n);
    uint64_t end =
        i + 1 == n ? static_cast<uint64_t>(kMaxKey) : static_cast<uint64_t>(space * (i + 1) / n);
    ranges.emplace_back(begin, end);
  }
  return ranges;
}

Status CheckReplication(int k, int num_servers) {
  if (k < 1 || (num_servers > 0 && k > num_servers)) {
    return Status::InvalidArgument(
        "PS_REPLICATION=" + std::to_string(k) +
        " must be between 1 and DMLC_NUM_SERVER=" + std::to_string(num_servers));
  }
  return Status::OK();
}

}  // namespace ps
