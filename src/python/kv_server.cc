// slackline.KVServer: ps::KVServer<float> or <double> with a built-in request handle (run in
// C++, no Python per request) or a Python callable.
#include <memory>
#include <string>
#include <utility>

#include "ps/kv_app.h"
#include "ps/ps.h"
#include "python/common.h"
#include "python/module.h"

namespace ps {
namespace python {
namespace {

// What a Python handle learns about a request: KVMeta, and the lens pushed with it.
struct Request : KVMeta {
  py::object lens;  // None unless the push gave lens
};

// Calls the Python handle for one request and answers it: with the array it returns (a pull),
// or with an error when it raises or returns something unusable. Runs on the server's customer
// thread; takes the GIL for the call only.
template <typename V>
class PythonHandle {
 public:
  PythonHandle(const py::object& handle, int app_id)
      : handle_(std::make_shared<Held>(handle)), app_id_(app_id) {}

  void operator()(const KVMeta& meta, const KVPairs<V>& data, KVServer<V>* server) {
    KVPairs<V> res;
    std::string error;
    {
      py::gil_scoped_acquire gil;
      DropReleased();
      try {
        Request req;
        static_cast<KVMeta&>(req) = meta;
        req.lens = data.lens.empty() ? py::none() : py::object(Give(data.lens));
        py::object vals = meta.push ? py::object(Give(data.vals)) : py::none();
        py::object out = handle_->obj(py::cast(std::move(req)), Give(data.keys), vals);
        if (meta.pull) error = Answer(out, data.keys.size(), &res);
      } catch (py::error_already_set& e) {
        error = std::string("request handle raised ") + e.what();
        PySys_WriteStderr("slackline: KVServer app %d: %s\n", app_id_, error.c_str());
      }
    }
    if (!error.empty()) return server->ResponseError(meta, error);
    server->Response(meta, res);
  }

 private:
  // The handle object; dropped through Release, from any thread.
  struct Held {
    explicit Held(const py::object& o) : obj(o) {}
    ~Held() { Release(obj.release().ptr()); }
    py::object obj;
  };

  // Reads the handle's answer to a pull of "n" keys: an array, or a tuple (vals, lens).
  // Returns why it cannot be used, or "".
  static std::string Answer(const py::object& out, size_t n, KVPairs<V>* res) {
    py::object vals = out, lens = py::none();
    if (py::isinstance<py::tuple>(out) && py::len(out) == 2) {
      vals = out[py::int_(0)];
      lens = out[py::int_(1)];
    }
    try {
      res->vals = Lend<V>(AsArray<V>(vals, "the handle's answer"));
      if (!lens.is_none()) res->lens = Lend<int>(AsArray<int>(lens, "the handle's lens"));
    } catch (py::error_already_set& e) {
      return std::string("request handle answered a pull badly: ") + e.what();
    } catch (std::exception& e) {
      return std::string("request handle answered a pull badly: ") + e.what();
    }
    Status s = kv::CheckValues(n, res->vals, res->lens);
    if (!s.ok()) return "request handle answered a pull badly: " + s.message();
    return "";
  }

  std::shared_ptr<Held> handle_;
  int app_id_;
};

class PyKVServer {
 public:
  PyKVServer(int app_id, const py::object& handle, const py::object& dtype) {
    RequireNode(Role::kServer, "KVServer");
    const bool is_double = IsDouble(dtype);
    std::string builtin;
    if (py::isinstance<py::str>(handle)) {
      builtin = handle.cast<std::string>();
      if (builtin != "default" && builtin != "sync") {
        BadArgument("handle", "unknown built-in handle '" + builtin +
                                  "' (known: default, sync); or pass a callable");
      }
    } else if (!PyCallable_Check(handle.ptr())) {
      throw py::type_error("handle: expected 'default', 'sync' or a callable, got " +
                           std::string(py::str(handle.get_type().attr("__name__"))));
    }
    if (is_double) {
      Make<double>(app_id, handle, builtin, &d_);
    } else {
      Make<float>(app_id, handle, builtin, &f_);
    }
  }

  // Joins the customer's thread, which may be running a Python handle: without the GIL.
  ~PyKVServer() {
    py::gil_scoped_release unlocked;
    f_.reset();
    d_.reset();
  }

  void SetFilters(const std::string& spec) {
    Status s = f_ ? f_->set_filters(spec) : d_->set_filters(spec);
    if (!s.ok()) BadArgument("filters", s.message());
  }

  py::dtype dtype() const { return f_ ? py::dtype::of<float>() : py::dtype::of<double>(); }

 private:
  template <typename V>
  static void Make(int app_id, const py::object& handle, const std::string& builtin,
                   std::unique_ptr<KVServer<V>>* out) {
    typename KVServer<V>::ReqHandle h;
    // The built-in handles never block; a Python one takes the GIL.
    bool never_blocks = true;
    if (builtin == "default") {
      h = KVServerDefaultHandle<V>();
    } else if (builtin == "sync") {
      h = KVServerSyncHandle<V>();
    } else {
      h = PythonHandle<V>(handle, app_id);
      never_blocks = false;
    }
    Blocking unlocked;
    out->reset(new KVServer<V>(app_id));
    (*out)->set_request_handle(h, never_blocks);
  }

  // Exactly one is set; constant after construction.
  std::unique_ptr<KVServer<float>> f_;
  std::unique_ptr<KVServer<double>> d_;
};

}  // namespace

void BindKVServer(py::module_& m) {
  using py::arg;
  py::class_<KVMeta>(m, "KVMeta", "What a request handle learns about a request.")
      .def_readonly("cmd", &KVMeta::cmd)
      .def_readonly("push", &KVMeta::push)
      .def_readonly("pull", &KVMeta::pull)
      .def_readonly("sender", &KVMeta::sender)
      .def_readonly("timestamp", &KVMeta::timestamp)
      .def_readonly("customer_id", &KVMeta::customer_id);
  py::class_<Request, KVMeta>(m, "Request",
                              "KVMeta of a request, and lens: the int32 values per key of a "
                              "push that gave them, else None.")
      .def_readonly("lens", &Request::lens);
  py::class_<PyKVServer>(m, "KVServer", R"doc(
A server's key-value app (ps::KVServer<float32 or float64>).

KVServer(app_id=0, handle="default", dtype=numpy.float32). handle:
  "default"  sums pushes into a store and answers pulls from it (KVServerDefaultHandle), in C++;
  "sync"     aggregates one push of every worker per round (KVServerSyncHandle), in C++;
  a callable handle(request, keys, vals): runs on the server's customer thread with the GIL,
             one request at a time. request: a slackline.Request (cmd, push, pull, sender,
             timestamp, customer_id, lens); keys: uint64 array; vals: array of dtype, or None
             for a pull. For a pull it returns the values (an array of dtype, or a tuple
             (vals, int32 lens)). If it raises, the request is answered with an error that
             the worker's wait raises, and the server goes on. The arrays share the received
             buffers: copy what must outlive the call.
REQUIRES: slackline.start() on a server node; keep the object alive until finalize().
)doc")
      .def(py::init<int, const py::object&, const py::object&>(), arg("app_id") = 0,
           arg("handle") = "default", arg("dtype") = py::dtype::of<float>())
      .def("set_filters", &PyKVServer::SetFilters, arg("filters"),
           "The filters responses go through, in order: 'fixed:16,zstd'; '' for none.")
      .def_property_readonly("dtype", &PyKVServer::dtype);
}

}  // namespace python
}  // namespace ps
