// Helpers for the job and benchmark programs, which run one copy of themselves per node:
// integer flags, and a driver that starts a whole local job of such copies and waits for it.
#ifndef PS_TESTS_COMMON_PROGRAMS_H_
#define PS_TESTS_COMMON_PROGRAMS_H_

#include <spawn.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/test_util.h"

extern char** environ;

namespace ps {
namespace test {

// The integer after "name" in argv, or "def" when it is not given.
inline int IntFlag(int argc, char** argv, const char* name, int def) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return std::atoi(argv[i + 1]);
  }
  return def;
}

// Starts this program again with "argv" and this process's environment plus "extra_env"
// (NAME=value entries). Exits the process if it cannot.
inline pid_t SpawnSelf(char** argv, const std::vector<std::string>& extra_env) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) env.push_back(*e);
  env.insert(env.end(), extra_env.begin(), extra_env.end());
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(&e[0]);
  envp.push_back(nullptr);
  pid_t pid;
  if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv, envp.data()) != 0) {
    std::perror("posix_spawn");
    std::exit(1);
  }
  return pid;
}

// Runs a job of this program on loopback: a scheduler, "workers" workers and "servers" servers,
// each a copy started with "argv", its DMLC_* variables and "extra_env". Blocks until all of
// them exited; returns how many failed.
inline int RunSelfJob(char** argv, int servers, const std::vector<std::string>& extra_env,
                      int workers = 1) {
  std::vector<std::string> base = {
      "DMLC_PS_ROOT_URI=127.0.0.1", "DMLC_PS_ROOT_PORT=" + std::to_string(FreePort()),
      "DMLC_NUM_SERVER=" + std::to_string(servers), "DMLC_NUM_WORKER=" + std::to_string(workers)};
  base.insert(base.end(), extra_env.begin(), extra_env.end());
  std::vector<std::string> roles = {"scheduler"};
  for (int w = 0; w < workers; ++w) roles.push_back("worker");
  for (int s = 0; s < servers; ++s) roles.push_back("server");
  std::vector<pid_t> pids;
  for (const auto& role : roles) {
    std::vector<std::string> env = base;
    env.push_back("DMLC_ROLE=" + role);
    pids.push_back(SpawnSelf(argv, env));
  }
  int failed = 0;
  for (pid_t p : pids) {
    int status = 0;
    waitpid(p, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failed;
  }
  return failed;
}

}  // namespace test
}  // namespace ps
#endif  // PS_TESTS_COMMON_PROGRAMS_H_
