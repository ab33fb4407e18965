#include "table/ssp_wire.h"

#include <memory>

namespace ps {
namespace ssp {

void AppendRows(const TableMap& tables, const std::vector<const RowKey*>& keys,
                const std::vector<const RowData*>& rows, Message* msg) {
  // Built in vectors, then shared with the message without a copy.
  auto meta_vec = std::make_shared<std::vector<int64_t>>();
  auto cols_vec = std::make_shared<std::vector<uint64_t>>();
  auto vals_vec = std::make_shared<std::vector<double>>();
  std::vector<int64_t>& meta = *meta_vec;
  std::vector<uint64_t>& cols = *cols_vec;
  std::vector<double>& vals = *vals_vec;
  meta.reserve(keys.size() * 3);
  for (size_t i = 0; i < keys.size(); ++i) {
    const SSPTableConfig& t = tables.at(keys[i]->table);
    const RowData& r = *rows[i];
    meta.push_back(keys[i]->table);
    meta.push_back(static_cast<int64_t>(keys[i]->row));
    if (t.row_width > 0) {
      meta.push_back(t.row_width);
      for (int j = 0; j < t.row_width; ++j) {
        vals.push_back(j < static_cast<int>(r.dense.size()) ? r.dense[j] : 0.0);
      }
    } else {
      meta.push_back(static_cast<int64_t>(r.sparse.size()));
      for (const auto& kv : r.sparse) {
        cols.push_back(kv.first);
        vals.push_back(kv.second);
      }
    }
  }
  msg->AddData(SArray<int64_t>(meta_vec));
  msg->AddData(SArray<uint64_t>(cols_vec));
  msg->AddData(SArray<double>(vals_vec));
}

Status ParseRows(const TableMap& tables, const Message& msg, size_t first, RowBatch* out) {
  const auto& types = msg.meta.data_type;
  if (types.size() != first + 3 || msg.data.size() != first + 3 || types[first] != INT64 ||
      types[first + 1] != UINT64 || types[first + 2] != DOUBLE) {
    return Status::InvalidArgument("row batch frames are not (INT64, UINT64, DOUBLE)");
  }
  SArray<int64_t> meta(msg.data[first]);
  SArray<uint64_t> cols(msg.data[first + 1]);
  SArray<double> vals(msg.data[first + 2]);
  if (meta.size() % 3 != 0) return Status::InvalidArgument("row batch meta not in triples");
  const size_t n = meta.size() / 3;
  out->keys.resize(n);
  out->rows.assign(n, RowData());
  size_t col_at = 0, val_at = 0;
  for (size_t i = 0; i < n; ++i) {
    const int64_t table = meta[3 * i], count = meta[3 * i + 2];
    auto t = tables.find(static_cast<int>(table));
    if (table < 0 || table > INT32_MAX || t == tables.end()) {
      return Status::InvalidArgument("row batch names unknown table " + std::to_string(table));
    }
    if (count < 0 || count > kMaxRowEntries || static_cast<size_t>(count) > vals.size() - val_at) {
      return Status::InvalidArgument("row batch count " + std::to_string(count) +
                                     " does not fit the values");
    }
    out->keys[i] = RowKey{static_cast<int>(table), static_cast<uint64_t>(meta[3 * i + 1])};
    RowData& r = out->rows[i];
    const size_t c = static_cast<size_t>(count);
    if (t->second.row_width > 0) {
      if (count != t->second.row_width) {
        return Status::InvalidArgument("a dense row of table " + std::to_string(table) + " has " +
                                       std::to_string(count) + " values, not " +
                                       std::to_string(t->second.row_width));
      }
      r.dense.assign(vals.data() + val_at, vals.data() + val_at + c);
    } else {
      if (c > cols.size() - col_at) {
        return Status::InvalidArgument("row batch columns do not add up");
      }
      for (size_t j = 0; j < c; ++j) r.sparse[cols[col_at + j]] += vals[val_at + j];
      col_at += c;
    }
    val_at += c;
  }
  if (col_at != cols.size() || val_at != vals.size()) {
    return Status::InvalidArgument("row batch has values or columns left over");
  }
  return Status::OK();
}

Status HeaderFrame(const Message& msg, size_t index, size_t min_len, SArray<int64_t>* out) {
  if (msg.data.size() <= index || msg.meta.data_type.size() != msg.data.size() ||
      msg.meta.data_type[index] != INT64) {
    return Status::InvalidArgument("missing INT64 header frame");
  }
  *out = SArray<int64_t>(msg.data[index]);
  if (out->size() < min_len) {
    return Status::InvalidArgument("header frame has " + std::to_string(out->size()) +
                                   " entries, fewer than " + std::to_string(min_len));
  }
  return Status::OK();
}

}  // namespace ssp
}  // namespace ps
