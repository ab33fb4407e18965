// Message is the unit the van carries: a Meta (what the message is, who sends it to whom) and
// zero or more data frames (SArray<char>, shared with the application, never copied by the van).
// On the wire one message is one ZeroMQ multipart message [meta][data 0][data 1]...; the meta is
// the protobuf of src/message/meta.proto.
#ifndef PS_INTERNAL_MESSAGE_H_
#define PS_INTERNAL_MESSAGE_H_

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "ps/sarray.h"

namespace ps {

// The element type of a data frame. Receivers check that a frame's size divides by its size.
enum DataType : int {
  CHAR,
  INT8,
  INT16,
  INT32,
  INT64,
  UINT8,
  UINT16,
  UINT32,
  UINT64,
  FLOAT,
  DOUBLE,
  OTHER
};
static const int kNumDataTypes = OTHER + 1;
// Size in bytes of one element of "type"; OTHER counts as 1 (opaque bytes).
size_t DataTypeSize(DataType type);

template <typename V>
DataType GetDataType() {
  if (std::is_same<V, int8_t>::value) return INT8;
  if (std::is_same<V, int16_t>::value) return INT16;
  if (std::is_same<V, int32_t>::value) return INT32;
  if (std::is_same<V, int64_t>::value) return INT64;
  if (std::is_same<V, uint8_t>::value) return UINT8;
  if (std::is_same<V, uint16_t>::value) return UINT16;
  if (std::is_same<V, uint32_t>::value) return UINT32;
  if (std::is_same<V, uint64_t>::value) return UINT64;
  if (std::is_same<V, float>::value) return FLOAT;
  if (std::is_same<V, double>::value) return DOUBLE;
  if (std::is_same<V, char>::value) return CHAR;
  return OTHER;
}

// A node of the job, as the scheduler announces it.
struct Node {
  enum Role : int { SERVER, WORKER, SCHEDULER };
  static const int kEmpty;  // no id assigned yet

  Role role = SERVER;
  int id = kEmpty;
  std::string hostname;
  int port = -1;
  int customer_id = 0;  // the registering customer (several may share one node)
  // The public key its connections' routing ids derive to (see src/van/peer_guard.h); set by
  // the scheduler at registration.
  std::string conn_key;

  std::string DebugString() const;
  // "server 1", "worker 0", "scheduler": how messages name a node to a user.
  std::string ShortName() const;
};

const char* RoleName(Node::Role role);

// Control messages: the van's own protocol between the nodes and the scheduler.
struct Control {
  // REPLACE_NODE (scheduler to nodes): node[0] takes the place of the dead server of its id.
  // SYNCED: a replacement server holds its key ranges (to the scheduler), and the configuration
  // that counts it as a full replica (from the scheduler; failed_node names it).
  enum Command : int {
    EMPTY,
    ADD_NODE,
    BARRIER,
    HEARTBEAT,
    NODE_FAILED,
    TERMINATE,
    REPLACE_NODE,
    SYNCED
  };
  static const int kNumCommands = SYNCED + 1;

  bool empty() const { return cmd == EMPTY; }
  std::string DebugString() const;

  Command cmd = EMPTY;
  std::vector<Node> node;   // ADD_NODE: the registering node, or the full list from the scheduler
  int barrier_group = 0;    // BARRIER: the group that synchronises
  bool finalize = false;    // BARRIER: the final barrier of Finalize
  bool barrier_ok = true;   // BARRIER reply: false when the barrier cannot complete
  int failed_node = 0;      // NODE_FAILED: id of the dead node
  std::string reason;       // NODE_FAILED, TERMINATE, failed BARRIER: why, for the user
  int epoch = 0;            // NODE_FAILED of a server the replicas cover: the new epoch
  std::vector<int> chains;  // ADD_NODE to a replacement server: the configuration it joins
  bool recovery = false;    // ADD_NODE to a replacement server
};

// A filter applied to the data frames of a message: its registered name and what its decoder
// needs to know (the filter defines the arguments; see ps/filter.h).
struct FilterRecord {
  std::string name;
  std::vector<int64_t> args;

  bool operator==(const FilterRecord& o) const { return name == o.name && args == o.args; }
};

struct Meta {
  static const int kEmpty;

  std::string DebugString() const;

  int head = kEmpty;  // the user's command (cmd of KVWorker, head of SimpleApp)
  int app_id = kEmpty;
  int customer_id = kEmpty;  // the requesting customer; echoed by the response
  int timestamp = kEmpty;    // of the request; echoed by the response
  int sender = kEmpty;
  int recver = kEmpty;
  bool request = false;
  bool push = false;
  bool pull = false;
  bool simple_app = false;
  int priority = 0;
  std::string body;
  std::vector<DataType> data_type;  // one per data frame
  Control control;
  // A response may carry an error instead of data (KVServer answering with an error).
  std::string error;
  // The filters applied to the data frames, in order; the receiver undoes them in reverse.
  // data_type then describes the frames as they travel (an encoded frame is CHAR, say).
  std::vector<FilterRecord> filters;
  // The receiver of request "timestamp" could not decode it (a filter lacked state the sender
  // assumed, such as an evicted key cache entry) and asks the sender to send it again in full.
  // Travels as a request without data to the requesting customer.
  bool filter_miss = false;

  // Server replication (PS_REPLICATION >= 2; see ps/internal/replication.h).
  enum Chain : int { kNoChain, kForward, kAck, kUpdate, kCopy };
  int epoch = 0;   // the sender's configuration epoch, set by the van
  int slice = -1;  // a key-value request's key range, echoed by its response
  int chain = kNoChain;
  int origin = 0;            // kForward: the worker that sent the request
  int done_below = 0;        // the requester's oldest unfinished timestamp
  std::vector<int> covered;  // kUpdate: (sender, customer, timestamp, slice, done_below) each
};

struct Message {
  Meta meta;
  std::vector<SArray<char>> data;

  // Appends "val" as a data frame, sharing its buffer.
  template <typename V>
  void AddData(const SArray<V>& val) {
    CHECK_EQ(data.size(), meta.data_type.size());
    meta.data_type.push_back(GetDataType<V>());
    SArray<char> bytes(val);
    data.push_back(bytes);
  }

  size_t data_bytes() const {
    size_t n = 0;
    for (const auto& d : data) n += d.size();
    return n;
  }

  std::string DebugString() const;
};

}  // namespace ps
#endif  // PS_INTERNAL_MESSAGE_H_
