// KVStore<Val> holds a server's values by key: any number of values per key (always the same
// number for a key), pushes added into them, pulls read from them. It is the store behind
// KVServerDefaultHandle and KVServerSyncHandle, and what a replica keeps.
//
// Layout: sorted key blocks. The keys are kept sorted, cut into leaves of at most kMaxLeaf keys
// that cover consecutive key ranges; each leaf holds its keys, their values back to back in key
// order and, only when its keys hold different numbers of values, their offsets. A request's
// keys are sorted too, so one forward walk finds them all: where a stretch of the request equals
// a stretch of a leaf (the same key list pushed again, as training does), the walk compares it
// with memcmp and adds or copies the values in one pass, without a lookup per key. Keys not held
// yet are merged into their leaves, each leaf rebuilt once per request. About 12 bytes per
// float held: 8 for the key, 4 for the value (offsets add 4 per key).
//
// Thread-compatible: const methods may run concurrently; anything else needs the caller's lock.
#ifndef PS_INTERNAL_KV_STORE_H_
#define PS_INTERNAL_KV_STORE_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "ps/base.h"
#include "ps/kv_pairs.h"
#include "ps/sarray.h"
#include "ps/status.h"

namespace ps {

template <typename Val>
class KVStore {
 public:
  // Keys per leaf: a leaf that grows beyond kMaxLeaf is cut into leaves of about kLeaf keys.
  static constexpr size_t kLeaf = 1024;
  static constexpr size_t kMaxLeaf = 2048;

  // Whether a push of "keys" (sorted, unique), with "vals" as "lens" say (empty: the same
  // number per key), fits: every key held already holds as many values as pushed.
  // REQUIRES: kv::CheckValues(keys.size(), vals, lens) is OK.
  Status Check(const SArray<Key>& keys, const SArray<Val>& vals, const SArray<int>& lens) const {
    std::vector<Run> runs;
    Locate(keys.data(), keys.size(), &runs);
    return CheckRuns(runs, keys, vals, lens);
  }

  // Adds a push to the values held; a key's first push sets them. All or nothing: if it does
  // not fit (Check), or its keys are not sorted and unique, nothing changes.
  // REQUIRES: kv::CheckValues(keys.size(), vals, lens) is OK.
  Status Push(const SArray<Key>& keys, const SArray<Val>& vals, const SArray<int>& lens) {
    const size_t n = keys.size();
    if (n == 0) return Status::OK();
    // Keys come from a peer: out of order they would break the leaves' order.
    Status s = kv::CheckOrder(keys);
    if (!s.ok()) return s;
    std::vector<Run> runs;
    Locate(keys.data(), n, &runs);
    s = CheckRuns(runs, keys, vals, lens);
    if (!s.ok()) return s;
    Offsets in(n, vals.size(), lens);
    if (leaves_.empty()) {
      leaves_.emplace_back();
      firsts_.push_back(keys[0]);
    }
    // Runs come in leaf order; a leaf with absent keys is rebuilt once, the others change in
    // place.
    std::vector<std::pair<size_t, std::vector<Leaf>>> rebuilt;
    for (size_t a = 0; a < runs.size();) {
      size_t b = a;
      bool inserts = false;
      while (b < runs.size() && runs[b].leaf == runs[a].leaf) inserts |= !runs[b++].found;
      Leaf& leaf = leaves_[runs[a].leaf];
      if (!inserts) {
        for (size_t r = a; r < b; ++r) {
          const Run& run = runs[r];
          Val* dst = leaf.vals.data() + leaf.offset(run.pos);
          const Val* src = vals.data() + in.at(run.i);
          const size_t count = leaf.offset(run.pos + run.m) - leaf.offset(run.pos);
          for (size_t j = 0; j < count; ++j) dst[j] += src[j];
        }
      } else if (InsertInPlace(&leaf, runs, a, b, keys, vals, in)) {
        firsts_[runs[a].leaf] = leaf.keys[0];
      } else {
        rebuilt.emplace_back(runs[a].leaf, Rebuild(leaf, runs, a, b, keys, vals, in));
      }
      a = b;
    }
    if (!rebuilt.empty()) Replace(&rebuilt);
    return Status::OK();
  }

