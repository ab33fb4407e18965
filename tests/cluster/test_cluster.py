"""Tests on the simulated cluster (netcluster.py): the cluster itself (rates, faults, cleanup),
real multi-host jobs through tracker/launch.py over ssh and mpi, and partitions.

They need root and `ip netns`; without them every test here is skipped, with the reason. Run
from the repository root: python3 -m unittest discover -s tests/cluster -v

Tests wait on conditions with deadlines, never for fixed times; the deadlines are generous,
because the hosts share the machine's cores with whatever else runs.
"""

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
LAUNCH = REPO / "tracker" / "launch.py"
BUILD = REPO / os.environ.get("PS_BUILD_DIR", "build")
CLUSTER_JOB = BUILD / "tests" / "cluster" / "cluster_job"
PS_JOB = BUILD / "tests" / "integration" / "ps_job"
REPLICATION_JOB = BUILD / "tests" / "integration" / "replication_job"

sys.path.insert(0, str(HERE))
import netcluster  # noqa: E402

UNAVAILABLE = netcluster.unavailable()
SKIP = f"simulated cluster tests: {UNAVAILABLE}" if UNAVAILABLE else ""
JOB_SECONDS = 60  # deadline for a job on the cluster (a loaded machine is slow)

# Measures a TCP transfer: the receiver prints the bytes and the seconds from the first byte.
RECEIVER = r"""
import socket, sys, time
s = socket.socket()
s.bind((sys.argv[1], 5001))
s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
n, first = 0, None
while True:
    b = c.recv(1 << 20)
    if not b:
        break
    first = first or time.monotonic()
    n += len(b)
print(n, time.monotonic() - first, flush=True)
"""
SENDER = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], 5001), timeout=60)
s.sendall(b"x" * int(sys.argv[2]))
s.close()
"""


def wait_until(condition, seconds):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def namespaces():
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.split()}


def host_links():
    """This machine's own interfaces: the cluster must leave them alone."""
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return sorted(re.findall(r"^\d+: (\S+?)[:@]", out, re.M))


