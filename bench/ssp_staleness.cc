// ssp_staleness: the matrix factorization demo (demo/mf) on SSP tables with one straggler, for
// staleness 0 (BSP), 1, 2, 4, 8 and a very large one (asynchronous), each without and with
// eager mode (ESSP). The seeds' claim to check: the fastest time to a target RMSE is at a
// staleness above 0.
//
//   ssp_staleness [--workers 4] [--servers 2] [--clocks 60] [--straggler-ms 20]
//                 [--target-milli 150] [--users 1600] [--items 400]
//
// Each case is one job of build/demo/mf started through tracker/launch.py; worker 1 sleeps
// --straggler-ms per clock. One JSON line per case: clocks per second, the RMSE reached, the
// RMSE drop per second ((RMSE of clock 0 - final RMSE) / seconds), the time until the job's
// training RMSE first reached the target (--target-milli / 1000; null if never), blocked
// reads and cache hit rate. A last line names the case with the shortest time to target and
// compares it with BSP from the same run.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/programs.h"

namespace {

using ps::test::IntFlag;

// The folder above "path".
std::string Parent(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

// This program is BUILD/bench/ssp_staleness; the checkout holds tracker/launch.py above BUILD.
void Paths(std::string* mf, std::string* launch) {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) {
    std::perror("readlink");
    std::exit(1);
  }
  std::string build = Parent(Parent(std::string(buf, n)));
  *mf = build + "/demo/mf";
  for (std::string dir = build; dir.size() > 1; dir = Parent(dir)) {
    if (access((dir + "/tracker/launch.py").c_str(), R_OK) == 0) {
      *launch = dir + "/tracker/launch.py";
      return;
    }
  }
  std::fprintf(stderr, "ssp_staleness: tracker/launch.py not found above %s\n", build.c_str());
  std::exit(1);
}

// The value of "key" in a flat JSON object line, as text ("" if absent).
std::string Field(const std::string& json, const std::string& key) {
  size_t at = json.find("\"" + key + "\": ");
  if (at == std::string::npos) return "";
  at += key.size() + 4;
  size_t end = json.find_first_of(",}", at);
  return json.substr(at, end - at);
}

}  // namespace

int main(int argc, char** argv) {
  const int workers = IntFlag(argc, argv, "--workers", 4);
  const int servers = IntFlag(argc, argv, "--servers", 2);
  const int clocks = IntFlag(argc, argv, "--clocks", 60);
  const int straggler_ms = IntFlag(argc, argv, "--straggler-ms", 20);
  const int target_milli = IntFlag(argc, argv, "--target-milli", 150);
  const int users = IntFlag(argc, argv, "--users", 1600);
  const int items = IntFlag(argc, argv, "--items", 400);
  std::string mf, launch;
  Paths(&mf, &launch);
  const double target = target_milli / 1000.0;
  const std::vector<int> staleness = {0, 1, 2, 4, 8, 1000000};
  double bsp_time = -1, best_time = -1;
  std::string best;
  for (bool essp : {false, true}) {
    for (int s : staleness) {
      const std::string cmd =
          "python3 " + launch + " -s " + std::to_string(servers) + " -n " +
          std::to_string(workers) + " --timeout 600 -- " + mf +
          " --staleness=" + std::to_string(s) + " --essp=" + (essp ? "on" : "off") +
          " --straggler=1:" + std::to_string(straggler_ms) + " --clocks=" + std::to_string(clocks) +
          " --users=" + std::to_string(users) + " --items=" + std::to_string(items) +
          " --target-rmse=" + std::to_string(target) + " 2>&1";
      FILE* p = popen(cmd.c_str(), "r");
      if (!p) {
        std::perror("popen");
        return 1;
      }
      std::string summary, line;
      char buf[1 << 16];
      while (fgets(buf, sizeof(buf), p)) {
        line = buf;
        if (line.rfind("[worker ", 0) == 0 && line.find("] {") != std::string::npos) {
          summary = line.substr(line.find("] {") + 2);
        }
      }
      if (pclose(p) != 0 || summary.empty()) {
        std::fprintf(stderr, "ssp_staleness: the job failed: %s\n", cmd.c_str());
        return 1;
      }
      const double seconds = std::atof(Field(summary, "seconds").c_str());
      const double rmse = std::atof(Field(summary, "rmse").c_str());
      const std::string first = Field(summary, "rmse_per_clock");  // "[r0"
      const double rmse0 = std::atof(first.c_str() + 1);
      const std::string ttt = Field(summary, "time_to_target");
      const double t = ttt == "null" ? -1 : std::atof(ttt.c_str());
      const std::string name = std::string(essp ? "essp" : "ssp") + " s=" + std::to_string(s);
      std::printf(
          "{\"case\": \"%s\", \"staleness\": %d, \"essp\": %s, \"workers\": %d, \"clocks\": %d, "
          "\"seconds\": %.3f, \"clocks_per_s\": %.2f, \"rmse\": %.4f, \"rmse_drop_per_s\": %.4f, "
          "\"target_rmse\": %.3f, \"time_to_target\": %s, \"blocked_reads\": %s, "
          "\"cache_hit_rate\": %s}\n",
          name.c_str(), s, essp ? "true" : "false", workers, clocks, seconds, clocks / seconds,
          rmse, (rmse0 - rmse) / seconds, target, ttt.c_str(),
          Field(summary, "blocked_reads").c_str(), Field(summary, "cache_hit_rate").c_str());
      std::fflush(stdout);
      if (!essp && s == 0) bsp_time = t;
      if (t >= 0 && (best_time < 0 || t < best_time)) {
        best_time = t;
        best = name;
      }
    }
  }
  std::printf(
      "{\"fastest_to_target\": \"%s\", \"time_to_target\": %.3f, \"bsp_time_to_target\": %.3f, "
      "\"bsp_over_fastest\": %.2f}\n",
      best.c_str(), best_time, bsp_time, best_time > 0 && bsp_time > 0 ? bsp_time / best_time : 0);
  return 0;
}