  // The values of "keys" (sorted, unique), with lens when their lengths differ. Keys not held
  // read as zeros, as many as the held ones agree on (else one). Keys out of order give
  // wrong values, never a crash.
  KVPairs<Val> Pull(const SArray<Key>& keys) const {
    const size_t n = keys.size();
    KVPairs<Val> res;
    res.keys = keys;
    if (n == 0) return res;
    std::vector<Run> runs;
    Locate(keys.data(), n, &runs);
    // The common case: every key held, every leaf of one width.
    bool all_uniform = true;
    size_t width = SIZE_MAX;
    for (const Run& run : runs) {
      const Leaf& leaf = leaves_[run.leaf];
      if (!run.found || !leaf.offs.empty() || (width != SIZE_MAX && leaf.width != width)) {
        all_uniform = false;
        break;
      }
      width = leaf.width;
    }
    if (all_uniform && width > 0) {
      res.vals = Uninitialized(n * width);
      for (const Run& run : runs) {
        const Leaf& leaf = leaves_[run.leaf];
        Copy(leaf.vals.data() + run.pos * width, run.m * width, res.vals.data() + run.i * width);
      }
      return res;
    }
    // Lengths first, by ReadFrom's rule: absent keys get what the held ones agree on.
    size_t fill = 0;
    bool agree = true;
    for (const Run& run : runs) {
      if (!run.found) continue;
      const Leaf& leaf = leaves_[run.leaf];
      for (size_t j = 0; j < run.m; ++j) {
        size_t len = leaf.len(run.pos + j);
        if (fill && fill != len) agree = false;
        fill = len;
        if (leaf.offs.empty()) j = run.m;  // one width for the run
      }
    }
    if (!agree || fill == 0) fill = 1;
    std::vector<int> lens(n);
    for (const Run& run : runs) {
      const Leaf& leaf = leaves_[run.leaf];
      for (size_t j = 0; j < run.m; ++j) {
        lens[run.i + j] = static_cast<int>(run.found ? leaf.len(run.pos + j) : fill);
      }
    }
    size_t total = 0;
    bool same = true;
    for (size_t i = 0; i < n; ++i) {
      total += static_cast<size_t>(lens[i]);
      same = same && lens[i] == lens[0];
    }
    res.vals = Uninitialized(total);
    Val* out = res.vals.data();
    for (const Run& run : runs) {
      size_t count = 0;
      if (run.found) {
        const Leaf& leaf = leaves_[run.leaf];
        count = leaf.offset(run.pos + run.m) - leaf.offset(run.pos);
        Copy(leaf.vals.data() + leaf.offset(run.pos), count, out);
      } else {
        count = run.m * fill;
        std::fill(out, out + count, Val());
      }
      out += count;
    }
    if (!same) res.lens = SArray<int>(lens);
    return res;
  }

  // The values of "key" and their number in "len"; null if the key is not held. Valid until
  // the next Push.
  Val* Find(Key key, size_t* len) {
    return const_cast<Val*>(static_cast<const KVStore*>(this)->Find(key, len));
  }
  const Val* Find(Key key, size_t* len) const {
    if (leaves_.empty()) return nullptr;
    const Leaf& leaf = leaves_[LeafFor(key, 0)];
    auto it = std::lower_bound(leaf.keys.begin(), leaf.keys.end(), key);
    if (it == leaf.keys.end() || *it != key) return nullptr;
    size_t p = static_cast<size_t>(it - leaf.keys.begin());
    if (len) *len = leaf.len(p);
    return leaf.vals.data() + leaf.offset(p);
  }

  // Calls fn(key, values, len) for every key held, in ascending key order; fn may change the
  // values.
  template <typename Fn>
  void ForEach(Fn&& fn) {
    for (Leaf& leaf : leaves_) {
      for (size_t p = 0; p < leaf.keys.size(); ++p) {
        fn(leaf.keys[p], leaf.vals.data() + leaf.offset(p), leaf.len(p));
      }
    }
  }

