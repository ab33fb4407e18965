#include "python/common.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "ps/kv_app.h"

namespace ps {
namespace python {
namespace {

// References the library let go of on threads without the GIL. Protected by released_mu.
std::mutex released_mu;
std::vector<PyObject*> released;
std::atomic<bool> any_released{false};
// False once the interpreter finalized: references dropped after that are left alone (a
// program that ends without finalize() may still have messages in flight).
std::atomic<bool> interpreter_alive{false};

// Constant after InitSignals.
std::thread::id main_thread;
struct sigaction previous_sigint;
// Blocking scopes of the main thread now: 0 or 1 (Python code runs between them).
std::atomic<int> main_blocked{0};

void OnSigint(int signo) {
  if (main_blocked.load() > 0) {
    static const char kMsg[] =
        "slackline: SIGINT while blocked in the library: ending the process\n";
    ssize_t ignored = write(STDERR_FILENO, kMsg, sizeof(kMsg) - 1);
    (void)ignored;
    struct sigaction dfl = {};
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGINT, &dfl, nullptr);
    raise(SIGINT);
    return;
  }
  // Python's handler, which makes the main thread raise KeyboardInterrupt.
  if (previous_sigint.sa_flags & SA_SIGINFO) {
    previous_sigint.sa_sigaction(signo, nullptr, nullptr);
  } else if (previous_sigint.sa_handler == SIG_DFL) {
    struct sigaction dfl = {};
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGINT, &dfl, nullptr);
    raise(SIGINT);
  } else if (previous_sigint.sa_handler != SIG_IGN) {
    previous_sigint.sa_handler(signo);
  }
}

}  // namespace

template <>
const char* DtypeName<float>() {
  return "float32";
}
template <>
const char* DtypeName<double>() {
  return "float64";
}
template <>
const char* DtypeName<uint64_t>() {
  return "uint64";
}
template <>
const char* DtypeName<uint32_t>() {
  return "uint32";
}
template <>
const char* DtypeName<int>() {
  return "int32";
}

void Release(PyObject* ref) {
  if (!interpreter_alive.load(std::memory_order_acquire)) return;
  if (PyGILState_Check()) {
    Py_DECREF(ref);
    return;
  }
  std::lock_guard<std::mutex> lk(released_mu);
  released.push_back(ref);
  any_released.store(true, std::memory_order_release);
}

void DropReleased() {
  if (!any_released.load(std::memory_order_acquire)) return;
  std::vector<PyObject*> drop;
  {
    std::lock_guard<std::mutex> lk(released_mu);
    drop.swap(released);
    any_released.store(false, std::memory_order_relaxed);
  }
  for (PyObject* ref : drop) Py_DECREF(ref);
}

void InitSignals() {
  interpreter_alive.store(true);
  Py_AtExit([] { interpreter_alive.store(false); });
  main_thread = std::this_thread::get_id();
  sigaction(SIGINT, nullptr, &previous_sigint);
  // A process started with SIGINT ignored keeps ignoring it.
  if (!(previous_sigint.sa_flags & SA_SIGINFO) && previous_sigint.sa_handler == SIG_IGN) return;
  struct sigaction ours = {};
  ours.sa_handler = OnSigint;
  sigemptyset(&ours.sa_mask);
  sigaction(SIGINT, &ours, nullptr);
}

Blocking::Blocking() : main_(std::this_thread::get_id() == main_thread) {
  if (main_) main_blocked.fetch_add(1);
}

Blocking::~Blocking() {
  if (main_) main_blocked.fetch_sub(1);
}

void CheckKeys(const SArray<Key>& keys, const char* arg) {
  Status s = kv::CheckOrder(keys);
  if (!s.ok()) BadArgument(arg, s.message());
}

}  // namespace python
}  // namespace ps
