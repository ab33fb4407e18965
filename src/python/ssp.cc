// slackline.SSPTableGroup, SSPWorker and SSPTable: ps/ssp_table.h on numpy arrays.
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "ps/ps.h"
#include "ps/ssp_table.h"
#include "python/common.h"
#include "python/module.h"

namespace ps {
namespace python {
namespace {

class PyGroup {
 public:
  PyGroup(int app_id, const std::vector<std::tuple<int, int, int>>& tables, bool eager) {
    if (!Postoffice::Get()->van()) {
      throw Error("SSPTableGroup made before slackline.start()");
    }
    if (Postoffice::Get()->is_scheduler()) {
      throw Error("SSPTableGroup needs a server or worker node; this is the scheduler");
    }
    std::vector<SSPTableConfig> configs;
    for (const auto& t : tables) {
      SSPTableConfig c;
      std::tie(c.table_id, c.row_width, c.staleness) = t;
      if (c.row_width < 0) {
        BadArgument("tables", "table " + std::to_string(c.table_id) + " has row_width " +
                                  std::to_string(c.row_width) + "; 0 means sparse rows");
      }
      if (c.staleness < 0) {
        BadArgument("tables", "table " + std::to_string(c.table_id) + " has staleness " +
                                  std::to_string(c.staleness));
      }
      configs.push_back(c);
    }
    SSPOptions options;
    options.eager = eager;
    Blocking unlocked;
    group_.reset(new SSPTableGroup(app_id, configs, options));
  }

  ~PyGroup() { Close(); }

  // Joins the group's receive thread. REQUIRES: no SSPWorker of it is used any more; on
  // servers, every worker is done (a barrier first).
  void Close() {
    py::gil_scoped_release unlocked;
    group_.reset();
  }

  SSPTableGroup* get() {
    if (!group_) throw Error("the SSPTableGroup is closed");
    return group_.get();
  }

  py::dict Stats() {
    SSPStats s = get()->stats();
    py::dict d;
    d["reads"] = s.reads;
    d["cache_hits"] = s.cache_hits;
    d["blocked_reads"] = s.blocked_reads;
    d["held_reads"] = s.held_reads;
    d["blocked_seconds"] = s.blocked_seconds;
    d["observed_staleness"] = s.observed_staleness;
    d["clocks"] = s.clocks;
    d["rows_pushed"] = s.rows_pushed;
    d["reads_served"] = s.reads_served;
    d["malformed"] = s.malformed;
    d["global_clock"] = s.global_clock;
    d["cache_hit_rate"] = s.cache_hit_rate();
    return d;
  }

 private:
  std::unique_ptr<SSPTableGroup> group_;
};

class PyWorker {
 public:
  PyWorker(PyGroup* group, int customer_id) : group_(group) {
    RequireNode(Role::kWorker, "SSPWorker");
    worker_.reset(new SSPWorker(group->get(), customer_id));
  }

  void Clock() {
    CheckOpen();
    Status s;
    {
      Blocking unlocked;
      s = worker_->Clock();
    }
    Check(s);
  }

  int clock() const { return worker_->clock(); }

  SSPWorker* get() { return worker_.get(); }
  // Raises slackline.Error once the group is closed: the worker must not touch it then.
  void CheckOpen() { group_->get(); }

 private:
  PyGroup* const group_;  // kept alive by the Python object (keep_alive)
  std::unique_ptr<SSPWorker> worker_;
};

class PyTable {
 public:
  PyTable(PyWorker* worker, int table_id)
      : worker_(worker), table_(worker->get()->table(table_id)) {}

  py::object Get(uint64_t row, int staleness) {
    worker_->CheckOpen();
    SSPRow r;
    Status s;
    {
      Blocking unlocked;
      s = table_.Get(row, &r, staleness);
    }
    Check(s);
    py::array_t<double> values(static_cast<py::ssize_t>(r.values.size()));
    std::copy(r.values.begin(), r.values.end(), values.mutable_data());
    if (table_.row_width() > 0) return std::move(values);
    py::array_t<uint64_t> cols(static_cast<py::ssize_t>(r.cols.size()));
    std::copy(r.cols.begin(), r.cols.end(), cols.mutable_data());
    return py::make_tuple(cols, values);
  }

  void Inc(uint64_t row, uint64_t col, double delta) {
    worker_->CheckOpen();
    Check(table_.Inc(row, col, delta));
  }