  // Every key held, sorted.
  SArray<Key> keys() const {
    SArray<Key> all(size_);
    size_t at = 0;
    for (const Leaf& leaf : leaves_) {
      if (!leaf.keys.empty())
        std::memcpy(all.data() + at, leaf.keys.data(), leaf.keys.size() * sizeof(Key));
      at += leaf.keys.size();
    }
    return all;
  }

  // Keys held.
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Values held.
  size_t num_values() const {
    size_t v = 0;
    for (const Leaf& leaf : leaves_) v += leaf.vals.size();
    return v;
  }
  // Bytes of memory the store holds (buffers by capacity, and its bookkeeping).
  size_t bytes() const {
    size_t b = sizeof(*this) + firsts_.capacity() * sizeof(Key) + leaves_.capacity() * sizeof(Leaf);
    for (const Leaf& leaf : leaves_) {
      b += leaf.keys.capacity() * sizeof(Key) + leaf.vals.capacity() * sizeof(Val) +
           leaf.offs.capacity() * sizeof(uint32_t);
    }
    return b;
  }
  // Leaves, for tests and benchmarks.
  size_t num_leaves() const { return leaves_.size(); }

  // Every key held in [begin, end) (and "end" itself when it is kMaxKey, as the last server
  // range holds it), sorted, with its values: lens when their lengths differ. A checkpoint's and
  // a replacement server's copy of a key range.
  KVPairs<Val> Read(Key begin, Key end) const {
    // Each leaf's keys in the range are one stretch [lo, hi): copied a stretch at a time.
    struct Stretch {
      const Leaf* leaf;
      size_t lo, hi;
    };
    std::vector<Stretch> stretches;
    size_t nkeys = 0, nvals = 0;
    bool uniform = true;
    size_t width = SIZE_MAX;
    for (const Leaf& leaf : leaves_) {
      const auto first = leaf.keys.begin();
      const size_t lo = std::lower_bound(first, leaf.keys.end(), begin) - first;
      const size_t hi =
          end == kMaxKey ? leaf.keys.size() : std::lower_bound(first, leaf.keys.end(), end) - first;
      if (lo >= hi) continue;
      stretches.push_back(Stretch{&leaf, lo, hi});
      nkeys += hi - lo;
      nvals += leaf.offset(hi) - leaf.offset(lo);
      for (size_t p = lo; p < hi && uniform; p = leaf.offs.empty() ? hi : p + 1) {
        if (width == SIZE_MAX) width = leaf.len(p);
        uniform = leaf.len(p) == width;
      }
    }
    KVPairs<Val> out;
    out.keys = SArray<Key>(nkeys);
    out.vals = Uninitialized(nvals);
    if (!uniform) out.lens = SArray<int>(nkeys);
    size_t i = 0, v = 0;
    for (const Stretch& s : stretches) {
      const Leaf& leaf = *s.leaf;
      const size_t m = s.hi - s.lo, count = leaf.offset(s.hi) - leaf.offset(s.lo);
      std::memcpy(out.keys.data() + i, leaf.keys.data() + s.lo, m * sizeof(Key));
      if (count)
        std::memcpy(out.vals.data() + v, leaf.vals.data() + leaf.offset(s.lo), count * sizeof(Val));
      if (!uniform) {
        for (size_t p = s.lo; p < s.hi; ++p) out.lens[i + p - s.lo] = static_cast<int>(leaf.len(p));
      }
      i += m;
      v += count;
    }
    return out;
  }

