// Matrix factorization by SGD on SSP tables: ratings r(u, i) ~ <U[u], V[i]>.
//
//   python3 tracker/launch.py -s 1 -n 4 -- build/demo/mf [--staleness=2] [--essp=on]
//       [--straggler=RANK:MS] [--clocks=40] [--target-rmse=0.2] [--ratings=FILE] ...
//
// Each worker owns the users u with u % workers == rank and keeps their factors U; the item
// factors V are rows of SSP table 0 (width --rank), read at the start of each clock with the
// table's staleness and incremented by the worker's SGD steps. One clock is one pass over the
// worker's ratings. Table 1 collects, per clock, every worker's squared error, rating count
// and time, so that worker 0 can report the job's training RMSE per clock at the end.
//
// Data: synthetic by default, users x items with true factors of rank --true-rank (entries
// N(0, 1) / rank^(1/4), so ratings have variance about 1), a fraction --density rated, plus
// Gaussian noise --noise; every worker draws the same data from --seed. --ratings=FILE reads
// "user item rating" lines instead (0-based ids).
//
// Checkpoints: with PS_CHECKPOINT_DIR every worker checkpoints after each clock (the tables
// and its user factors; SSPWorker::Checkpoint), and a job started again resumes at the clock of
// the latest checkpoint, with the same options and number of workers.
//
// Output: each worker prints one line per clock, "clock C rmse R seconds S" (its own ratings,
// during the pass); worker 0 then prints a JSON summary of the whole job: rmse (after the last
// clock, all ratings), clocks, seconds (until the last worker ended its last clock), blocked_reads,
// cache_hit_rate, and per clock the job's training RMSE and the time the last worker ended it.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ps/ps.h"

namespace {

struct Options {
  int staleness = 2;
  bool essp = false;
  int straggler_rank = -1;
  int straggler_ms = 0;
  int clocks = 40;
  int users = 400;
  int items = 200;
  int rank = 8;
  int true_rank = 4;
  double density = 0.2;
  double noise = 0.1;
  double lr = 0.03;
  double reg = 0.001;
  double target_rmse = 0.2;
  unsigned seed = 1;
  std::string ratings;
};

[[noreturn]] void Usage(const std::string& why) {
  std::fprintf(stderr,
               "mf: %s\nusage: mf [--staleness=S] [--essp=on|off] [--straggler=RANK:MS] "
               "[--clocks=N] [--users=N] [--items=N] [--rank=K] [--true-rank=K] "
               "[--density=F] [--noise=F] [--lr=F] [--reg=F] [--target-rmse=F] [--seed=N] "
               "[--ratings=FILE]\n",
               why.c_str());
  std::exit(2);
}

double Number(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end) Usage(flag + "=" + v + " is not a number");
  return x;
}

Options Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    size_t eq = a.find('=');
    if (a.rfind("--", 0) != 0 || eq == std::string::npos) Usage("bad argument " + a);
    std::string k = a.substr(2, eq - 2), v = a.substr(eq + 1);
    if (k == "staleness") {
      o.staleness = static_cast<int>(Number(k, v));
    } else if (k == "essp") {
      if (v != "on" && v != "off") Usage("--essp takes on or off");
      o.essp = v == "on";
    } else if (k == "straggler") {
      size_t c = v.find(':');
      if (c == std::string::npos) Usage("--straggler takes RANK:MS");
      o.straggler_rank = static_cast<int>(Number(k, v.substr(0, c)));
      o.straggler_ms = static_cast<int>(Number(k, v.substr(c + 1)));
    } else if (k == "clocks") {
      o.clocks = static_cast<int>(Number(k, v));
    } else if (k == "users") {
      o.users = static_cast<int>(Number(k, v));
    } else if (k == "items") {
      o.items = static_cast<int>(Number(k, v));
    } else if (k == "rank") {
      o.rank = static_cast<int>(Number(k, v));
    } else if (k == "true-rank") {
      o.true_rank = static_cast<int>(Number(k, v));
    } else if (k == "density") {
      o.density = Number(k, v);
    } else if (k == "noise") {
      o.noise = Number(k, v);
    } else if (k == "lr") {
      o.lr = Number(k, v);
    } else if (k == "reg") {
      o.reg = Number(k, v);
    } else if (k == "target-rmse") {
      o.target_rmse = Number(k, v);
    } else if (k == "seed") {
      o.seed = static_cast<unsigned>(Number(k, v));
    } else if (k == "ratings") {
      o.ratings = v;
    } else {
      Usage("unknown option --" + k);
    }
  }
  if (o.staleness < 0 || o.clocks < 1 || o.users < 1 || o.items < 1 || o.rank < 1 ||
      o.true_rank < 1) {
    Usage("staleness must be >= 0; clocks, users, items and ranks >= 1");
  }
  return o;
}

