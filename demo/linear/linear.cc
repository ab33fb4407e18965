// Sparse logistic regression on the parameter server.
//
//   python3 tracker/launch.py -s 1 -n 2 -- build/demo/linear --data=train.libsvm
//       --test=test.libsvm [--algo=bcd|sgd] [--l1=1] [--consistency=sequential] [--kkt=on] ...
//
// Objective: sum_i log(1 + exp(-y_i w.x_i)) + l1 ||w||_1 + l2/2 ||w||^2 (liblinear's scaling).
// Each worker reads part "rank" of the data; the servers hold w, split by key range.
//
// The files, read in this order:
//   linear.cc     this: every node builds its apps, and the workers train
//   bcd.cc        --algo=bcd, block proximal gradient: its server-side model and its worker
//   sgd.cc        --algo=sgd, FTRL-proximal: its server-side model and its worker
//   worker.h/.cc  what both workers share: data, margins, the report of each iteration, the
//                 summary, --predict
//   server.h/.cc  what both servers share: the algorithm's model behind a KVServer, the report
//   report.h      the report app (a SimpleApp, app 1): every worker sends its loss, the servers
//                 answer with the job's totals, so every worker learns the same objective and
//                 stops at the same iteration
//   data.h/.cc    libsvm data, keys, model files, metrics; options.h/.cc the flags
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "algorithms.h"
#include "options.h"
#include "ps/ps.h"
#include "report.h"

int main(int argc, char* argv[]) {
  if (argc == 2 && std::string(argv[1]) == "--help") {
    std::printf("%s\n", linear::Usage());
    return 0;
  }
  // Only workers read the data: servers and the scheduler may run where it is not.
  const char* role = std::getenv("DMLC_ROLE");
  const bool is_worker = !role || std::string(role) == "worker";
  linear::Options o;
  ps::Status s = linear::ParseOptions(argc, argv, is_worker, &o);
  if (!s.ok()) {
    std::fprintf(stderr, "linear: error: %s (--help lists the options)\n", s.message().c_str());
    return 2;
  }
  const bool bcd = o.algo == "bcd";  // ParseOptions allows bcd or sgd
  ps::Start(0, argv[0]);
  // Every node builds its apps, then all meet, so that no request finds a node without them.
  if (ps::IsServer()) {
    linear::Server server(o, bcd ? linear::NewBcdModel(o) : linear::NewFtrlModel(o));
    ps::Postoffice::Get()->Barrier(0, linear::kAllNodes);
    ps::Postoffice::Get()->Barrier(0, linear::kAllNodes);
  } else if (ps::IsWorker()) {
    std::unique_ptr<linear::Worker> worker =
        bcd ? linear::NewBcdWorker(o) : linear::NewSgdWorker(o);
    ps::Postoffice::Get()->Barrier(0, linear::kAllNodes);
    worker->Run();
    ps::Postoffice::Get()->Barrier(0, linear::kAllNodes);
  } else {
    ps::SimpleApp report(linear::kReportApp, 0);
    report.set_request_handle(linear::AnswerTraffic);
    ps::Postoffice::Get()->Barrier(0, linear::kAllNodes);
    ps::Postoffice::Get()->Barrier(0, linear::kAllNodes);
  }
  ps::Finalize(0, true);
  return 0;
}
