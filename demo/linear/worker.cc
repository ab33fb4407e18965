#include "worker.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "report.h"

namespace linear {
namespace {

// log(1 + exp(z)) without overflow.
double Softplus(double z) { return z > 0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z)); }

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "linear: error: %s\n", what.c_str());
  std::exit(1);
}

// ", test_rows..., test_accuracy..." of the weights weight(column) on "test"; the probabilities
// in "probs" when given.
template <typename W>
std::string MetricsJson(const Dataset& test, W weight, std::vector<double>* probs = nullptr) {
  std::vector<double> prob(test.rows());
  for (size_t i = 0; i < test.rows(); ++i) {
    double m = 0;
    for (size_t e = test.offset[i]; e < test.offset[i + 1]; ++e) {
      m += weight(test.col[e]) * test.val[e];
    }
    prob[i] = Sigmoid(m);
  }
  Metrics m = Evaluate(prob, test.label);
  std::ostringstream out;
  out.precision(10);
  out << ", \"test_rows\": " << test.rows() << ", \"test_accuracy\": " << m.accuracy
      << ", \"test_auc\": ";
  if (std::isfinite(m.auc)) {
    out << m.auc;
  } else {
    out << "null";
  }
  out << ", \"test_logloss\": " << m.logloss;
  if (probs) *probs = std::move(prob);
  return out.str();
}

}  // namespace

Worker::Worker(const Options& o)
    : o_(o), rank_(ps::MyRank()), workers_(ps::NumWorkers()), kv_(0, 0), report_(kReportApp, 0) {
  report_.set_request_handle(AnswerTraffic);
  report_.set_response_handle([this](const ps::SimpleData& res, ps::SimpleApp*) {
    std::lock_guard<std::mutex> lk(mu_);
    answers_.push_back(res.body);
  });
  kv_.set_consistency(o.consistency);
}

void Worker::Run() {
  if (!o_.predict.empty()) {
    if (rank_ == 0) Predict();
    return;
  }
  const double load_start = Now();
  ps::Status s = LoadLibsvm(o_.data, rank_, workers_, &data_);
  if (!s.ok()) Fail(s.message());
  load_seconds_ = Now() - load_start;
  margin_.assign(data_.rows(), 0);
  w_.assign(data_.keys.size(), 0);
  if (auto checkpoint = ps::LatestCheckpoint()) Resume(*checkpoint);
  start_ = Now();
  Train();
  train_seconds_ = Now() - start_;
  Finish();
}

void Worker::Straggle() {
  if (rank_ == o_.straggler_rank && o_.straggler_ms > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(o_.straggler_ms));
  }
}

void Worker::PullAll() {
  kv_.set_key_filter(nullptr);
  ps::SArray<float> w;
  kv_.Wait(kv_.ZPull(data_.keys, &w));
  for (size_t c = 0; c < w_.size(); ++c) w_[c] = w[c];
  for (size_t i = 0; i < data_.rows(); ++i) {
    double m = 0;
    for (size_t e = data_.offset[i]; e < data_.offset[i + 1]; ++e) {
      m += w_[data_.col[e]] * data_.val[e];
    }
    margin_[i] = m;
  }
}

namespace {

// The options a checkpoint's state depends on: a run resumes only with the same ones (it may
// run more iterations or epochs).
std::string Fingerprint(const Options& o) {
  std::ostringstream s;
  s.precision(17);
  s << "algo=" << o.algo << ",l1=" << o.l1 << ",l2=" << o.l2 << ",data=" << o.data;
  if (o.algo == "bcd") {
    s << ",blocks=" << o.blocks << ",kkt=" << o.kkt << ",consistency=" << o.consistency.ToString();
  } else {
    s << ",batch=" << o.batch << ",alpha=" << o.alpha << ",beta=" << o.beta << ",seed=" << o.seed;
  }
  return s.str();
}

constexpr char kStateFormat[] = "linear-demo-checkpoint 1";

}  // namespace

void Worker::Checkpoint(int done, const std::string& state) {
  std::ostringstream s;
  s.precision(17);
  s << kStateFormat << "\n"
    << "options " << Fingerprint(o_) << "\n"
    << "iterations " << iterations_ << "\n"
    << "last_objective " << last_objective_ << "\n"
    << "keys " << all_kept_ << " " << all_left_ << "\n"
    << "algo " << state << "\n";
  kv_.Checkpoint(done, s.str());
}

