#!/usr/bin/env python3
"""Start a Slackline (or ps-lite) job: one scheduler, S servers and W workers.

Every node runs the same command, CMD [ARGS...], given after `--`. Its environment tells
it its role:

    DMLC_ROLE          scheduler, server or worker
    DMLC_NUM_SERVER    S
    DMLC_NUM_WORKER    W
    DMLC_PS_ROOT_URI   the scheduler's address (--scheduler-host)
    DMLC_PS_ROOT_PORT  the scheduler's port (--scheduler-port)
    DMLC_NODE_HOST     ssh launcher only: the host the node runs on (its hostfile name)
    DMLC_INTERFACE     instead, for the hosts of a hostfile with interface=NAME (ssh, mpi)
    DMLC_TASK_ID       the node's place in the job: scheduler 0, servers 1..S, then workers
                       (under --launcher mpi, its MPI rank; under slurm, its SLURM_PROCID)
    DMLC_JOB_CLUSTER   local, ssh, mpi or slurm, as dmlc-core's tracker sets it
    PS_REPORT_RANK     1: a Slackline node tells the launcher its rank once it has registered
    PS_KEY_FILE        the job key (see Security), unless --insecure

and every --env NAME=VALUE.

Security: unless --insecure, the launcher makes a job key (a CURVE secret key, 32 random
bytes in Z85) and every node gets it in a file only its user can read (mode 0600), named by
PS_KEY_FILE; the key is never on a command line or in a log. Every connection of the job is
then authenticated and encrypted, and only holders of the key get in. local: the file is in a
private temporary folder of this machine. ssh: the key goes down the ssh connection's stdin
and the remote script writes it to a private temporary file there. mpi, slurm: mpirun (srun)
passes it on in the environment of the ranks (never in its arguments), and each rank's
`--mpi-node`/`--slurm-node` writes it to a private file on its host. The files are removed
when the node exits. --key-file FILE uses an existing key file instead (local launcher; it
must be mode 0600).

Launchers:
  local  every node is a process on this machine.
  ssh    the scheduler runs on this machine. Servers, then workers, go to the hosts of
         --hostfile in turn; a host with slots=N takes N nodes in a row, as mpirun does. Each
         runs as `ssh -o BatchMode=yes [-p PORT] [-o OPTION...] HOST sh -c SCRIPT`, where the
         script enters this machine's working directory (which must exist on the host),
         exports the variables and runs CMD in a session of its own. When the ssh
         connection closes, the script stops the node: SIGTERM to its process group, SIGKILL
         after --grace seconds. Hosts need sh and setsid (util-linux).
  mpi    one mpirun (Open MPI) starts every node on this machine, or on the hosts of
         --hostfile. Each rank runs `launch.py --mpi-node -- CMD`, which takes the node's role
         from OMPI_COMM_WORLD_RANK: rank 0 is the scheduler, then the servers, then the
         workers. launch.py, the python3 running it and CMD must be at the same paths on
         every host. mpirun stops ranks itself: SIGTERM --grace seconds (rounded up) after
         it is told to stop, SIGKILL as long after that.
  slurm  one srun starts every node as a task of a Slurm job step: inside an allocation
         (sbatch, salloc) on its nodes, otherwise srun asks Slurm for one. Each task runs
         `launch.py --slurm-node -- CMD`, which takes the node's role from SLURM_PROCID (0 is
         the scheduler, then the servers, then the workers) and checks SLURM_NTASKS. The
         scheduler's address is the first host of the allocation (SLURM_JOB_NODELIST), else
         this machine's host name. launch.py, the python3 running it and CMD must be at the
         same paths on every node. srun passes the environment on and stops the tasks itself
         (SIGTERM, then SIGKILL after the cluster's KillWait); --srun-arg adds options.

Hostfile: one host per line, `host[:port] [slots=N] [interface=NAME]`; `#` starts a comment.
The port is the ssh port (ssh launcher only). A node advertises the address the other nodes
reach it at: over ssh its host's name as the hostfile gives it (DMLC_NODE_HOST); with
interface=NAME, that interface's address instead (DMLC_INTERFACE), under ssh and mpi alike.
Without either (mpi), a node takes its address on the route to the scheduler.

Output: every line a node prints is printed with its node's name in front, `[scheduler]`,
`[server 0]`, `[worker 1]`, on stdout or stderr as the node wrote it; with --log-dir, also
(without the prefix) to DIR/scheduler.log, DIR/server-0.log, DIR/worker-1.log, ... Nodes are
started in the order of their task ids, but the scheduler gives ranks in the order nodes
register; so a Slackline node, once registered, reports its rank (PS_REPORT_RANK) and from
then on its lines carry that rank: `[worker 1]` is the worker of rank 1 (what MyRank()
returns, and what --straggler=1:MS of demo/linear slows). Earlier lines, and those of
programs that do not report, carry the launch order.

Stopping: when a node fails (exits non-zero or is killed by a signal), when the launcher
gets SIGINT, SIGTERM or SIGHUP, or when --timeout expires, the launcher stops the job:
SIGTERM to the process group of every node still running, SIGKILL after --grace seconds
(at once on a second signal). Whenever a node exits, what is left in its process group is
killed. SIGKILL to the launcher cannot be caught: local nodes then keep running (ssh nodes
stop, as their connections close).

Restarts: with --max-restarts N, when a node fails and the job cannot go on (the scheduler
died, a worker failed, or more servers died than PS_REPLICATION covers: the nodes then end the
job), the launcher stops the rest as above and starts the whole job again, up to N times,
saying on stderr which restart it is and why. A job with PS_CHECKPOINT_DIR resumes from the
latest complete checkpoint there (the programs read it at start; see the README). A stop the
launcher was asked for (a signal, --timeout, which counts over all runs) and a command that
cannot be started are not restarted. Each run gets a new scheduler port unless
--scheduler-port gives one. Under every launcher (local, ssh, mpi, slurm) a run is one whole
start of the plan.

Exit status: 0 if every node exited 0. Else that of the first node that failed (128+N if it
was killed by signal N; 127 or 126 if its command could not be started), 128+N if the
launcher got signal N, 124 if --timeout expired, 2 for bad usage. The last line on stderr
says which node or why.
"""

