#include "ps/internal/message.h"

namespace ps {

const int Node::kEmpty = -1;
const int Meta::kEmpty = -1;

size_t DataTypeSize(DataType type) {
  switch (type) {
    case INT16:
    case UINT16:
      return 2;
    case INT32:
    case UINT32:
    case FLOAT:
      return 4;
    case INT64:
    case UINT64:
    case DOUBLE:
      return 8;
    default:
      return 1;
  }
}

const char* RoleName(Node::Role role) {
  switch (role) {
    case Node::SERVER:
      return "server";
    case Node::WORKER:
      return "worker";
    default:
      return "scheduler";
  }
}

std::string Node::ShortName() const {
  if (role == SCHEDULER) return "scheduler";
  std::string name = RoleName(role);
  if (id == kEmpty) return name;
  // ps-lite's ids: server rank r is 8 + 2r, worker rank r is 9 + 2r.
  return name + " " + std::to_string((id - 8) / 2);
}

std::string Node::DebugString() const {
  std::stringstream ss;
  ss << ShortName() << " (id " << id << ") at " << hostname << ":" << port;
  return ss.str();
}

std::string Control::DebugString() const {
  static const char* kNames[] = {"EMPTY",       "ADD_NODE",  "BARRIER",      "HEARTBEAT",
                                 "NODE_FAILED", "TERMINATE", "REPLACE_NODE", "SYNCED"};
  std::stringstream ss;
  ss << kNames[cmd];
  for (const Node& n : node) ss << " {" << n.DebugString() << "}";
  if (cmd == BARRIER) ss << " group=" << barrier_group << (finalize ? " final" : "");
  if (!barrier_ok) ss << " failed";
  if (failed_node) ss << " node=" << failed_node;
  if (!reason.empty()) ss << " reason=\"" << reason << "\"";
  if (epoch) ss << " epoch=" << epoch;
  if (recovery) ss << " recovery";
  return ss.str();
}

std::string Meta::DebugString() const {
  std::stringstream ss;
  ss << sender << " => " << recver << " ";
  if (!control.empty()) {
    ss << control.DebugString();
    return ss.str();
  }
  ss << (request ? "request" : "response") << " app=" << app_id << " customer=" << customer_id
     << " ts=" << timestamp << " head=" << head;
  if (push) ss << " push";
  if (pull) ss << " pull";
  if (simple_app) ss << " simple";
  if (!body.empty()) ss << " body=" << body.size() << "B";
  if (!error.empty()) ss << " error=\"" << error << "\"";
  for (size_t i = 0; i < filters.size(); ++i) {
    ss << (i ? "," : " filters=") << filters[i].name << "(" << filters[i].args.size() << ")";
  }
  if (filter_miss) ss << " filter_miss";
  if (epoch) ss << " epoch=" << epoch;
  if (slice >= 0) ss << " slice=" << slice;
  static const char* kChains[] = {"", "forward", "ack", "update", "copy"};
  if (chain) ss << " chain=" << kChains[chain] << " origin=" << origin;
  return ss.str();
}

std::string Message::DebugString() const {
  std::stringstream ss;
  ss << meta.DebugString();
  if (!data.empty()) {
    ss << " data=[";
    for (size_t i = 0; i < data.size(); ++i) ss << (i ? "," : "") << data[i].size() << "B";
    ss << "]";
  }
  return ss.str();
}

}  // namespace ps
