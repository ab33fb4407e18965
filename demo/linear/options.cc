#include "options.h"

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace linear {
namespace {

ps::Status Bad(const std::string& flag, const std::string& value, const std::string& what) {
  return ps::Status::InvalidArgument("--" + flag + "=" + value + ": " + what);
}

ps::Status Number(const std::string& flag, const std::string& v, double lo, double* out) {
  char* end = nullptr;
  errno = 0;
  double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end || errno || !std::isfinite(x)) return Bad(flag, v, "not a number");
  if (x < lo) return Bad(flag, v, "must be at least " + std::to_string(lo));
  *out = x;
  return ps::Status::OK();
}

ps::Status Int(const std::string& flag, const std::string& v, int lo, int* out) {
  double x = 0;
  ps::Status s = Number(flag, v, lo, &x);
  if (s.ok() && (x != std::floor(x) || x > 1e9)) s = Bad(flag, v, "not a whole number");
  if (s.ok()) *out = static_cast<int>(x);
  return s;
}

ps::Status OnOff(const std::string& flag, const std::string& v, bool* out) {
  if (v != "on" && v != "off") return Bad(flag, v, "takes on or off");
  *out = v == "on";
  return ps::Status::OK();
}

ps::Status Readable(const std::string& flag, const std::string& file) {
  if (access(file.c_str(), R_OK) != 0) {
    return ps::Status::InvalidArgument("--" + flag + "=" + file + ": cannot read " + file + ": " +
                                       std::strerror(errno));
  }
  return ps::Status::OK();
}

}  // namespace

const char* Usage() {
  return "usage: linear --data=FILE [--test=FILE] [--algo=bcd|sgd] [--l1=F] [--l2=F] "
         "[--blocks=N] [--max-iter=N] [--epsilon=F] "
         "[--consistency=sequential|bounded:N|eventual] [--kkt=on|off] [--epochs=N] "
         "[--batch=N] [--alpha=F] [--beta=F] [--straggler=RANK:MS] [--model-out=FILE] "
         "[--model-in=FILE --predict=FILE] [--trace=on|off] [--times=on|off] [--seed=N]";
}

ps::Status ParseOptions(int argc, char** argv, bool check_files, Options* o) {
  ps::Status s;
  for (int i = 1; i < argc && s.ok(); ++i) {
    const std::string a = argv[i];
    const size_t eq = a.find('=');
    if (a.rfind("--", 0) != 0 || eq == std::string::npos) {
      return ps::Status::InvalidArgument("bad argument " + a + ": options are --name=value");
    }
    const std::string k = a.substr(2, eq - 2), v = a.substr(eq + 1);
    double x = 0;
    if (k == "data") {
      o->data = v;
    } else if (k == "test") {
      o->test = v;
    } else if (k == "algo") {
      if (v != "bcd" && v != "sgd") s = Bad(k, v, "takes bcd or sgd");
      o->algo = v;
    } else if (k == "l1") {
      s = Number(k, v, 0, &o->l1);
    } else if (k == "l2") {
      s = Number(k, v, 0, &o->l2);
    } else if (k == "blocks") {
      s = Int(k, v, 1, &o->blocks);
    } else if (k == "max-iter") {
      s = Int(k, v, 1, &o->max_iter);
    } else if (k == "epsilon") {
      s = Number(k, v, 0, &o->epsilon);
    } else if (k == "consistency") {
      s = ps::Consistency::Parse(v, &o->consistency);
      if (!s.ok()) s = Bad(k, v, s.message());
    } else if (k == "kkt") {
      s = OnOff(k, v, &o->kkt);
    } else if (k == "epochs") {
      s = Int(k, v, 1, &o->epochs);
    } else if (k == "batch") {
      s = Int(k, v, 1, &o->batch);
    } else if (k == "alpha") {
      s = Number(k, v, 1e-12, &o->alpha);
    } else if (k == "beta") {
      s = Number(k, v, 0, &o->beta);
    } else if (k == "straggler") {
      const size_t c = v.find(':');
      if (c == std::string::npos) {
        s = Bad(k, v, "takes RANK:MS");
      } else {
        s = Int(k, v.substr(0, c), 0, &o->straggler_rank);
        if (s.ok()) s = Int(k, v.substr(c + 1), 0, &o->straggler_ms);
      }
    } else if (k == "model-out") {
      o->model_out = v;
    } else if (k == "model-in") {
      o->model_in = v;
    } else if (k == "predict") {
      o->predict = v;
    } else if (k == "trace") {
      s = OnOff(k, v, &o->trace);
    } else if (k == "times") {
      s = OnOff(k, v, &o->times);
    } else if (k == "seed") {
      s = Number(k, v, 0, &x);
      o->seed = static_cast<unsigned>(x);
    } else {
      return ps::Status::InvalidArgument("unknown option --" + k);
    }
  }
  if (!s.ok()) return s;
  if (!o->predict.empty() || !o->model_in.empty()) {
    if (o->predict.empty() || o->model_in.empty()) {
      return ps::Status::InvalidArgument("--model-in and --predict go together");
    }
    if (o->test.empty()) return ps::Status::InvalidArgument("--predict needs --test=FILE");
    if (check_files) s = Readable("model-in", o->model_in);
  } else if (o->data.empty()) {
    return ps::Status::InvalidArgument("--data=FILE is required");
  } else if (check_files) {
    s = Readable("data", o->data);
  }
  if (s.ok() && check_files && !o->test.empty()) s = Readable("test", o->test);
  return s;
}

}  // namespace linear