def measure_mbit(cluster, size, seconds=JOB_SECONDS):
    """Sends `size` bytes from host 0 to host 1; returns the rate seen, in Mbit/s."""
    receiver = cluster.popen(1, [sys.executable, "-c", RECEIVER, cluster.address(1)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout.readline() == "ready\n"
        cluster.run(0, [sys.executable, "-c", SENDER, cluster.address(1), str(size)],
                    check=True, timeout=seconds)
        n, secs = receiver.stdout.readline().split()
        assert int(n) == size, (n, size)
        return size * 8 / float(secs) / 1e6
    finally:
        receiver.kill()
        receiver.communicate()


class StreamedJob:
    """A launch.py run on the head host whose output lines are time-stamped as they arrive."""

    def __init__(self, cluster, args, env=None):
        self.lines = []  # (monotonic seconds, "out" or "err", line)
        self._lock = threading.Lock()
        # ssh and mpirun pass on only what the launcher exports: the sanitizers' options too
        # (their suppressions of libzmq's uninstrumented hand-offs).
        args = list(args)
        at = args.index("--")
        args[at:at] = [arg for name in ("TSAN_OPTIONS", "ASAN_OPTIONS") if name in os.environ
                       for arg in ("--env", f"{name}={os.environ[name]}")]
        self.proc = cluster.popen(0, [sys.executable, str(LAUNCH), *map(str, args)], env=env,
                                  cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self._pumps = [threading.Thread(target=self._pump, args=(s, k), daemon=True)
                       for s, k in ((self.proc.stdout, "out"), (self.proc.stderr, "err"))]
        for pump in self._pumps:
            pump.start()

    def _pump(self, stream, kind):
        for line in stream:
            with self._lock:
                self.lines.append((time.monotonic(), kind, line.rstrip("\n")))

    def seen(self, pattern):
        with self._lock:
            return any(re.search(pattern, line) for _, _, line in self.lines)

    def finish(self, seconds=JOB_SECONDS):
        try:
            code = self.proc.wait(seconds)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the job did not end within {seconds} s:\n{self.text}")
        for pump in self._pumps:
            pump.join(10)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return code

    @property
    def text(self):
        with self._lock:
            return "\n".join(line for _, _, line in self.lines)

    def out(self):
        with self._lock:
            return [(t, line) for t, kind, line in self.lines if kind == "out"]


class ClusterToolTest(unittest.TestCase):
    """The cluster itself: link rates, faults, and that it leaves nothing behind."""

    def setUp(self):
        if SKIP:
            self.skipTest(SKIP)

    def test_links_run_at_their_rate_and_the_rate_changes_while_running(self):
        links = host_links()
        with netcluster.Cluster(hosts=2, rate="40mbit", ssh=False) as c:
            before = [c.link_bytes(i) for i in range(2)]
            mbit = measure_mbit(c, 2_500_000)  # 0.5 s at 40 Mbit/s
            self.assertGreater(mbit, 40 * 0.7)
            self.assertLess(mbit, 40 * 1.1)
            # The links' counters saw the bytes, and their headers: host 0 sent them to the
            # switch, which passed them on to host 1.
            after = [c.link_bytes(i) for i in range(2)]
            for sent in (after[0]["out"] - before[0]["out"], after[1]["in"] - before[1]["in"]):
                self.assertGreater(sent, 2_500_000)
                self.assertLess(sent, 2_500_000 * 1.1)
            self.assertEqual(netcluster.rate_bytes_per_second("40mbit"), 5e6)
            c.set_rate(1, "10mbit")
            mbit = measure_mbit(c, 1_000_000)
            self.assertGreater(mbit, 10 * 0.7)
            self.assertLess(mbit, 10 * 1.1)
            self.assertEqual(host_links(), links)  # nothing made in this namespace

    def test_a_link_that_is_down_passes_nothing_until_it_comes_back(self):
        with netcluster.Cluster(hosts=2, rate="1gbit", ssh=False) as c:
            receiver = c.popen(1, [sys.executable, "-c", RECEIVER, c.address(1)],
                               stdout=subprocess.PIPE, text=True)
            self.addCleanup(receiver.communicate)
            self.addCleanup(receiver.kill)
            self.assertEqual(receiver.stdout.readline(), "ready\n")
            c.link_down(1)
            self.assertFalse(c.link_is_up(1))
            sender = c.popen(0, [sys.executable, "-c", SENDER, c.address(1), "1000"])
            # While the link is down the connection cannot even be made.
            with self.assertRaises(subprocess.TimeoutExpired):
                sender.wait(1.5)
            c.link_up(1)
            self.assertEqual(sender.wait(JOB_SECONDS), 0)
            self.assertEqual(receiver.stdout.readline().split()[0], "1000")
            # A timed fault brings the link back by itself.
            c.link_down(1, seconds=0.5)
            self.assertTrue(wait_until(lambda: c.link_is_up(1), 10))

    def test_tool_runs_the_command_on_the_head_and_removes_everything_on_sigint(self):
        if not CLUSTER_JOB.exists():
            self.fail(f"{CLUSTER_JOB} is missing: run `make` first")
        before, links = namespaces(), host_links()
        with tempfile.TemporaryDirectory(prefix="netcluster_test_") as tmp:
            marker = Path(tmp) / "up"
            script = (f"ip -o -4 addr show eth0 > {marker}.tmp; "
                      f"echo $NETCLUSTER_SSH_CONFIG >> {marker}.tmp; mv {marker}.tmp {marker}; "
                      "ssh -F $NETCLUSTER_SSH_CONFIG $(head -1 $NETCLUSTER_HOSTFILE) sleep 60")
            tool = subprocess.Popen([sys.executable, str(HERE / "netcluster.py"), "--hosts", "2",
                                     "--", "sh", "-c", script], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.addCleanup(lambda: tool.poll() is None and tool.kill())
            self.assertTrue(wait_until(marker.exists, JOB_SECONDS), tool.stderr.read()
                            if tool.poll() is not None else "no marker")
            made = {ns for ns in namespaces() - before if f"-{tool.pid}-" in ns}
            self.assertEqual(len(made), 3, made)  # the switch and two hosts
            text = marker.read_text()
            self.assertIn(f"inet {netcluster.SUBNET}.10/24", text)  # on the head host
            cluster_dir = Path(text.split()[-1]).parent
            self.assertTrue(cluster_dir.is_dir())
            sshd_pids = [int(p.read_text()) for p in cluster_dir.glob("sshd-*.pid")
                         if p.read_text().strip()]
            # The remote sleep runs on host 1, under its sshd.
            self.assertTrue(wait_until(
                lambda: self.pids_in(made) and len(sshd_pids) == 2, JOB_SECONDS))
            inside = self.pids_in(made)
            tool.send_signal(signal.SIGINT)
            _, err = tool.communicate(timeout=JOB_SECONDS)
            self.assertEqual(tool.returncode, 128 + signal.SIGINT, err)
            self.assertIn("netcluster.py: stopped by signal 2; removing the cluster", err)
            self.assertEqual(namespaces() & made, set())
            self.assertFalse(cluster_dir.exists())
            for pid in inside + sshd_pids:
                self.assertFalse(netcluster._alive(pid), f"process {pid} is left")
            self.assertEqual(host_links(), links)

    @staticmethod
    def pids_in(names):
        pids = []
        for ns in names:
            out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True,
                                 text=True).stdout
            pids += [int(p) for p in out.split()]
        return pids

    def test_bad_usage_is_a_one_line_error(self):
        for args, message in [(["--rate", "fast", "--", "true"], "bad rate 'fast'"),
                              (["--fault", "1:9:down=1", "--", "true"], "host 9: the cluster "
                               "has hosts 0 to 5"),
                              (["--fault", "x", "--", "true"], "expected AT:HOST:down=SECONDS"),
                              ([], "missing command")]:
            with self.subTest(args=args):
                p = subprocess.run([sys.executable, str(HERE / "netcluster.py"), *args],
                                   capture_output=True, text=True, timeout=JOB_SECONDS)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertEqual(len(p.stderr.splitlines()), 1, p.stderr)
                self.assertIn(message, p.stderr)


class MultiHostTest(unittest.TestCase):
    """Jobs across six hosts: the scheduler on the head (host 0), two servers and three
    workers on hosts 1 to 5. Host 5 has a second interface, mgmt0, first in its list, whose
    address no other host reaches: its nodes must advertise eth0's.
    """

    cluster = None

    @classmethod
    def setUpClass(cls):
        if SKIP:
            return
        cls.cluster = netcluster.Cluster(hosts=6, rate="1gbit", extra_interface=[5])
        cls.cluster.start()

    @classmethod
    def tearDownClass(cls):
        if cls.cluster:
            cls.cluster.close()

    def setUp(self):
        if SKIP:
            self.skipTest(SKIP)
        for program in (CLUSTER_JOB, PS_JOB):
            if not program.exists():
                self.fail(f"{program} is missing: run `make` first")
        self.addCleanup(self.check_hosts_are_idle)

    def check_hosts_are_idle(self):
        """Whatever a job started on a host has ended (or is ended now, and the test fails)."""
        c = self.cluster
        for i in range(c.size):
            c.link_up(i)
        for i in range(c.size):
            if not wait_until(lambda: not c.processes(i), 20):
                left = c.processes(i)
                c.kill_processes(i)
                self.fail(f"processes left on host {i}: {left}")

    def hostfile(self, lines):
        path = Path(self.cluster.dir) / f"hosts-{self.id().rsplit('.', 1)[-1]}"
        path.write_text("".join(line + "\n" for line in lines))
        return path

    def ssh_args(self, hostfile):
        args = ["--launcher", "ssh", "-H", hostfile]
        for option in self.cluster.ssh_options():
            args += ["--ssh-option", option]
        return args

    def assert_advertised(self, job, placement):
        """Each node (by its launch name) listened on the address of the host it ran on."""
        for name, host in placement.items():
            role = name.split()[0]
            self.assertRegex(job.text, rf"\[{name}\] .* {role} listening on "
                             rf"{re.escape(self.cluster.address(host))}:\d+")

    def assert_exact_sums_and_rank_labels(self, job):
        for rank in range(3):
            self.assertIn(f"[worker {rank}] worker rank {rank} of 3", job.text)
            self.assertIn(f"[worker {rank}] worker {rank}: 20000 sums, 0 wrong", job.text)

    def test_ssh_job_across_hosts(self):
        c = self.cluster
        # Host 5's nodes take their address from eth0 (DMLC_INTERFACE), the others are given
        # their host's address (DMLC_NODE_HOST).
        hosts = [c.address(i) for i in range(1, 5)] + [f"{c.address(5)} interface=eth0"]
        job = StreamedJob(c, [*self.ssh_args(self.hostfile(hosts)), "-s", 2, "-n", 3,
                              "--env", "PS_VERBOSE=1", "--timeout", JOB_SECONDS, "--",
                              CLUSTER_JOB, "--rounds", 5, "--round-ms", 0])
        self.assertEqual(job.finish(), 0, job.text)
        self.assert_exact_sums_and_rank_labels(job)
        self.assert_advertised(job, {"scheduler": 0, "server 0": 1, "server 1": 2,
                                     "worker 0": 3, "worker 1": 4, "worker 2": 5})

    def test_mpi_job_across_hosts(self):
        c = self.cluster
        # Nothing tells the nodes their address: each takes the one on its route to the
        # scheduler (host 5: eth0's, though mgmt0 comes first).
        job = StreamedJob(c, ["--launcher", "mpi", "-H", c.all_hostfile, "-s", 2, "-n", 3,
                              "--env", "PS_VERBOSE=1", "--timeout", JOB_SECONDS, "--",
                              CLUSTER_JOB, "--rounds", 5, "--round-ms", 0])
        self.assertEqual(job.finish(), 0, job.text)
        self.assert_exact_sums_and_rank_labels(job)
        # mpirun puts rank i on the i-th host; ranks go scheduler, servers, workers.
        self.assert_advertised(job, {"scheduler": 0, "server 0": 1, "server 1": 2,
                                     "worker 0": 3, "worker 1": 4, "worker 2": 5})

    def partition_job(self, heartbeat_timeout, rounds):
        c = self.cluster
        hosts = [c.address(i) for i in range(1, 6)]
        return StreamedJob(c, [*self.ssh_args(self.hostfile(hosts)), "-s", 2, "-n", 3,
                               "--env", "PS_HEARTBEAT_INTERVAL=0.25",
                               "--env", f"PS_HEARTBEAT_TIMEOUT={heartbeat_timeout}",
                               "--timeout", JOB_SECONDS, "--", CLUSTER_JOB, "--rounds", rounds,
                               "--round-ms", 40])

    def test_partition_shorter_than_the_heartbeat_timeout_pauses_the_job(self):
        c = self.cluster
        down = 2.0
        job = self.partition_job(heartbeat_timeout=8, rounds=30)
        self.assertTrue(wait_until(lambda: job.seen(r"\] worker \d round 3$"), JOB_SECONDS),
                        job.text)
        c.link_down(4, seconds=down)  # worker 1 by launch order
        self.assertEqual(job.finish(), 0, job.text)
        self.assert_exact_sums_and_rank_labels(job)
        # Every worker waited for the cut-off one: each has a gap of about the partition
        # between two rounds (their lines come over their own links, which stayed up).
        for rank in range(3):
            times = [t for t, line in job.out() if re.fullmatch(
                rf"\[worker {rank}\] worker {rank} round \d+", line)]
            self.assertEqual(len(times), 30)
            gap = max(b - a for a, b in zip(times, times[1:]))
            self.assertGreater(gap, 0.8 * down, f"worker {rank} did not pause")

    def test_partition_longer_than_the_heartbeat_timeout_fails_the_job_naming_the_node(self):
        c = self.cluster
        job = self.partition_job(heartbeat_timeout=2, rounds=1000)
        self.assertTrue(wait_until(lambda: job.seen(r"\] worker \d round 3$"), JOB_SECONDS),
                        job.text)
        c.link_down(4)  # worker 1 by launch order; up again at the end of the test
        started = time.monotonic()
        code = job.finish()
        self.assertNotEqual(code, 0, job.text)
        self.assertLess(time.monotonic() - started, 20)
        self.assertRegex(job.text, rf"worker \d \(node \d+ at {re.escape(c.address(4))}:\d+\) "
                         r"sent no heartbeat for [\d.]+ s")
        self.assertRegex(job.text, r"launch.py: exit status \d+: (scheduler|worker \d|server \d) "
                         r"exited")

    def test_partitioned_server_fails_over_and_is_fenced_when_its_link_comes_back(self):
        # PS_REPLICATION=2 over 3 servers (hosts 1 to 3) and 2 workers (hosts 4 and 5): the
        # cut-off server's ranges move to its replica, the job goes on, the old server exits
        # and the sums stay exact.
        c = self.cluster
        hosts = [c.address(i) for i in range(1, 6)]
        job = StreamedJob(c, [*self.ssh_args(self.hostfile(hosts)), "-s", 3, "-n", 2,
                              "--env", "PS_REPLICATION=2", "--env", "PS_VERBOSE=1",
                              "--env", "PS_HEARTBEAT_INTERVAL=0.25",
                              "--env", "PS_HEARTBEAT_TIMEOUT=2",
                              "--timeout", JOB_SECONDS, "--", REPLICATION_JOB, "--rounds", 1500,
                              "--round-ms", 5])
        self.assertTrue(wait_until(lambda: job.seen(r"\] worker \d round 20$"), JOB_SECONDS),
                        job.text)
        c.link_down(2)  # server 1 by launch order
        self.assertTrue(wait_until(lambda: job.seen(r"failover to epoch 1"), JOB_SECONDS),
                        job.text)
        c.link_up(2)
        self.assertEqual(job.finish(), 0, job.text)
        # The cut-off server exits either way: told it was replaced once its link is back, or,
        # if its own heartbeat timeout ran out first, having lost the scheduler.
        self.assertRegex(job.text, r"error: server \d: (server \d \(node \d+ at "
                                   rf"{re.escape(c.address(2))}:\d+\) was replaced: it was "
                                   r"declared dead|lost contact with the scheduler)")
        self.assertRegex(job.text, r"launch.py: server \d exited with code 1; the job goes on")
        for rank in range(2):
            self.assertRegex(job.text, rf'\[worker \d\] \{{"rank": {rank}, "exact": true')


if __name__ == "__main__":
    unittest.main()
