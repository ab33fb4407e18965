// Data for the logistic regression demo: libsvm files read with dmlc-core's parser into a
// sparse matrix, feature ids mixed into parameter server keys, models as text, and the test
// metrics. Nothing here talks to the network; worker.cc, server.cc, bcd.cc and sgd.cc do.
#ifndef PS_DEMO_LINEAR_DATA_H_
#define PS_DEMO_LINEAR_DATA_H_

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "ps/base.h"
#include "ps/sarray.h"
#include "ps/status.h"

namespace linear {

// Feature ids are mixed into keys so that any ids (1..123, or hashes) spread evenly over the
// servers' key ranges and the feature blocks. The mix is a bijection on 64-bit values, so a
// server can name the feature of each key it holds (FeatureOf).
ps::Key KeyOf(uint64_t feature);
uint64_t FeatureOf(ps::Key key);

// Rows of a libsvm file as a sparse matrix over the distinct keys they use.
//   keys:  the distinct keys, sorted (a column j of the matrix is feature FeatureOf(keys[j]))
//   rows:  row i is entries offset[i] .. offset[i + 1] - 1 of col/val; label +1 or -1
//   by column (built by BuildColumns): column j is entries col_offset[j] .. of row_of/col_val
struct Dataset {
  ps::SArray<ps::Key> keys;
  std::vector<float> label;
  std::vector<size_t> offset{0};
  std::vector<uint32_t> col;
  std::vector<float> val;

  std::vector<size_t> col_offset;
  std::vector<uint32_t> row_of;
  std::vector<float> col_val;

  size_t rows() const { return label.size(); }
  void BuildColumns();
};

// Reads part "part" of "parts" of a libsvm file (dmlc-core splits it by bytes at line starts).
// Labels 1 are positive, 0 and -1 negative. Lines are checked first, so that a malformed one is
// an error naming the file and line ("a9a:12: ...") rather than a guess of the parser's.
ps::Status LoadLibsvm(const std::string& file, int part, int parts, Dataset* data);

// A model file: one "feature<TAB>weight" line per nonzero weight, by feature id.
ps::Status WriteModel(const std::string& file, std::vector<std::pair<uint64_t, float>> weights);
ps::Status ReadModel(const std::string& file, std::unordered_map<ps::Key, float>* weights);

// Quality of predicted probabilities "prob" for labels +1/-1.
struct Metrics {
  double accuracy = 0;  // share of rows with (prob > 0.5) == (label > 0)
  double auc = 0;       // area under the ROC curve (ties count half)
  double logloss = 0;   // mean of -log p(label), p clipped to [1e-15, 1 - 1e-15]
};
Metrics Evaluate(const std::vector<double>& prob, const std::vector<float>& label);

}  // namespace linear
#endif  // PS_DEMO_LINEAR_DATA_H_
