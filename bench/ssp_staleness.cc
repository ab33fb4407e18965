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

using ps::test::IntFlag;
using ps::test::JsonField;

// The array "name" of a JSON line, as written ("[...]"); "[]" if absent.
std::string Array(const std::string& json, const std::string& name) {
  size_t at = json.find("\"" + name + "\": [");
  if (at == std::string::npos) return "[]";
  at = json.find('[', at);
  return json.substr(at, json.find(']', at) - at + 1);
}

int main(int argc, char** argv) {
  const int workers = IntFlag(argc, argv, "--workers", 4);
  const int servers = IntFlag(argc, argv, "--servers", 2);
  const int clocks = IntFlag(argc, argv, "--clocks", 60);
  const int straggler_ms = IntFlag(argc, argv, "--straggler-ms", 20);
  const int target_milli = IntFlag(argc, argv, "--target-milli", 150);
  const int users = IntFlag(argc, argv, "--users", 1600);
  const int items = IntFlag(argc, argv, "--items", 400);
  std::string launch;
  const std::string mf = ps::test::BuildDirAndLauncher("ssp_staleness", &launch) + "/demo/mf";
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
          " --target-rmse=" + std::to_string(target);
      const std::string summary =
          ps::test::WorkerSummary("ssp_staleness", ps::test::RunOrExit("ssp_staleness", cmd));
      const double seconds = std::atof(JsonField(summary, "seconds").c_str());
      const double rmse = std::atof(JsonField(summary, "rmse").c_str());
      const std::string first = JsonField(summary, "rmse_per_clock");  // "[r0"
      const double rmse0 = std::atof(first.c_str() + 1);
      const std::string ttt = JsonField(summary, "time_to_target");
      const double t = ttt == "null" ? -1 : std::atof(ttt.c_str());
      const std::string name = std::string(essp ? "essp" : "ssp") + " s=" + std::to_string(s);
      std::printf(
          "{\"case\": \"%s\", \"staleness\": %d, \"essp\": %s, \"workers\": %d, \"clocks\": %d, "
          "\"seconds\": %.3f, \"clocks_per_s\": %.2f, \"rmse\": %.4f, \"rmse_drop_per_s\": %.4f, "
          "\"target_rmse\": %.3f, \"time_to_target\": %s, \"blocked_reads\": %s, "
          "\"cache_hit_rate\": %s, \"rmse_per_clock\": %s, \"seconds_per_clock\": %s}\n",
          name.c_str(), s, essp ? "true" : "false", workers, clocks, seconds, clocks / seconds,
          rmse, (rmse0 - rmse) / seconds, target, ttt.c_str(),
          JsonField(summary, "blocked_reads").c_str(), JsonField(summary, "cache_hit_rate").c_str(),
          Array(summary, "rmse_per_clock").c_str(), Array(summary, "seconds_per_clock").c_str());
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