import argparse
import secrets
import tempfile
import math
import os
import queue
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

LAUNCHERS = ("local", "ssh", "mpi", "slurm")

# The most nodes of each role a job may have: the node table is built after this check.
MAX_NODES = 100000

# Z85 (ZeroMQ RFC 32), the encoding of CURVE keys.
Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
# The variable that carries the job key to the ranks of mpirun and srun (never to a node:
# --mpi-node and --slurm-node turn it into a file and PS_KEY_FILE).
KEY_VAR = "SLACKLINE_JOB_KEY"


def z85_encode(data: bytes) -> str:
    """Z85 of "data", whose length is a multiple of 4."""
    out = []
    for i in range(0, len(data), 4):
        value = int.from_bytes(data[i:i + 4], "big")
        chunk = []
        for _ in range(5):
            value, digit = divmod(value, 85)
            chunk.append(Z85[digit])
        out.extend(reversed(chunk))
    return "".join(out)


def new_job_key() -> str:
    """A fresh job key: a CURVE secret key (any 32 random bytes are one) in Z85."""
    return z85_encode(secrets.token_bytes(32))


def write_key_file(key: str) -> Tuple[str, str]:
    """Writes "key" to a new file in a new private folder; returns (folder, file)."""
    folder = tempfile.mkdtemp(prefix="slackline-key-")  # mode 0700
    path = os.path.join(folder, "job.key")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return folder, path


def remove_key_file(folder: str, path: str) -> None:
    for remove, name in ((os.unlink, path), (os.rmdir, folder)):
        try:
            remove(name)
        except OSError:
            pass

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
TIMEOUT_EXIT_CODE = 124  # as coreutils' timeout(1)
USAGE_EXIT_CODE = 2
DRAIN_SECONDS = 1  # see drain()
# Variables the launcher computes; --env may not set them.
JOB_VARIABLES = ("DMLC_ROLE", "DMLC_NUM_SERVER", "DMLC_NUM_WORKER", "DMLC_PS_ROOT_URI",
                 "DMLC_PS_ROOT_PORT", "DMLC_NODE_HOST", "DMLC_TASK_ID", "DMLC_JOB_CLUSTER",
                 "PS_REPORT_RANK", "PS_LAUNCH_INTERFACES")

# --mpi-node reports its node's failure to the launcher on the output stream mpirun
# forwards, as "[worker 1] @@launch.py-exit 139 was killed by SIGSEGV".
EXIT_REPORT = b"@@launch.py-exit"
PREFIXED_LINE = re.compile(rb"\[(scheduler|server \d+|worker \d+)\] (.*)", re.DOTALL)
# A registered Slackline node prints "@@slackline-rank worker 1" on stdout and on stderr
# (PS_REPORT_RANK=1; src/system/postoffice.cc): on both, so that each stream's later lines
# follow it. The launcher takes it in and labels the node's later lines by that rank.
RANK_REPORT = re.compile(rb"@@slackline-rank ((?:server|worker) \d+)\n?")
# With PS_METRICS_PORT, a registered node also prints where it serves its metrics; the
# launcher prints that as a note of its own: "launch.py: worker 1 metrics at http://...".
METRICS_REPORT = re.compile(rb"@@slackline-metrics (\S+)\n?")

# Runs one node on an ssh host (see "ssh" in the module docstring). The launcher never writes
# to the session's stdin, so end-of-file there means the launcher stopped the job or is gone.
# A watcher process waits for it, then stops the node's process group; the node and the
# watcher each get a session of their own (setsid), so that each group can be killed whole.
# Background jobs of a non-interactive sh read /dev/null, hence the session's stdin is kept
# on fd 3 for the watcher. When the node exits on its own, the rest of its group and the
# watcher are killed and the script exits with the node's status.
REMOTE_SCRIPT = (
    "{key}"
    "cd {cwd} || exit 1; "
    "export {exports}; "
    "exec 3<&0 </dev/null; "
    "setsid {command} 3<&- & node=$!; "
    "setsid sh -c \"read -r _; kill -TERM -\\$0; sleep {grace}; kill -KILL -\\$0\" $node "
    "<&3 >/dev/null 2>&1 & watcher=$!; "
    "exec 3<&-; "
    "wait $node; status=$?; "
    "kill -KILL -$node -$watcher $watcher 2>/dev/null; "
    "{key_cleanup}"
    "exit $status")
# With a job key, the script first reads it from the session's stdin (the launcher writes it
# as the first line; sh's read takes no byte beyond the newline) into a private file.
REMOTE_KEY = ('IFS= read -r key || exit 1; kf=$(umask 077; mktemp) || exit 1; '
              'printf "%s\\n" "$key" > "$kf"; key=; export PS_KEY_FILE="$kf"; ')
REMOTE_KEY_CLEANUP = 'rm -f "$kf"; '



class UsageError(Exception):
    """Bad command line or hostfile; the message says what to fix."""


# ---------------------------------------------------------------------------------------------
# Nodes, hosts and environment

@dataclass(frozen=True)
class Node:
    role: str     # scheduler, server or worker
    rank: int     # among the nodes of its role
    task_id: int  # place in the job: scheduler 0, servers, then workers (the MPI rank)

    @property
    def name(self) -> str:
        return self.role if self.role == "scheduler" else f"{self.role} {self.rank}"

    def env(self) -> Dict[str, str]:
        """The variables that differ between the nodes of a job (but for DMLC_NODE_HOST)."""
        return {"DMLC_ROLE": self.role, "DMLC_TASK_ID": str(self.task_id)}


