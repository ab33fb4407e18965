#include "server.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <utility>

#include "data.h"
#include "report.h"

namespace linear {

void CheckWidth(const ps::KVPairs<float>& state, size_t width, const char* algo) {
  if (state.vals.size() == width * state.keys.size()) return;
  std::fprintf(stderr,
               "linear: error: the checkpoint holds %zu values for %zu keys, --algo=%s keeps %zu "
               "per key (was it written with another --algo?)\n",
               state.vals.size(), state.keys.size(), algo, width);
  std::exit(1);
}

Server::Server(const Options& o, std::unique_ptr<Model> model)
    : o_(o),
      workers_(ps::NumWorkers()),
      rank_(ps::MyRank()),
      model_(std::move(model)),
      kv_(0),
      report_(kReportApp, 0) {
  kv_.set_request_handle(
      [this](const ps::KVMeta& meta, const ps::KVPairs<float>& data, ps::KVServer<float>* server) {
        model_->Handle(meta, data, server);
      });
  kv_.set_state_handles([this](const ps::Range& range) { return model_->Snapshot(range); },
                        [this](const ps::KVPairs<float>& state) { model_->Restore(state); });
  report_.set_request_handle(
      [this](const ps::SimpleData& req, ps::SimpleApp* app) { HandleReport(req, app); });
}

void Server::HandleReport(const ps::SimpleData& req, ps::SimpleApp* app) {
  if (req.head == kTraffic) return AnswerTraffic(req, app);
  if (req.head == kModel) return app->Response(req, ModelText());
  std::istringstream in(req.body);
  int iter = 0;
  double loss = 0, kept = 0, left = 0;
  in >> iter >> loss >> kept >> left;
  Report& r = reports_[iter];
  r.loss += loss;
  r.kept += kept;
  r.left += left;
  r.held.push_back(req);
  if (static_cast<int>(r.held.size()) < workers_) return;
  double l1norm = 0, l2sq = 0, nnz = 0;
  ForEachLedWeight([&](ps::Key, double w) {
    l1norm += std::abs(w);
    l2sq += w * w;
    nnz += w != 0;
  });
  std::vector<ps::Key> held_back = model_->TakeHeldBack();
  const Leads leads = LeadsNow();
  held_back.erase(
      std::remove_if(held_back.begin(), held_back.end(), [&](ps::Key k) { return !leads(k); }),
      held_back.end());
  // The KKT filter's margin: the threshold l1 - margin tightens towards l1 as w settles.
  const double margin = o_.l1 / (iter + 2);
  std::ostringstream out;
  out.precision(17);
  if (rank_ == FirstLiveServer()) {
    out << r.loss << " " << r.kept << " " << r.left;
  } else {
    out << "0 0 0";
  }
  out << " " << l1norm << " " << l2sq << " " << nnz << " " << margin;
  for (ps::Key k : held_back) out << " " << k;
  for (const ps::SimpleData& h : r.held) app->Response(h, out.str());
  reports_.erase(iter);
}

std::string Server::ModelText() {
  std::string text;
  char line[64];
  ForEachLedWeight([&](ps::Key key, double w) {
    if (w == 0) return;
    std::snprintf(line, sizeof(line), "%llu\t%.9g\n",
                  static_cast<unsigned long long>(FeatureOf(key)), w);
    text += line;
  });
  return text;
}

Server::Leads Server::LeadsNow() const {
  // Under replication a server holds the weights of other ranges too, as a replica: each
  // weight is reported by the server that answers for its range now.
  ps::Van* van = ps::Postoffice::Get()->van();
  if (ps::Postoffice::Get()->replication() <= 1 || !van) return [](ps::Key) { return true; };
  ps::ServerChains chains = van->chains();
  const int rank = rank_;
  return [chains, rank](ps::Key key) {
    return chains.Primary(ps::Postoffice::Get()->ServerRankForKey(key)) == rank;
  };
}

void Server::ForEachLedWeight(const std::function<void(ps::Key, double)>& f) {
  const Leads leads = LeadsNow();
  model_->ForEachWeight([&](ps::Key key, double w) {
    if (leads(key)) f(key, w);
  });
}

int Server::FirstLiveServer() const {
  ps::Van* van = ps::Postoffice::Get()->van();
  if (!van) return 0;
  ps::ServerChains chains = van->chains();
  for (int r = 0; r < ps::NumServers(); ++r) {
    if (!chains.dead(r)) return r;
  }
  return 0;
}

}  // namespace linear