  // Sets the values of "keys" (sorted, unique) to "vals" as "lens" say, whatever they held
  // before and however many values they held: a key range restored from a copy. All or nothing.
  // REQUIRES: kv::CheckValues(keys.size(), vals, lens) is OK.
  Status Assign(const SArray<Key>& keys, const SArray<Val>& vals, const SArray<int>& lens) {
    Status s = kv::CheckOrder(keys);
    if (!s.ok()) return s;
    std::vector<Run> runs;
    Locate(keys.data(), keys.size(), &runs);
    bool held = false;
    for (const Run& run : runs) held |= run.found;
    if (!held) return Push(keys, vals, lens);
    // Some keys are held: rebuild from the merge of what stays and what is assigned.
    KVStore merged;
    s = merged.Push(keys, vals, lens);
    if (!s.ok()) return s;
    std::vector<Key> kept_keys;
    std::vector<Val> kept_vals;
    std::vector<int> kept_lens;
    size_t next = 0;
    for (const Leaf& leaf : leaves_) {
      for (size_t p = 0; p < leaf.keys.size(); ++p) {
        const Key k = leaf.keys[p];
        while (next < keys.size() && keys[next] < k) ++next;
        if (next < keys.size() && keys[next] == k) continue;
        kept_keys.push_back(k);
        kept_lens.push_back(static_cast<int>(leaf.len(p)));
        const Val* src = leaf.vals.data() + leaf.offset(p);
        kept_vals.insert(kept_vals.end(), src, src + leaf.len(p));
      }
    }
    if (!kept_keys.empty()) {
      s = merged.Push(SArray<Key>(kept_keys), SArray<Val>(kept_vals), SArray<int>(kept_lens));
      if (!s.ok()) return s;
    }
    *this = std::move(merged);
    return Status::OK();
  }

  // Drops every key.
  void clear() {
    leaves_.clear();
    firsts_.clear();
    size_ = 0;
  }

 private:
  // A leaf's values stay addressable with 32-bit offsets: a leaf is also cut at this many.
  static constexpr size_t kMaxLeafValues = size_t{1} << 31;

  struct Leaf {
    std::vector<Key> keys;
    std::vector<Val> vals;
    std::vector<uint32_t> offs;  // empty: every key holds "width" values; else keys.size() + 1
    size_t width = 0;
    size_t offset(size_t p) const { return offs.empty() ? p * width : offs[p]; }
    size_t len(size_t p) const { return offs.empty() ? width : offs[p + 1] - offs[p]; }
  };

  // A stretch of a request's keys: m keys from request position i, held by leaf "leaf" from
  // position "pos" on (found), or not held and to be inserted there (absent).
  struct Run {
    size_t i;
    size_t m;
    size_t leaf;
    size_t pos;
    bool found;
  };

  // Where a request's values are: the same number per key, or as lens say.
  class Offsets {
   public:
    Offsets(size_t n, size_t nvals, const SArray<int>& lens)
        : per_key_(lens.empty() ? nvals / n : 0) {
      if (lens.empty()) return;
      off_.resize(n + 1);
      off_[0] = 0;
      for (size_t i = 0; i < n; ++i) off_[i + 1] = off_[i] + static_cast<size_t>(lens[i]);
    }
    size_t at(size_t i) const { return off_.empty() ? i * per_key_ : off_[i]; }
    bool uniform() const { return off_.empty(); }
    size_t len(size_t i) const { return off_.empty() ? per_key_ : off_[i + 1] - off_[i]; }

   private:
    size_t per_key_;
    std::vector<size_t> off_;
  };

  static SArray<Val> Uninitialized(size_t n) {
    // No zero fill: every value is written next.
    return n ? SArray<Val>(new Val[n], n, true) : SArray<Val>();
  }
  static void Copy(const Val* src, size_t n, Val* dst) {
    if (n <= 4) {
      for (size_t j = 0; j < n; ++j) dst[j] = src[j];
    } else {
      std::memcpy(dst, src, n * sizeof(Val));
    }
  }

  // The leaf whose range holds "key": the last one starting at or below it, else the first.
  // REQUIRES: leaves_ not empty, and firsts_[from] <= key when from > 0.
  size_t LeafFor(Key key, size_t from) const {
    auto it = std::upper_bound(firsts_.begin() + from, firsts_.end(), key);
    size_t li = static_cast<size_t>(it - firsts_.begin());
    return li == 0 ? 0 : li - 1;
  }

  // The first position at or after "pos" whose key is not below "key" (exponential search,
  // since the next key of a sorted request is usually close).
  static size_t Gallop(const Key* k, size_t pos, size_t n, Key key) {
    // Interleaved key lists put the next key a few positions on: look there first.
    for (const size_t near = std::min(pos + 8, n); pos < near; ++pos) {
      if (k[pos] >= key) return pos;
    }
    if (pos >= n || k[pos] >= key) return pos;
    size_t lo = pos, step = 1;  // k[lo] < key
    while (lo + step < n && k[lo + step] < key) {
      lo += step;
      step *= 2;
    }
    size_t hi = std::min(lo + step, n);
    return static_cast<size_t>(std::lower_bound(k + lo + 1, k + hi, key) - k);
  }

