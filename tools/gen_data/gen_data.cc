// Writes a reproducible synthetic data set for the logistic regression demo, in libsvm format.
//
//   build/tools/gen_data --out=train.libsvm [--rows=100000] [--features=100000] [--nnz=20]
//       [--zipf=1.0] [--true-density=0.1] [--noise=0.05] [--seed=1]
//       [--test-out=test.libsvm --test-rows=20000]
//
// Each row has --nnz distinct binary features (index:1, indices 1..--features), drawn with a
// power-law frequency: the feature of frequency rank r is drawn with probability proportional
// to 1 / r^zipf, and ranks are shuffled over the indices. A sparse true weight vector has a
// fraction --true-density of nonzero N(0, s^2) entries, s chosen so that a row's margin has a
// standard deviation of about 2. A row's label is the sign of its margin (+1 or -1, a coin for
// 0), flipped with probability --noise. The same --seed gives the same files; the test rows use
// the same true weights as the training rows.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

struct Options {
  long rows = 100000;
  long features = 100000;
  int nnz = 20;
  double zipf = 1.0;
  double true_density = 0.1;
  double noise = 0.05;
  unsigned long seed = 1;
  std::string out;
  std::string test_out;
  long test_rows = 0;
};

[[noreturn]] void Fail(const std::string& why) {
  std::fprintf(stderr, "gen_data: error: %s\n", why.c_str());
  std::exit(2);
}

double Number(const std::string& k, const std::string& v, double lo, double hi) {
  char* end = nullptr;
  double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end || !std::isfinite(x)) Fail("--" + k + "=" + v + ": not a number");
  if (x < lo || x > hi) {
    Fail("--" + k + "=" + v + ": must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
         "]");
  }
  return x;
}

Options Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    size_t eq = a.find('=');
    if (a.rfind("--", 0) != 0 || eq == std::string::npos) {
      Fail("bad argument " + a + ": options are --name=value");
    }
    std::string k = a.substr(2, eq - 2), v = a.substr(eq + 1);
    if (k == "rows") {
      o.rows = static_cast<long>(Number(k, v, 1, 1e10));
    } else if (k == "features") {
      o.features = static_cast<long>(Number(k, v, 1, 4e9));
    } else if (k == "nnz") {
      o.nnz = static_cast<int>(Number(k, v, 1, 1e5));
    } else if (k == "zipf") {
      o.zipf = Number(k, v, 0, 10);
    } else if (k == "true-density") {
      o.true_density = Number(k, v, 0, 1);
    } else if (k == "noise") {
      o.noise = Number(k, v, 0, 0.5);
    } else if (k == "seed") {
      o.seed = static_cast<unsigned long>(Number(k, v, 0, 1e18));
    } else if (k == "out") {
      o.out = v;
    } else if (k == "test-out") {
      o.test_out = v;
    } else if (k == "test-rows") {
      o.test_rows = static_cast<long>(Number(k, v, 0, 1e10));
    } else {
      Fail("unknown option --" + k);
    }
  }
  if (o.out.empty()) Fail("--out=FILE is required");
  if (o.nnz > o.features) Fail("--nnz is larger than --features");
  if (o.test_rows > 0 && o.test_out.empty()) Fail("--test-rows needs --test-out=FILE");
  if (!o.test_out.empty() && o.test_rows == 0) o.test_rows = std::max(1L, o.rows / 5);
  return o;
}

// Draws from a discrete distribution in constant time (Vose's alias method).
class Alias {
 public:
  explicit Alias(const std::vector<double>& weights)
      : prob_(weights.size()), alias_(weights.size()) {
    const size_t n = weights.size();
    double sum = 0;
    for (double w : weights) sum += w;
    std::vector<double> scaled(n);
    std::vector<uint32_t> small, large;
    for (size_t i = 0; i < n; ++i) {
      scaled[i] = weights[i] * n / sum;
      (scaled[i] < 1 ? small : large).push_back(static_cast<uint32_t>(i));
    }
    while (!small.empty() && !large.empty()) {
      uint32_t s = small.back(), l = large.back();
      small.pop_back();
      prob_[s] = static_cast<float>(scaled[s]);
      alias_[s] = l;
      scaled[l] -= 1 - scaled[s];
      if (scaled[l] < 1) {
        large.pop_back();
        small.push_back(l);
      }
    }
    for (uint32_t i : large) prob_[i] = 1;
    for (uint32_t i : small) prob_[i] = 1;
  }

