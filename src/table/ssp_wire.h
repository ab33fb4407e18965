// The rows of SSP tables and the messages that carry them between the SSP client of a worker
// process and the servers. Internal to src/table.
//
// Every SSP message is a request (meta.request) of the group's app to customer 0, whichever way
// it goes: a server's answers then reach the client's customer thread in the order the server
// sent them, which the client's cache relies on (see ssp_client.h). meta.head is the command:
//
//   kRead   client -> server   [INT64 table, row, thread, need_clock]
//   kClock  client -> server   [INT64 thread, clock] + row batch: the thread's increments of
//                              "clock", which it has now ended
//   kRows   server -> client   [INT64 kind, global_clock, held, thread, clock, n, n x (thread,
//                              clock)] + row batch. kind kReply answers a kRead of "thread"
//                              (one row; "held" if it waited for slower workers); kPush is an
//                              eager push after the global clock advanced; kAck acknowledges
//                              kClock "clock" of "thread" (no rows). The (thread, clock) pairs
//                              are the clocks of the receiving node's threads at the server.
//   kCheckpoint      client -> server  [INT64 clock]: write this server's rows as of global
//                                       clock "clock" to the checkpoint of that step, once the
//                                       global clock is there (see SSPWorker::Checkpoint)
//   kCheckpointDone  server -> client  [INT64 clock, bytes, checksum] of the file written, or
//                                       an error in meta.body
//
// A row batch is three frames: [INT64 n x (table, row, count)] [UINT64 columns of the sparse
// rows] [DOUBLE values]. A dense row has count = its width and no columns.
#ifndef PS_TABLE_SSP_WIRE_H_
#define PS_TABLE_SSP_WIRE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "ps/internal/message.h"
#include "ps/ssp_table.h"

namespace ps {
namespace ssp {

enum Command : int { kRead = 1, kClock = 2, kRows = 3, kCheckpoint = 4, kCheckpointDone = 5 };
enum RowsKind : int64_t { kReply = 0, kPush = 1, kAck = 2 };

// Sanity bounds on what a peer may send.
constexpr int64_t kMaxThreads = 1 << 16;
constexpr int64_t kMaxRowEntries = int64_t{1} << 28;

struct RowKey {
  int table;
  uint64_t row;
  bool operator==(const RowKey& o) const { return table == o.table && row == o.row; }
};

struct RowKeyHash {
  size_t operator()(const RowKey& k) const {
    return std::hash<uint64_t>()(k.row * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(k.table));
  }
};

// The values of one row: "dense" for tables with a width, "sparse" otherwise.
struct RowData {
  std::vector<double> dense;
  std::map<uint64_t, double> sparse;

  void Add(const RowData& o) {
    if (dense.size() < o.dense.size()) dense.resize(o.dense.size(), 0.0);
    for (size_t i = 0; i < o.dense.size(); ++i) dense[i] += o.dense[i];
    for (const auto& kv : o.sparse) sparse[kv.first] += kv.second;
  }
};

using RowMap = std::unordered_map<RowKey, RowData, RowKeyHash>;

// The tables of a group by id.
using TableMap = std::unordered_map<int, SSPTableConfig>;

// The server rank that holds "key" among "num_servers".
inline int ServerOf(const RowKey& key, int num_servers) {
  return static_cast<int>((key.row + static_cast<uint64_t>(key.table)) %
                          static_cast<uint64_t>(num_servers));
}

// A decoded row batch.
struct RowBatch {
  std::vector<RowKey> keys;
  std::vector<RowData> rows;
};

// An SSP message of app "app_id", command "head", to node "recver": a request to customer 0,
// as every SSP message is.
inline Message NewMessage(int app_id, int head, int recver) {
  Message msg;
  msg.meta.app_id = app_id;
  msg.meta.customer_id = 0;
  msg.meta.request = true;
  msg.meta.head = head;
  msg.meta.timestamp = 0;
  msg.meta.recver = recver;
  return msg;
}

// Appends a batch of "rows" to "msg" (three frames). "tables" gives each row's kind.
void AppendRows(const TableMap& tables, const std::vector<const RowKey*>& keys,
                const std::vector<const RowData*>& rows, Message* msg);

// Reads the row batch in msg.data[first .. first + 2]. Fails on unknown tables, counts that do
// not add up, columns outside a dense row. Never trusts the peer.
Status ParseRows(const TableMap& tables, const Message& msg, size_t first, RowBatch* out);

// The INT64 header frame "index" of msg, checked for type and minimum length.
Status HeaderFrame(const Message& msg, size_t index, size_t min_len, SArray<int64_t>* out);

}  // namespace ssp
}  // namespace ps
#endif  // PS_TABLE_SSP_WIRE_H_