  // How many of the first "max" keys of a and b are equal.
  static size_t CommonPrefix(const Key* a, const Key* b, size_t max) {
    size_t m = 0;
    // Short matches are common when several key lists interleave: look key by key first.
    while (m < max && m < 8) {
      if (a[m] != b[m]) return m;
      ++m;
    }
    constexpr size_t kBlock = 64;
    while (m + kBlock <= max && std::memcmp(a + m, b + m, kBlock * sizeof(Key)) == 0) m += kBlock;
    while (m < max && a[m] == b[m]) ++m;
    return m;
  }

  // Cuts the request's keys into runs (see Run), in key order, so in leaf order.
  void Locate(const Key* k, size_t n, std::vector<Run>* runs) const {
    runs->clear();
    if (n == 0) return;
    runs->reserve(std::min<size_t>(n, 1024));
    if (leaves_.empty()) {
      runs->push_back(Run{0, n, 0, 0, false});
      return;
    }
    const size_t num_leaves = leaves_.size();
    size_t li = LeafFor(k[0], 0);
    size_t pos = 0;
    for (size_t i = 0; i < n;) {
      const Key key = k[i];
      if (li + 1 < num_leaves && key >= firsts_[li + 1]) {
        // Usually the next leaf; else search the rest.
        li = li + 2 < num_leaves && key >= firsts_[li + 2] ? LeafFor(key, li + 2) : li + 1;
        pos = 0;
      }
      const Leaf& leaf = leaves_[li];
      const Key* lk = leaf.keys.data();
      const size_t ln = leaf.keys.size();
      pos = Gallop(lk, pos, ln, key);
      if (pos < ln && lk[pos] == key) {
        size_t m = CommonPrefix(k + i, lk + pos, std::min(n - i, ln - pos));
        runs->push_back(Run{i, m, li, pos, true});
        i += m;
        pos += m;
        continue;
      }
      // Absent: so are the next keys below the leaf's next key (or the next leaf's first).
      size_t m = 1;
      if (pos < ln || li + 1 < num_leaves) {
        const Key bound = pos < ln ? lk[pos] : firsts_[li + 1];
        while (i + m < n && k[i + m] < bound) ++m;
      } else {
        m = n - i;
      }
      runs->push_back(Run{i, m, li, pos, false});
      i += m;
    }
  }

  Status CheckRuns(const std::vector<Run>& runs, const SArray<Key>& keys, const SArray<Val>& vals,
                   const SArray<int>& lens) const {
    const size_t n = keys.size();
    if (n == 0) return Status::OK();
    const size_t per_key = lens.empty() ? vals.size() / n : 0;
    for (const Run& run : runs) {
      if (!run.found) continue;
      const Leaf& leaf = leaves_[run.leaf];
      for (size_t j = 0; j < run.m; ++j) {
        const size_t held = leaf.len(run.pos + j);
        const size_t pushed = lens.empty() ? per_key : static_cast<size_t>(lens[run.i + j]);
        if (held != pushed) {
          return Status::InvalidArgument("key " + std::to_string(keys[run.i + j]) + " holds " +
                                         std::to_string(held) + " values; a push of " +
                                         std::to_string(pushed) + " does not fit");
        }
        if (lens.empty() && leaf.offs.empty()) break;  // one width on both sides
      }
    }
    return Status::OK();
  }