def job_nodes(num_servers: int, num_workers: int) -> List[Node]:
    """The nodes of a job, in the order of their task ids."""
    return ([Node("scheduler", 0, 0)]
            + [Node("server", r, 1 + r) for r in range(num_servers)]
            + [Node("worker", r, 1 + num_servers + r) for r in range(num_workers)])


@dataclass(frozen=True)
class Host:
    name: str
    port: Optional[int] = None  # ssh port; None for ssh's default
    slots: int = 1
    interface: Optional[str] = None  # nodes there take their address from it (DMLC_INTERFACE)


def parse_hostfile(path: str) -> List[Host]:
    """Reads lines of `host[:port] [slots=N] [interface=NAME]`; `#` starts a comment."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise UsageError(f"cannot read hostfile {path}: {e.strerror}") from None
    hosts = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        match = re.fullmatch(r"([^\s:=]+)(?::(\d+))?((?:\s+\w+=\S*)*)", text)
        options = dict(o.split("=", 1) for o in match[3].split()) if match else {}
        if (not match or (match[2] and not 0 < int(match[2]) < 65536)
                or set(options) - {"slots", "interface"} or len(options) < len(match[3].split())
                or not re.fullmatch(r"[1-9][0-9]*", options.get("slots", "1"))
                or not re.fullmatch(r"[\w.:@-]{1,15}", options.get("interface", "lo"))):
            raise UsageError(f"{path}:{number}: bad line {text!r}: expected host[:port] "
                             "[slots=N] [interface=NAME], e.g. node1:2222 slots=2")
        hosts.append(Host(match[1], int(match[2]) if match[2] else None,
                          int(options.get("slots", 1)), options.get("interface")))
    if not hosts:
        raise UsageError(f"hostfile {path} lists no hosts")
    return hosts


def spread(nodes: List[Node], hosts: List[Host]) -> List[Tuple[Node, Host]]:
    """Gives nodes to hosts in turn, `slots` nodes in a row to each, as mpirun maps by slot."""
    slots = [host for host in hosts for _ in range(host.slots)]
    return [(node, slots[i % len(slots)]) for i, node in enumerate(nodes)]


def default_scheduler_host(launcher: str, hosts: List[Host]) -> str:
    if launcher == "slurm":
        return slurm_first_host()
    if launcher == "local" or not hosts:
        return "127.0.0.1"
    if launcher == "mpi":
        return hosts[0].name  # mpirun puts rank 0, the scheduler, on the first host
    # ssh: the scheduler runs here; take this machine's address on the route to the hosts.
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((hosts[0].name, hosts[0].port or 22))  # sends nothing
            return s.getsockname()[0]
    except OSError:
        return socket.getfqdn()


def slurm_first_host() -> str:
    """The first host of the Slurm allocation we are in, where srun puts task 0 (the
    scheduler); outside one, this machine's name (srun will ask for an allocation)."""
    nodelist = os.environ.get("SLURM_JOB_NODELIST")
    if nodelist:
        try:
            out = subprocess.run(["scontrol", "show", "hostnames", nodelist], check=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 text=True, timeout=30).stdout.split()
            if out:
                return out[0]
        except (OSError, subprocess.SubprocessError):
            pass
    return socket.gethostname()


def free_port(host: str) -> int:
    """A TCP port nothing listens on now, on `host` if it is this machine's."""
    with socket.socket() as s:
        try:
            s.bind((host, 0))
        except OSError:  # not an address of this machine, e.g. mpi's first host
            s.bind(("", 0))
        return s.getsockname()[1]


def exit_status(returncode: int) -> Tuple[int, str]:
    """A Popen return code as a shell exit status, and in words."""
    if returncode < 0:
        return 128 - returncode, f"was killed by {signal.Signals(-returncode).name}"
    return returncode, f"exited with code {returncode}"


def start_failure(error: OSError, argv: List[str]) -> Tuple[int, str]:
    """Exit status (as a shell would give) and words for a command that could not start."""
    code = 127 if isinstance(error, FileNotFoundError) else 126
    return code, f"could not be started: {argv[0]}: {error.strerror}"


# ---------------------------------------------------------------------------------------------
# Output

def log_file_name(name: str) -> str:
    return name.replace(" ", "-") + ".log"


class Console:
    """Prints lines of output with the name of their node in front, whole lines at a time,
    and copies each node's lines to its own log file when given a log directory. Thread-safe.
    """

    def __init__(self, log_dir: Optional[str] = None, names: Tuple[str, ...] = (),
                 notes: bool = True):
        self._lock = threading.Lock()
        self._notes = notes  # False under mpirun or srun: pass reports on to the launcher
        self._labels: Dict[str, str] = {}  # launch name -> name by rank, once reported
        self._logs = {}
        if log_dir:
            os.makedirs(log_dir, exist_ok=True)
            self._logs = {name: open(os.path.join(log_dir, log_file_name(name)), "wb")
                          for name in names}

    def label(self, name: str) -> str:
        """The name the node launched as `name` goes by now: its rank's once reported."""
        with self._lock:
            return self._labels.get(name, name)

    def write(self, name: str, line: bytes, is_err: bool) -> None:
        report = RANK_REPORT.fullmatch(line)
        if report and name != "scheduler":
            with self._lock:
                self._labels[name] = report[1].decode()
            return
        metrics = METRICS_REPORT.fullmatch(line)
        if metrics and self._notes:
            self.note(f"{self.label(name)} metrics at {metrics[1].decode()}")
            return
        if not line.endswith(b"\n"):
            line += b"\n"
        stream = sys.stderr.buffer if is_err else sys.stdout.buffer
        with self._lock:
            name = self._labels.get(name, name)
            try:
                stream.write(b"[" + name.encode() + b"] " + line)
                stream.flush()
            except OSError:
                pass  # console gone (closed pipe): keep draining the nodes and the logs
            log = self._logs.get(name)
            if log:
                log.write(line)
                log.flush()

    def note(self, message: str) -> None:
        """A message of the launcher's own, on stderr."""
        with self._lock:
            try:
                sys.stderr.write(f"launch.py: {message}\n")
                sys.stderr.flush()
            except OSError:
                pass

    def forget_ranks(self) -> None:
        """A new run of the job: its nodes report their ranks again."""
        with self._lock:
            self._labels.clear()

    def close(self) -> None:
        for log in self._logs.values():
            log.close()


