#include "ps/internal/filter_chain.h"

#include <algorithm>
#include <atomic>
#include <iomanip>
#include <sstream>

#include "filter/builtin_filters.h"
#include "ps/internal/postoffice.h"

namespace ps {
namespace {

// Every node checks the filters' variables when it parses its configuration: a bad value stops
// Start with a one-line error, whether or not this node's apps would use it.
Status CheckFilterConfig(const Environment& env) {
  size_t unused;
  Status s = ReadKeyCacheBytes(env, &unused);
  if (s.ok()) s = ReadCompressMinBytes(env, &unused);
  if (!s.ok()) return s;
  const char* spec = env.find("PS_FILTERS");
  if (!spec) return Status::OK();
  std::vector<std::pair<std::string, std::string>> filters;
  s = FilterChain::Parse(spec, env, &filters);
  if (!s.ok())
    return Status::InvalidArgument(std::string("PS_FILTERS=") + spec + ": " + s.message());
  return Status::OK();
}

[[maybe_unused]] const bool kConfigChecked = (Postoffice::AddConfigCheck(CheckFilterConfig), true);

// "worker 0", or "node" before the node started.
std::string NodeName(Postoffice* po) {
  return po->van() ? po->van()->my_node().ShortName() : "node";
}

}  // namespace

struct FilterChain::Counters {
  explicit Counters(std::string n) : name(std::move(n)) {}

  // Messages, messages changed, bytes before, bytes after.
  void Count(std::atomic<uint64_t>* dir, bool applied, size_t before, size_t after) {
    dir[0].fetch_add(1, std::memory_order_relaxed);
    if (applied) dir[1].fetch_add(1, std::memory_order_relaxed);
    dir[2].fetch_add(before, std::memory_order_relaxed);
    dir[3].fetch_add(after, std::memory_order_relaxed);
  }

  FilterStats Snapshot() const {
    FilterStats s;
    s.name = name;
    auto copy = [](const std::atomic<uint64_t>* d, FilterStats::Direction* out) {
      out->messages = d[0].load();
      out->applied = d[1].load();
      out->bytes_before = d[2].load();
      out->bytes_after = d[3].load();
    };
    copy(encode, &s.encode);
    copy(decode, &s.decode);
    s.dropped = dropped.load();
    s.misses = misses.load();
    s.resent = resent.load();
    return s;
  }

  const std::string name;
  std::atomic<uint64_t> encode[4] = {};
  std::atomic<uint64_t> decode[4] = {};
  std::atomic<uint64_t> dropped{0};
  std::atomic<uint64_t> misses{0};
  std::atomic<uint64_t> resent{0};
  std::atomic<bool> logged{false};  // the first malformed message was logged
};

// The counters of one chain by filter name, in the order first used. Shared with the report
// that the node's last Finalize logs, which may run after the chain is gone.
class FilterChain::Table {
 public:
  // The counters of "name"; made unless "existing".
  Counters* Get(const std::string& name, bool existing = false) {
    std::lock_guard<std::mutex> lk(mu_);
    for (const auto& c : counters_) {
      if (c->name == name) return c.get();
    }
    if (existing) return nullptr;
    counters_.emplace_back(new Counters(name));
    return counters_.back().get();
  }

  std::vector<FilterStats> Snapshot() const {
    std::lock_guard<std::mutex> lk(mu_);
    std::vector<FilterStats> out;
    for (const auto& c : counters_) out.push_back(c->Snapshot());
    return out;
  }

