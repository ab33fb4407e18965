// Consistency models: parsing (PS_CONSISTENCY, set_consistency) and printing.
#include "ps/consistency.h"

#include "ps/internal/env.h"

namespace ps {
Status Consistency::Parse(const std::string& spec, Consistency* out) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("PS_CONSISTENCY=" + spec + ": " + why +
                                   "; use sequential, bounded:N or eventual");
  };
  if (spec == "sequential") {
    *out = Sequential();
  } else if (spec == "eventual") {
    *out = Eventual();
  } else if (spec.compare(0, 8, "bounded:") == 0) {
    const std::string n = spec.substr(8);
    long tau = -1;
    if (!Environment::ParseInt(n, &tau) || tau < 0 || tau > (1 << 20)) {
      return bad("the delay " + n + " is not a number from 0 to 1048576");
    }
    *out = BoundedDelay(static_cast<int>(tau));
  } else {
    return bad("unknown model");
  }
  return Status::OK();
}

std::string Consistency::ToString() const {
  switch (model) {
    case Model::kSequential:
      return "sequential";
    case Model::kBoundedDelay:
      return "bounded:" + std::to_string(tau);
    default:
      return "eventual";
  }
}

}  // namespace ps
