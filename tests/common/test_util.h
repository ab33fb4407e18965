// Helpers for tests that run a whole job of nodes inside one process, each node its own
// Postoffice, over real ZeroMQ sockets on loopback.
#ifndef PS_TESTS_COMMON_TEST_UTIL_H_
#define PS_TESTS_COMMON_TEST_UTIL_H_

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
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
      : port_(FreePort()), num_servers_(num_servers), num_workers_(num_workers) {
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

}  // namespace test
}  // namespace ps
#endif  // PS_TESTS_COMMON_TEST_UTIL_H_
