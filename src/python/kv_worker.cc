// slackline.KVWorker: ps::KVWorker<float> or <double> on numpy arrays, zero-copy (ZPush,
// ZPull, ZPushPull). See BindKVWorker below for the Python contract.
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ps/kv_app.h"
#include "ps/ps.h"
#include "python/common.h"
#include "python/module.h"

namespace ps {
namespace python {
namespace {

// A Python object held by library threads: its reference is dropped through Release, so the
// last copy may go on a thread without the GIL.
class Ref {
 public:
  explicit Ref(const py::object& obj) : ptr_(obj.inc_ref().ptr()) {}
  ~Ref() { Release(ptr_); }
  Ref(const Ref&) = delete;
  Ref& operator=(const Ref&) = delete;
  PyObject* get() const { return ptr_; }

 private:
  PyObject* const ptr_;
};

// Where one pull delivers: the caller's arrays (lent) or new ones.
template <typename V>
struct PullSlot {
  SArray<V> vals;
  SArray<int> lens;
  bool with_lens = false;
};

// Runs the Python "callback" with the GIL; an exception it raises is reported as unraisable
// (printed to stderr) and does not reach the library's thread.
void RunCallback(PyObject* callback) {
  py::gil_scoped_acquire gil;
  DropReleased();
  try {
    py::handle fn(callback);
    fn();
  } catch (py::error_already_set& e) {
    e.discard_as_unraisable("slackline KVWorker callback");
  }
}

class PyKVWorker {
 public:
  PyKVWorker(int app_id, int customer_id, const py::object& dtype) {
    RequireNode(Role::kWorker, "KVWorker");
    const bool is_double = IsDouble(dtype);
    Blocking unlocked;
    if (is_double) {
      d_.reset(new KVWorker<double>(app_id, customer_id));
    } else {
      f_.reset(new KVWorker<float>(app_id, customer_id));
    }
  }

  // Joins the customer's thread, which may be running a Python callback: without the GIL.
  ~PyKVWorker() {
    py::gil_scoped_release unlocked;
    f_.reset();
    d_.reset();
  }

  int Push(const py::object& keys, const py::object& vals, const py::object& lens,
           const std::vector<int>& after, int cmd, const py::object& callback, int priority) {
    return f_ ? Send<float>(f_.get(), keys, &vals, lens, nullptr, after, cmd, callback, priority)
              : Send<double>(d_.get(), keys, &vals, lens, nullptr, after, cmd, callback, priority);
  }

  int Pull(const py::object& keys, const py::object& out, const py::object& lens,
           const std::vector<int>& after, int cmd, const py::object& callback, int priority) {
    return f_ ? Send<float>(f_.get(), keys, nullptr, lens, &out, after, cmd, callback, priority)
              : Send<double>(d_.get(), keys, nullptr, lens, &out, after, cmd, callback, priority);
  }

  int PushPull(const py::object& keys, const py::object& vals, const py::object& out,
               const py::object& lens, const std::vector<int>& after, int cmd,
               const py::object& callback, int priority) {
    return f_ ? Send<float>(f_.get(), keys, &vals, lens, &out, after, cmd, callback, priority)
              : Send<double>(d_.get(), keys, &vals, lens, &out, after, cmd, callback, priority);
  }

  py::object Wait(int timestamp) {
    Status s;
    {
      Blocking unlocked;
      s = f_ ? f_->TryWait(timestamp) : d_->TryWait(timestamp);
    }
    DropReleased();
    py::object result = py::none();
    auto it = results_.find(timestamp);
    if (it != results_.end()) {
      if (s.ok()) result = it->second();
      results_.erase(it);
    }
    Check(s);
    return result;
  }

  void SetConsistency(const std::string& spec) {
    Consistency c;
    Status s = Consistency::Parse(spec, &c);
    if (!s.ok()) BadArgument("consistency", s.message());
    if (f_) f_->set_consistency(c);
    if (d_) d_->set_consistency(c);
  }

  std::string consistency() {
    return f_ ? f_->consistency().ToString() : d_->consistency().ToString();
  }

  void SetFilters(const std::string& spec) {
    Status s = f_ ? f_->set_filters(spec) : d_->set_filters(spec);
    if (!s.ok()) BadArgument("filters", s.message());
  }

  py::dtype dtype() const { return f_ ? py::dtype::of<float>() : py::dtype::of<double>(); }

  size_t pending() { return results_.size(); }

