#include "ps/kv_pairs.h"

#include "ps/internal/key_order.h"

namespace ps {
namespace kv {

Status CheckOrder(const SArray<Key>& keys) {
  size_t i = FirstKeyOutOfOrder(keys.data(), keys.size());
  if (i == keys.size()) return Status::OK();
  return Status::InvalidArgument("keys must be sorted and unique: keys[" + std::to_string(i) +
                                 "]=" + std::to_string(keys[i]) + " comes after keys[" +
                                 std::to_string(i - 1) + "]=" + std::to_string(keys[i - 1]));
}

}  // namespace kv
}  // namespace ps
