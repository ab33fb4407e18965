#include "message/codec.h"

#include "meta.pb.h"

namespace ps {
namespace {

void EncodeNode(const Node& n, wire::PBNode* pb) {
  pb->set_role(n.role);
  pb->set_id(n.id);
  pb->set_hostname(n.hostname);
  pb->set_port(n.port);
  pb->set_customer_id(n.customer_id);
  if (!n.conn_key.empty()) pb->set_conn_key(n.conn_key);
}

bool InRange(int v, int n) { return v >= 0 && v < n; }

}  // namespace

void EncodeMeta(const Meta& meta, std::string* out) {
  wire::PBMeta pb;
  pb.set_version(kWireVersion);
  pb.set_head(meta.head);
  pb.set_app_id(meta.app_id);
  pb.set_customer_id(meta.customer_id);
  pb.set_timestamp(meta.timestamp);
  pb.set_sender(meta.sender);
  pb.set_recver(meta.recver);
  if (meta.request) pb.set_request(true);
  if (meta.push) pb.set_push(true);
  if (meta.pull) pb.set_pull(true);
  if (meta.simple_app) pb.set_simple_app(true);
  if (meta.priority) pb.set_priority(meta.priority);
  if (!meta.body.empty()) pb.set_body(meta.body);
  for (DataType t : meta.data_type) pb.add_data_type(t);
  if (!meta.error.empty()) pb.set_error(meta.error);
  for (const FilterRecord& f : meta.filters) {
    wire::PBFilter* pf = pb.add_filter();
    pf->set_name(f.name);
    for (int64_t a : f.args) pf->add_arg(a);
  }
  if (meta.filter_miss) pb.set_filter_miss(true);
  if (meta.epoch) pb.set_epoch(meta.epoch);
  if (meta.slice >= 0) pb.set_slice(meta.slice);
  if (meta.chain) pb.set_chain(meta.chain);
  if (meta.origin) pb.set_origin(meta.origin);
  if (meta.done_below) pb.set_done_below(meta.done_below);
  for (int c : meta.covered) pb.add_covered(c);
  if (!meta.control.empty()) {
    const Control& c = meta.control;
    wire::PBControl* pc = pb.mutable_control();
    pc->set_cmd(c.cmd);
    for (const Node& n : c.node) EncodeNode(n, pc->add_node());
    if (c.barrier_group) pc->set_barrier_group(c.barrier_group);
    if (c.finalize) pc->set_finalize(true);
    if (!c.barrier_ok) pc->set_barrier_ok(false);
    if (c.failed_node) pc->set_failed_node(c.failed_node);
    if (!c.reason.empty()) pc->set_reason(c.reason);
    if (c.epoch) pc->set_epoch(c.epoch);
    for (int v : c.chains) pc->add_chains(v);
    if (c.recovery) pc->set_recovery(true);
  }
  out->clear();
  pb.SerializeToString(out);
}

Status DecodeMeta(const char* data, size_t size, Meta* meta) {
  wire::PBMeta pb;
  if (size > static_cast<size_t>(INT32_MAX) || !pb.ParseFromArray(data, static_cast<int>(size))) {
    return Status::InvalidArgument("meta does not parse");
  }
  if (pb.version() != kWireVersion) {
    return Status::InvalidArgument("wire format version " + std::to_string(pb.version()) +
                                   ", expected " + std::to_string(kWireVersion));
  }
  Meta m;
  m.head = pb.head();
  m.app_id = pb.app_id();
  m.customer_id = pb.customer_id();
  m.timestamp = pb.timestamp();
  m.sender = pb.sender();
  m.recver = pb.recver();
  m.request = pb.request();
  m.push = pb.push();
  m.pull = pb.pull();
  m.simple_app = pb.simple_app();
  m.priority = pb.priority();
  m.body = pb.body();
  m.error = pb.error();
  m.data_type.reserve(pb.data_type_size());
  for (int t : pb.data_type()) {
    if (!InRange(t, kNumDataTypes)) return Status::InvalidArgument("unknown data type");
    m.data_type.push_back(static_cast<DataType>(t));
  }
  if (static_cast<size_t>(pb.filter_size()) > kMaxFilterRecords) {
    return Status::InvalidArgument("too many filter records");
  }
  m.filters.reserve(pb.filter_size());
  for (const wire::PBFilter& pf : pb.filter()) {
    if (pf.name().empty()) return Status::InvalidArgument("a filter record without a name");
    if (static_cast<size_t>(pf.arg_size()) > kMaxFilterArgs) {
      return Status::InvalidArgument("too many filter arguments");
    }
    m.filters.push_back(FilterRecord{pf.name(), {pf.arg().begin(), pf.arg().end()}});
  }
  m.filter_miss = pb.filter_miss();
  m.epoch = pb.epoch();
  m.slice = pb.slice();
  if (m.slice < -1 || !InRange(pb.chain(), Meta::kCopy + 1) || pb.covered_size() % 5 != 0) {
    return Status::InvalidArgument("bad replication fields");
  }
  m.chain = pb.chain();
  m.origin = pb.origin();
  m.done_below = pb.done_below();
  m.covered.assign(pb.covered().begin(), pb.covered().end());
  if (pb.has_control()) {
    const wire::PBControl& pc = pb.control();
    if (!InRange(pc.cmd(), Control::kNumCommands)) {
      return Status::InvalidArgument("unknown control command");
    }
    Control& c = m.control;
    c.cmd = static_cast<Control::Command>(pc.cmd());
    for (const wire::PBNode& pn : pc.node()) {
      if (!InRange(pn.role(), Node::SCHEDULER + 1)) {
        return Status::InvalidArgument("unknown node role");
      }
      Node n;
      n.role = static_cast<Node::Role>(pn.role());
      n.id = pn.id();
      n.hostname = pn.hostname();
      n.port = pn.port();
      n.customer_id = pn.customer_id();
      n.conn_key = pn.conn_key();
      c.node.push_back(std::move(n));
    }
    c.barrier_group = pc.barrier_group();
    c.finalize = pc.finalize();
    c.barrier_ok = pc.barrier_ok();
    c.failed_node = pc.failed_node();
    c.reason = pc.reason();
    c.epoch = pc.epoch();
    c.chains.assign(pc.chains().begin(), pc.chains().end());
    c.recovery = pc.recovery();
  }
  *meta = std::move(m);
  return Status::OK();
}

}  // namespace ps
