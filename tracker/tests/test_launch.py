"""Tests of tracker/launch.py: real jobs of real processes on this machine, started by the
local launcher, by the ssh launcher through a throwaway sshd on 127.0.0.1, and by the mpi
launcher through Open MPI's mpirun.

Run from the repository root: python3 -m unittest discover -s tracker/tests -v

Most jobs run node_program.py (next to this file), which prints what it was given and can
fail, sleep, ignore SIGTERM, start a child and write its pids to a file: the tests check
that those pids are gone, never a process-name search. They wait on conditions with
deadlines, never for fixed times.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
LAUNCH = REPO / "tracker" / "launch.py"
NODE = [sys.executable, str(HERE / "node_program.py")]
# The build folder make test runs (build/, or build/asan etc. for sanitizer builds).
PS_JOB = REPO / os.environ.get("PS_BUILD_DIR", "build") / "tests" / "integration" / "ps_job"

sys.path.insert(0, str(LAUNCH.parent))
import launch  # noqa: E402  (the module under test, for its parsers)

# Deadlines; generous, because the machine may be busy. Tests take far less when all is well.
JOB_SECONDS = 30     # a launcher to finish
STOPPED_SECONDS = 8  # a stopped job's processes to be gone
NODE_SLEEP = "60"    # nodes that should be stopped sleep this long


def wait_until(condition, seconds):
    """Polls condition() until it holds or `seconds` pass; returns its last value."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def alive(pid):
    """Whether the process runs. A zombie has exited: it counts as gone (orphans may never
    be reaped where the init process does not reap them)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Launcher:
    """A launch.py process started by a test; its output goes to files."""

    def __init__(self, args, cwd, out_dir):
        self.out_path = Path(out_dir) / "stdout"
        self.err_path = Path(out_dir) / "stderr"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.started = time.monotonic()
            self.proc = subprocess.Popen([sys.executable, str(LAUNCH), *args], cwd=cwd,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=err)

    def finish(self, seconds=JOB_SECONDS):
        """Waits for the exit; returns (exit status, seconds since start)."""
        try:
            code = self.proc.wait(seconds)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"launcher still running after {seconds} s; "
                                 f"stderr:\n{self.stderr}") from None
        return code, time.monotonic() - self.started

    @property
    def stdout(self):
        return self.out_path.read_text()

    @property
    def stderr(self):
        return self.err_path.read_text()


class LaunchTestCase(unittest.TestCase):
    """Gives each test a temporary directory, a pid directory for node_program.py, and a way
    to run the launcher; whatever a failed test leaves running is killed afterwards.
    """

    def setUp(self):
        temp = tempfile.TemporaryDirectory(prefix="launch_test_")
        self.addCleanup(temp.cleanup)
        self.tmp = Path(temp.name)
        self.pid_dir = self.tmp / "pids"
        self.pid_dir.mkdir()
        self.addCleanup(self._kill_leftovers)
        self.launchers = []

    def _kill_leftovers(self):
        for pid in self.recorded_pids() + [l.proc.pid for l in self.launchers]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        for launcher in self.launchers:
            launcher.proc.wait()

    def start(self, *args, cwd=REPO):
        launcher = Launcher([str(a) for a in args], cwd, self.tmp)
        self.launchers.append(launcher)
        return launcher

    def run_job(self, *args, cwd=REPO):
        """Runs the launcher to its end; checks that it succeeded; returns it."""
        launcher = self.start(*args, cwd=cwd)
        code, _ = launcher.finish()
        self.assertEqual(code, 0, f"stdout:\n{launcher.stdout}\nstderr:\n{launcher.stderr}")
        return launcher

    def node_args(self, *args):
        return ["--", *NODE, "--pid-dir", self.pid_dir, *args]

    def recorded_pids(self):
        return [int(pid) for path in self.pid_dir.glob("*.pids")
                for pid in path.read_text().split()]

    def wait_for_nodes(self, count):
        self.assertTrue(
            wait_until(lambda: len(list(self.pid_dir.glob("*.pids"))) == count, JOB_SECONDS),
            f"{count} nodes did not start")

    def check_failing_worker_stops_the_job(self, *launcher_args):
        """Worker 1 exits 3: the launcher exits 3 within seconds, naming it, and no node is left."""
        launcher = self.start(*launcher_args, "-s", 1, "-n", 2, *self.node_args(
            "--child", "--sleep", NODE_SLEEP, "--fail", "3=3", "--wait-for", 4))
        code, seconds = launcher.finish()
        self.assertEqual(code, 3, launcher.stderr)
        self.assertLess(seconds, 10)
        self.assertIn("launch.py: exit status 3: worker 1 exited with code 3\n", launcher.stderr)
        self.assert_all_gone(4)

    def assert_all_gone(self, count):
        """Every process of the job's `count` nodes (their pid files) is, or soon is, gone."""
        pids = self.recorded_pids()
        self.assertEqual(len(list(self.pid_dir.glob("*.pids"))), count)
        if not wait_until(lambda: not any(alive(pid) for pid in pids), STOPPED_SECONDS):
            self.fail(f"still running: {[pid for pid in pids if alive(pid)]}")

    def assert_prefixed_output(self, stdout, roles):
        """Each node printed its DMLC_ROLE, and the task id of its place, under its name."""
        for task_id, name in enumerate(roles):
            role = name.split()[0]
            self.assertIn(f"[{name}] DMLC_ROLE={role}\n", stdout)
            self.assertIn(f"[{name}] DMLC_TASK_ID={task_id}\n", stdout)


