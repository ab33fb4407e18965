#include "data.h"

#include <dmlc/data.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <utility>

namespace linear {
namespace {

// The splitmix64 finalizer, a bijection, and its inverse.
constexpr uint64_t kMul1 = 0xbf58476d1ce4e5b9ULL;
constexpr uint64_t kMul2 = 0x94d049bb133111ebULL;

constexpr uint64_t Inverse(uint64_t a) {  // of an odd number, modulo 2^64 (Newton's method)
  uint64_t x = a;
  for (int i = 0; i < 6; ++i) x *= 2 - a * x;
  return x;
}
constexpr uint64_t UnXorShift(uint64_t x, int s) {
  for (int shift = s; shift < 64; shift += s) x ^= x >> shift;
  return x;
}

// Checks one libsvm line, "label index:value index:value ...", with label 1, +1, 0 or -1, an
// unsigned 64-bit index and a finite value. Blank lines are fine (the parser skips them).
bool CheckLine(const char* s, std::string* why) {
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (blank(*s)) ++s;
  if (!*s) return true;
  char* end = nullptr;
  double label = std::strtod(s, &end);
  if (end == s || !(blank(*end) || !*end)) {
    *why = "the label is not a number";
    return false;
  }
  if (label != 1 && label != 0 && label != -1) {
    *why = "label " + std::string(s, static_cast<const char*>(end)) + " is not 1, 0 or -1";
    return false;
  }
  s = end;
  while (true) {
    while (blank(*s)) ++s;
    if (!*s) return true;
    const char* token = s;
    if (*s < '0' || *s > '9') {
      *why =
          "expected index:value, got '" + std::string(token, std::strcspn(token, " \t\r\n")) + "'";
      return false;
    }
    errno = 0;
    std::strtoull(s, &end, 10);
    if (errno == ERANGE) {
      *why = "feature index " + std::string(s, static_cast<const char*>(end)) +
             " does not fit 64 bits";
      return false;
    }
    if (*end != ':') {
      *why =
          "expected index:value, got '" + std::string(token, std::strcspn(token, " \t\r\n")) + "'";
      return false;
    }
    s = end + 1;
    double v = std::strtod(s, &end);
    if (end == s || !(blank(*end) || !*end) || !std::isfinite(v)) {
      *why = "bad value in '" + std::string(token, std::strcspn(token, " \t\r\n")) + "'";
      return false;
    }
    s = end;
  }
}

// Checks the lines that start in this part's share of the file's bytes, so that together the
// parts check every line once.
ps::Status CheckPart(const std::string& file, int part, int parts) {
  FILE* f = std::fopen(file.c_str(), "r");
  if (!f) return ps::Status::IOError("cannot open " + file + ": " + std::strerror(errno));
  std::fseek(f, 0, SEEK_END);
  const long size = std::ftell(f);
  std::rewind(f);
  const long begin = static_cast<long>(static_cast<double>(size) * part / parts);
  const long end = static_cast<long>(static_cast<double>(size) * (part + 1) / parts);
  char* line = nullptr;
  size_t cap = 0;
  long at = 0;
  size_t number = 0;
  ps::Status s;
  ssize_t n;
  while (at < end && (n = getline(&line, &cap, f)) > 0) {
    ++number;
    std::string why;
    if (at >= begin && (std::strlen(line) != static_cast<size_t>(n) || !CheckLine(line, &why))) {
      if (why.empty()) why = "a NUL byte in the line";
      s = ps::Status::InvalidArgument(file + ":" + std::to_string(number) +
                                      ": malformed libsvm line: " + why);
      break;
    }
    at += n;
  }
  std::free(line);
  std::fclose(f);
  return s;
}

}  // namespace

ps::Key KeyOf(uint64_t x) {
  x = (x ^ (x >> 30)) * kMul1;
  x = (x ^ (x >> 27)) * kMul2;
  return x ^ (x >> 31);
}

uint64_t FeatureOf(ps::Key key) {
  uint64_t x = UnXorShift(key, 31) * Inverse(kMul2);
  x = UnXorShift(x, 27) * Inverse(kMul1);
  return UnXorShift(x, 30);
}

void Dataset::BuildColumns() {
  const size_t n = keys.size();
  col_offset.assign(n + 1, 0);
  for (uint32_t c : col) ++col_offset[c + 1];
  for (size_t j = 0; j < n; ++j) col_offset[j + 1] += col_offset[j];
  row_of.resize(col.size());
  col_val.resize(col.size());
  std::vector<size_t> at(col_offset.begin(), col_offset.end() - 1);
  for (size_t i = 0; i < rows(); ++i) {
    for (size_t e = offset[i]; e < offset[i + 1]; ++e) {
      size_t to = at[col[e]]++;
      row_of[to] = static_cast<uint32_t>(i);
      col_val[to] = val[e];
    }
  }
}

ps::Status LoadLibsvm(const std::string& file, int part, int parts, Dataset* data) {
  ps::Status s = CheckPart(file, part, parts);
  if (!s.ok()) return s;
  std::vector<ps::Key> raw;  // the key of each entry, in row order
  try {
    std::unique_ptr<dmlc::Parser<uint64_t>> parser(
        dmlc::Parser<uint64_t>::Create(file.c_str(), part, parts, "libsvm"));
    while (parser->Next()) {
      const dmlc::RowBlock<uint64_t>& block = parser->Value();
      for (size_t i = 0; i < block.size; ++i) {
        data->label.push_back(block.label[i] > 0 ? 1.0f : -1.0f);
        for (size_t e = block.offset[i]; e < block.offset[i + 1]; ++e) {
          raw.push_back(KeyOf(block.index[e]));
          data->val.push_back(block.value ? block.value[e] : 1.0f);
        }
        data->offset.push_back(raw.size());
      }
    }
  } catch (const std::exception& e) {
    std::string what = e.what();
    return ps::Status::InvalidArgument("dmlc-core cannot read " + file + ": " +
                                       what.substr(0, what.find('\n')));
  }
  std::vector<ps::Key> keys(raw);
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  std::unordered_map<ps::Key, uint32_t> index;
  index.reserve(keys.size());
  for (size_t j = 0; j < keys.size(); ++j) index[keys[j]] = static_cast<uint32_t>(j);
  data->col.resize(raw.size());
  for (size_t e = 0; e < raw.size(); ++e) data->col[e] = index[raw[e]];
  data->keys = ps::SArray<ps::Key>(keys);
  data->BuildColumns();
  return ps::Status::OK();
}

ps::Status WriteModel(const std::string& file, std::vector<std::pair<uint64_t, float>> weights) {
  std::sort(weights.begin(), weights.end());
  FILE* f = std::fopen(file.c_str(), "w");
  if (!f) return ps::Status::IOError("cannot write " + file + ": " + std::strerror(errno));
  for (const auto& w : weights) {
    std::fprintf(f, "%llu\t%.9g\n", static_cast<unsigned long long>(w.first), w.second);
  }
  if (std::fclose(f) != 0) {
    return ps::Status::IOError("cannot write " + file + ": " + std::strerror(errno));
  }
  return ps::Status::OK();
}

ps::Status ReadModel(const std::string& file, std::unordered_map<ps::Key, float>* weights) {
  FILE* f = std::fopen(file.c_str(), "r");
  if (!f) return ps::Status::IOError("cannot open " + file + ": " + std::strerror(errno));
  char* line = nullptr;
  size_t cap = 0;
  size_t number = 0;
  ps::Status s;
  while (getline(&line, &cap, f) > 0) {
    ++number;
    char* p = line;
    while (*p == ' ' || *p == '\t') ++p;
    if (*p == '\n' || *p == '\r' || !*p) continue;
    char* end = nullptr;
    errno = 0;
    unsigned long long feature = std::strtoull(p, &end, 10);
    bool ok = end != p && *p != '-' && errno == 0 && (*end == '\t' || *end == ' ');
    double w = ok ? std::strtod(end, &p) : 0;
    while (ok && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) ++p;
    if (!ok || p == end || *p || !std::isfinite(w)) {
      s = ps::Status::InvalidArgument(file + ":" + std::to_string(number) +
                                      ": malformed model line: expected feature<TAB>weight");
      break;
    }
    (*weights)[KeyOf(feature)] = static_cast<float>(w);
  }
  std::free(line);
  std::fclose(f);
  return s;
}

Metrics Evaluate(const std::vector<double>& prob, const std::vector<float>& label) {
  Metrics m;
  const size_t n = prob.size();
  if (n == 0) return m;
  size_t correct = 0;
  double loss = 0;
  for (size_t i = 0; i < n; ++i) {
    const bool pos = label[i] > 0;
    correct += (prob[i] > 0.5) == pos;
    const double p = std::min(std::max(pos ? prob[i] : 1 - prob[i], 1e-15), 1 - 1e-15);
    loss -= std::log(p);
  }
  m.accuracy = static_cast<double>(correct) / n;
  m.logloss = loss / n;
  // AUC from the ranks of the positives (Mann-Whitney), ties sharing their mean rank.
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return prob[a] < prob[b]; });
  double rank_sum = 0, positives = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && prob[order[j]] == prob[order[i]]) ++j;
    const double mean_rank = (i + 1 + j) / 2.0;
    for (size_t k = i; k < j; ++k) {
      if (label[order[k]] > 0) {
        rank_sum += mean_rank;
        ++positives;
      }
    }
    i = j;
  }
  const double negatives = n - positives;
  m.auc = positives > 0 && negatives > 0
              ? (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
              : NAN;
  return m;
}

}  // namespace linear