def start_pumps(proc: subprocess.Popen,
                sink: Callable[[bytes, bool], None]) -> List[threading.Thread]:
    """Threads that pass each line of proc's stdout and stderr to sink(line, is_err)."""
    def pump(stream, is_err):
        with stream:
            for line in iter(stream.readline, b""):
                sink(line, is_err)

    threads = [threading.Thread(target=pump, args=(proc.stdout, False), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, True), daemon=True)]
    for thread in threads:
        thread.start()
    return threads


def drain(pumps: List[threading.Thread]) -> None:
    """Waits for the output left in the pipes of processes that have exited; but not for
    long, because something they started may hold the pipes open.
    """
    until = time.monotonic() + DRAIN_SECONDS
    for pump in pumps:
        pump.join(max(0.0, until - time.monotonic()))


# ---------------------------------------------------------------------------------------------
# Supervising the processes of a job

@dataclass(eq=False)
class Launch:
    """A process the launcher starts on this machine: a node, ssh running a node, or mpirun."""
    name: str                  # the node's name, or "mpirun"
    argv: List[str]
    env: Dict[str, str]        # added to the launcher's environment
    stop_wait: float           # seconds from SIGTERM to SIGKILL when the job stops
    keep_stdin: bool = False   # ssh: a pipe left open; its end-of-file stops the remote node
    stdin_first: bytes = b""   # ssh: written to that pipe first (the job key's line)
    from_mpirun: bool = False  # mpirun or srun: lines are prefixed by --mpi-node or --slurm-node,
                               # which report failures


@dataclass
class Plan:
    node_envs: List[Tuple[str, Dict[str, str]]]  # what each node gets beyond our environment
    launches: List[Launch]


