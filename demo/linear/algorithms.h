// The training algorithms of the logistic regression demo, each a server-side Model and a
// Worker: block proximal gradient (bcd.cc) and FTRL-proximal SGD (sgd.cc).
#ifndef PS_DEMO_LINEAR_ALGORITHMS_H_
#define PS_DEMO_LINEAR_ALGORITHMS_H_

#include <memory>

#include "options.h"
#include "server.h"
#include "worker.h"

namespace linear {

std::unique_ptr<Model> NewBcdModel(const Options& o);
std::unique_ptr<Worker> NewBcdWorker(const Options& o);

std::unique_ptr<Model> NewFtrlModel(const Options& o);
std::unique_ptr<Worker> NewSgdWorker(const Options& o);

}  // namespace linear
#endif  // PS_DEMO_LINEAR_ALGORITHMS_H_
