// The parts of the slackline module, bound by module.cc, and what they share about the node.
#ifndef PS_PYTHON_MODULE_H_
#define PS_PYTHON_MODULE_H_

#include "python/common.h"

namespace ps {
namespace python {

void BindKVWorker(py::module_& m);
void BindKVServer(py::module_& m);
void BindSSP(py::module_& m);

enum class Role { kWorker, kServer };

// Raises slackline.Error unless the default node started (slackline.start()) and has "role";
// "what" names the object made ("KVWorker").
void RequireNode(Role role, const char* what);

// Whether "dtype" (anything numpy.dtype() takes) is float64, false for float32; ValueError
// naming the argument "dtype" for anything else.
bool IsDouble(const py::object& dtype);

}  // namespace python
}  // namespace ps
#endif  // PS_PYTHON_MODULE_H_