  void BatchInc(uint64_t row, const py::object& cols_obj, const py::object& deltas_obj) {
    worker_->CheckOpen();
    py::array cols = AsArray<uint64_t>(cols_obj, "cols");
    py::array deltas = AsArray<double>(deltas_obj, "deltas");
    if (cols.size() != deltas.size()) {
      BadArgument("deltas", "has " + std::to_string(deltas.size()) + " values for " +
                                std::to_string(cols.size()) + " columns");
    }
    const auto* c = static_cast<const uint64_t*>(cols.data());
    const auto* d = static_cast<const double*>(deltas.data());
    Check(table_.BatchInc(row, std::vector<uint64_t>(c, c + cols.size()),
                          std::vector<double>(d, d + deltas.size())));
  }

  void IncRow(uint64_t row, const py::object& deltas_obj) {
    worker_->CheckOpen();
    py::array deltas = AsArray<double>(deltas_obj, "deltas");
    const auto* d = static_cast<const double*>(deltas.data());
    if (table_.row_width() > 0 && deltas.size() != table_.row_width()) {
      BadArgument("deltas", "has " + std::to_string(deltas.size()) + " values for a row of " +
                                std::to_string(table_.row_width()));
    }
    Check(table_.IncRow(row, std::vector<double>(d, d + deltas.size())));
  }

  int table_id() const { return table_.table_id(); }
  int staleness() const { return table_.staleness(); }
  int row_width() const { return table_.row_width(); }

 private:
  PyWorker* const worker_;  // kept alive by the Python object (keep_alive)
  SSPTable table_;
};

}  // namespace

void BindSSP(py::module_& m) {
  using py::arg;
  py::class_<PyGroup>(m, "SSPTableGroup", R"doc(
The SSP tables of one app on this node (ps::SSPTableGroup): on a server it serves its share of
the rows, on a worker it is the process's row cache. Thread-safe.

SSPTableGroup(app_id, tables, eager=False); tables: [(table_id, row_width, staleness), ...],
row_width 0 for sparse rows; every node of the job passes the same tables. REQUIRES:
slackline.start(). close() (or the end of a with block) joins its thread: on servers only after
every worker is done (a barrier of servers and workers first).
)doc")
      .def(py::init<int, const std::vector<std::tuple<int, int, int>>&, bool>(), arg("app_id"),
           arg("tables"), arg("eager") = false)
      .def("stats", &PyGroup::Stats, "What the group did so far, as a dict. Non-blocking.")
      .def("close", &PyGroup::Close)
      .def("__enter__", [](PyGroup* g) { return g; })
      .def("__exit__", [](PyGroup* g, py::args) { g->Close(); });
  py::class_<PyWorker>(m, "SSPWorker", R"doc(
One worker thread of a group: its clock and its operation log. Use it from one thread only.
SSPWorker(group, customer_id=0). REQUIRES: a worker node.
)doc")
      .def(py::init<PyGroup*, int>(), arg("group"), arg("customer_id") = 0, py::keep_alive<1, 2>())
      .def(
          "table", [](PyWorker* w, int id) { return new PyTable(w, id); }, arg("table_id"),
          py::keep_alive<0, 1>(), "A handle on table table_id.")
      .def("clock", &PyWorker::Clock,
           "Ends this thread's current clock: sends its increments. Non-blocking.")
      .def_property_readonly("clocks", &PyWorker::clock, "Clock() calls so far.");
  py::class_<PyTable>(m, "SSPTable", "One table as seen by one worker thread.")
      .def("get", &PyTable::Get, arg("row"), arg("staleness") = -1,
           "Row row with every update of clocks < clocks - staleness and this thread's own: "
           "a float64 array (dense), or (cols, values) for a sparse table. staleness < 0: the "
           "table's. Blocks (without the GIL) while the row is not fresh enough.")
      .def("inc", &PyTable::Inc, arg("row"), arg("col"), arg("delta"),
           "Adds delta to column col of row, in this thread's log. Non-blocking.")
      .def("batch_inc", &PyTable::BatchInc, arg("row"), arg("cols"), arg("deltas"),
           "Adds deltas[i] (float64) to column cols[i] (uint64) of row, all or nothing.")
      .def("inc_row", &PyTable::IncRow, arg("row"), arg("deltas"),
           "Adds deltas[j] (float64) to column j of a dense row, its whole width.")
      .def_property_readonly("table_id", &PyTable::table_id)
      .def_property_readonly("staleness", &PyTable::staleness)
      .def_property_readonly("row_width", &PyTable::row_width);
}

}  // namespace python
}  // namespace ps