ONE_SERVER_TWO_WORKERS = ("scheduler", "server 0", "worker 0", "worker 1")


class CommandLineTest(LaunchTestCase):

    def assert_usage_error(self, args, message):
        result = subprocess.run([sys.executable, str(LAUNCH), *args], capture_output=True,
                                text=True, timeout=JOB_SECONDS)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertEqual(len(result.stderr.splitlines()), 1, result.stderr)
        self.assertIn(message, result.stderr)

    def test_bad_input_is_a_one_line_error(self):
        hostfile = self.tmp / "hosts"
        hostfile.write_text("# our machines\nnode1:2222 slots=2\n\nnode2 slots=x\n")
        bad_interface = self.tmp / "bad_interface"
        bad_interface.write_text("node1 interface=a/b\n")
        job = ["-s", "1", "-n", "1"]
        cases = [
            (job, "missing command"),
            (job + ["echo"], "unrecognized arguments: echo"),
            (job + ["--env", "NOEQUALS", "--", "true"], "'NOEQUALS' is not NAME=VALUE"),
            (job + ["--env", "DMLC_ROLE=x", "--", "true"], "DMLC_ROLE is set by the launcher"),
            (job + ["--launcher", "pbs", "--", "true"], "invalid choice: 'pbs'"),
            (job + ["--launcher", "slurm", "-H", hostfile, "--", "true"],
             "--launcher slurm takes its hosts from the Slurm allocation, not -H"),
            (job + ["--srun-arg=--partition=x", "--", "true"],
             "--srun-arg is for --launcher slurm"),
            (job + ["--env", "PS_REPORT_RANK=0", "--", "true"],
             "PS_REPORT_RANK is set by the launcher"),
            (["-s", "x", "-n", "1", "--", "true"], "'x' is not a number"),
            (["-n", "1", "--", "true"], "-s S -n W"),
            (job + ["--launcher", "ssh", "--", "true"], "needs -H/--hostfile"),
            (job + ["--launcher", "ssh", "-H", hostfile, "--", "true"],
             f"{hostfile}:4: bad line 'node2 slots=x'"),
            (job + ["--launcher", "ssh", "-H", self.tmp / "none", "--", "true"],
             "cannot read hostfile"),
            (job + ["--launcher", "ssh", "-H", bad_interface, "--", "true"],
             f"{bad_interface}:1: bad line 'node1 interface=a/b'"),
            (job + ["--ssh-option", "IdentityFile=k", "--", "true"],
             "--ssh-option is for --launcher ssh"),
            (["-s", "1", "-n", "99999999", "--", "true"],
             "-n 99999999 is more than the 100000 nodes of a role a job may have"),
            (job + ["--insecure", "--key-file", "k", "--", "true"],
             "--insecure and --key-file contradict each other"),
            (job + ["--key-file", self.tmp / "none", "--", "true"],
             "No such file or directory"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                self.assert_usage_error([str(a) for a in args], message)

    def test_hostfile_lines_and_round_robin_by_slots(self):
        hostfile = self.tmp / "hosts"
        hostfile.write_text("a:2222 slots=2  # two nodes in a row\n\n# none here\nb\n")
        hosts = launch.parse_hostfile(str(hostfile))
        self.assertEqual(hosts, [launch.Host("a", 2222, 2), launch.Host("b", None, 1)])
        nodes = launch.job_nodes(2, 3)[1:]
        self.assertEqual([(node.name, host.name) for node, host in launch.spread(nodes, hosts)],
                         [("server 0", "a"), ("server 1", "a"), ("worker 0", "b"),
                          ("worker 1", "a"), ("worker 2", "a")])


class DryRunTest(LaunchTestCase):

    def dry_run(self, *args):
        """Runs the launcher with --dry-run; returns {(name, "env" or "run"): text}."""
        out = self.run_job("--dry-run", *args).stdout
        entries = {}
        for line in out.splitlines():
            name, _, rest = line[1:].partition("] ")
            kind, _, text = rest.partition(": ")
            entries[name, kind] = text
        self.assertEqual(len(entries), len(out.splitlines()), out)
        self.assertEqual(self.recorded_pids(), [])  # nothing started
        return entries

    def test_local_prints_environment_and_command_of_each_node(self):
        entries = self.dry_run("-s", 1, "-n", 2, "--scheduler-port", 4321, "--env", "A=x y",
                               *self.node_args())
        self.assertEqual(len(entries), 8)
        for task_id, name in enumerate(ONE_SERVER_TWO_WORKERS):
            self.assertEqual(
                entries[name, "env"],
                "DMLC_NUM_SERVER=1 DMLC_NUM_WORKER=2 DMLC_PS_ROOT_URI=127.0.0.1 "
                "DMLC_PS_ROOT_PORT=4321 DMLC_JOB_CLUSTER=local PS_REPORT_RANK=1 A='x y' "
                "PS_KEY_FILE='<a job key file made at start>' "
                f"DMLC_ROLE={name.split()[0]} DMLC_TASK_ID={task_id}")
            self.assertEqual(entries[name, "run"],
                             f"{sys.executable} {NODE[1]} --pid-dir {self.pid_dir}")

    def test_ssh_sends_nodes_to_hosts_in_turn(self):
        hostfile = self.tmp / "hosts"
        hostfile.write_text("10.0.0.1:2222 slots=2\n10.0.0.2\n")
        entries = self.dry_run("-s", 1, "-n", 2, "--launcher", "ssh", "-H", hostfile,
                               "--scheduler-host", "10.0.0.9", "--ssh-option", "User=me",
                               "--", "./job")
        self.assertIn("DMLC_NODE_HOST=10.0.0.9", entries["scheduler", "env"])
        self.assertEqual(entries["scheduler", "run"], "./job")
        for name, host, port in [("server 0", "10.0.0.1", "-p 2222 "),
                                 ("worker 0", "10.0.0.1", "-p 2222 "),
                                 ("worker 1", "10.0.0.2", "")]:
            self.assertIn("DMLC_PS_ROOT_URI=10.0.0.9 ", entries[name, "env"])
            self.assertTrue(entries[name, "env"].endswith(f" DMLC_NODE_HOST={host}"))
            run = entries[name, "run"]
            self.assertTrue(run.startswith(f"ssh -o BatchMode=yes -o User=me {port}{host} "), run)
            self.assertIn(f"cd {REPO} ", run)
            self.assertIn(f"DMLC_NODE_HOST={host}; ", run)

    def test_hostfile_interface_gives_the_nodes_there_dmlc_interface(self):
        hostfile = self.tmp / "hosts"
        hostfile.write_text("10.0.0.1 interface=eth1\n10.0.0.2\n")
        entries = self.dry_run("-s", 1, "-n", 1, "--launcher", "ssh", "-H", hostfile,
                               "--scheduler-host", "10.0.0.9", "--", "./job")
        self.assertTrue(entries["server 0", "env"].endswith(" DMLC_INTERFACE=eth1"),
                        entries["server 0", "env"])
        self.assertNotIn("DMLC_NODE_HOST", entries["server 0", "env"])
        self.assertTrue(entries["worker 0", "env"].endswith(" DMLC_NODE_HOST=10.0.0.2"))
        # Under mpi every rank gets the list and takes its own host's entry.
        run = self.dry_run("-s", 1, "-n", 1, "--launcher", "mpi", "-H", hostfile,
                           "--", "./job")["mpirun", "run"]
        self.assertIn(" -x PS_LAUNCH_INTERFACES=10.0.0.1=eth1 ", run)
        self.assertEqual(launch.local_interface("10.0.0.1=eth1,127.0.0.1=lo"), "lo")
        self.assertIsNone(launch.local_interface("10.0.0.1=eth1"))

    def test_mpi_runs_every_node_through_one_mpirun(self):
        entries = self.dry_run("-s", 1, "-n", 2, "--launcher", "mpi", "--", "./job")
        self.assertEqual(len(entries), 5)
        self.assertTrue(entries["worker 1", "env"].endswith(" DMLC_ROLE=worker DMLC_TASK_ID=3"))
        run = entries["mpirun", "run"]
        self.assertTrue(run.startswith("mpirun --oversubscribe "), run)
        self.assertIn(" -np 4 ", run)
        self.assertEqual(" --allow-run-as-root " in run, os.geteuid() == 0)
        self.assertIn(" -x DMLC_NUM_WORKER=2 ", run)
        self.assertTrue(run.endswith(f" {LAUNCH} --mpi-node -- ./job"), run)

    def test_slurm_runs_every_node_through_one_srun(self):
        entries = self.dry_run("-s", 1, "-n", 2, "--launcher", "slurm", "--srun-arg=-p",
                               "--srun-arg=test", "--", "./job")
        self.assertEqual(len(entries), 5)
        self.assertIn(" DMLC_JOB_CLUSTER=slurm ", entries["worker 1", "env"])
        # The scheduler's address is a host name here (no allocation: this machine's).
        self.assertIn(f" DMLC_PS_ROOT_URI={socket.gethostname()} ", entries["worker 1", "env"])
        run = entries["srun", "run"]
        self.assertTrue(run.startswith("srun --ntasks=4 --overcommit --kill-on-bad-exit=1 "), run)
        self.assertTrue(run.endswith(f" -p test {sys.executable} {LAUNCH} --slurm-node -- ./job"),
                        run)


def check_job_key(test, stdout, names, key_files_gone=True):
    """Every node got the same job key in a file of mode 600 named by PS_KEY_FILE, no
    process had it on its command line, and the files are gone after the job."""
    hashes, files = set(), set()
    for name in names:
        fields = dict(line[len(name) + 3:].split("=", 1) for line in stdout.splitlines()
                      if line.startswith(f"[{name}] key_"))
        test.assertEqual(fields.get("key_mode"), "600", f"{name}: {stdout}")
        test.assertEqual(fields.get("key_in_cmdline"), "0", f"{name}: {stdout}")
        hashes.add(fields["key_hash"])
        files.add(fields["key_file"])
    test.assertEqual(len(hashes), 1, stdout)
    if key_files_gone:
        for path in files:
            test.assertFalse(os.path.exists(path), f"{path} is left behind")


class LocalLauncherTest(LaunchTestCase):

    def test_every_node_gets_the_job_key_in_a_private_file_never_on_a_command_line(self):
        launcher = self.run_job("-s", 1, "-n", 2, *self.node_args("--show-key"))
        check_job_key(self, launcher.stdout, ONE_SERVER_TWO_WORKERS)
        self.assertNotIn("key_hash", self.run_job("-s", 1, "-n", 2, "--insecure",
                                                  *self.node_args("--show-key")).stdout)

    def test_insecure_job_runs_and_says_it_is_unauthenticated(self):
        if not PS_JOB.exists():
            self.fail(f"{PS_JOB.relative_to(REPO)} is missing: run `make` first")
        launcher = self.run_job("-s", 1, "-n", 2, "--insecure", "--timeout", JOB_SECONDS / 2,
                                "--", PS_JOB)
        self.assertIn("this job is unauthenticated", launcher.stderr)
        secure = self.run_job("-s", 1, "-n", 2, "--timeout", JOB_SECONDS / 2, "--", PS_JOB)
        self.assertNotIn("unauthenticated", secure.stderr)

    def test_ps_job_runs_with_one_server_and_two_workers(self):
        if not PS_JOB.exists():
            self.fail(f"{PS_JOB.relative_to(REPO)} is missing: run `make` first")
        self.run_job("-s", 1, "-n", 2, "--timeout", JOB_SECONDS / 2, "--", PS_JOB)

    def test_scheduler_given_by_host_name(self):
        if not PS_JOB.exists():
            self.fail(f"{PS_JOB.relative_to(REPO)} is missing: run `make` first")
        for host in ("localhost", socket.gethostname()):
            with self.subTest(host=host):
                out = self.run_job("-s", 1, "-n", 2, "--scheduler-host", host, "--timeout",
                                   JOB_SECONDS / 2, "--", PS_JOB).stdout
                self.assertIn("[worker 1] worker 1 got", out)

    def test_lines_are_labelled_by_the_rank_a_node_reports(self):
        # Worker 0 (launched first) reports rank 2, worker 2 rank 0: their lines after the
        # report carry that rank, in the console and in the log files.
        script = ('echo "before $DMLC_TASK_ID"; '
                  'if [ "$DMLC_ROLE" = worker ]; then echo "@@slackline-rank worker $((4 - '
                  '$DMLC_TASK_ID))"; echo "@@slackline-rank worker $((4 - $DMLC_TASK_ID))" >&2; '
                  'fi; echo "after $DMLC_TASK_ID"; echo "err $DMLC_TASK_ID" >&2')
        launcher = self.run_job("-s", 1, "-n", 3, "--log-dir", self.tmp / "logs", "--", "sh",
                                "-c", script)
        for task, rank in ((2, 2), (3, 1), (4, 0)):
            self.assertIn(f"[worker {rank}] after {task}\n", launcher.stdout)
            self.assertIn(f"[worker {rank}] err {task}\n", launcher.stderr)
            self.assertIn(f"after {task}\n", (self.tmp / "logs" / f"worker-{rank}.log").read_text())
        self.assertNotIn("@@slackline", launcher.stdout + launcher.stderr)
        # A real node reports the rank the scheduler gave it.
        if PS_JOB.exists():
            out = self.run_job("-s", 1, "-n", 3, "--", PS_JOB).stdout
            for rank in range(3):
                self.assertIn(f"[worker {rank}] worker rank {rank} of 3\n", out)

    def test_nodes_get_their_environment_and_output_is_prefixed(self):
        launcher = self.run_job("-s", 1, "-n", 2, "--env", "GREETING=hello world",
                                "--env", "EMPTY=", "--env", "EQ=a=b",
                                *self.node_args("--print-env", "GREETING",
                                                "--print-env", "EMPTY", "--print-env", "EQ"))
        self.assert_prefixed_output(launcher.stdout, ONE_SERVER_TWO_WORKERS)
        for name in ONE_SERVER_TWO_WORKERS:
            for line in ["DMLC_NUM_SERVER=1", "DMLC_NUM_WORKER=2", "DMLC_PS_ROOT_URI=127.0.0.1",
                         "DMLC_JOB_CLUSTER=local", "GREETING=hello world", "EMPTY=", "EQ=a=b"]:
                self.assertIn(f"[{name}] {line}\n", launcher.stdout)
            self.assertIn(f"[{name}] stderr of {name.split()[0]}\n", launcher.stderr)
        self.assertEqual(launcher.stderr.count("\n"), 4, launcher.stderr)

    def test_log_dir_has_each_nodes_output(self):
        logs = self.tmp / "logs"
        self.run_job("-s", 1, "-n", 2, "--log-dir", logs, *self.node_args())
        self.assertEqual(sorted(p.name for p in logs.iterdir()),
                         ["scheduler.log", "server-0.log", "worker-0.log", "worker-1.log"])
        text = (logs / "worker-1.log").read_text()
        self.assertIn("DMLC_ROLE=worker\nDMLC_TASK_ID=3\n", text)
        self.assertIn("stderr of worker\n", text)
        self.assertNotIn("[", text)

    def test_failing_worker_stops_the_job_with_its_exit_code(self):
        self.check_failing_worker_stops_the_job()

    def test_node_killed_by_signal_fails_the_job(self):
        launcher = self.start("-s", 1, "-n", 1, *self.node_args(
            "--sleep", NODE_SLEEP, "--fail", "1=-9", "--wait-for", 3))
        code, _ = launcher.finish()
        self.assertEqual(code, 128 + 9, launcher.stderr)
        self.assertIn("exit status 137: server 0 was killed by SIGKILL\n", launcher.stderr)
        self.assert_all_gone(3)

    def assert_signal_stops_the_job(self, sig):
        launcher = self.start("-s", 1, "-n", 2, *self.node_args("--child", "--sleep", NODE_SLEEP))
        self.wait_for_nodes(4)
        launcher.proc.send_signal(sig)
        code, _ = launcher.finish(STOPPED_SECONDS)
        self.assertEqual(code, 128 + sig, launcher.stderr)
        self.assertIn(f"launch.py: got {sig.name}; stopping the job\n", launcher.stderr)
        self.assertIn(f"launch.py: exit status {128 + sig}: got {sig.name}\n", launcher.stderr)
        self.assert_all_gone(4)

    def test_sigint_to_launcher_stops_the_job(self):
        self.assert_signal_stops_the_job(signal.SIGINT)

    def test_sigterm_to_launcher_stops_the_job(self):
        self.assert_signal_stops_the_job(signal.SIGTERM)

    def test_timeout_stops_the_job_and_sigkill_follows_ignored_sigterm(self):
        launcher = self.start("-s", 1, "-n", 2, "--timeout", 3, "--grace", 0.2, *self.node_args(
            "--child", "--ignore-sigterm", "--sleep", NODE_SLEEP))
        self.wait_for_nodes(4)
        code, seconds = launcher.finish()
        self.assertEqual(code, 124, launcher.stderr)
        self.assertLess(seconds, 8)
        self.assertIn("launch.py: exit status 124: timed out after 3 s\n", launcher.stderr)
        self.assert_all_gone(4)

    def test_max_restarts_starts_the_whole_job_again_saying_why(self):
        # Worker 1 fails in the first two runs: the third run succeeds.
        launcher = self.start("-s", 1, "-n", 2, "--max-restarts", 2, *self.node_args(
            "--fail", "3=3", "--fail-runs", 2))
        code, _ = launcher.finish()
        self.assertEqual(code, 0, launcher.stderr)
        for n in (1, 2):
            self.assertIn(f"launch.py: restart {n} of 2: worker 1 exited with code 3; starting "
                          "the whole job again\n", launcher.stderr)
        self.assertEqual(launcher.stdout.count("[scheduler] DMLC_ROLE=scheduler\n"), 3)
        ports = set(re.findall(r"\[scheduler\] DMLC_PS_ROOT_PORT=(\d+)", launcher.stdout))
        self.assertEqual(len(ports), 3, launcher.stdout)  # a new port for each run

    def test_restarts_run_out_and_the_last_failure_is_the_exit_status(self):
        launcher = self.start("-s", 1, "-n", 1, "--max-restarts", 1, *self.node_args(
            "--fail", "2=5"))
        code, _ = launcher.finish()
        self.assertEqual(code, 5, launcher.stderr)
        self.assertEqual(launcher.stderr.count("restart "), 1, launcher.stderr)
        self.assertTrue(launcher.stderr.endswith(
            "launch.py: exit status 5: worker 0 exited with code 5\n"), launcher.stderr)

    def test_a_stop_asked_for_is_not_restarted(self):
        launcher = self.start("-s", 1, "-n", 1, "--max-restarts", 3, "--timeout", 2,
                              *self.node_args("--sleep", NODE_SLEEP))
        code, _ = launcher.finish()
        self.assertEqual(code, 124, launcher.stderr)
        self.assertNotIn("restart", launcher.stderr)

    def test_what_a_successful_node_leaves_behind_is_killed(self):
        self.run_job("-s", 1, "-n", 1, *self.node_args("--child"))
        self.assert_all_gone(3)


class SshLauncherTest(LaunchTestCase):
    """Runs the nodes through a real sshd on 127.0.0.1, started for these tests."""

    @classmethod
    def setUpClass(cls):
        sshd = shutil.which("sshd", path=os.pathsep.join([os.environ.get("PATH", ""),
                                                          "/usr/sbin", "/sbin"]))
        if not sshd or not shutil.which("ssh"):
            raise AssertionError("ssh tests need sshd and ssh: install openssh-server and "
                                 "openssh-client (make deps)")
        cls.keys = tempfile.TemporaryDirectory(prefix="launch_test_sshd_")
        keys = Path(cls.keys.name)
        for key in ("host_key", "user_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", keys / key],
                           check=True)
        shutil.copy(keys / "user_key.pub", keys / "authorized_keys")
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
        cls.port = free_port()
        cls.sshd_log = keys / "sshd.log"
        with open(cls.sshd_log, "wb") as log:
            cls.sshd = subprocess.Popen(
                [sshd, "-D", "-e", "-f", "/dev/null", "-o", f"Port={cls.port}",
                 "-o", "ListenAddress=127.0.0.1", "-o", f"HostKey={keys / 'host_key'}",
                 "-o", f"AuthorizedKeysFile={keys / 'authorized_keys'}",
                 "-o", f"PidFile={keys / 'sshd.pid'}", "-o", "StrictModes=no",
                 "-o", "UsePAM=no", "-o", "PermitRootLogin=yes"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)

        def listening():
            if cls.sshd.poll() is not None:
                raise AssertionError(f"sshd exited: {cls.sshd_log.read_text()}")
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", cls.port)) == 0

        try:
            if not wait_until(listening, JOB_SECONDS):
                raise AssertionError(f"sshd is not listening: {cls.sshd_log.read_text()}")
        except AssertionError:
            cls.tearDownClass()
            raise
        cls.ssh_options = []
        for option in [f"IdentityFile={keys / 'user_key'}", "IdentitiesOnly=yes",
                       "StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null",
                       "LogLevel=ERROR"]:
            cls.ssh_options += ["--ssh-option", option]

    @classmethod
    def tearDownClass(cls):
        cls.sshd.terminate()
        cls.sshd.wait()
        cls.keys.cleanup()

    def ssh_job(self, *args):
        hostfile = self.tmp / "hosts"
        hostfile.write_text(f"127.0.0.1:{self.port} slots=2\n")
        return ["--launcher", "ssh", "-H", hostfile, *self.ssh_options, *args]

    def test_nodes_run_over_ssh_in_this_directory_with_the_environment(self):
        workdir = self.tmp / "work dir"
        workdir.mkdir()
        launcher = self.run_job(*self.ssh_job("-s", 1, "-n", 2, "--env", "QUOTED=it's \"$x\"",
                                              *self.node_args("--print-env", "QUOTED")),
                                cwd=workdir)
        self.assert_prefixed_output(launcher.stdout, ONE_SERVER_TWO_WORKERS)
        for name in ONE_SERVER_TWO_WORKERS:
            for line in ["DMLC_NODE_HOST=127.0.0.1", "DMLC_JOB_CLUSTER=ssh",
                         "QUOTED=it's \"$x\"", f"cwd={workdir}"]:
                self.assertIn(f"[{name}] {line}\n", launcher.stdout)
            self.assertIn(f"[{name}] stderr of {name.split()[0]}\n", launcher.stderr)

    def test_authenticated_job_over_ssh_and_the_key_reaches_every_host_privately(self):
        launcher = self.run_job(*self.ssh_job("-s", 1, "-n", 2, *self.node_args("--show-key")))
        check_job_key(self, launcher.stdout, ONE_SERVER_TWO_WORKERS)
        if not PS_JOB.exists():
            self.fail(f"{PS_JOB.relative_to(REPO)} is missing: run `make` first")
        # ssh passes on only what the launcher exports: the sanitizers' options too.
        sanitizer_env = [arg for name in ("TSAN_OPTIONS", "ASAN_OPTIONS") if name in os.environ
                         for arg in ("--env", f"{name}={os.environ[name]}")]
        out = self.run_job(*self.ssh_job("-s", 2, "-n", 2, "--timeout", JOB_SECONDS / 2,
                                         *sanitizer_env, "--", PS_JOB))
        self.assertIn("[worker 1] worker 1 got", out.stdout)
        self.assertNotIn("unauthenticated", out.stderr)

    def test_failing_worker_stops_the_remote_nodes(self):
        launcher = self.start(*self.ssh_job("-s", 1, "-n", 2, *self.node_args(
            "--child", "--sleep", NODE_SLEEP, "--fail", "3=3", "--wait-for", 4)))
        code, seconds = launcher.finish()
        self.assertEqual(code, 3, launcher.stderr)
        self.assertLess(seconds, 10)
        self.assertIn("launch.py: exit status 3: worker 1 exited with code 3\n", launcher.stderr)
        self.assert_all_gone(4)


class MpiLauncherTest(LaunchTestCase):

    def setUp(self):
        super().setUp()
        if not shutil.which("mpirun"):
            self.fail("mpi tests need mpirun: install openmpi-bin (make deps)")

    def test_ranks_take_roles_and_output_is_prefixed(self):
        launcher = self.run_job("--launcher", "mpi", "-s", 1, "-n", 2, "--env", "A=b c",
                                *self.node_args("--print-env", "A"))
        self.assert_prefixed_output(launcher.stdout, ONE_SERVER_TWO_WORKERS)
        for name in ONE_SERVER_TWO_WORKERS:
            self.assertIn(f"[{name}] DMLC_JOB_CLUSTER=mpi\n", launcher.stdout)
            self.assertIn(f"[{name}] A=b c\n", launcher.stdout)
            self.assertIn(f"[{name}] stderr of {name.split()[0]}\n", launcher.stderr)

    def test_failing_worker_stops_the_job_with_its_exit_code(self):
        self.check_failing_worker_stops_the_job("--launcher", "mpi")

    def test_every_rank_gets_the_job_key_in_a_private_file(self):
        launcher = self.run_job("--launcher", "mpi", "-s", 1, "-n", 2,
                                *self.node_args("--show-key"))
        check_job_key(self, launcher.stdout, ONE_SERVER_TWO_WORKERS)
        self.assertNotIn(launch.KEY_VAR, launcher.stdout)

    def test_sigint_to_launcher_stops_every_rank(self):
        launcher = self.start("--launcher", "mpi", "-s", 1, "-n", 2,
                              *self.node_args("--child", "--sleep", NODE_SLEEP))
        self.wait_for_nodes(4)
        launcher.proc.send_signal(signal.SIGINT)
        code, _ = launcher.finish(STOPPED_SECONDS)
        self.assertEqual(code, 130, launcher.stderr)
        self.assertIn("launch.py: exit status 130: got SIGINT\n", launcher.stderr)
        self.assert_all_gone(4)


if __name__ == "__main__":
    unittest.main()
