#include "ps/internal/replication.h"

#include <sstream>

#include "ps/base.h"

namespace ps {

ServerChains::ServerChains(int num_servers, int k)
    : num_servers_(num_servers), k_(k), dead_(num_servers, false) {}

bool ServerChains::MarkDead(int rank) {
  if (rank < 0 || rank >= num_servers_ || dead_[rank]) return LostRange() < 0;
  dead_[rank] = true;
  ++epoch_;
  return LostRange() < 0;
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
  return chain;
}

int ServerChains::Primary(int range) const {
  for (int i = 0; i < k_; ++i) {
    int rank = (range + i) % num_servers_;
    if (!dead_[rank]) return rank;
  }
  return -1;
}

int ServerChains::Successor(int range, int rank) const {
  bool after = false;
  for (int i = 0; i < k_; ++i) {
    int r = (range + i) % num_servers_;
    if (after && !dead_[r]) return r;
    if (r == rank) after = true;
  }
  return -1;
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
