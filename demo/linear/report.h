// The report app of the logistic regression demo: a SimpleApp (app 1) next to the KVWorker and
// KVServer (app 0) of the algorithm. Each iteration every worker sends its loss to the servers,
// which answer with the job's totals and their share of the regularizer, so that every worker
// learns the same objective and stops at the same iteration. It also gathers the servers' model
// and every node's traffic at the end.
#ifndef PS_DEMO_LINEAR_REPORT_H_
#define PS_DEMO_LINEAR_REPORT_H_

#include <string>

#include "ps/ps.h"

namespace linear {

// Requests of the report app.
enum ReportHead { kReport = 1, kTraffic = 2, kModel = 3 };
constexpr int kReportApp = 1;
constexpr int kAllNodes = ps::kScheduler + ps::kServerGroup + ps::kWorkerGroup;
constexpr int kFinalReport = 1 << 30;  // the iteration of the report after the last one

// Every node answers kTraffic with the bytes its van sent and received.
inline void AnswerTraffic(const ps::SimpleData& req, ps::SimpleApp* app) {
  ps::Van* van = ps::Postoffice::Get()->van();
  app->Response(req,
                std::to_string(van->bytes_sent()) + " " + std::to_string(van->bytes_received()));
}

}  // namespace linear
#endif  // PS_DEMO_LINEAR_REPORT_H_
