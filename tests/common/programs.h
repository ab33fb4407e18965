// Helpers for the job and benchmark programs, which run one copy of themselves per node:
// integer flags, and a driver that starts a whole local job of such copies and waits for it.
#ifndef PS_TESTS_COMMON_PROGRAMS_H_
#define PS_TESTS_COMMON_PROGRAMS_H_

#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/test_util.h"

extern char** environ;

namespace ps {
namespace test {

// Seconds on the steady clock, for timing.
inline double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The median of "v" (the upper one of an even count); 0 for none (callers print the count).
inline double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Environment variable "name", or "def" when it is not set.
inline std::string GetEnv(const char* name, const std::string& def = "") {
  const char* v = std::getenv(name);
  return v ? v : def;
}

inline bool Exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec);
}

// The integer after "name" in argv, or "def" when it is not given.
inline int IntFlag(int argc, char** argv, const char* name, int def) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return std::atoi(argv[i + 1]);
  }
  return def;
}

// A new job key (PS_KEY_FILE) in a new private folder named after "name"; "folder" is set to
// the folder, which the caller removes.
inline std::string WriteJobKey(const std::string& name, std::string* folder) {
  std::string dir = (std::filesystem::temp_directory_path() / (name + "_key_XXXXXX")).string();
  *folder = mkdtemp(&dir[0]);
  std::string path = *folder + "/job.key";
  char pub[41], sec[41];
  zmq_curve_keypair(pub, sec);
  std::ofstream(path) << sec << "\n";
  chmod(path.c_str(), 0600);
  return path;
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

// The folder above "path" ("." for a bare name).
inline std::string ParentDir(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

// For benchmarks that run the demos through the launcher. This program is BUILD/bench/NAME:
// returns BUILD, and sets "launch" to tracker/launch.py of the checkout above it. Exits,
// naming "who", if either cannot be found.
inline std::string BuildDirAndLauncher(const char* who, std::string* launch) {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) {
    std::perror("readlink");
    std::exit(1);
  }
  const std::string build = ParentDir(ParentDir(std::string(buf, n)));
  for (std::string dir = build; dir.size() > 1; dir = ParentDir(dir)) {
    if (access((dir + "/tracker/launch.py").c_str(), R_OK) == 0) {
      *launch = dir + "/tracker/launch.py";
      return build;
    }
  }
  std::fprintf(stderr, "%s: tracker/launch.py not found above %s\n", who, build.c_str());
  std::exit(1);
}

// Runs the shell command "cmd" and returns its output, stderr included. Exits, naming "who"
// and showing the output, if the command fails.
inline std::string RunOrExit(const char* who, const std::string& cmd) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) {
    std::perror("popen");
    std::exit(1);
  }
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  if (pclose(p) != 0) {
    std::fprintf(stderr, "%s: failed: %s\n%s\n", who, cmd.c_str(), out.c_str());
    std::exit(1);
  }
  return out;
}

// The one-line JSON summary a demo's worker printed through the launcher ("[worker N] {...}"),
// without the prefix. Exits, naming "who" and showing the output, if there is none.
inline std::string WorkerSummary(const char* who, const std::string& out) {
  size_t at = out.rfind("] {");
  size_t line = at == std::string::npos ? 0 : out.rfind('\n', at);
  line = line == std::string::npos ? 0 : line + 1;
  if (at == std::string::npos || out.compare(line, 8, "[worker ") != 0) {
    std::fprintf(stderr, "%s: no summary in:\n%s\n", who, out.c_str());
    std::exit(1);
  }
  return out.substr(at + 2, out.find('\n', at) - at - 2);
}

// The value of "key" in a flat JSON object line, as text ("" if absent).
inline std::string JsonField(const std::string& json, const std::string& key) {
  size_t at = json.find("\"" + key + "\": ");
  if (at == std::string::npos) return "";
  at += key.size() + 4;
  return json.substr(at, json.find_first_of(",}", at) - at);
}

}  // namespace test
}  // namespace ps
#endif  // PS_TESTS_COMMON_PROGRAMS_H_