  // Builds leaves entry by entry, cutting them every "per_leaf" keys.
  class Builder {
   public:
    Builder(size_t total, std::vector<Leaf>* out) : out_(out) {
      size_t pieces = total <= kMaxLeaf ? 1 : (total + kLeaf - 1) / kLeaf;
      per_leaf_ = (total + pieces - 1) / pieces;
      width_hint_ = 0;
    }
    void set_width_hint(size_t w) { width_hint_ = w; }
    void Add(Key key, const Val* v, size_t len) {
      if (out_->empty() || out_->back().keys.size() >= per_leaf_ ||
          out_->back().vals.size() + len > kMaxLeafValues) {
        if (!out_->empty()) Finish(&out_->back());
        out_->emplace_back();
        out_->back().keys.reserve(per_leaf_);
        if (width_hint_) out_->back().vals.reserve(per_leaf_ * width_hint_);
        out_->back().width = len;
      }
      Leaf& leaf = out_->back();
      const size_t count = leaf.keys.size();
      if (leaf.offs.empty() && len != leaf.width) {
        // Keys of different lengths: offsets from now on.
        leaf.offs.reserve(per_leaf_ + 1);
        for (size_t p = 0; p <= count; ++p)
          leaf.offs.push_back(static_cast<uint32_t>(p * leaf.width));
      }
      leaf.keys.push_back(key);
      leaf.vals.insert(leaf.vals.end(), v, v + len);
      if (!leaf.offs.empty()) leaf.offs.push_back(static_cast<uint32_t>(leaf.vals.size()));
    }
    // Adds "count" keys of "width" values each, back to back: in bulk where the leaf being
    // built has that width too.
    void AddRange(const Key* keys, const Val* vals, size_t count, size_t width) {
      while (count > 0) {
        size_t take = 0;
        if (!out_->empty() && out_->back().keys.size() < per_leaf_ && out_->back().offs.empty() &&
            out_->back().width == width) {
          const Leaf& leaf = out_->back();
          take = std::min(count, per_leaf_ - leaf.keys.size());
          if (width) take = std::min(take, (kMaxLeafValues - leaf.vals.size()) / width);
        }
        if (take == 0) {
          Add(keys[0], vals, width);  // starts a leaf, or takes the slow path
          take = 1;
        } else {
          Leaf& leaf = out_->back();
          leaf.keys.insert(leaf.keys.end(), keys, keys + take);
          leaf.vals.insert(leaf.vals.end(), vals, vals + take * width);
        }
        keys += take;
        vals += take * width;
        count -= take;
      }
    }
    // Adds "len" values that are the sums of a and b.
    void AddSum(Key key, const Val* a, const Val* b, size_t len) {
      Add(key, a, len);
      AddToLast(b, len);
    }
    // Adds b to the last "count" values added, which are in the last leaf.
    void AddToLast(const Val* b, size_t count) {
      Val* v = out_->back().vals.data() + out_->back().vals.size() - count;
      for (size_t j = 0; j < count; ++j) v[j] += b[j];
    }
    void Done() {
      if (!out_->empty()) Finish(&out_->back());
    }

   private:
    static void Finish(Leaf* leaf) {
      // Reserved for the common width; give back what a different one left unused.
      if (leaf->vals.capacity() > leaf->vals.size() + leaf->vals.size() / 4) {
        leaf->vals.shrink_to_fit();
      }
      if (leaf->offs.empty()) leaf->offs.shrink_to_fit();
    }
    std::vector<Leaf>* out_;
    size_t per_leaf_;
    size_t width_hint_;
  };

  // Applies the runs [a, b) (all in "leaf") where the leaf is, if it stays one leaf of one
  // width: adds, then inserts from the last to the first, so that positions stay valid. Room
  // grows by a sixteenth at a time, not twice, to stay compact. Returns false, changing
  // nothing, where it cannot.
  bool InsertInPlace(Leaf* leaf, const std::vector<Run>& runs, size_t a, size_t b,
                     const SArray<Key>& keys, const SArray<Val>& vals, const Offsets& in) {
    if (!leaf->offs.empty() || !in.uniform() || leaf->keys.empty() || leaf->width != in.len(0)) {
      return false;
    }
    const size_t w = leaf->width;
    size_t added = 0;
    for (size_t r = a; r < b; ++r) added += runs[r].found ? 0 : runs[r].m;
    const size_t n = leaf->keys.size() + added;
    if (n > kMaxLeaf || n * w >= kMaxLeafValues) return false;
    for (size_t r = a; r < b; ++r) {
      const Run& run = runs[r];
      if (!run.found) continue;
      Val* dst = leaf->vals.data() + run.pos * w;
      const Val* src = vals.data() + in.at(run.i);
      for (size_t j = 0; j < run.m * w; ++j) dst[j] += src[j];
    }
    if (leaf->keys.capacity() < n) leaf->keys.reserve(n + n / 16);
    if (leaf->vals.capacity() < n * w) leaf->vals.reserve((n + n / 16) * w);
    for (size_t r = b; r-- > a;) {
      const Run& run = runs[r];
      if (run.found) continue;
      leaf->keys.insert(leaf->keys.begin() + run.pos, keys.data() + run.i,
                        keys.data() + run.i + run.m);
      const Val* v = vals.data() + in.at(run.i);
      leaf->vals.insert(leaf->vals.begin() + run.pos * w, v, v + run.m * w);
    }
    size_ += added;
    return true;
  }

