#!/usr/bin/env python3
"""A simulated cluster on one machine: N hosts, each a network namespace, joined by a switch.

Every host is a network namespace with a loopback and an interface eth0 with its own address
in a private subnet (10.250.0.0/24) that exists only inside these namespaces; eth0 is one end
of a veth pair whose other end is a port of a bridge in a switch namespace. Each link is
limited to a rate in both directions (htb on the host's eth0 and on its switch port), so a
job between hosts is bound by the link like on a real network. Traffic between processes of
the same host goes over its loopback, unlimited, as on a real machine. Every host runs an
sshd on port 22 of its address; a hostfile lists the hosts.

What it models: bandwidth, a shared switch, links that go down and come back, rates that
change. What it does not: latency or loss (tc has no netem here) and separate CPUs (all hosts
share this machine's cores).

As a tool (needs root and `ip netns`):

    netcluster.py [--hosts 6] [--rate 1gbit] [--host-rate 3=100mbit] [--extra-interface 5]
                  [--fault 2:3:down=1.5] [--fault 1:2:rate=10mbit] [--keep-going] -- CMD ...

creates the cluster, runs CMD on host 0 (the head) in this working directory, and removes
everything it made when CMD ends, on error, and on SIGINT, SIGTERM or SIGHUP. CMD sees
NETCLUSTER_HOSTFILE (every host but the head, one address a line), NETCLUSTER_ALL_HOSTFILE
(every host), NETCLUSTER_SSH_CONFIG (an ssh_config for the hosts: `ssh -F "$..." ADDR`),
NETCLUSTER_SSH_OPTIONS (the same as `-o` options, space separated, for launch.py
--ssh-option) and OMPI_MCA_plm_rsh_agent (so that mpirun reaches the hosts). --fault
AT:HOST:down=SECONDS takes HOST's link down AT seconds after CMD started, for SECONDS;
AT:HOST:rate=RATE sets its link's rate then. Exit status: CMD's, or 2 for bad usage, 1 if the
cluster could not be made (the reason on one line).

As a module (the tests and bench/cluster_lr):

    with Cluster(hosts=6, rate="100mbit") as c:
        c.run(0, ["python3", "tracker/launch.py", "--launcher", "ssh", "-H", c.hostfile, ...])
        c.link_down(3, seconds=1.5)    # or link_down(3) ... link_up(3)
        c.set_rate(2, "10mbit")

Nothing is made in this machine's own network namespace: every interface is created inside
the namespaces. The namespaces are named nclN-<pid>-...; a cluster whose owner process died
without cleaning up (SIGKILL) is removed by the next cluster that starts.
"""

import argparse
import atexit
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional

SUBNET = "10.250.0"        # host i is SUBNET.(10 + i)/24
EXTRA_SUBNET = "10.251.0"  # --extra-interface: an address no other host reaches
PREFIX = "ncl"
SSHD_SECONDS = 20          # deadline for every sshd to listen (a loaded machine is slow)
STOP_SECONDS = 3           # from SIGTERM to SIGKILL for what runs in a host at the end
RATE = re.compile(r"[0-9]+(\.[0-9]+)?([kmg]?bit)")
RATE_UNITS = {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9}


class ClusterError(Exception):
    """The cluster cannot be made or used here; the message says why."""


def unavailable() -> Optional[str]:
    """Why a cluster cannot be made on this machine, or None if it can."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("ip", "tc"):
        if not _which(tool):
            return f"needs {tool} (iproute2)"
    if not _which("sshd"):
        return "needs sshd (openssh-server)"
    probe = f"{PREFIX}probe-{os.getpid()}"
    try:
        subprocess.run(["ip", "netns", "add", probe], check=True, capture_output=True,
                       timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        err = getattr(e, "stderr", b"") or b""
        return "`ip netns add` does not work here: " + (err.decode().strip() or str(e))
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=30)
    return None


def _which(tool: str) -> Optional[str]:
    return shutil.which(tool, path=os.pathsep.join(
        [os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/bin"]))


def _ip(*args: str) -> None:
    """Runs ip (or tc, when args start with "tc"); raises ClusterError with its message."""
    argv = list(args) if args[0] == "tc" else ["ip", *args]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise ClusterError(f"{shlex.join(argv)}: {p.stderr.strip()}")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def check_rate(text: str) -> str:
    """A tc rate such as 1gbit, 100mbit, 500kbit."""
    if not RATE.fullmatch(text):
        raise ClusterError(f"bad rate {text!r}: expected a number and kbit, mbit or gbit, "
                           "e.g. 100mbit")
    return text


def rate_bytes_per_second(rate: str) -> float:
    match = RATE.fullmatch(check_rate(rate))
    return float(rate[:match.start(2)]) * RATE_UNITS[match[2]] / 8


def remove_stale() -> None:
    """Removes the namespaces of clusters whose owner process is gone."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                         timeout=30).stdout
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        match = re.fullmatch(PREFIX + r"(?:probe-|\d+-)?(\d+)-\w+|" + PREFIX + r"probe-(\d+)",
                             name)
        if not match:
            continue
        owner = int(match[1] or match[2])
        if owner != os.getpid() and not _alive(owner):
            _kill_namespace(name)