void Worker::Resume(const ps::CheckpointInfo& checkpoint) {
  std::istringstream in(checkpoint.app_state);
  std::string line, field, options;
  auto bad = [&](const std::string& why) {
    Fail("checkpoint " + checkpoint.path + " cannot be resumed from: " + why);
  };
  if (!std::getline(in, line) || line != kStateFormat) bad("it was not written by this demo");
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    ls >> field;
    if (field == "options") {
      ls >> options;
    } else if (field == "iterations") {
      ls >> iterations_;
    } else if (field == "last_objective") {
      ls >> last_objective_;
    } else if (field == "keys") {
      ls >> all_kept_ >> all_left_;
    } else if (field == "algo") {
      std::getline(ls >> std::ws, resumed_state_);
    }
  }
  if (options != Fingerprint(o_)) {
    bad("it was written with " + options + ", this run has " + Fingerprint(o_) +
        " (resume with the same options, or use another PS_CHECKPOINT_DIR)");
  }
  if (iterations_ != checkpoint.step) bad("its iteration count does not match its step");
  first_iteration_ = checkpoint.step;
  if (rank_ == 0) {
    std::printf("resuming from checkpoint %s after %d iterations\n", checkpoint.path.c_str(),
                first_iteration_);
    std::fflush(stdout);
  }
}

double Worker::Loss() const {
  double loss = 0;
  for (size_t i = 0; i < data_.rows(); ++i) loss += Softplus(-data_.label[i] * margin_[i]);
  return loss;
}

Worker::Totals Worker::Exchange(int iter, uint64_t kept, uint64_t left) {
  std::ostringstream body;
  body.precision(17);
  body << iter << " " << Loss() << " " << kept << " " << left;
  {
    std::lock_guard<std::mutex> lk(mu_);
    answers_.clear();
  }
  AskLive(kReport, body.str(), ps::kServerGroup);
  Totals t;
  double loss = 0, l1norm = 0, l2sq = 0;
  std::lock_guard<std::mutex> lk(mu_);
  for (const std::string& a : answers_) {
    std::istringstream in(a);
    double v[7] = {0};
    for (double& x : v) in >> x;
    for (ps::Key k; in >> k;) t.send_next.push_back(k);
    loss += v[0];
    t.kept += v[1];
    t.left += v[2];
    l1norm += v[3];
    l2sq += v[4];
    t.nnz += v[5];
    t.kkt_margin = v[6];
  }
  t.objective = loss + o_.l1 * l1norm + o_.l2 / 2 * l2sq;
  return t;
}

Worker::Totals Worker::EndIteration(int iter, uint64_t kept, uint64_t left) {
  const double exchange_start = Now();
  Totals t = Exchange(iter, kept, left);
  const double seconds = Now() - start_;
  times_.sync += Now() - exchange_start;
  t.change =
      iterations_ ? std::abs(last_objective_ - t.objective) / std::max(t.objective, 1e-300) : 1;
  if (rank_ == 0) {
    if (iterations_ == 0) {
      std::printf("%5s %14s %10s %9s %12s %9s %8s\n", "iter", "objective", "rel_change", "nnz",
                  "active_keys", "filtered", "seconds");
    }
    const double total = t.kept + t.left;
    std::printf("%5d %14.6f %10.3e %9.0f %12.0f %8.1f%% %8.3f\n", iter, t.objective, t.change,
                t.nnz, t.kept, total > 0 ? 100 * t.left / total : 0.0, seconds);
    std::fflush(stdout);
  }
  ++iterations_;
  last_objective_ = t.objective;
  trace_.emplace_back(seconds, t.objective);
  all_kept_ += t.kept;
  all_left_ += t.left;
  return t;
}