class Job:
    """Runs the processes of a plan, each in a session and process group of its own, and
    stops them all when one fails, when the launcher gets SIGINT, SIGTERM or SIGHUP, or at
    the deadline. Runs on the main thread (it handles signals); pumps and waiters are threads
    that report to it through an event queue.
    """

    def __init__(self, launches: List[Launch], console: Console, timeout: Optional[float],
                 verbose: bool, spare_servers: int = 0, deadline: Optional[float] = None,
                 restart_servers: bool = False):
        self._launches = launches
        # Servers that may die without ending the job: PS_REPLICATION - 1 (the nodes end the
        # job themselves, naming the lost key range, when more die than the replicas cover).
        self._spare_servers = spare_servers
        # --restart-failed-servers: a server that dies is started again, and takes the place of
        # the dead one in the running job; servers restarted so far, by name.
        self._restart_servers = restart_servers and spare_servers > 0
        self._restarts: Dict[str, int] = {}
        self._console = console
        self._timeout = timeout
        # When the timeout expires (time.monotonic()); given, it counts from an earlier run.
        self._deadline = deadline
        self._verbose = verbose
        self._events = queue.SimpleQueue()  # its put() may be called from a signal handler
        self._running: Dict[Launch, subprocess.Popen] = {}
        self._pumps: List[threading.Thread] = []
        self._outcome: Optional[Tuple[int, str]] = None  # set when the job starts stopping
        # Whether the first failure was a node's (not a signal, the deadline, or a command
        # that could not start): a run that --max-restarts may start again.
        self.restartable = False
        self._kill_at: Optional[float] = None            # while stopping, until SIGKILL

    @property
    def reason(self) -> str:
        """Why the job stopped ("" if it did not fail)."""
        return self._outcome[1] if self._outcome else ""

    def run(self) -> int:
        """Blocks until every process has exited; returns the job's exit status."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        try:
            deadline = self._deadline
            if deadline is None and self._timeout is not None:
                deadline = time.monotonic() + self._timeout
            for launch in self._launches:
                if self._outcome:
                    break  # one failed to start
                self._start(launch)
            while self._running:
                self._next_event(deadline)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        drain(self._pumps)  # print the rest of the output before the verdict
        if self._outcome is None:
            self._say_verbose("every node exited with code 0")
            return 0
        code, reason = self._outcome
        self._console.note(f"exit status {code}: {reason}")
        return code

    def _start(self, launch: Launch) -> None:
        try:
            proc = subprocess.Popen(
                launch.argv, env=dict(os.environ, **launch.env), start_new_session=True,
                stdin=subprocess.PIPE if launch.keep_stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as e:
            self._fail(launch.name, *start_failure(e, launch.argv), restartable=False)
            return
        self._running[launch] = proc
        if launch.stdin_first:
            try:
                proc.stdin.write(launch.stdin_first)
                proc.stdin.flush()
            except OSError:
                pass  # it exited already; its exit says why
        self._say_verbose(f"started {launch.name} (pid {proc.pid}): {shlex.join(launch.argv)}")
        sink = (lambda line, is_err: self._mpirun_line(launch, line, is_err)) \
            if launch.from_mpirun else (
            lambda line, is_err: self._console.write(launch.name, line, is_err))
        pumps = start_pumps(proc, sink)
        self._pumps += pumps

        def wait():
            returncode = proc.wait()
            if launch.from_mpirun:
                # A rank's failure report must be seen before mpirun's exit. mpirun's pipes
                # close when it exits: its ranks write to mpirun, not to us.
                for pump in pumps:
                    pump.join()
            self._events.put(("exit", launch, returncode))

        threading.Thread(target=wait, daemon=True).start()

    def _mpirun_line(self, launch: Launch, line: bytes, is_err: bool) -> None:
        match = PREFIXED_LINE.fullmatch(line)
        if not match:
            self._console.write(launch.name, line, is_err)  # mpirun's (srun's) own message
            return
        name, text = match[1].decode(), match[2]
        if text.startswith(EXIT_REPORT + b" "):
            _, code, how = text.rstrip(b"\n").split(b" ", 2)
            self._events.put(("failed", name, int(code), how.decode()))
        else:
            self._console.write(name, text, is_err)

    def _on_signal(self, signo, _frame) -> None:
        self._events.put(("signal", signo))

    def _next_event(self, deadline: Optional[float]) -> None:
        wake = self._kill_at if self._outcome else deadline
        try:
            event = self._events.get(
                timeout=None if wake is None else max(0.0, wake - time.monotonic()))
        except queue.Empty:
            if self._outcome:
                self._kill_now()
            else:
                self._stop(TIMEOUT_EXIT_CODE, f"timed out after {self._timeout:g} s")
            return
        kind, *details = event
        if kind == "exit":
            self._on_exit(*details)
        elif kind == "failed":
            self._fail(*details)
        elif self._outcome:  # a second signal
            self._console.note(f"got {signal.Signals(details[0]).name} again")
            self._kill_now()
        else:
            self._stop(128 + details[0], f"got {signal.Signals(details[0]).name}")

    def _on_exit(self, launch: Launch, returncode: int) -> None:
        proc = self._running.pop(launch)
        if proc.stdin:
            proc.stdin.close()
        # Kill what the process left in its group now: once the group is empty, its number
        # can be reused by an unrelated process.
        self._signal_group(proc, signal.SIGKILL)
        code, how = exit_status(returncode)
        if code and not self._outcome and launch.name.startswith("server ") and \
                self._restart_servers:
            # Its replicas answer for it meanwhile; the new one copies its key ranges from them
            # and restores the replication factor (the nodes end the job if a range is lost).
            count = self._restarts[launch.name] = self._restarts.get(launch.name, 0) + 1
            self._console.note(f"{self._console.label(launch.name)} {how}; starting it again "
                               f"(restart {count}) to take its place in the job")
            self._start(launch)
        elif code and not self._outcome and launch.name.startswith("server ") and \
                self._spare_servers > 0:
            self._spare_servers -= 1
            self._console.note(f"{self._console.label(launch.name)} {how}; the job goes on "
                               "without it (PS_REPLICATION: its replicas answer for it)")
        elif code and not self._outcome:
            self._fail(launch.name, code, how)
        else:
            self._say_verbose(f"{self._console.label(launch.name)} {how}")

    def _fail(self, name: str, code: int, how: str, restartable: bool = True) -> None:
        """Records the first failure; later ones are most likely caused by the stop."""
        if not self._outcome:
            self.restartable = restartable and code not in (126, 127)
        self._stop(code, f"{self._console.label(name)} {how}")

    def _stop(self, code: int, reason: str) -> None:
        if self._outcome:
            return
        self._outcome = (code, reason)
        self._console.note(f"{reason}; stopping the job")
        self._signal_all(signal.SIGTERM)
        if self._running:
            wait = max(launch.stop_wait for launch in self._running)
            self._kill_at = time.monotonic() + wait

    def _kill_now(self) -> None:
        self._signal_all(signal.SIGKILL)
        self._kill_at = None

    def _signal_all(self, sig: signal.Signals) -> None:
        if self._running:
            names = ", ".join(launch.name for launch in self._running)
            self._say_verbose(f"sending {sig.name} to {names}")
        for proc in self._running.values():
            self._signal_group(proc, sig)

    @staticmethod
    def _signal_group(proc: subprocess.Popen, sig: signal.Signals) -> None:
        try:
            os.killpg(proc.pid, sig)
        except OSError:
            pass  # the group is gone already

    def _say_verbose(self, message: str) -> None:
        if self._verbose:
            self._console.note(message)


# ---------------------------------------------------------------------------------------------
# Plans: what to start for each launcher

def plan_local(args, nodes: List[Node], job_env: Dict[str, str]) -> Plan:
    node_envs = [(node.name, dict(job_env, **node.env())) for node in nodes]
    launches = [Launch(name, args.command, env, args.grace) for name, env in node_envs]
    return Plan(node_envs, launches)


def plan_ssh(args, nodes: List[Node], job_env: Dict[str, str]) -> Plan:
    scheduler, others = nodes[0], nodes[1:]
    scheduler_env = dict(job_env, **scheduler.env(), DMLC_NODE_HOST=args.scheduler_host)
    scheduler_env.pop(KEY_VAR, None)
    plan = Plan([(scheduler.name, scheduler_env)],
                [Launch(scheduler.name, args.command, scheduler_env, args.grace)])
    ssh = ["ssh", "-o", "BatchMode=yes"]
    for option in args.ssh_option:
        ssh += ["-o", option]
    key = job_env.get(KEY_VAR)
    for node, host in spread(others, args.hosts):
        # A node advertises its host's name from the hostfile, or its interface's address.
        env = dict(job_env, **node.env(), **host_address_env(host))
        env.pop(KEY_VAR, None)
        env.pop("PS_KEY_FILE", None)  # the remote script makes its own
        script = REMOTE_SCRIPT.format(
            key=REMOTE_KEY if key else "", key_cleanup=REMOTE_KEY_CLEANUP if key else "",
            cwd=shlex.quote(os.getcwd()),
            exports=" ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()),
            command=shlex.join(args.command), grace=f"{args.grace:g}")
        port = ["-p", str(host.port)] if host.port else []
        argv = ssh + port + [host.name, "sh -c " + shlex.quote(script)]
        plan.node_envs.append((node.name, env))
        plan.launches.append(Launch(node.name, argv, {}, args.grace, keep_stdin=True,
                                    stdin_first=(key + "\n").encode() if key else b""))
    return plan


def host_address_env(host: Host) -> Dict[str, str]:
    """How a node on `host` learns the address it advertises: its interface= if the hostfile
    names one, else the host's name there."""
    if host.interface:
        return {"DMLC_INTERFACE": host.interface}
    return {"DMLC_NODE_HOST": host.name}