 private:
  // Checks the arguments, lends the arrays and issues one request. "vals" null: a pull;
  // "out" null: a push.
  template <typename V>
  int Send(KVWorker<V>* w, const py::object& keys_obj, const py::object* vals_obj,
           const py::object& lens_obj, const py::object* out_obj, const std::vector<int>& after,
           int cmd, const py::object& callback, int priority) {
    DropReleased();
    static const std::string hint =
        std::string(" (this KVWorker was made with dtype=") + DtypeName<V>() + ")";
    SArray<Key> keys = Lend<Key>(AsArray<Key>(keys_obj, "keys"));
    CheckKeys(keys, "keys");
    const size_t n = keys.size();
    SArray<V> vals;
    SArray<int> push_lens;
    const bool push = vals_obj != nullptr, pull = out_obj != nullptr;
    if (push) {
      vals = Lend<V>(AsArray<V>(*vals_obj, "vals", false, hint.c_str()));
      if (!pull && !lens_obj.is_none()) push_lens = Lend<int>(AsArray<int>(lens_obj, "lens"));
      Status s = kv::CheckValues(n, vals, push_lens);
      if (!s.ok()) BadArgument(push_lens.empty() ? "vals" : "lens", s.message());
    }
    if (!callback.is_none() && !PyCallable_Check(callback.ptr())) {
      throw py::type_error("callback: expected a callable or None, got " +
                           std::string(py::str(callback.get_type().attr("__name__"))));
    }
    std::shared_ptr<PullSlot<V>> slot;
    if (pull) {
      slot = std::make_shared<PullSlot<V>>();
      if (!out_obj->is_none()) {
        py::array out = AsArray<V>(*out_obj, "out", true, hint.c_str());
        const size_t m = static_cast<size_t>(out.size());
        // (An empty out for some keys would be replaced by a new buffer: not the caller's.)
        if ((n > 0 && m == 0) ||
            (lens_obj.is_none() && ((n == 0 && m != 0) || (n > 0 && m % n != 0)))) {
          BadArgument("out", "holds " + std::to_string(m) + " values for " + std::to_string(n) +
                                 " keys: not a multiple; pass lens for values of different "
                                 "lengths");
        }
        slot->vals = Lend<V>(out);
      }
      if (!lens_obj.is_none()) {
        py::array l = AsArray<int>(lens_obj, "lens", true);
        if (static_cast<size_t>(l.size()) != n) {
          BadArgument("lens", "has " + std::to_string(l.size()) + " entries for " +
                                  std::to_string(n) + " keys");
        }
        slot->lens = Lend<int>(l);
        slot->with_lens = true;
      }
    }
    TaskOptions opts;
    opts.after = after;
    opts.cmd = cmd;
    opts.priority = priority;
    std::shared_ptr<Ref> cb = callback.is_none() ? nullptr : std::make_shared<Ref>(callback);
    if (cb || slot) {
      // Holds the pull's outputs until the request is done.
      opts.callback = [cb, slot] {
        if (cb) RunCallback(cb->get());
      };
    }
    int ts;
    {
      Blocking unlocked;
      if (push && pull) {
        ts = w->ZPushPull(keys, vals, &slot->vals, slot->with_lens ? &slot->lens : nullptr, opts);
      } else if (push) {
        ts = w->ZPush(keys, vals, push_lens, opts);
      } else {
        ts = w->ZPull(keys, &slot->vals, slot->with_lens ? &slot->lens : nullptr, opts);
      }
    }
    if (pull && out_obj->is_none()) {
      results_[ts] = [slot] { return py::object(Give(slot->vals)); };
    }
    return ts;
  }

  // Exactly one is set; constant after construction.
  std::unique_ptr<KVWorker<float>> f_;
  std::unique_ptr<KVWorker<double>> d_;
  // Pulls into new arrays, by timestamp, until wait(). Used with the GIL only.
  std::unordered_map<int, std::function<py::object()>> results_;
};

}  // namespace

void BindKVWorker(py::module_& m) {
  using py::arg;
  py::class_<PyKVWorker>(m, "KVWorker", R"doc(
A worker's link to the key-value servers (ps::KVWorker<float32 or float64>).

KVWorker(app_id=0, customer_id=0, dtype=numpy.float32): the values of every request are of
this dtype. REQUIRES: slackline.start() on a worker node; (app_id, customer_id) unique.

Every request returns a timestamp at once; wait(ts) blocks (without the GIL) until every
server involved answered. Keys: a sorted, unique uint64 numpy array. The arrays are sent and
filled without copies: keep them alive and unchanged until wait(ts) returns, as with ZPush.
A callback runs once the request is done, before wait returns, on the library's receiving
thread (holding the GIL); it must not call wait (that raises slackline.Error). Methods may be
called from any thread.
)doc")
      .def(py::init<int, int, const py::object&>(), arg("app_id") = 0, arg("customer_id") = 0,
           arg("dtype") = py::dtype::of<float>())
      .def("push", &PyKVWorker::Push, arg("keys"), arg("vals"), arg("lens") = py::none(),
           py::kw_only(), arg("after") = std::vector<int>(), arg("cmd") = 0,
           arg("callback") = py::none(), arg("priority") = 0,
           "Pushes vals for keys (lens: int32 values per key, when they differ). -> timestamp. "
           "Does not block, unless the consistency model holds the call back.")
      .def("pull", &PyKVWorker::Pull, arg("keys"), arg("out") = py::none(),
           arg("lens") = py::none(), py::kw_only(), arg("after") = std::vector<int>(),
           arg("cmd") = 0, arg("callback") = py::none(), arg("priority") = 0,
           "Pulls the values of keys into out (filled by wait), or into a new array that wait "
           "returns. lens: an int32 array of len(keys) to fill with values per key. "
           "-> timestamp.")
      .def("push_pull", &PyKVWorker::PushPull, arg("keys"), arg("vals"), arg("out") = py::none(),
           arg("lens") = py::none(), py::kw_only(), arg("after") = std::vector<int>(),
           arg("cmd") = 0, arg("callback") = py::none(), arg("priority") = 0,
           "Pushes vals and pulls the values after the push, in one round trip. -> timestamp.")
      .def("wait", &PyKVWorker::Wait, arg("timestamp"),
           "Blocks until request timestamp is done; returns the new array of a pull without "
           "out, else None. Raises slackline.Error on a failed request.")
      .def("set_consistency", &PyKVWorker::SetConsistency, arg("consistency"),
           "'sequential', 'bounded:N' or 'eventual', from now on.")
      .def_property_readonly("consistency", &PyKVWorker::consistency)
      .def("set_filters", &PyKVWorker::SetFilters, arg("filters"),
           "The filters requests go through, in order: 'key_cache,zstd'; '' for none.")
      .def_property_readonly("dtype", &PyKVWorker::dtype)
      .def_property_readonly("unwaited_pulls", &PyKVWorker::pending,
                             "Pulls into new arrays whose result wait() has not taken yet.");
}

}  // namespace python
}  // namespace ps