  template <typename Rng>
  uint32_t operator()(Rng& rng) const {
    const uint64_t r = rng();
    const uint32_t i = static_cast<uint32_t>((r >> 32) * prob_.size() >> 32);
    const float u = static_cast<float>(r & 0xffffffffu) * (1.0f / 4294967296.0f);
    return u < prob_[i] ? i : alias_[i];
  }

 private:
  std::vector<float> prob_;
  std::vector<uint32_t> alias_;
};

char* WriteUint(char* p, uint64_t v) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) *p++ = tmp[--n];
  return p;
}

// Writes "rows" rows drawn with "rng" to "file".
void WriteRows(const std::string& file, long rows, const Options& o, const Alias& draw,
               const std::vector<uint32_t>& id_of_rank, const std::vector<float>& truth,
               std::mt19937_64& rng) {
  FILE* f = std::fopen(file.c_str(), "w");
  if (!f) Fail("cannot write " + file + ": " + std::strerror(errno));
  std::vector<char> buf(1 << 22);
  size_t used = 0;
  std::vector<uint32_t> ids;
  std::uniform_real_distribution<double> unit(0, 1);
  for (long r = 0; r < rows; ++r) {
    ids.clear();
    // Distinct features: a repeat is drawn again (a few tries, then the row is shorter).
    for (int tries = 0; static_cast<int>(ids.size()) < o.nnz && tries < 4 * o.nnz; ++tries) {
      uint32_t id = id_of_rank[draw(rng)];
      if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
    }
    std::sort(ids.begin(), ids.end());
    double margin = 0;
    for (uint32_t id : ids) margin += truth[id];
    bool positive = margin > 0 || (margin == 0 && unit(rng) < 0.5);
    if (unit(rng) < o.noise) positive = !positive;
    if (used + 24 * (ids.size() + 2) > buf.size()) {
      if (std::fwrite(buf.data(), 1, used, f) != used) Fail("cannot write " + file);
      used = 0;
    }
    char* p = buf.data() + used;
    if (positive) {
      *p++ = '1';
    } else {
      *p++ = '-';
      *p++ = '1';
    }
    for (uint32_t id : ids) {
      *p++ = ' ';
      p = WriteUint(p, id);
      *p++ = ':';
      *p++ = '1';
    }
    *p++ = '\n';
    used = p - buf.data();
  }
  if (std::fwrite(buf.data(), 1, used, f) != used || std::fclose(f) != 0) {
    Fail("cannot write " + file + ": " + std::strerror(errno));
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = Parse(argc, argv);
  const auto start = std::chrono::steady_clock::now();
  std::mt19937_64 rng(o.seed);
  // Frequency ranks over feature ids 1..features, in a random order.
  std::vector<uint32_t> id_of_rank(o.features);
  for (long r = 0; r < o.features; ++r) id_of_rank[r] = static_cast<uint32_t>(r + 1);
  std::shuffle(id_of_rank.begin(), id_of_rank.end(), rng);
  std::vector<double> weight(o.features);
  for (long r = 0; r < o.features; ++r) weight[r] = 1 / std::pow(r + 1.0, o.zipf);
  Alias draw(weight);
  // The true weights, by feature id.
  std::vector<float> truth(o.features + 1, 0);
  const double scale = 2 / std::sqrt(std::max(1e-9, o.nnz * o.true_density));
  std::normal_distribution<double> normal(0, scale);
  std::uniform_real_distribution<double> unit(0, 1);
  long nonzero = 0;
  for (long id = 1; id <= o.features; ++id) {
    if (unit(rng) < o.true_density) {
      truth[id] = static_cast<float>(normal(rng));
      ++nonzero;
    }
  }
  std::mt19937_64 train_rng(o.seed * 2 + 1), test_rng(o.seed * 2 + 2);
  WriteRows(o.out, o.rows, o, draw, id_of_rank, truth, train_rng);
  if (o.test_rows > 0) WriteRows(o.test_out, o.test_rows, o, draw, id_of_rank, truth, test_rng);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "{\"rows\": %ld, \"test_rows\": %ld, \"features\": %ld, \"nnz_per_row\": %d, "
      "\"true_nonzero\": %ld, \"seconds\": %.3f}\n",
      o.rows, o.test_rows, o.features, o.nnz, nonzero, secs);
  return 0;
}
