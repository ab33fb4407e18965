// Helpers for tests that run a whole job of nodes inside one process, each node its own
// Postoffice, over real ZeroMQ sockets on loopback.
#ifndef PS_TESTS_COMMON_TEST_UTIL_H_
#define PS_TESTS_COMMON_TEST_UTIL_H_

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "ps/ps.h"

namespace ps {
namespace test {

// A TCP port that was free a moment ago, for the scheduler (the only fixed port of a job).
inline int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

using Env = std::unordered_map<std::string, std::string>;

// The configuration of one node of a local job.
inline Env NodeEnv(const std::string& role, int port, int num_servers, int num_workers,
                   const Env& extra = {}) {
  Env env = {{"DMLC_ROLE", role},
             {"DMLC_PS_ROOT_URI", "127.0.0.1"},
             {"DMLC_PS_ROOT_PORT", std::to_string(port)},
             {"DMLC_NUM_SERVER", std::to_string(num_servers)},
             {"DMLC_NUM_WORKER", std::to_string(num_workers)},
             {"PS_START_TIMEOUT", "20"},
             {"PS_VERBOSE", "0"}};
  for (const auto& kv : extra) env[kv.first] = kv.second;
  return env;
}

// A job of one scheduler, S servers and W workers, each a Postoffice in this process.
// Run() starts one thread per node and joins them all.
class LocalJob {
 public:
  LocalJob(int num_servers, int num_workers, const Env& extra = {})
      : port_(FreePort()), num_servers_(num_servers), num_workers_(num_workers), extra_(extra) {
    Add("scheduler", extra);
    for (int i = 0; i < num_servers; ++i) Add("server", extra);
    for (int i = 0; i < num_workers; ++i) Add("worker", extra);
  }

  // Runs fn(node, role, index) on a thread per node; index counts within the role.
  void Run(const std::function<void(Postoffice* po, const std::string& role, int index)>& fn) {
    std::vector<std::thread> threads;
    int count[3] = {0, 0, 0};
    for (size_t i = 0; i < nodes_.size(); ++i) {
      const std::string& role = roles_[i];
      int r = role == "scheduler" ? 0 : role == "server" ? 1 : 2;
      int index = count[r]++;
      threads.emplace_back([&, i, index] { fn(nodes_[i].get(), roles_[i], index); });
    }
    for (auto& t : threads) t.join();
  }

  Postoffice* node(size_t i) { return nodes_[i].get(); }
  // Gives node "i" its own variables on top of the job's. REQUIRES: before Run.
  void Configure(size_t i, const Env& extra) {
    Env env = extra_;
    for (const auto& kv : extra) env[kv.first] = kv.second;
    nodes_[i].reset(new Postoffice(NodeEnv(roles_[i], port_, num_servers_, num_workers_, env)));
  }
  // Destroys node "i" at once, without Finalize: as if its process died.
  void Kill(size_t i) { nodes_[i].reset(); }
  int port() const { return port_; }
  int num_nodes() const { return static_cast<int>(nodes_.size()); }

 private:
  void Add(const std::string& role, const Env& extra) {
    nodes_.emplace_back(new Postoffice(NodeEnv(role, port_, num_servers_, num_workers_, extra)));
    roles_.push_back(role);
  }

  int port_;
  int num_servers_;
  int num_workers_;
  Env extra_;
  std::vector<std::unique_ptr<Postoffice>> nodes_;
  std::vector<std::string> roles_;
};

// Waits until "cond" holds or "seconds" pass; returns whether it held.
inline bool WaitFor(const std::function<bool()>& cond, double seconds) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// The kernel's id of the calling thread, for WaitUntilBlocked.
inline pid_t ThreadId() { return static_cast<pid_t>(syscall(SYS_gettid)); }

// Whether thread "tid" of this process sleeps in the kernel (state S or D in
// /proc/self/task/TID/stat): waits on a condition, a lock or I/O.
inline bool ThreadSleeps(pid_t tid) {
  std::ifstream f("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  // "tid (name) S ...": the name may hold spaces and parentheses, the state follows the last ')'.
  size_t close = stat.rfind(')');
  if (close == std::string::npos || close + 2 >= stat.size()) return false;
  const char state = stat[close + 2];
  return state == 'S' || state == 'D';
}

// Waits until thread "tid" is blocked inside a call: "inside" (the call has not returned) holds
// and the thread sleeps at every look for 20 ms on end, so that a short wait for a lock on the
// way does not count. Returns false when "inside" stops holding (the call returned without
// blocking) or after "seconds"; on true, "asleep_since" (when given) is when the thread was
// first seen asleep, so the call has been blocked at least since then.
inline bool WaitUntilBlocked(pid_t tid, const std::function<bool()>& inside, double seconds,
                             std::chrono::steady_clock::time_point* asleep_since_out = nullptr) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  const auto settle = std::chrono::milliseconds(20);
  auto asleep_since = Clock::now();
  bool asleep = false;
  while (inside()) {
    const auto now = Clock::now();
    if (!ThreadSleeps(tid)) {
      asleep = false;
    } else if (!asleep) {
      asleep = true;
      asleep_since = now;
    } else if (now - asleep_since >= settle) {
      if (asleep_since_out) *asleep_since_out = asleep_since;
      return inside();
    }
    if (now > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

}  // namespace test
}  // namespace ps
#endif  // PS_TESTS_COMMON_TEST_UTIL_H_
