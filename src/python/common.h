// What the bindings of the slackline module share: the error type, checks of numpy arguments,
// the GIL rules and the arrays that lend numpy buffers to the library without a copy.
//
// The GIL. Every call into the library that may block or move bytes runs with the GIL released
// (Unlocked). Library threads that run Python code (callbacks, request handles) take it back
// (WithGil). A numpy array lent to the library (Lend) is released by the library on whatever
// thread drops the last reference, often one without the GIL: the reference is then queued and
// dropped by the next binding call that holds the GIL (DropReleased).
//
// SIGINT. While the main thread is blocked in the library (a Blocking scope), Python cannot
// raise KeyboardInterrupt, so SIGINT ends the process as an unhandled SIGINT would. Elsewhere
// Python's own handling applies.
#ifndef PS_PYTHON_COMMON_H_
#define PS_PYTHON_COMMON_H_

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "ps/base.h"
#include "ps/sarray.h"
#include "ps/status.h"

namespace ps {
namespace python {

namespace py = pybind11;

// Raised as slackline.Error: a failure the library reports as a Status, with its message.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Throws Error with the message of "s" unless it is OK.
inline void Check(const Status& s) {
  if (!s.ok()) throw Error(s.message());
}

// A ValueError "<arg>: <what>".
[[noreturn]] inline void BadArgument(const char* arg, const std::string& what) {
  throw py::value_error(std::string(arg) + ": " + what);
}

// Adds "ref" to the references the library dropped; safe without the GIL.
void Release(PyObject* ref);
// Drops the references the library let go of. REQUIRES: the GIL.
void DropReleased();

// Called once at import, on the main thread: installs the SIGINT handler and notes when the
// interpreter finalizes.
void InitSignals();

// Releases the GIL for its scope; when it is the main thread, SIGINT meanwhile ends the process.
class Blocking {
 public:
  Blocking();
  ~Blocking();
  Blocking(const Blocking&) = delete;
  Blocking& operator=(const Blocking&) = delete;

 private:
  py::gil_scoped_release release_;
  const bool main_;
};

// The numpy name of element type T ("float32").
template <typename T>
const char* DtypeName();

// "arg" as a C-contiguous numpy array of T (of any shape: its elements in order); TypeError
// for another type, ValueError for another dtype or layout, naming "arg". "writeable": the
// library writes into it. "hint" follows a dtype error.
template <typename T>
py::array AsArray(const py::handle& obj, const char* arg, bool writeable = false,
                  const char* hint = "") {
  if (!py::isinstance<py::array>(obj)) {
    throw py::type_error(std::string(arg) + ": expected a numpy array of " + DtypeName<T>() +
                         ", got " + std::string(py::str(obj.get_type().attr("__name__"))));
  }
  py::array a = py::reinterpret_borrow<py::array>(obj);
  py::dtype dt = a.dtype();
  if (!dt.is(py::dtype::of<T>()) && !dt.equal(py::dtype::of<T>())) {
    BadArgument(arg,
                "dtype is " + std::string(py::str(dt)) + ", expected " + DtypeName<T>() + hint);
  }
  if (!(a.flags() & py::array::c_style)) {
    BadArgument(
        arg, "the array is not contiguous; pass numpy.ascontiguousarray(" + std::string(arg) + ")");
  }
  if (writeable && !a.writeable()) BadArgument(arg, "the array is read-only");
  return a;
}

// The buffer of "a" as an SArray, without a copy: the SArray holds a reference to "a" until
// the library drops its last copy.
template <typename T>
SArray<T> Lend(const py::array& a) {
  SArray<T> s;
  PyObject* ref = a.ptr();
  Py_INCREF(ref);
  s.reset(static_cast<T*>(const_cast<void*>(a.data())), static_cast<size_t>(a.size()),
          [ref](T*) { Release(ref); });
  return s;
}

// A numpy array over the buffer of "s", without a copy: it keeps the buffer alive.
template <typename T>
py::array Give(const SArray<T>& s) {
  auto* keep = new SArray<T>(s);
  py::capsule owner(keep, [](void* p) { delete static_cast<SArray<T>*>(p); });
  T* data = keep->data();
  static T empty = T();
  if (!data) data = &empty;
  return py::array_t<T>({static_cast<py::ssize_t>(keep->size())}, {sizeof(T)}, data, owner);
}

// Whether "keys" are sorted and unique; ValueError naming "arg" if not.
void CheckKeys(const SArray<Key>& keys, const char* arg);

}  // namespace python
}  // namespace ps
#endif  // PS_PYTHON_COMMON_H_
