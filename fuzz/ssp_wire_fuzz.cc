// The SSP wire format on untrusted frames: the header frames and the row batches of the
// tables of a group (one dense, one sparse). Parsing fails or gives rows that fit their
// tables; it never crashes.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "fuzz/fuzz_input.h"
#include "table/ssp_wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ps::fuzz::FuzzInput in(data, size);
  ps::ssp::TableMap tables;
  ps::SSPTableConfig dense;
  dense.row_width = 1 + in.Byte() % 16;
  tables[0] = dense;
  tables[1] = ps::SSPTableConfig();  // sparse
  ps::Message msg;
  int frames = 1 + in.Byte() % 5;
  for (int i = 0; i < frames; ++i) {
    msg.meta.data_type.push_back(static_cast<ps::DataType>(in.Byte() % (ps::DOUBLE + 1)));
    std::string bytes = in.Bytes();
    size_t elem = ps::DataTypeSize(msg.meta.data_type.back());
    bytes.resize(bytes.size() / elem * elem);  // as the van lets it through
    ps::SArray<char> frame;
    frame.CopyFrom(bytes.data(), bytes.size());
    msg.data.push_back(frame);
  }
  ps::SArray<int64_t> header;
  (void)ps::ssp::HeaderFrame(msg, 0, 1 + in.Byte() % 8, &header);
  ps::ssp::RowBatch batch;
  size_t first = in.Byte() % 3;
  if (!ps::ssp::ParseRows(tables, msg, first, &batch).ok()) return 0;
  if (batch.keys.size() != batch.rows.size()) abort();
  for (size_t i = 0; i < batch.keys.size(); ++i) {
    auto t = tables.find(batch.keys[i].table);
    if (t == tables.end()) abort();
    if (t->second.row_width > 0 &&
        batch.rows[i].dense.size() > static_cast<size_t>(t->second.row_width))
      abort();
  }
  return 0;
}