def plan_mpi(args, nodes: List[Node], job_env: Dict[str, str]) -> Plan:
    # mpirun stops a job with SIGCONT, then SIGTERM after `kill_timeout` seconds, then SIGKILL
    # after as many again, each to every rank's process group.
    kill_timeout = max(1, math.ceil(args.grace))
    argv = ["mpirun", "--oversubscribe", "--bind-to", "none", "-np", str(len(nodes)),
            "--mca", "odls_base_sigkill_timeout", str(kill_timeout)]
    if os.geteuid() == 0:
        argv.append("--allow-run-as-root")
    if args.hosts:
        argv += ["--host", ",".join(f"{host.name}:{host.slots}" for host in args.hosts)]
    interfaces = ",".join(f"{host.name}={host.interface}" for host in args.hosts
                          if host.interface)
    if interfaces:
        # mpirun gives every rank the same variables: each --mpi-node finds its host.
        job_env = dict(job_env, PS_LAUNCH_INTERFACES=interfaces)
    secret = {}
    for name, value in job_env.items():
        if name == KEY_VAR:
            argv += ["-x", name]  # the value comes from mpirun's environment, not its arguments
            secret[name] = value
        elif name != "PS_KEY_FILE":
            argv += ["-x", f"{name}={value}"]
    argv += [sys.executable, os.path.abspath(__file__), "--mpi-node", "--"] + args.command
    launch = Launch("mpirun", argv, secret, 2 * kill_timeout + 2, from_mpirun=True)
    return Plan([(node.name, dict(job_env, **node.env())) for node in nodes], [launch])


def plan_slurm(args, nodes: List[Node], job_env: Dict[str, str]) -> Plan:
    # srun exports our environment (with job_env) to every task. On SIGTERM it has Slurm
    # signal the tasks, SIGKILL following after the cluster's KillWait.
    argv = ["srun", f"--ntasks={len(nodes)}", "--overcommit", "--kill-on-bad-exit=1",
            "--export=ALL", "--job-name=" + os.path.basename(args.command[0])]
    argv += args.srun_arg
    argv += [sys.executable, os.path.abspath(__file__), "--slurm-node", "--"] + args.command
    launch = Launch("srun", argv, job_env, 2 * args.grace + 30, from_mpirun=True)
    return Plan([(node.name, dict(job_env, **node.env())) for node in nodes], [launch])


PLANNERS = {"local": plan_local, "ssh": plan_ssh, "mpi": plan_mpi, "slurm": plan_slurm}


def print_plan(plan: Plan) -> None:
    for name, env in plan.node_envs:
        print(f"[{name}] env: " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()
                                            if k != KEY_VAR))
    for launch in plan.launches:
        print(f"[{launch.name}] run: {shlex.join(launch.argv)}")


# ---------------------------------------------------------------------------------------------
# The node under mpirun

# How a task learns its place: (flag, starter, rank variable, size variable).
TASK_STARTERS = {"mpi": ("--mpi-node", "mpirun", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
                 "slurm": ("--slurm-node", "srun", "SLURM_PROCID", "SLURM_NTASKS")}


def run_mpi_node(command: List[str], starter: str = "mpi") -> int:
    """Runs one node of a job started by mpirun (or srun): its role comes from its MPI rank
    (its SLURM_PROCID).

    The node stays in this process's group, which mpirun made for the rank: mpirun signals
    that whole group when it stops the job (slurmd signals every process of the task). The
    node's failure is reported on stdout for the launcher; when the job is stopped, nothing is
    reported.
    """
    flag, program, rank_var, size_var = TASK_STARTERS[starter]
    key = os.environ.pop(KEY_VAR, None)
    key_file = write_key_file(key) if key else None
    try:
        return _run_task(command, starter, key_file[1] if key_file else None)
    finally:
        if key_file:
            remove_key_file(*key_file)


def _run_task(command: List[str], starter: str, key_file: Optional[str]) -> int:
    flag, program, rank_var, size_var = TASK_STARTERS[starter]
    if key_file:
        os.environ["PS_KEY_FILE"] = key_file
    try:
        num_servers = int(os.environ["DMLC_NUM_SERVER"])
        num_workers = int(os.environ["DMLC_NUM_WORKER"])
        rank = int(os.environ[rank_var])
        size = int(os.environ[size_var])
    except (KeyError, ValueError) as e:
        raise UsageError(f"{flag} needs DMLC_NUM_SERVER, DMLC_NUM_WORKER, {rank_var} and "
                         f"{size_var} as numbers (bad or missing: {e})")
    nodes = job_nodes(num_servers, num_workers)
    if size != len(nodes) or not 0 <= rank < size:
        raise UsageError(f"{program} started {size} tasks but the job has {len(nodes)} nodes "
                         f"(1 scheduler, {num_servers} servers, {num_workers} workers)")
    node = nodes[rank]
    node_env = dict(os.environ, **node.env())
    interface = local_interface(os.environ.pop("PS_LAUNCH_INTERFACES", ""))
    node_env.pop("PS_LAUNCH_INTERFACES", None)
    if interface:
        node_env["DMLC_INTERFACE"] = interface
    console = Console(notes=False)
    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signo, _frame: stopping.append(signo))
    try:
        proc = subprocess.Popen(command, env=node_env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    except OSError as e:
        code, how = start_failure(e, command)
    else:
        pumps = start_pumps(proc, lambda line, is_err: console.write(node.name, line, is_err))
        code, how = exit_status(proc.wait())
        drain(pumps)
    if code and not stopping:
        # Under the name its lines carry by now: its rank's, once it reported it.
        console.write(console.label(node.name), EXIT_REPORT + f" {code} {how}".encode(), False)
    return code


def local_interface(interfaces: str) -> Optional[str]:
    """The interface of the first `host=interface` entry of `interfaces` whose host is this
    machine (one of its addresses can be bound), or None."""
    for entry in filter(None, interfaces.split(",")):
        host, _, interface = entry.rpartition("=")
        try:
            infos = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)
        except OSError:
            continue
        for *_, address in infos:
            with socket.socket() as s:
                try:
                    s.bind((address[0], 0))
                    return interface
                except OSError:
                    pass
    return None


