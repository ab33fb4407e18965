// The slackline module (slackline._core): the node's life cycle, roles and barriers, and the
// apps of kv_worker.cc, kv_server.cc and ssp.cc.
#include "python/module.h"

#include <dmlc/logging.h>

#include <string>

#include "ps/ps.h"
#include "python/common.h"

namespace ps {
namespace python {
namespace {

Postoffice* Node() { return Postoffice::Get(); }

void Start(int customer_id, bool barrier) {
  std::string argv0;
  py::object sys = py::module_::import("sys");
  if (py::hasattr(sys, "argv") && py::len(sys.attr("argv")) > 0) {
    argv0 = py::str(sys.attr("argv")[py::int_(0)]);
  }
  Status s;
  {
    Blocking unlocked;
    s = Node()->TryStart(customer_id, argv0.empty() ? nullptr : argv0.c_str(), barrier);
  }
  Check(s);
}

void Finalize(int customer_id, bool barrier) {
  Status s;
  {
    Blocking unlocked;
    s = Node()->TryFinalize(customer_id, barrier);
  }
  DropReleased();
  Check(s);
}

void Barrier(int group, int customer_id) {
  if (group <= 0 || group > kScheduler + kServerGroup + kWorkerGroup) {
    BadArgument("group", std::to_string(group) +
                             " is no node group (SCHEDULER, SERVERS, WORKERS, or their sum)");
  }
  if (!Node()->van()) throw Error("barrier before slackline.start()");
  Status s;
  {
    Blocking unlocked;
    s = Node()->TryBarrier(customer_id, group);
  }
  Check(s);
}

}  // namespace

void RequireNode(Role role, const char* what) {
  if (!Node()->van()) throw Error(std::string(what) + " made before slackline.start()");
  const bool ok = role == Role::kWorker ? Node()->is_worker() : Node()->is_server();
  if (!ok) {
    const char* is = Node()->is_scheduler() ? "the scheduler"
                     : Node()->is_server()  ? "a server"
                                            : "a worker";
    throw Error(std::string(what) + " needs a " + (role == Role::kWorker ? "worker" : "server") +
                " node; this node is " + is);
  }
}

bool IsDouble(const py::object& dtype) {
  py::dtype dt;
  try {
    dt = py::dtype::from_args(dtype);
  } catch (py::error_already_set&) {
    BadArgument("dtype", "not a numpy dtype: " + std::string(py::repr(dtype)));
  }
  if (dt.equal(py::dtype::of<double>())) return true;
  if (dt.equal(py::dtype::of<float>())) return false;
  BadArgument("dtype", "values are float32 or float64, not " + std::string(py::str(dt)));
}

}  // namespace python
}  // namespace ps

PYBIND11_MODULE(_core, m) {
  namespace py = pybind11;
  using ps::python::Node;
  using py::arg;
  m.doc() = "Slackline's parameter server API (see the slackline package).";
  static py::exception<ps::python::Error> error(m, "Error", PyExc_RuntimeError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const ps::python::Error& e) {
      error(e.what());
    } catch (const dmlc::Error& e) {
      error(e.what());
    }
  });
  ps::python::InitSignals();

  m.attr("SCHEDULER") = ps::kScheduler;
  m.attr("SERVERS") = ps::kServerGroup;
  m.attr("WORKERS") = ps::kWorkerGroup;
  m.attr("ALL") = ps::kScheduler + ps::kServerGroup + ps::kWorkerGroup;
  m.attr("KEY_DTYPE") = py::dtype::of<ps::Key>();

  m.def("start", &ps::python::Start, arg("customer_id") = 0, arg("barrier") = true,
        "Starts this node (configured by the DMLC_* and PS_* variables) for customer_id and, "
        "with barrier, waits until every node of the job started. Blocks without the GIL; "
        "raises slackline.Error on failure.");
  m.def("finalize", &ps::python::Finalize, arg("customer_id") = 0, arg("barrier") = true,
        "Ends customer_id; with barrier, first waits until every node reaches finalize. The "
        "last finalize of the process stops the node. Blocks without the GIL; request handles "
        "keep running meanwhile.");
  m.def("barrier", &ps::python::Barrier,
        arg("group") = ps::kScheduler + ps::kServerGroup + ps::kWorkerGroup, arg("customer_id") = 0,
        "Blocks (without the GIL) until every node of group (SCHEDULER, SERVERS, WORKERS, a sum, "
        "ALL) called barrier with it.");
  m.def("is_scheduler", [] { return Node()->is_scheduler(); });
  m.def("is_server", [] { return Node()->is_server(); });
  m.def("is_worker", [] { return Node()->is_worker(); });
  m.def(
      "rank", [] { return Node()->my_rank(); },
      "This node's rank among the nodes of its role, from 0. Valid after start().");
  m.def("num_workers", [] { return Node()->num_workers(); });
  m.def("num_servers", [] { return Node()->num_servers(); });

  ps::python::BindKVWorker(m);
  ps::python::BindKVServer(m);
  ps::python::BindSSP(m);
}
