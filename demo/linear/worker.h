// The worker of the logistic regression demo, as both algorithms share it: its part of the
// data, its copy of the weights of its keys, the margins w.x_i of its rows, the report of each
// iteration, and the summary at the end. An algorithm (bcd.cc, sgd.cc) derives from Worker and
// writes Train().
#ifndef PS_DEMO_LINEAR_WORKER_H_
#define PS_DEMO_LINEAR_WORKER_H_

#include <chrono>
#include <cmath>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "data.h"
#include "options.h"
#include "ps/ps.h"

namespace linear {

inline double Sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

// Seconds on a steady clock.
inline double Now() {
  using Seconds = std::chrono::duration<double>;
  return Seconds(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// A worker node's apps and its part of the training. Constructing it registers the apps; no
// I/O. Used by the node's main thread; the report app's handlers run on their own thread.
class Worker {
 public:
  explicit Worker(const Options& o);
  virtual ~Worker() = default;

  // Reads part "rank" of --data, trains, and prints the summary (worker 0); or, with --predict,
  // predicts from --model-in (worker 0 alone). Exits the process on bad input.
  void Run();

 protected:
  // The job's totals of one iteration, the same on every worker.
  struct Totals {
    double objective = 0, kept = 0, left = 0, nnz = 0;
    double change = 1;               // of the objective since the last iteration, relatively
    double kkt_margin = 0;           // the servers' margin for the KKT filter, the job's
    std::vector<ps::Key> send_next;  // keys the servers held back: to send next iteration
  };

  // The algorithm: trains on data_ from zero weights, calling EndIteration after each
  // iteration. On return every request has finished.
  virtual void Train() = 0;
  // Whether the KKT filter was on, for the summary.
  virtual bool kkt() const { return false; }

  // Reports iteration "iter" (the keys sent and the keys the KKT filter left out); worker 0
  // prints its line. Blocks until every worker reported it.
  Totals EndIteration(int iter, uint64_t kept, uint64_t left);
  // Pulls every key of the worker's data, without a key filter, and recomputes the margins.
  void PullAll();
  // --straggler: this worker sleeps before each block or minibatch.
  void Straggle();

  // Iterations ended so far (those of the checkpoint resumed from included).
  int iterations() const { return iterations_; }
  // With PS_CHECKPOINT_DIR: writes a checkpoint after iteration "done" - 1 (every worker calls
  // it, once its requests finished), with the algorithm's own "state" (one line) in it.
  void Checkpoint(int done, const std::string& state);
  // The worker's KVWorker (app 0). A key filter or callback an algorithm sets on it must not
  // outlive the algorithm: Train waits for every request, and PullAll, before the summary,
  // removes the key filter.
  ps::KVWorker<float>* kv() { return &kv_; }

  // Constant after construction.
  const Options o_;
  const int rank_;
  const int workers_;

  // Where Train's time went, in seconds, as the paper decomposes a worker's time: computing
  // (gradients, margins, --straggler's sleep), waiting for answers (the network and the
  // servers), held back by the consistency model (in the call that issues a request), and
  // waiting for the other workers at the end of each iteration (EndIteration). Algorithms that
  // fill it in (bcd) set timed_; with --times=on every worker then prints them as a
  // "worker_times" JSON line.
  struct Times {
    double compute = 0, wait = 0, held = 0, sync = 0;
  };

  // Train's thread only.
  Times times_;
  bool timed_ = false;
  Dataset data_;
  std::vector<float> w_;        // by local column: the worker's copy of the weights
  std::vector<double> margin_;  // by row: w.x_i
  // Resumed from a checkpoint (ps::LatestCheckpoint): the iterations it had done (0: none),
  // and the algorithm's state saved with it.
  int first_iteration_ = 0;
  std::string resumed_state_;

 private:
  double Loss() const;
  // Takes the iterations, totals and algorithm state of the checkpoint the job resumes from.
  void Resume(const ps::CheckpointInfo& checkpoint);
  Totals Exchange(int iter, uint64_t kept, uint64_t left);
  void Finish();
  // The bodies of the answers to a report-app request "head" sent to "group".
  std::vector<std::string> Gather(int head, int group);
  // Sends request "head" with "body" to every live node of "group" and waits for them; the
  // answers land in answers_.
  void AskLive(int head, const std::string& body, int group);
  std::vector<std::pair<uint64_t, float>> ServerWeights();
  // ", test_accuracy..." of the model on the servers, for the whole --test file.
  std::string TestMetrics();
  // --model-in --predict: worker 0 alone, from the model file.
  void Predict();

  std::mutex mu_;
  std::vector<std::string> answers_;  // protected by mu_: bodies of report-app answers

  double start_ = 0, load_seconds_ = 0, train_seconds_ = 0;
  int iterations_ = 0;
  double last_objective_ = 0;
  double all_kept_ = 0, all_left_ = 0;
  std::vector<std::pair<double, double>> trace_;

  // Last, so that they stop first: their handlers use the members above.
  ps::KVWorker<float> kv_;
  ps::SimpleApp report_;
};

}  // namespace linear
#endif  // PS_DEMO_LINEAR_WORKER_H_