# ---------------------------------------------------------------------------------------------
# Command line

class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(USAGE_EXIT_CODE, f"{self.prog}: error: {message} (see --help)\n")


def _count(text: str) -> int:
    if not re.fullmatch(r"[0-9]+", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number >= 0")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds")
    return value


def _port(text: str) -> int:
    if not re.fullmatch(r"[0-9]+", text) or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)")
    return int(text)


def _env_pair(text: str) -> Tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    if name in JOB_VARIABLES:
        raise argparse.ArgumentTypeError(f"{name} is set by the launcher")
    return name, value


def _ssh_option(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z]+=.*", text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not OPTION=VALUE (an ssh -o option, e.g. IdentityFile=~/.ssh/key)")
    return text


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="launch.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="%(prog)s -s S -n W [options] -- CMD [ARGS...]\n"
              "       %(prog)s --mpi-node|--slurm-node -- CMD [ARGS...]")
    parser.add_argument("-s", "--num-servers", type=_count, metavar="S",
                        help="number of servers")
    parser.add_argument("-n", "--num-workers", type=_count, metavar="W",
                        help="number of workers")
    parser.add_argument("--launcher", choices=LAUNCHERS, default="local",
                        help="how to start the nodes (default: local)")
    parser.add_argument("-H", "--hostfile", metavar="FILE",
                        help="hosts for --launcher ssh (required) or mpi")
    parser.add_argument("--env", type=_env_pair, action="append", default=[],
                        metavar="NAME=VALUE", help="set a variable on every node (repeatable)")
    parser.add_argument("--ssh-option", type=_ssh_option, action="append", default=[],
                        metavar="OPTION=VALUE",
                        help="pass `-o OPTION=VALUE` to ssh (repeatable), e.g. "
                             "IdentityFile=~/.ssh/key or User=me")
    parser.add_argument("--scheduler-host", metavar="HOST",
                        help="the scheduler's address, DMLC_PS_ROOT_URI (default: 127.0.0.1; "
                             "ssh: this machine's address towards the first host; "
                             "mpi with a hostfile: the first host; slurm: the allocation's "
                             "first host, else this machine's name)")
    parser.add_argument("--scheduler-port", type=_port, metavar="PORT",
                        help="the scheduler's port, DMLC_PS_ROOT_PORT (default: a free port)")
    parser.add_argument("--timeout", type=_seconds, metavar="SEC",
                        help="stop the job after SEC seconds, with exit status 124")
    parser.add_argument("--max-restarts", type=_count, default=0, metavar="N",
                        help="when a node fails and the job cannot go on, start the whole job "
                             "again, up to N times (default: 0); with PS_CHECKPOINT_DIR it "
                             "resumes from the latest checkpoint")
    parser.add_argument("--grace", type=_seconds, default=2.0, metavar="SEC",
                        help="seconds from SIGTERM to SIGKILL when stopping nodes (default: 2)")
    parser.add_argument("--log-dir", metavar="DIR",
                        help="also write each node's output to DIR/<node>.log")
    parser.add_argument("--insecure", action="store_true",
                        help="no job key: the job's connections are neither authenticated nor "
                             "encrypted")
    parser.add_argument("--key-file", metavar="FILE",
                        help="use this job key file (mode 0600) instead of making a key "
                             "(local launcher)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print each node's environment and the commands to run; "
                             "start nothing")
    parser.add_argument("--verbose", action="store_true",
                        help="say what the launcher starts, signals and sees exit")
    parser.add_argument("--restart-failed-servers", action="store_true",
                        help="under PS_REPLICATION >= 2, start a server that dies again: it "
                             "takes the dead one's place and copies its key ranges from live "
                             "replicas (local and ssh launchers)")
    parser.add_argument("--srun-arg", action="append", default=[], metavar="ARG",
                        help="pass ARG to srun (repeatable), e.g. --srun-arg=--partition=gpu")
    parser.add_argument("--mpi-node", action="store_true",
                        help="run as one rank of mpirun (what --launcher mpi starts)")
    parser.add_argument("--slurm-node", action="store_true",
                        help="run as one task of srun (what --launcher slurm starts)")
    return parser


