// LruCache keeps values under keys up to a total charge (bytes, say), evicting the least recently
// used entries to make room. Not thread-safe: the owner locks.
#ifndef PS_FILTER_LRU_CACHE_H_
#define PS_FILTER_LRU_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <list>
#include <unordered_map>
#include <utility>

namespace ps {

template <typename K, typename V, typename Hash = std::hash<K>>
class LruCache {
 public:
  explicit LruCache(size_t capacity) : capacity_(capacity) {}

  // Puts "value" under "key" as the most recently used entry, replacing an older one, and
  // evicts entries until the total charge fits. An entry charged more than the capacity is not
  // kept (nor is the older one). Returns whether it is kept.
  bool Put(const K& key, V value, size_t charge) {
    Erase(key);
    if (charge > capacity_) return false;
    while (charge_ + charge > capacity_) {
      const Entry& last = entries_.back();
      charge_ -= last.charge;
      index_.erase(last.key);
      entries_.pop_back();
      ++evictions_;
    }
    entries_.push_front(Entry{key, std::move(value), charge});
    index_[key] = entries_.begin();
    charge_ += charge;
    return true;
  }

  // The value under "key", now the most recently used; null when there is none. The pointer is
  // valid until the next Put or Erase.
  V* Get(const K& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return nullptr;
    entries_.splice(entries_.begin(), entries_, it->second);
    return &it->second->value;
  }

  // Removes "key"; returns whether it was there.
  bool Erase(const K& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return false;
    charge_ -= it->second->charge;
    entries_.erase(it->second);
    index_.erase(it);
    return true;
  }

  size_t size() const { return index_.size(); }
  size_t charge() const { return charge_; }
  size_t capacity() const { return capacity_; }
  uint64_t evictions() const { return evictions_; }

 private:
  struct Entry {
    K key;
    V value;
    size_t charge;
  };

  const size_t capacity_;
  size_t charge_ = 0;
  uint64_t evictions_ = 0;
  std::list<Entry> entries_;  // most recently used first
  std::unordered_map<K, typename std::list<Entry>::iterator, Hash> index_;
};

}  // namespace ps
#endif  // PS_FILTER_LRU_CACHE_H_