  // One line per filter that did anything: "filter zstd: encoded 40 messages (40 changed),
  // 1600000 -> 400000 bytes; decoded ...".
  std::vector<std::string> Report() const {
    std::vector<std::string> lines;
    for (const FilterStats& s : Snapshot()) {
      std::ostringstream os;
      // "wire": which side of the filter the bytes on the wire are.
      auto dir = [&](const char* what, const FilterStats::Direction& d, bool wire_after) {
        if (!d.messages) return;
        os << "; " << what << " " << d.messages << " messages (" << d.applied << " changed), "
           << d.bytes_before << " -> " << d.bytes_after << " bytes";
        const uint64_t wire = wire_after ? d.bytes_after : d.bytes_before;
        const uint64_t app = wire_after ? d.bytes_before : d.bytes_after;
        if (wire && wire != app) {
          os << " (" << std::fixed << std::setprecision(2) << static_cast<double>(app) / wire
             << "x smaller on the wire)";
        }
      };
      dir("encoded", s.encode, true);
      dir("decoded", s.decode, false);
      if (s.dropped) os << "; dropped " << s.dropped << " malformed";
      if (s.misses) os << "; missed " << s.misses;
      if (s.resent) os << "; resent " << s.resent << " in full";
      if (os.str().empty()) continue;
      lines.push_back("filter " + s.name + os.str().replace(0, 1, ":"));
    }
    return lines;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Counters>> counters_;  // protected by mu_; never shrinks
};

FilterChain::FilterChain(Postoffice* postoffice, std::string app)
    : postoffice_(postoffice),
      env_(postoffice->env()),
      app_(std::move(app)),
      table_(std::make_shared<Table>()),
      stages_(std::make_shared<const std::vector<Stage>>()) {
  if (const char* spec = env_->find("PS_FILTERS")) {
    Status s = Configure(spec);
    if (!s.ok())
      status_ = Status::InvalidArgument(std::string("PS_FILTERS=") + spec + ": " + s.message());
  }
  metrics_source_ = postoffice->AddMetricsSource([table = table_, app = app_](auto* out) {
    for (const FilterStats& s : table->Snapshot()) {
      const std::vector<std::pair<std::string, std::string>> l = {{"app", app}, {"filter", s.name}};
      auto add = [&](const char* name, const char* help, uint64_t v, const char* dir) {
        auto labels = l;
        if (dir) labels.push_back({"direction", dir});
        out->push_back({name, help, true, labels, static_cast<double>(v), {}});
      };
      for (const auto& [dir, d] : {std::make_pair("encode", s.encode), {"decode", s.decode}}) {
        add("slackline_filter_messages_total", "messages through a filter", d.messages, dir);
        add("slackline_filter_bytes_in_total", "data bytes into a filter", d.bytes_before, dir);
        add("slackline_filter_bytes_out_total", "data bytes out of a filter", d.bytes_after, dir);
      }
      const uint64_t saved = s.encode.bytes_before > s.encode.bytes_after
                                 ? s.encode.bytes_before - s.encode.bytes_after
                                 : 0;
      add("slackline_filter_saved_bytes_total", "bytes a filter kept off the wire (encode)", saved,
          nullptr);
      add("slackline_filter_dropped_total", "incoming messages a filter found malformed", s.dropped,
          nullptr);
    }
  });
  if (postoffice->verbose() >= 1) {
    postoffice->RegisterExitCallback([table = table_, app = app_, postoffice] {
      for (const std::string& line : table->Report()) {
        LOG(INFO) << NodeName(postoffice) << ": " << app << ": " << line;
      }
    });
  }
}

FilterChain::~FilterChain() { postoffice_->RemoveMetricsSource(metrics_source_); }

Status FilterChain::Parse(const std::string& spec, const Environment& env,
                          std::vector<std::pair<std::string, std::string>>* filters) {
  filters->clear();
  if (Environment::Trim(spec).empty()) return Status::OK();
  std::stringstream in(spec);
  std::string entry;
  std::vector<std::string> known = RegisteredFilters();
  while (std::getline(in, entry, ',')) {
    entry = Environment::Trim(entry);
    size_t colon = entry.find(':');
    std::string name = Environment::Trim(entry.substr(0, colon));
    std::string param =
        colon == std::string::npos ? "" : Environment::Trim(entry.substr(colon + 1));
    if (name.empty()) return Status::InvalidArgument("a filter without a name");
    for (const auto& f : *filters) {
      if (f.first == name) return Status::InvalidArgument("filter " + name + " is listed twice");
    }
    std::unique_ptr<Filter> made;
    Status s = CreateFilter(name, param, env, &made);
    if (!s.ok()) {
      bool registered = std::find(known.begin(), known.end(), name) != known.end();
      return registered ? Status::InvalidArgument("filter " + entry + ": " + s.message()) : s;
    }
    filters->emplace_back(name, param);
  }
  if (Environment::Trim(spec).back() == ',')
    return Status::InvalidArgument("a filter without a name");
  return Status::OK();
}

Status FilterChain::Configure(const std::string& spec) {
  std::vector<std::pair<std::string, std::string>> parsed;
  Status s = Parse(spec, *env_, &parsed);
  if (!s.ok()) return s;
  auto stages = std::make_shared<std::vector<Stage>>();
  for (const auto& p : parsed) {
    std::unique_ptr<Filter> filter;
    s = CreateFilter(p.first, p.second, *env_, &filter);
    if (!s.ok()) return s;
    stages->push_back(Stage{p.first, std::move(filter), table_->Get(p.first)});
  }
  // A compressor turns the value frames it compresses into bytes, which fixed-point after it
  // cannot convert: a likely mistake in the order.
  bool compressed = false;
  for (const Stage& st : *stages) {
    if (st.name == "fixed" && compressed) {
      LOG(WARNING) << app_ << ": filters " << spec
                   << ": fixed after a compressor converts only the frames it left raw; list "
                      "fixed first";
    }
    compressed = compressed || st.name == "zstd" || st.name == "lz4";
  }
  std::lock_guard<std::mutex> lk(mu_);
  spec_ = Environment::Trim(spec);
  stages_ = std::move(stages);
  return Status::OK();
}

Status FilterChain::status() const {
  std::lock_guard<std::mutex> lk(mu_);
  return status_;
}

std::string FilterChain::spec() const {
  std::lock_guard<std::mutex> lk(mu_);
  return spec_;
}

bool FilterChain::empty() const {
  std::lock_guard<std::mutex> lk(mu_);
  return stages_->empty();
}

void FilterChain::Encode(bool full, Message* msg) {
  std::shared_ptr<const std::vector<Stage>> stages;
  {
    std::lock_guard<std::mutex> lk(mu_);
    stages = stages_;
  }
  if (stages->empty() || msg->data.empty()) return;
  size_t bytes = msg->data_bytes();
  for (const Stage& st : *stages) {
    std::vector<int64_t> args;
    const size_t before = bytes;
    bool applied = st.filter->Encode(full, msg, &args);
    CHECK_EQ(msg->data.size(), msg->meta.data_type.size())
        << "filter " << st.name << " left frames and data types apart";
    bytes = msg->data_bytes();
    st.counters->Count(st.counters->encode, applied, before, bytes);
    if (applied) msg->meta.filters.push_back(FilterRecord{st.name, std::move(args)});
  }
}

std::shared_ptr<Filter> FilterChain::DecoderFor(const std::string& name, Counters** counters) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = decoders_.find(name);
  if (it == decoders_.end()) {
    // Decoders take no parameters: what they need travels with each message.
    std::unique_ptr<Filter> made;
    if (!CreateFilter(name, "", *env_, &made).ok()) return nullptr;
    it = decoders_.emplace(name, std::shared_ptr<Filter>(std::move(made))).first;
  }
  *counters = table_->Get(name);
  return it->second;
}

FilterResult FilterChain::Decode(Message* msg, std::string* filter, std::string* error) {
  if (msg->meta.filters.empty()) return FilterResult::kOk;
  std::vector<FilterRecord> records;
  records.swap(msg->meta.filters);
  size_t bytes = msg->data_bytes();
  Counters* counters = nullptr;
  FilterResult result = FilterResult::kOk;
  for (auto it = records.rbegin(); it != records.rend(); ++it) {
    *filter = it->name;
    std::shared_ptr<Filter> decoder = DecoderFor(it->name, &counters);
    if (!decoder) {
      // Counted together: names from the network must not grow the table without bound.
      counters = table_->Get("(unknown)");
      *error = "unknown filter " + it->name;
      result = FilterResult::kMalformed;
      break;
    }
    const size_t before = bytes;
    result = decoder->Decode(it->args, msg, error);
    if (result == FilterResult::kOk && msg->data.size() != msg->meta.data_type.size()) {
      *error = "frames and data types apart";
      result = FilterResult::kMalformed;
    }
    if (result != FilterResult::kOk) break;
    bytes = msg->data_bytes();
    counters->Count(counters->decode, true, before, bytes);
  }
  if (result == FilterResult::kOk) {
    // The restored frames must fit their types, as the van checks frames that arrive raw.
    for (size_t i = 0; i < msg->data.size(); ++i) {
      if (msg->data[i].size() % DataTypeSize(msg->meta.data_type[i]) != 0) {
        *filter = records.front().name;
        *error = "frame " + std::to_string(i) + " decodes to " +
                 std::to_string(msg->data[i].size()) + " bytes, not whole elements";
        result = FilterResult::kMalformed;
        break;
      }
    }
  }
  if (result == FilterResult::kMiss) {
    counters->misses.fetch_add(1, std::memory_order_relaxed);
  } else if (result == FilterResult::kMalformed) {
    counters->dropped.fetch_add(1, std::memory_order_relaxed);
    *error = "filter " + *filter + ": " + *error;
    if (!counters->logged.exchange(true)) {
      LOG(WARNING) << app_ << ": dropped a message from node " << msg->meta.sender << ": " << *error
                   << " (further drops of this filter are counted, not logged)";
    }
  }
  return result;
}

Message FilterChain::MissNotice(const Message& msg, const std::string& filter) {
  Message notice;
  notice.meta.app_id = msg.meta.app_id;
  notice.meta.customer_id = msg.meta.customer_id;
  notice.meta.timestamp = msg.meta.timestamp;
  notice.meta.head = msg.meta.head;
  notice.meta.slice = msg.meta.slice;
  notice.meta.recver = msg.meta.sender;
  notice.meta.request = true;
  notice.meta.filter_miss = true;
  notice.meta.filters = {FilterRecord{filter, {}}};
  return notice;
}

void FilterChain::CountResend(const std::string& filter) {
  // The name comes from the network: count under it only if this chain knows it.
  Counters* c = table_->Get(filter, true);
  if (!c) c = table_->Get("(unknown)");
  c->resent.fetch_add(1, std::memory_order_relaxed);
}

std::vector<FilterStats> FilterChain::stats() const { return table_->Snapshot(); }

}  // namespace ps
