"""What the Python module's tests share: jobs of tests/python/kv_node.py (or another script)
through tracker/launch.py, run by Debian's Python with the module built into BUILD/python."""
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD_DIR = os.path.join(ROOT, os.environ.get("PS_BUILD_DIR", "build"))
MODULE_DIR = os.path.join(BUILD_DIR, "python")
LAUNCH = os.path.join(ROOT, "tracker", "launch.py")
NODE = os.path.join(ROOT, "tests", "python", "kv_node.py")
# The interpreter the module is built for (make/python.mk): the one running these tests.
PYTHON = sys.executable


def env(**extra):
    """The environment of a job's processes: the module on PYTHONPATH. For a sanitizer build
    (make test ASAN=1), the sanitizer's runtime is preloaded (PS_PYTHON_PRELOAD), as the
    interpreter is not built with it, and leak checks are off: CPython keeps objects alive
    until exit by design, which LeakSanitizer would report as leaks."""
    e = dict(os.environ, PYTHONPATH=MODULE_DIR, PYTHONDONTWRITEBYTECODE="1")
    preload = os.environ.get("PS_PYTHON_PRELOAD")
    if preload:
        e["LD_PRELOAD"] = preload
        e["ASAN_OPTIONS"] = "detect_leaks=0"
    e.update({k: str(v) for k, v in extra.items()})
    return e


def launch_args(servers, workers, script, *args, timeout=60):
    """The launcher's command line for a job of "script" (a Python script or a program)."""
    program = [PYTHON, script] if script.endswith(".py") else [script]
    return [PYTHON, LAUNCH, "-s", str(servers), "-n", str(workers), "--timeout", str(timeout),
            "--", *program, *[str(a) for a in args]]


def run_job(servers, workers, *args, script=NODE, timeout=60, **extra):
    """Runs a job to its end; returns (exit code, output of every node)."""
    p = subprocess.run(launch_args(servers, workers, script, *args, timeout=timeout),
                       env=env(**extra), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=timeout + 30)
    return p.returncode, p.stdout


def reports(out, role="worker"):
    """The JSON lines the nodes of "role" printed (without the pid lines), in order."""
    found = []
    for line in out.splitlines():
        if line.startswith(f"[{role} ") and "] {" in line:
            fields = json.loads(line.split("] ", 1)[1])
            if "pid" not in fields:
                found.append(fields)
    return found


def pids(out):
    return [json.loads(line.split("] ", 1)[1])["pid"] for line in out.splitlines()
            if "] {" in line and '"pid"' in line]


def alive(pid):
    """Whether the process runs; a zombie counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def wait_until(condition, seconds):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def module_missing():
    """Why the module cannot be imported by this interpreter, or None."""
    p = subprocess.run([PYTHON, "-c", "import numpy, slackline"], env=env(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return None if p.returncode == 0 else p.stdout.strip().splitlines()[-1]
