// lr_consistency: the logistic regression demo (bcd) under each consistency model, with and
// without a straggler, and the time each takes to reach 1% of the best objective; then the KKT
// filter at the size (200k rows by 1M features), on and off.
//
//   lr_consistency [--workers 2] [--straggler-ms 10] [--rows 100000] [--features 100000]
//                  [--kkt-rows 200000] [--kkt-features 1000000]
//
// It starts the checkout's tracker/launch.py with 1 server and W
// workers running build/.../demo/linear on data from build/.../tools/gen_data, written once into
// the build folder. Each run's summary lists [seconds, objective] per iteration (--trace=on);
// the best objective is the lowest final one over all runs of the table, and a run's time to
// 1% is the first iteration's seconds at which its objective is within 1% of that. One JSON
// line per run, then a Markdown table.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "common/programs.h"

namespace {

using ps::test::Exists;
using ps::test::IntFlag;

std::string Run(const std::string& cmd) { return ps::test::RunOrExit("lr_consistency", cmd); }

// A number of a demo's JSON summary.
double Field(const std::string& json, const std::string& name) {
  return std::atof(ps::test::JsonField(json, name).c_str());
}

std::vector<std::pair<double, double>> Trace(const std::string& json) {
  std::vector<std::pair<double, double>> t;
  size_t at = json.find("\"trace\": [");
  if (at == std::string::npos) return t;
  at += 10;
  while ((at = json.find('[', at)) != std::string::npos) {
    double s = 0, o = 0;
    if (std::sscanf(json.c_str() + at, "[%lf, %lf]", &s, &o) != 2) break;
    t.emplace_back(s, o);
    ++at;
  }
  return t;
}

struct Result {
  std::string model;
  int straggler_ms;
  std::string json;
};

}  // namespace

int main(int argc, char** argv) {
  const int workers = IntFlag(argc, argv, "--workers", 2);
  const int straggler_ms = IntFlag(argc, argv, "--straggler-ms", 10);
  const int rows = IntFlag(argc, argv, "--rows", 100000);
  const int features = IntFlag(argc, argv, "--features", 100000);
  const int kkt_rows = IntFlag(argc, argv, "--kkt-rows", 200000);
  const int kkt_features = IntFlag(argc, argv, "--kkt-features", 1000000);
  std::string launch;
  const std::string build = ps::test::BuildDirAndLauncher("lr_consistency", &launch);
  const std::string linear = build + "/demo/linear", gen = build + "/tools/gen_data";
  const std::string data = build + "/bench/lr-data";
  Run("mkdir -p " + data);
  auto generate = [&](int r, int f) {
    const std::string name = data + "/" + std::to_string(r) + "x" + std::to_string(f);
    if (!Exists(name + ".train")) {
      Run(gen + " --rows=" + std::to_string(r) + " --features=" + std::to_string(f) +
          " --seed=1 --out=" + name + ".train");
    }
    return name + ".train";
  };
  auto demo = [&](const std::string& train, const std::string& flags) {
    return ps::test::WorkerSummary(
        "lr_consistency", Run("python3 " + launch + " -s 1 -n " + std::to_string(workers) +
                              " --timeout 600 -- " + linear + " --data=" + train + " " + flags));
  };

  // Consistency models, with and without a straggler (the last worker).
  const std::string train = generate(rows, features);
  const std::vector<std::string> models = {"sequential", "bounded:1", "bounded:2", "bounded:4",
                                           "eventual"};
  std::vector<Result> results;
  for (int ms : {0, straggler_ms}) {
    for (const std::string& m : models) {
      std::string flags = "--l1=2 --trace=on --consistency=" + m;
      if (ms) flags += " --straggler=" + std::to_string(workers - 1) + ":" + std::to_string(ms);
      results.push_back({m, ms, demo(train, flags)});
    }
  }
  double best = std::numeric_limits<double>::infinity();
  for (const Result& r : results) best = std::min(best, Field(r.json, "objective"));
  std::vector<std::string> table;
  for (const Result& r : results) {
    double reach = -1;
    for (const auto& point : Trace(r.json)) {
      if (point.second <= best * 1.01) {
        reach = point.first;
        break;
      }
    }
    char line[512];
    std::snprintf(line, sizeof(line),
                  "{\"bench\": \"lr_consistency\", \"model\": \"%s\", \"straggler_ms\": %d, "
                  "\"seconds_to_1pct\": %.3f, \"iterations\": %.0f, \"seconds\": %.3f, "
                  "\"objective\": %.3f, \"best\": %.3f, \"trace\": [",
                  r.model.c_str(), r.straggler_ms, reach, Field(r.json, "iterations"),
                  Field(r.json, "seconds"), Field(r.json, "objective"), best);
    std::printf("%s", line);
    // [seconds, objective] per iteration, for bench/plot.py.
    const auto trace = Trace(r.json);
    for (size_t i = 0; i < trace.size(); ++i) {
      std::printf("%s[%.4f, %.6f]", i ? ", " : "", trace[i].first, trace[i].second);
    }
    std::printf("]}\n");
    std::snprintf(line, sizeof(line), "| %s | %s | %.2f | %.0f | %.2f | %.1f |", r.model.c_str(),
                  r.straggler_ms ? ("worker " + std::to_string(workers - 1) + ", " +
                                    std::to_string(r.straggler_ms) + " ms per block")
                                       .c_str()
                                 : "none",
                  reach, Field(r.json, "iterations"), Field(r.json, "seconds"),
                  Field(r.json, "objective"));
    table.push_back(line);
    std::fflush(stdout);
  }

  // The KKT filter at the size.
  const std::string big = generate(kkt_rows, kkt_features);
  std::vector<std::string> kkt_table;
  double off_objective = 0;
  for (const char* kkt : {"off", "on"}) {
    std::string json = demo(big, std::string("--l1=2 --kkt=") + kkt);
    if (std::string(kkt) == "off") off_objective = Field(json, "objective");
    const double obj = Field(json, "objective");
    char line[512];
    std::snprintf(line, sizeof(line),
                  "{\"bench\": \"lr_kkt\", \"kkt\": \"%s\", \"objective\": %.3f, "
                  "\"vs_off\": %.6f, \"nnz\": %.0f, \"iterations\": %.0f, \"seconds\": %.3f, "
                  "\"keys_filtered_pct\": %.2f, \"bytes_sent\": %.0f}",
                  kkt, obj, obj / off_objective - 1, Field(json, "nnz"), Field(json, "iterations"),
                  Field(json, "seconds"), Field(json, "keys_filtered_pct"),
                  Field(json, "bytes_sent"));
    std::printf("%s\n", line);
    std::snprintf(
        line, sizeof(line), "| %s | %.2f | %+.4f%% | %.0f | %.0f | %.2f | %.1f%% | %.0f |", kkt,
        obj, 100 * (obj / off_objective - 1), Field(json, "nnz"), Field(json, "iterations"),
        Field(json, "seconds"), Field(json, "keys_filtered_pct"), Field(json, "bytes_sent"));
    kkt_table.push_back(line);
    std::fflush(stdout);
  }

  std::printf(
      "\n| model | straggler | seconds to 1%% of best | iterations | seconds | objective |\n");
  std::printf("|---|---|---|---|---|---|\n");
  for (const std::string& l : table) std::printf("%s\n", l.c_str());
  std::printf(
      "\n| kkt | objective | vs off | nnz | iterations | seconds | keys filtered | bytes sent |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (const std::string& l : kkt_table) std::printf("%s\n", l.c_str());
  return 0;
}
