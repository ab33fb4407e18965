// Command-line options of the logistic regression demo. Every node of a job gets the same
// arguments from the launcher and parses them before it starts, so a bad option stops the whole
// job at once with one line naming it.
#ifndef PS_DEMO_LINEAR_OPTIONS_H_
#define PS_DEMO_LINEAR_OPTIONS_H_

#include <string>

#include "ps/consistency.h"
#include "ps/status.h"

namespace linear {

struct Options {
  std::string data;          // --data: libsvm training data, read in parts by the workers
  std::string test;          // --test: libsvm test data, for the test metrics (or --predict)
  std::string algo = "bcd";  // --algo: bcd (block proximal gradient) or sgd (FTRL)
  double l1 = 1;             // --l1: weight of ||w||_1 (liblinear's 1/C)
  double l2 = 0;             // --l2: weight of ||w||^2 / 2
  // bcd
  int blocks = 16;        // --blocks: feature blocks
  int max_iter = 100;     // --max-iter: passes over all blocks
  double epsilon = 1e-5;  // --epsilon: stop when the objective changes less, relatively
  ps::Consistency consistency = ps::Consistency::Sequential();  // --consistency
  bool kkt = true;                                              // --kkt: KKT filter on or off
  // sgd
  int epochs = 10;     // --epochs: passes over the data
  int batch = 100;     // --batch: rows per minibatch
  double alpha = 0.1;  // --alpha: FTRL learning rate
  double beta = 1;     // --beta: FTRL learning rate offset
  // both
  int straggler_rank = -1;  // --straggler=RANK:MS: this worker sleeps MS per block or batch
  int straggler_ms = 0;
  std::string model_out;  // --model-out: nonzero weights, "feature<TAB>weight" lines
  std::string model_in;   // --model-in: a model to predict with (with --predict)
  std::string predict;    // --predict: one probability per row of --test
  bool trace = false;     // --trace: the summary lists [seconds, objective] per iteration
  bool times = false;     // --times: every worker prints where its time went (bcd)
  unsigned seed = 0;      // --seed: minibatch order of sgd
};

// Reads argv[1..argc-1] ("--name=value" each) into "options"; an unknown name, a value that does
// not parse or (with "check_files", on the nodes that read them) a file that cannot be read is an
// error naming it.
ps::Status ParseOptions(int argc, char** argv, bool check_files, Options* options);

// One line that lists the options, for errors.
const char* Usage();

}  // namespace linear
#endif  // PS_DEMO_LINEAR_OPTIONS_H_