def parse_args(argv: List[str]) -> argparse.Namespace:
    """Parses and checks the command line; raises UsageError or exits on bad input."""
    parser = make_parser()
    # Everything after the first "--" is the command, even words that look like options.
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    args.command = argv[split + 1:]
    if not args.command:
        raise UsageError("missing command: give it after --, as in "
                         "launch.py -s 1 -n 2 -- ./my_job")
    if args.mpi_node or args.slurm_node:
        return args
    if args.num_servers is None or args.num_workers is None:
        raise UsageError("give the number of servers and workers: -s S -n W")
    for flag, count in (("-s", args.num_servers), ("-n", args.num_workers)):
        if count > MAX_NODES:
            raise UsageError(f"{flag} {count} is more than the {MAX_NODES} nodes of a role a job "
                             "may have")
    if args.insecure and args.key_file:
        raise UsageError("--insecure and --key-file contradict each other")
    if args.key_file:
        if args.launcher != "local":
            raise UsageError("--key-file is for --launcher local; the other launchers hand "
                             "their own key to every host")
        try:
            mode = os.stat(args.key_file).st_mode
        except OSError as e:
            raise UsageError(f"--key-file {args.key_file}: {e.strerror}")
        if mode & 0o077:
            raise UsageError(f"--key-file {args.key_file} is open to other users (chmod 600 it)")
        args.key_file = os.path.abspath(args.key_file)
    if args.launcher == "ssh" and not args.hostfile:
        raise UsageError("--launcher ssh needs -H/--hostfile")
    if args.launcher == "local" and args.hostfile:
        raise UsageError("-H/--hostfile is for --launcher ssh or mpi")
    if args.ssh_option and args.launcher != "ssh":
        raise UsageError("--ssh-option is for --launcher ssh")
    if args.srun_arg and args.launcher != "slurm":
        raise UsageError("--srun-arg is for --launcher slurm")
    if args.restart_failed_servers and args.launcher not in ("local", "ssh"):
        raise UsageError("--restart-failed-servers is for --launcher local or ssh: mpirun and "
                         "srun start and stop their ranks together")
    if args.launcher == "slurm" and args.hostfile:
        raise UsageError("--launcher slurm takes its hosts from the Slurm allocation, not -H")
    args.hosts = parse_hostfile(args.hostfile) if args.hostfile else []
    if args.launcher == "mpi" and any(host.port for host in args.hosts):
        raise UsageError("ports in the hostfile are ssh ports, for --launcher ssh; "
                         "mpirun uses its own ssh settings")
    if args.scheduler_host is None:
        args.scheduler_host = default_scheduler_host(args.launcher, args.hosts)
    args.port_given = args.scheduler_port is not None
    if args.scheduler_port is None:
        args.scheduler_port = free_port(args.scheduler_host)
    return args


def main(argv: List[str]) -> int:
    try:
        args = parse_args(argv)
        if args.mpi_node:
            return run_mpi_node(args.command, "mpi")
        if args.slurm_node:
            return run_mpi_node(args.command, "slurm")
    except UsageError as e:
        print(f"launch.py: error: {e}", file=sys.stderr)
        return USAGE_EXIT_CODE
    nodes = job_nodes(args.num_servers, args.num_workers)
    key = key_folder = None
    if not args.insecure and not args.key_file and not args.dry_run:
        key = new_job_key()
    job_env = {
        "DMLC_NUM_SERVER": str(args.num_servers),
        "DMLC_NUM_WORKER": str(args.num_workers),
        "DMLC_PS_ROOT_URI": args.scheduler_host,
        "DMLC_PS_ROOT_PORT": str(args.scheduler_port),
        "DMLC_JOB_CLUSTER": args.launcher,
        "PS_REPORT_RANK": "1",
        **dict(args.env),
    }
    if args.key_file:
        job_env["PS_KEY_FILE"] = args.key_file
    elif key and args.launcher in ("local", "ssh"):
        key_folder, job_env["PS_KEY_FILE"] = write_key_file(key)  # ssh: for the scheduler
        if args.launcher == "ssh":
            job_env[KEY_VAR] = key  # goes down stdin to every other node
    elif key:
        job_env[KEY_VAR] = key  # mpi, slurm: the environment of the ranks
    elif not args.insecure:
        job_env["PS_KEY_FILE"] = "<a job key file made at start>"  # --dry-run
    try:
        return _run_plan(args, nodes, job_env)
    finally:
        if key_folder:
            remove_key_file(key_folder, job_env["PS_KEY_FILE"])


def _run_plan(args, nodes: List[Node], job_env: Dict[str, str]) -> int:
    plan = PLANNERS[args.launcher](args, nodes, job_env)
    if args.dry_run:
        print_plan(plan)
        return 0
    # A log per node, and one for mpirun's own messages.
    names = [name for name, _ in plan.node_envs] + [launch.name for launch in plan.launches]
    console = Console(args.log_dir, tuple(dict.fromkeys(names)))
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    restarts = 0
    try:
        while True:
            job = Job(plan.launches, console, args.timeout, args.verbose, spare_servers(job_env),
                      deadline, args.restart_failed_servers)
            code = job.run()
            if code == 0 or not job.restartable or restarts >= args.max_restarts:
                return code
            restarts += 1
            resume = " from the latest checkpoint" if job_env.get(
                "PS_CHECKPOINT_DIR", os.environ.get("PS_CHECKPOINT_DIR")) else ""
            console.note(f"restart {restarts} of {args.max_restarts}: {job.reason}; "
                         f"starting the whole job again{resume}")
            if not args.port_given:
                # The old port may still be held by the stopped scheduler's connections.
                args.scheduler_port = free_port(args.scheduler_host)
                job_env["DMLC_PS_ROOT_PORT"] = str(args.scheduler_port)
                plan = PLANNERS[args.launcher](args, nodes, job_env)
            console.forget_ranks()
    finally:
        console.close()


def spare_servers(job_env: Dict[str, str]) -> int:
    """How many servers the job survives losing: PS_REPLICATION - 1 (the nodes check it)."""
    value = job_env.get("PS_REPLICATION", os.environ.get("PS_REPLICATION", "1"))
    try:
        return max(0, int(value) - 1)
    except ValueError:
        return 0  # the nodes say what is wrong with it


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
