"""Starts the nodes of a job as separate processes, without the launcher, for process tests;
and runs the demos through the launcher."""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD_DIR = os.path.join(ROOT, os.environ.get("PS_BUILD_DIR", "build"))
# A sanitizer build (build/asan, build/tsan) runs several times slower.
SANITIZED = os.path.basename(os.path.normpath(BUILD_DIR)) != "build"
PS_JOB = os.path.join(BUILD_DIR, "tests", "integration", "ps_job")
KV_JOB = os.path.join(BUILD_DIR, "tests", "integration", "kv_job")
LAUNCH = os.path.join(ROOT, "tracker", "launch.py")
sys.path.insert(0, os.path.join(ROOT, "tracker"))
import launch  # noqa: E402  (for the job key it makes, as it does for a launched job)


def run_launched(program, servers, workers, *args, timeout=120):
    """Runs "program" with "args" as a job through tracker/launch.py; returns (exit code, output)."""
    if not os.access(program, os.X_OK):
        raise AssertionError(f"{program} is missing: run make first")
    p = subprocess.run([sys.executable, LAUNCH, "-s", str(servers), "-n", str(workers),
                        "--timeout", str(timeout), "--", program, *args],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout + 30)
    return p.returncode, p.stdout


def worker_summary(out):
    """The one JSON summary line a demo's worker printed through the launcher, parsed."""
    # Printed by the worker of rank 0, which need not be the launcher's worker 0.
    lines = [l.split("] ", 1)[1] for l in out.splitlines()
             if l.startswith("[worker ") and "] {" in l]
    if len(lines) != 1:
        raise AssertionError("not one JSON summary:\n" + out)
    return json.loads(lines[0])


def processes_with(tag, role):
    """Pids of the processes whose environment has TEST_TAG=tag and DMLC_ROLE=role."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if f"TEST_TAG={tag}".encode() in env and f"DMLC_ROLE={role}".encode() in env:
            pids.append(int(pid))
    return pids


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    def __init__(self, role, index, proc, out_path, err_path):
        self.role, self.index, self.proc = role, index, proc
        self.out_path, self.err_path = out_path, err_path
        self.ended = None  # time.monotonic() when Job.wait saw it exit

    @property
    def name(self):
        return self.role if self.role == "scheduler" else f"{self.role} {self.index}"

    def stdout(self):
        with open(self.out_path) as f:
            return f.read()

    def stderr(self):
        with open(self.err_path) as f:
            return f.read()


class Job:
    """One scheduler, S servers and W workers of ps_job; call stop() when done. Like a job of
    the launcher, it is authenticated with a job key of its own (PS_KEY_FILE) unless
    "insecure" or "env" names another PS_KEY_FILE."""

    def __init__(self, servers, workers, env=None, args=(), start_workers=None, port=None,
                 program=PS_JOB, insecure=False):
        if not os.access(program, os.X_OK):
            raise AssertionError(f"{program} is missing: run make first")
        self.port = port or free_port()
        self.tmp = tempfile.TemporaryDirectory()
        self.nodes = []
        base = dict(os.environ)
        base.update({
            "DMLC_PS_ROOT_URI": "127.0.0.1", "DMLC_PS_ROOT_PORT": str(self.port),
            "DMLC_NUM_SERVER": str(servers), "DMLC_NUM_WORKER": str(workers),
        })
        if not insecure:
            key_file = os.path.join(self.tmp.name, "job.key")
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(launch.new_job_key() + "\n")
            base["PS_KEY_FILE"] = key_file
        else:
            base.pop("PS_KEY_FILE", None)
        base.update(env or {})
        self.base_env, self.program, self.args = base, program, list(args)
        start_workers = workers if start_workers is None else start_workers
        plan = [("scheduler", 0)] + [("server", i) for i in range(servers)] + \
               [("worker", i) for i in range(start_workers)]
        for role, index in plan:
            self.add(role, index)

    def add(self, role, index=None):
        """Starts one more process of the job in "role" (a replacement server, say)."""
        if index is None:
            index = len(self.role(role))
        node_env = dict(self.base_env, DMLC_ROLE=role)
        out = os.path.join(self.tmp.name, f"{role}{index}.out")
        err = os.path.join(self.tmp.name, f"{role}{index}.err")
        with open(out, "w") as fo, open(err, "w") as fe:
            proc = subprocess.Popen([self.program, *self.args], env=node_env, stdout=fo,
                                    stderr=fe, start_new_session=True)
        node = Node(role, index, proc, out, err)
        self.nodes.append(node)
        return node

    def role(self, role):
        return [n for n in self.nodes if n.role == role]

    def wait(self, timeout, nodes=None):
        """Waits for every process (of "nodes") to exit, noting when each did; returns the
        seconds it took. Raises subprocess.TimeoutExpired on timeout."""
        nodes = self.nodes if nodes is None else nodes
        start = time.monotonic()
        while True:
            for n in nodes:
                if n.ended is None and n.proc.poll() is not None:
                    n.ended = time.monotonic()
            if all(n.ended is not None for n in nodes):
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise subprocess.TimeoutExpired(str([n.name for n in nodes]), timeout)
            time.sleep(0.01)

    def wait_for_output(self, node, text, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in node.stdout():
                return True
            if node.proc.poll() is not None:
                return text in node.stdout()
            time.sleep(0.02)
        return False

    def stop(self):
        for n in self.nodes:
            if n.proc.poll() is None:
                os.killpg(n.proc.pid, signal.SIGKILL)
                n.proc.wait()
        self.tmp.cleanup()

    def report(self):
        return "\n".join(f"--- {n.name} exit {n.proc.returncode}\n{n.stdout()}{n.stderr()}"
                         for n in self.nodes)