struct Rating {
  int user;
  int item;
  double value;
};

// This worker's ratings: the users u with u % workers == rank.
std::vector<Rating> LoadRatings(const Options& o, int rank, int workers) {
  std::vector<Rating> out;
  if (!o.ratings.empty()) {
    std::ifstream in(o.ratings);
    if (!in) Usage("cannot read " + o.ratings);
    Rating r;
    while (in >> r.user >> r.item >> r.value) {
      if (r.user >= 0 && r.item >= 0 && r.user % workers == rank) out.push_back(r);
    }
    return out;
  }
  std::mt19937_64 gen(o.seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const double scale = 1.0 / std::pow(static_cast<double>(o.true_rank), 0.25);
  std::vector<double> u(static_cast<size_t>(o.users) * o.true_rank);
  std::vector<double> v(static_cast<size_t>(o.items) * o.true_rank);
  for (double& x : u) x = normal(gen) * scale;
  for (double& x : v) x = normal(gen) * scale;
  for (int a = 0; a < o.users; ++a) {
    for (int b = 0; b < o.items; ++b) {
      const bool rated = unit(gen) < o.density;
      const double noise = normal(gen) * o.noise;  // drawn always: same data on every worker
      if (!rated || a % workers != rank) continue;
      double dot = 0;
      for (int k = 0; k < o.true_rank; ++k) dot += u[a * o.true_rank + k] * v[b * o.true_rank + k];
      out.push_back({a, b, dot + noise});
    }
  }
  return out;
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

void Check(const ps::Status& s) {
  if (!s.ok()) {
    std::fprintf(stderr, "mf: %s\n", s.message().c_str());
    std::exit(1);
  }
}

// Columns of the stats table's rows (row c: clock c; row clocks: after the last clock).
constexpr uint64_t kSSE = 0, kCount = 1, kReads = 2, kHits = 3, kBlocked = 4, kTime = 100;

int RunWorker(const Options& o, ps::SSPTableGroup* group) {
  const int rank = ps::MyRank(), workers = ps::NumWorkers();
  const auto start = std::chrono::steady_clock::now();
  std::vector<Rating> ratings = LoadRatings(o, rank, workers);
  std::mt19937_64 gen(o.seed * 7919 + rank);
  std::shuffle(ratings.begin(), ratings.end(), gen);
  std::vector<int> items;
  int max_user = 0;
  for (const Rating& r : ratings) {
    items.push_back(r.item);
    max_user = std::max(max_user, r.user);
  }
  std::sort(items.begin(), items.end());
  items.erase(std::unique(items.begin(), items.end()), items.end());
  const int k = o.rank;
  std::uniform_real_distribution<double> init(0.0, 0.1);
  std::vector<double> user(static_cast<size_t>(max_user + 1) * k);
  for (double& x : user) x = init(gen);

  ps::SSPWorker worker(group, 0);
  if (worker.clock() > 0) {
    // Resumed from a checkpoint (PS_CHECKPOINT_DIR): the item factors and statistics are in
    // the tables as of that clock; this worker's user factors come from its saved state.
    std::string state;
    Check(worker.ResumedState(&state));
    if (state.size() != user.size() * sizeof(double)) {
      std::fprintf(stderr,
                   "mf: the checkpoint at clock %d holds %zu bytes of user factors, this worker "
                   "has %zu (resume with the same options and workers)\n",
                   worker.clock(), state.size(), user.size() * sizeof(double));
      return 1;
    }
    std::memcpy(user.data(), state.data(), state.size());
    if (rank == 0) std::printf("resuming from the checkpoint at clock %d\n", worker.clock());
  }
  ps::SSPTable item_table = worker.table(0), stats_table = worker.table(1);
  std::unordered_map<int, std::vector<double>> item, delta;
  ps::SSPRow row;
  for (int c = worker.clock(); c < o.clocks; ++c) {
    for (int i : items) {
      Check(item_table.Get(i, &row));
      item[i] = row.values;
      delta[i].assign(k, 0.0);
    }
    double sse = 0;
    for (const Rating& r : ratings) {
      double* u = &user[static_cast<size_t>(r.user) * k];
      std::vector<double>& v = item[r.item];
      std::vector<double>& d = delta[r.item];
      double pred = 0;
      for (int j = 0; j < k; ++j) pred += u[j] * v[j];
      const double e = r.value - pred;
      sse += e * e;
      for (int j = 0; j < k; ++j) {
        const double du = o.lr * (e * v[j] - o.reg * u[j]);
        const double dv = o.lr * (e * u[j] - o.reg * v[j]);
        u[j] += du;
        v[j] += dv;
        d[j] += dv;
      }
    }
    for (int i : items) Check(item_table.IncRow(i, delta[i]));
    if (rank == o.straggler_rank) {
      std::this_thread::sleep_for(std::chrono::milliseconds(o.straggler_ms));
    }
    const double t = Seconds(start);
    Check(stats_table.BatchInc(c, {kSSE, kCount, kTime + rank},
                               {sse, static_cast<double>(ratings.size()), t}));
    std::printf("clock %d rmse %.4f seconds %.3f\n", c,
                ratings.empty() ? 0.0 : std::sqrt(sse / ratings.size()), t);
    std::fflush(stdout);
    Check(worker.Clock());
    // With PS_CHECKPOINT_DIR: the tables as of this clock, and this worker's user factors.
    Check(worker.Checkpoint(
        std::string(reinterpret_cast<const char*>(user.data()), user.size() * sizeof(double))));
  }
  // The final model: every clock of every worker is in (staleness 0 at clock "clocks").
  double sse = 0;
  for (int i : items) {
    Check(item_table.Get(i, &row, 0));
    item[i] = row.values;
  }
  for (const Rating& r : ratings) {
    const double* u = &user[static_cast<size_t>(r.user) * k];
    double pred = 0;
    for (int j = 0; j < k; ++j) pred += u[j] * item[r.item][j];
    sse += (r.value - pred) * (r.value - pred);
  }
  const ps::SSPStats st = group->stats();
  Check(stats_table.BatchInc(
      o.clocks, {kSSE, kCount, kReads, kHits, kBlocked},
      {sse, static_cast<double>(ratings.size()), static_cast<double>(st.reads),
       static_cast<double>(st.cache_hits), static_cast<double>(st.blocked_reads)}));
  Check(worker.Clock());
  if (rank != 0) return 0;
  // Everyone's numbers: staleness 0 at clock clocks + 1 waits for every worker.
  std::vector<double> rmse(o.clocks), when(o.clocks);
  double time_to_target = -1;
  for (int c = 0; c < o.clocks; ++c) {
    Check(stats_table.Get(c, &row, 0));
    rmse[c] = std::sqrt(row.Get(kSSE) / std::max(1.0, row.Get(kCount)));
    for (int w = 0; w < workers; ++w) when[c] = std::max(when[c], row.Get(kTime + w));
    if (time_to_target < 0 && rmse[c] <= o.target_rmse) time_to_target = when[c];
  }
  Check(stats_table.Get(o.clocks, &row, 0));
  const double final_rmse = std::sqrt(row.Get(kSSE) / std::max(1.0, row.Get(kCount)));
  const double reads = row.Get(kReads);
  const double seconds = when[o.clocks - 1];  // when the last worker ended its last clock
  std::ostringstream js;
  js.precision(6);
  js << "{\"rmse\": " << final_rmse << ", \"clocks\": " << o.clocks << ", \"seconds\": " << seconds
     << ", \"blocked_reads\": " << static_cast<uint64_t>(row.Get(kBlocked))
     << ", \"cache_hit_rate\": " << (reads > 0 ? row.Get(kHits) / reads : 0.0)
     << ", \"staleness\": " << o.staleness << ", \"essp\": " << (o.essp ? "true" : "false")
     << ", \"workers\": " << workers << ", \"target_rmse\": " << o.target_rmse
     << ", \"time_to_target\": ";
  if (time_to_target < 0) {
    js << "null";
  } else {
    js << time_to_target;
  }
  js << ", \"rmse_per_clock\": [";
  for (int c = 0; c < o.clocks; ++c) js << (c ? ", " : "") << rmse[c];
  js << "], \"seconds_per_clock\": [";
  for (int c = 0; c < o.clocks; ++c) js << (c ? ", " : "") << when[c];
  js << "]}";
  std::printf("%s\n", js.str().c_str());
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = Parse(argc, argv);
  ps::Start(0, argv[0]);
  int code = 0;
  if (!ps::IsScheduler()) {
    ps::SSPOptions options;
    options.eager = o.essp;
    // Table 1 (statistics) is only read at staleness 0, at the end.
    ps::SSPTableGroup group(1, {{0, o.rank, o.staleness}, {1, 0, std::max(1, o.staleness)}},
                            options);
    if (ps::IsWorker()) code = RunWorker(o, &group);
    ps::Postoffice::Get()->Barrier(0, ps::kServerGroup + ps::kWorkerGroup);
  }
  ps::Finalize(0, true);
  return code;
}