def _kill_namespace(ns: str) -> None:
    """Stops every process in namespace ns (SIGTERM, then SIGKILL) and deletes it."""
    def pids():
        p = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True,
                           timeout=30)
        return [int(x) for x in p.stdout.split() if x.isdigit()]

    for sig in (signal.SIGTERM, signal.SIGKILL):
        left = pids()
        for pid in left:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + STOP_SECONDS
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = [pid for pid in pids() if _alive(pid)]
        if not left:
            break
    subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


_clusters_made = 0
_lock = threading.Lock()


class Cluster:
    """N hosts in network namespaces behind one switch, with an sshd each. Not thread-safe,
    but for link_down(seconds=...), which restores the link from a thread of its own.

    Construction does nothing; start() (or `with`) makes the cluster and close() removes
    every namespace, process and file it made. close() is idempotent and also runs at exit
    and on SIGTERM or SIGHUP when start() ran on the main thread.
    """

    def __init__(self, hosts: int = 6, rate: str = "1gbit",
                 host_rates: Optional[Dict[int, str]] = None,
                 extra_interface: Optional[List[int]] = None, ssh: bool = True):
        if hosts < 1 or hosts > 200:
            raise ClusterError(f"hosts={hosts}: between 1 and 200")
        self.size = hosts
        self.rate = check_rate(rate)
        self.host_rates = {i: check_rate(r) for i, r in (host_rates or {}).items()}
        for i in self.host_rates:
            self._check_host(i)
        self.extra_interface = list(extra_interface or [])
        for i in self.extra_interface:
            self._check_host(i)
        self.ssh = ssh
        self._tag = None
        self._namespaces: List[str] = []
        self._sshd: List[subprocess.Popen] = []
        self._tmp: Optional[tempfile.TemporaryDirectory] = None
        self._timers: List[threading.Timer] = []
        self._previous_handlers = {}
        self._closed = False

    # -- addresses and files ------------------------------------------------------------------

    def _check_host(self, i: int) -> None:
        if not 0 <= i < self.size:
            raise ClusterError(f"host {i}: the cluster has hosts 0 to {self.size - 1}")

    def address(self, i: int) -> str:
        """Host i's address on the cluster's network."""
        self._check_host(i)
        return f"{SUBNET}.{10 + i}"

    def extra_address(self, i: int) -> str:
        """The address of host i's extra interface (mgmt0), which no other host reaches."""
        return f"{EXTRA_SUBNET}.{10 + i}"

    def namespace(self, i: int) -> str:
        self._check_host(i)
        return f"{self._tag}-h{i}"

    @property
    def switch(self) -> str:
        return f"{self._tag}-sw"

    @property
    def dir(self) -> str:
        """The cluster's temporary directory (keys, hostfiles, logs); removed by close()."""
        return self._tmp.name

    @property
    def hostfile(self) -> str:
        """Every host but the head (host 0), one address a line."""
        return os.path.join(self.dir, "hosts")

    @property
    def all_hostfile(self) -> str:
        """Every host, the head first."""
        return os.path.join(self.dir, "all_hosts")

    @property
    def ssh_config(self) -> str:
        return os.path.join(self.dir, "ssh_config")

    def ssh_options(self) -> List[str]:
        """The ssh_config's settings as `-o` values (launch.py --ssh-option)."""
        return [f"IdentityFile={os.path.join(self.dir, 'user_key')}", "IdentitiesOnly=yes",
                "StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "LogLevel=ERROR",
                "ConnectTimeout=10"]

    def env(self) -> Dict[str, str]:
        """What a command on the cluster needs to reach the hosts (see the module docstring)."""
        return {"NETCLUSTER_HOSTFILE": self.hostfile,
                "NETCLUSTER_ALL_HOSTFILE": self.all_hostfile,
                "NETCLUSTER_SSH_CONFIG": self.ssh_config,
                "NETCLUSTER_SSH_OPTIONS": " ".join(self.ssh_options()),
                "OMPI_MCA_plm_rsh_agent": "ssh -F " + self.ssh_config}

    # -- making and removing ------------------------------------------------------------------

    def __enter__(self) -> "Cluster":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        global _clusters_made
        reason = unavailable()
        if reason:
            raise ClusterError(f"cannot make a simulated cluster: {reason}")
        remove_stale()
        with _lock:
            _clusters_made += 1
            self._tag = f"{PREFIX}{_clusters_made}-{os.getpid()}"
        atexit.register(self.close)
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGHUP):
                if signal.getsignal(sig) in (signal.SIG_DFL, None):
                    self._previous_handlers[sig] = signal.signal(sig, _exit_on_signal)
        self._tmp = tempfile.TemporaryDirectory(prefix="netcluster_")
        try:
            self._make_network()
            self._write_files()
            if self.ssh:
                self._start_sshd()
        except BaseException:
            self.close()
            raise

    def _add_namespace(self, ns: str) -> None:
        _ip("netns", "add", ns)
        self._namespaces.append(ns)
        _ip("-n", ns, "link", "set", "lo", "up")

    def _make_network(self) -> None:
        sw = self.switch
        self._add_namespace(sw)
        _ip("-n", sw, "link", "add", "br0", "type", "bridge")
        _ip("-n", sw, "link", "set", "br0", "up")
        for i in range(self.size):
            ns = self.namespace(i)
            self._add_namespace(ns)
            if i in self.extra_interface:
                # Made first, so that it comes first in the host's interface list: a node that
                # took the first address it finds would advertise one nobody reaches.
                _ip("-n", sw, "link", "add", f"m{i}", "type", "veth", "peer", "name", "mgmt0",
                    "netns", ns)
                _ip("-n", ns, "addr", "add", f"{self.extra_address(i)}/24", "dev", "mgmt0")
                _ip("-n", ns, "link", "set", "mgmt0", "up")
                _ip("-n", sw, "link", "set", f"m{i}", "up")  # not on the bridge
            _ip("-n", sw, "link", "add", f"p{i}", "type", "veth", "peer", "name", "eth0",
                "netns", ns)
            _ip("-n", sw, "link", "set", f"p{i}", "master", "br0")
            _ip("-n", ns, "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
            rate = self.host_rates.get(i, self.rate)
            for where, dev in ((ns, "eth0"), (sw, f"p{i}")):
                _ip("tc", "-n", where, "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb",
                    "default", "10")
                _ip("tc", "-n", where, "class", "add", "dev", dev, "parent", "1:", "classid",
                    "1:10", *self._htb(rate))
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", sw, "link", "set", f"p{i}", "up")

    @staticmethod
    def _htb(rate: str) -> List[str]:
        return ["htb", "rate", rate, "ceil", rate]

    def _write_files(self) -> None:
        with open(self.hostfile, "w") as f:
            f.write("".join(self.address(i) + "\n" for i in range(1, self.size)))
        with open(self.all_hostfile, "w") as f:
            f.write("".join(self.address(i) + "\n" for i in range(self.size)))
        if not self.ssh:
            return
        for key in ("host_key", "user_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                            os.path.join(self.dir, key)], check=True, timeout=60)
        shutil.copy(os.path.join(self.dir, "user_key.pub"),
                    os.path.join(self.dir, "authorized_keys"))
        with open(self.ssh_config, "w") as f:
            f.write("Host *\n  BatchMode yes\n" +
                    "".join(f"  {o.replace('=', ' ', 1)}\n" for o in self.ssh_options()))

    def _start_sshd(self) -> None:
        sshd = _which("sshd")
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
        logs = []
        for i in range(self.size):
            log_path = os.path.join(self.dir, f"sshd-{i}.log")
            logs.append(log_path)
            with open(log_path, "wb") as log:
                self._sshd.append(subprocess.Popen(
                    ["ip", "netns", "exec", self.namespace(i), sshd, "-D", "-e", "-f",
                     "/dev/null", "-o", "Port=22", "-o", f"ListenAddress={self.address(i)}",
                     "-o", f"HostKey={os.path.join(self.dir, 'host_key')}",
                     "-o", f"AuthorizedKeysFile={os.path.join(self.dir, 'authorized_keys')}",
                     "-o", f"PidFile={os.path.join(self.dir, f'sshd-{i}.pid')}",
                     "-o", "StrictModes=no", "-o", "UsePAM=no", "-o", "PermitRootLogin=yes",
                     "-o", "MaxStartups=100", "-o", "AcceptEnv=*"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log))
        deadline = time.monotonic() + SSHD_SECONDS
        for i, (proc, log_path) in enumerate(zip(self._sshd, logs)):
            while True:
                with open(log_path, "rb") as f:
                    text = f.read().decode(errors="replace")
                if "Server listening on" in text:
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise ClusterError(f"sshd of host {i} did not start: {text.strip()}")
                time.sleep(0.02)

    def close(self) -> None:
        """Removes everything the cluster made. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for timer in self._timers:
            timer.cancel()
        for proc in self._sshd:
            if proc.poll() is None:
                proc.terminate()
        for proc in self._sshd:
            try:
                proc.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        # Hosts first (whatever still runs there: nodes, orted), then the switch.
        for ns in reversed(self._namespaces):
            _kill_namespace(ns)
        self._namespaces = []
        if self._tmp:
            self._tmp.cleanup()
        for sig, handler in self._previous_handlers.items():
            if signal.getsignal(sig) is _exit_on_signal:
                signal.signal(sig, handler)
        atexit.unregister(self.close)

    # -- running things -----------------------------------------------------------------------

    def command(self, i: int, argv: List[str]) -> List[str]:
        """argv run on host i."""
        return ["ip", "netns", "exec", self.namespace(i), *argv]

    def popen(self, i: int, argv: List[str], env: Optional[Dict[str, str]] = None,
              **kwargs) -> subprocess.Popen:
        """Starts argv on host i with the cluster's variables (env()) and `env` added."""
        full = dict(os.environ, **self.env(), **(env or {}))
        return subprocess.Popen(self.command(i, argv), env=full, **kwargs)

    def run(self, i: int, argv: List[str], env: Optional[Dict[str, str]] = None,
            timeout: Optional[float] = None, **kwargs) -> subprocess.CompletedProcess:
        """Runs argv on host i to its end (like subprocess.run)."""
        full = dict(os.environ, **self.env(), **(env or {}))
        return subprocess.run(self.command(i, argv), env=full, timeout=timeout, **kwargs)

    def processes(self, i: int) -> List[int]:
        """The processes running on host i, but for its sshd."""
        out = subprocess.run(["ip", "netns", "pids", self.namespace(i)], capture_output=True,
                             text=True, timeout=30).stdout
        sshd = {p.pid for p in self._sshd}
        return [pid for pid in map(int, out.split()) if pid not in sshd and _alive(pid)]

    def kill_processes(self, i: int) -> None:
        """Kills what runs on host i, but for its sshd."""
        for pid in self.processes(i):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    # -- faults -------------------------------------------------------------------------------

    def link_down(self, i: int, seconds: Optional[float] = None) -> None:
        """Takes host i's link down (its switch port: the host loses its carrier, nothing
        crosses in either direction); with `seconds`, brings it back that much later."""
        _ip("-n", self.switch, "link", "set", f"p{i}", "down")
        if seconds is not None:
            timer = threading.Timer(seconds, self._link_up_quietly, args=(i,))
            timer.daemon = True
            self._timers.append(timer)
            timer.start()

    def _link_up_quietly(self, i: int) -> None:
        if not self._closed:
            try:
                self.link_up(i)
            except ClusterError:
                pass  # the cluster is being removed

    def link_up(self, i: int) -> None:
        _ip("-n", self.switch, "link", "set", f"p{i}", "up")

    def link_is_up(self, i: int) -> bool:
        out = subprocess.run(["ip", "-n", self.switch, "-o", "link", "show", f"p{i}"],
                             capture_output=True, text=True, timeout=30).stdout
        return "state UP" in out or ",UP" in out.split(">")[0]

    def link_bytes(self, i: int) -> Dict[str, int]:
        """Bytes host i's link has carried so far, headers included, as its htb classes count
        them: "out" (sent by host i) and "in" (sent to it by the switch)."""
        counts = {}
        for key, where, dev in (("out", self.namespace(i), "eth0"), ("in", self.switch, f"p{i}")):
            out = subprocess.run(["tc", "-n", where, "-s", "class", "show", "dev", dev],
                                 capture_output=True, text=True, timeout=30).stdout
            match = re.search(r"Sent (\d+) bytes", out)
            if not match:
                raise ClusterError(f"no htb counters on {dev} of host {i}: {out.strip()}")
            counts[key] = int(match[1])
        return counts

    def set_rate(self, i: int, rate: str) -> None:
        """Changes host i's link rate, both directions, at once (a job may be running)."""
        check_rate(rate)
        for where, dev in ((self.namespace(i), "eth0"), (self.switch, f"p{i}")):
            _ip("tc", "-n", where, "class", "change", "dev", dev, "parent", "1:", "classid",
                "1:10", *self._htb(rate))
        self.host_rates[i] = rate


def _exit_on_signal(signo, _frame):
    raise SystemExit(128 + signo)


# ---------------------------------------------------------------------------------------------
# Command line

def _parse_fault(text: str):
    match = re.fullmatch(r"([0-9.]+):([0-9]+):(down=([0-9.]+)|rate=(\S+))", text)
    if not match:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected AT:HOST:down=SECONDS or AT:HOST:rate=RATE, e.g. 2:3:down=1.5")
    if match[5]:
        try:
            check_rate(match[5])
        except ClusterError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return float(match[1]), int(match[2]), float(match[4]) if match[4] else None, match[5]


def _parse_host_rate(text: str):
    host, _, rate = text.partition("=")
    if not host.isdigit() or not rate:
        raise argparse.ArgumentTypeError(f"{text!r}: expected HOST=RATE, e.g. 3=100mbit")
    try:
        return int(host), check_rate(rate)
    except ClusterError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def main(argv: List[str]) -> int:
    class Parser(argparse.ArgumentParser):
        def error(self, message):
            self.exit(2, f"netcluster.py: error: {message}\n")

    parser = Parser(prog="netcluster.py", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=6, help="number of hosts (default 6)")
    parser.add_argument("--rate", default="1gbit", help="every link's rate (default 1gbit)")
    parser.add_argument("--host-rate", type=_parse_host_rate, action="append", default=[],
                        metavar="HOST=RATE", help="another rate for one host's link")
    parser.add_argument("--extra-interface", type=int, action="append", default=[],
                        metavar="HOST", help="give HOST a second interface, mgmt0, first in "
                        "its list, with an address no other host reaches")
    parser.add_argument("--fault", type=_parse_fault, action="append", default=[],
                        metavar="AT:HOST:down=S|rate=R", help="a link fault while CMD runs")
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    command = argv[split + 1:]
    if not command:
        parser.error("missing command: give it after --")
    try:
        check_rate(args.rate)
        cluster = Cluster(args.hosts, args.rate, dict(args.host_rate), args.extra_interface)
        for _, host, _, _ in args.fault:
            cluster._check_host(host)
    except ClusterError as e:
        parser.error(str(e))
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    try:
        cluster.start()
    except ClusterError as e:
        print(f"netcluster.py: error: {e}", file=sys.stderr)
        return 1
    try:
        proc = cluster.popen(0, command)
        started = time.monotonic()
        for at, host, down, rate in sorted(args.fault):
            while proc.poll() is None and time.monotonic() < started + at:
                time.sleep(min(0.05, max(0.0, started + at - time.monotonic())))
            if proc.poll() is not None:
                break
            if down is not None:
                cluster.link_down(host, down)
            else:
                cluster.set_rate(host, rate)
        return proc.wait()
    except SystemExit as e:
        print(f"netcluster.py: stopped by signal {int(e.code) - 128}; removing the cluster",
              file=sys.stderr)
        return int(e.code)
    finally:
        cluster.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