  // The leaves that replace "leaf" once the runs [a, b) (all in it) are applied.
  std::vector<Leaf> Rebuild(const Leaf& leaf, const std::vector<Run>& runs, size_t a, size_t b,
                            const SArray<Key>& keys, const SArray<Val>& vals, const Offsets& in) {
    size_t total = leaf.keys.size();
    for (size_t r = a; r < b; ++r) total += runs[r].found ? 0 : runs[r].m;
    std::vector<Leaf> out;
    Builder build(total, &out);
    build.set_width_hint(leaf.keys.empty() ? in.len(runs[a].i) : leaf.width);
    auto copy_old = [&](size_t from, size_t to) {
      if (from >= to) return;
      if (leaf.offs.empty()) {
        return build.AddRange(leaf.keys.data() + from, leaf.vals.data() + from * leaf.width,
                              to - from, leaf.width);
      }
      for (size_t p = from; p < to; ++p) {
        build.Add(leaf.keys[p], leaf.vals.data() + leaf.offset(p), leaf.len(p));
      }
    };
    size_t op = 0;
    for (size_t r = a; r < b; ++r) {
      const Run& run = runs[r];
      copy_old(op, run.pos);
      op = run.pos;
      if (!run.found && in.uniform()) {
        build.AddRange(keys.data() + run.i, vals.data() + in.at(run.i), run.m, in.len(run.i));
        continue;
      }
      for (size_t j = 0; j < run.m; ++j) {
        const size_t i = run.i + j;
        const Val* v = vals.data() + in.at(i);
        if (run.found) {
          build.AddSum(keys[i], leaf.vals.data() + leaf.offset(op), v, in.len(i));
          ++op;
        } else {
          build.Add(keys[i], v, in.len(i));
        }
      }
    }
    copy_old(op, leaf.keys.size());
    build.Done();
    size_ += total - leaf.keys.size();
    return out;
  }

  // Puts the rebuilt leaves in place of the ones they replace (ascending leaf order).
  void Replace(std::vector<std::pair<size_t, std::vector<Leaf>>>* rebuilt) {
    size_t extra = 0;
    for (auto& r : *rebuilt) extra += r.second.size() - 1;
    if (extra == 0) {
      // No leaf was cut: each takes its old place.
      for (auto& r : *rebuilt) {
        leaves_[r.first] = std::move(r.second[0]);
        firsts_[r.first] = leaves_[r.first].keys[0];
      }
      return;
    }
    std::vector<Leaf> leaves;
    leaves.reserve(leaves_.size() + extra);
    size_t next = 0;
    for (auto& r : *rebuilt) {
      for (; next < r.first; ++next) leaves.push_back(std::move(leaves_[next]));
      for (Leaf& l : r.second) leaves.push_back(std::move(l));
      next = r.first + 1;
    }
    for (; next < leaves_.size(); ++next) leaves.push_back(std::move(leaves_[next]));
    leaves_ = std::move(leaves);
    firsts_.resize(leaves_.size());
    for (size_t i = 0; i < leaves_.size(); ++i) firsts_[i] = leaves_[i].keys[0];
  }

  std::vector<Leaf> leaves_;  // by key range, ascending; none is empty
  std::vector<Key> firsts_;   // the first key of each leaf
  size_t size_ = 0;           // keys held
};

}  // namespace ps
#endif  // PS_INTERNAL_KV_STORE_H_