// After training: the exact objective of the final weights, test metrics, the model, the
// traffic, and the summary.
void Worker::Finish() {
  PullAll();
  Totals t = Exchange(kFinalReport, 0, 0);
  const double seconds = Now() - start_;
  if (timed_ && o_.times) {
    std::printf(
        "{\"worker_times\": {\"rank\": %d, \"train_seconds\": %.4f, \"compute\": %.4f, "
        "\"wait\": %.4f, \"held\": %.4f, \"sync\": %.4f}}\n",
        rank_, train_seconds_, times_.compute, times_.wait, times_.held, times_.sync);
    std::fflush(stdout);
  }
  if (rank_ != 0) return;
  std::ostringstream json;
  json.precision(10);
  json << "{\"algo\": \"" << o_.algo << "\", \"objective\": " << t.objective
       << ", \"nnz\": " << t.nnz << ", \"iterations\": " << iterations_
       << ", \"seconds\": " << seconds << ", \"load_seconds\": " << load_seconds_;
  const double total = all_kept_ + all_left_;
  json << ", \"keys_filtered_pct\": " << (total > 0 ? 100 * all_left_ / total : 0.0);
  if (!o_.test.empty()) json << TestMetrics();
  if (!o_.model_out.empty()) {
    ps::Status s = WriteModel(o_.model_out, ServerWeights());
    if (!s.ok()) Fail(s.message());
  }
  double sent = 0, received = 0;
  for (const std::string& a : Gather(kTraffic, kAllNodes)) {
    std::istringstream in(a);
    double s = 0, r = 0;
    in >> s >> r;
    sent += s;
    received += r;
  }
  json << ", \"bytes_sent\": " << sent << ", \"bytes_received\": " << received
       << ", \"workers\": " << workers_ << ", \"servers\": " << ps::NumServers()
       << ", \"consistency\": \"" << o_.consistency.ToString() << "\", \"kkt\": \""
       << (kkt() ? "on" : "off") << "\"";
  if (o_.trace) {
    json << ", \"trace\": [";
    for (size_t i = 0; i < trace_.size(); ++i) {
      json << (i ? ", " : "") << "[" << trace_[i].first << ", " << trace_[i].second << "]";
    }
    json << "]";
  }
  json << "}";
  std::printf("%s\n", json.str().c_str());
  std::fflush(stdout);
}

std::vector<std::string> Worker::Gather(int head, int group) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    answers_.clear();
  }
  AskLive(head, "", group);
  std::lock_guard<std::mutex> lk(mu_);
  return answers_;
}

void Worker::AskLive(int head, const std::string& body, int group) {
  // Under replication a dead server's ranges live on: ask the nodes that are alive, and do
  // without the answer of one that dies meanwhile.
  ps::Postoffice* po = ps::Postoffice::Get();
  const bool replicated = po->replication() > 1;
  std::vector<std::pair<int, int>> asked;  // node id, timestamp
  for (int id : po->GetNodeIDs(group)) {
    if (replicated && !po->van()->NodeStatus(id).ok()) continue;
    asked.emplace_back(id, report_.Request(head, body, id));
  }
  for (const auto& a : asked) {
    ps::Status s = report_.TryWait(a.second);
    if (!s.ok() && !(replicated && !po->van()->NodeStatus(a.first).ok())) Fail(s.message());
  }
}

std::vector<std::pair<uint64_t, float>> Worker::ServerWeights() {
  std::vector<std::pair<uint64_t, float>> weights;
  for (const std::string& text : Gather(kModel, ps::kServerGroup)) {
    std::istringstream in(text);
    unsigned long long feature;
    float w;
    while (in >> feature >> w) weights.emplace_back(feature, w);
  }
  return weights;
}

std::string Worker::TestMetrics() {
  Dataset test;
  ps::Status s = LoadLibsvm(o_.test, 0, 1, &test);
  if (!s.ok()) Fail(s.message());
  ps::SArray<float> w;
  kv_.set_key_filter(nullptr);
  kv_.Wait(kv_.ZPull(test.keys, &w));  // features no worker saw read as 0
  return MetricsJson(test, [&](uint32_t c) { return w[c]; });
}

void Worker::Predict() {
  std::unordered_map<ps::Key, float> model;
  ps::Status s = ReadModel(o_.model_in, &model);
  Dataset test;
  if (s.ok()) s = LoadLibsvm(o_.test, 0, 1, &test);
  if (!s.ok()) Fail(s.message());
  std::vector<double> prob;
  std::string metrics = MetricsJson(
      test,
      [&](uint32_t c) {
        auto it = model.find(test.keys[c]);
        return it == model.end() ? 0.0f : it->second;  // a feature the model lacks: 0
      },
      &prob);
  FILE* f = std::fopen(o_.predict.c_str(), "w");
  if (!f) Fail("cannot write " + o_.predict);
  for (double p : prob) std::fprintf(f, "%.9g\n", p);
  if (std::fclose(f) != 0) Fail("cannot write " + o_.predict);
  std::printf("{\"predicted\": %zu, \"model_nnz\": %zu%s}\n", prob.size(), model.size(),
              metrics.c_str());
  std::fflush(stdout);
}

}  // namespace linear
