"""Jobs of real processes: a scheduler, servers and workers of ps_job over loopback."""
import os
import re
import shlex
import signal
import socket
import subprocess
import tempfile
import unittest

from jobs import BUILD_DIR, KV_JOB, ROOT, Job

FAST_HEARTBEAT = {"PS_HEARTBEAT_INTERVAL": "0.2", "PS_HEARTBEAT_TIMEOUT": "2"}


class JobTest(unittest.TestCase):
    def run_job(self, *args, **kwargs):
        job = Job(*args, **kwargs)
        self.addCleanup(job.stop)
        return job

    def test_two_servers_three_workers_count_exactly(self):
        job = self.run_job(2, 3, args=["--rounds", "20"])
        job.wait(timeout=60)
        for n in job.nodes:
            self.assertEqual(n.proc.returncode, 0, job.report())
        for n in job.role("server"):
            self.assertIn("handled 60 requests (expected 60)", n.stdout(), job.report())
        for n in job.role("worker"):
            self.assertRegex(n.stdout(), r"got 40 answers \(expected 40\)")

    def test_verbose_nodes_log_membership_and_their_traffic(self):
        job = self.run_job(1, 1, env={"PS_VERBOSE": "1"}, args=["--rounds", "2"])
        job.wait(timeout=60)
        for n in job.nodes:
            self.assertEqual(n.proc.returncode, 0, job.report())
            self.assertRegex(n.stderr(), rf"{n.name}: sent [1-9]\d* bytes, received [1-9]\d* "
                                         r"bytes, dropped 0 messages")
        self.assertIn("all 2 nodes registered", job.role("scheduler")[0].stderr())

    def test_missing_worker_fails_every_node_within_the_start_timeout(self):
        job = self.run_job(1, 2, env={"PS_START_TIMEOUT": "2"}, start_workers=1)
        took = job.wait(timeout=2 + 10)
        self.assertLess(took, 2 + 8)
        for n in job.nodes:
            self.assertNotEqual(n.proc.returncode, 0, job.report())
            self.assertIn("only 1 of 2 workers registered after 2 s", n.stderr(), job.report())

    def test_killed_worker_ends_the_job_naming_the_node(self):
        # Found from its broken connection, not after the heartbeat timeout (10 s here).
        job = self.run_job(1, 2, args=["--rounds", "100000", "--round-ms", "5"])
        workers = job.role("worker")
        for w in workers:
            self.assertTrue(job.wait_for_output(w, "round 3", 30), job.report())
        victim = workers[1]
        rank = re.search(r"worker rank (\d+)", victim.stdout()).group(1)
        os.killpg(victim.proc.pid, signal.SIGKILL)
        survivors = [n for n in job.nodes if n is not victim]
        took = job.wait(timeout=10)
        self.assertLess(took, 3, job.report())
        for n in survivors:
            self.assertNotEqual(n.proc.returncode, 0, job.report())
            self.assertIn(f"worker {rank} (node", n.stderr(), job.report())
            self.assertIn("its connection broke", n.stderr(), job.report())

    def check_frozen_worker_is_named_to_every_node(self, args=()):
        """Freezes a worker of a ps_job run with "args" once both workers are past round 3: the
        others exit within the heartbeat timeout and a bit, each naming the frozen worker."""
        job = self.run_job(1, 2, env=FAST_HEARTBEAT,
                           args=["--rounds", "100000", "--round-ms", "5", *args])
        workers = job.role("worker")
        for w in workers:
            self.assertTrue(job.wait_for_output(w, "round 3", 30), job.report())
        victim = workers[0]
        rank = re.search(r"worker rank (\d+)", victim.stdout()).group(1)
        os.killpg(victim.proc.pid, signal.SIGSTOP)
        survivors = [n for n in job.nodes if n is not victim]
        try:
            took = job.wait(timeout=2 + 8, nodes=survivors)
        finally:
            os.killpg(victim.proc.pid, signal.SIGKILL)
        self.assertLess(took, 2 + 3, job.report())
        for n in survivors:
            self.assertNotEqual(n.proc.returncode, 0, job.report())
            # The surviving worker blames the frozen one, not the scheduler.
            self.assertIn(f"worker {rank} (node", n.stderr(), job.report())
            self.assertIn("sent no heartbeat", n.stderr(), job.report())
            self.assertNotIn("lost contact with the scheduler", n.stderr(), job.report())

    def test_frozen_worker_is_found_by_heartbeats_and_named_to_every_node(self):
        self.check_frozen_worker_is_named_to_every_node()

    def test_frozen_worker_is_named_to_workers_that_do_not_wait_for_it(self):
        # The surviving worker waits for the servers only, never for the frozen one: it learns
        # of the freeze from the scheduler, which ends the job naming the frozen worker.
        self.check_frozen_worker_is_named_to_every_node(["--round-barrier", "0"])

    def test_worker_that_fails_on_an_error_ends_the_job_at_once_with_its_reason(self):
        job = self.run_job(1, 2, args=["--rounds", "100000", "--round-ms", "5",
                                       "--wait-in-callback", "1"])
        took = job.wait(timeout=30)
        victim = [n for n in job.role("worker") if "worker rank 1 " in n.stdout()][0]
        self.assertEqual(victim.proc.returncode, 1, job.report())
        self.assertIn("Wait called from a response handler", victim.stderr(), job.report())
        for n in job.nodes:
            self.assertNotEqual(n.proc.returncode, 0, job.report())
            if n is victim:
                continue
            self.assertIn("worker 1 (node 11 at ", n.stderr(), job.report())
            self.assertIn("Wait called from a response handler", n.stderr(), job.report())
        # Every node ends within about a second of the failure (heartbeat timeout: 10 s); a node
        # whose answers to the dead one are still queued waits out the linger (2 s) as it closes.
        ends = sorted(n.ended for n in job.nodes)
        self.assertLess(ends[-1] - ends[0], 3.5, job.report())

    def test_finalize_returns_after_every_request_was_handled(self):
        job = self.run_job(2, 2, args=["--rounds", "5", "--count-after-answer", "20"])
        job.wait(timeout=60)
        for n in job.nodes:
            self.assertEqual(n.proc.returncode, 0, job.report())
        for n in job.role("server"):
            self.assertIn("handled 10 requests by Finalize (expected 10)", n.stdout(), job.report())

    def test_busy_scheduler_port_is_a_one_line_error(self):
        with socket.socket() as s:
            s.bind(("0.0.0.0", 0))
            s.listen()
            port = s.getsockname()[1]
            job = self.run_job(1, 1, port=port, start_workers=0)
            scheduler = job.role("scheduler")[0]
            scheduler.proc.wait(timeout=10)
        self.assertEqual(scheduler.proc.returncode, 1)
        err = scheduler.stderr().strip()
        self.assertEqual(err.count("\n"), 0, err)
        self.assertTrue(err.startswith("error: scheduler: "), err)  # its real role
        self.assertIn(f"cannot listen on DMLC_PS_ROOT_PORT={port}", err)
        self.assertIn("in use", err)

    def test_bad_configuration_is_a_one_line_error(self):
        job = self.run_job(1, 1, env={"DMLC_NUM_WORKER": "abc"}, start_workers=0)
        job.wait(timeout=10)
        for n in job.nodes:
            self.assertEqual(n.proc.returncode, 1)
            # The role is known from DMLC_ROLE, though the configuration is bad.
            self.assertEqual(n.stderr().strip(),
                             f"error: {n.role}: DMLC_NUM_WORKER=abc is not a number")

    def test_unknown_filter_name_is_a_one_line_error(self):
        job = self.run_job(1, 1, env={"PS_FILTERS": "key_cache,zsdt"}, program=KV_JOB)
        job.wait(timeout=10)
        for n in job.nodes:
            self.assertEqual(n.proc.returncode, 1, job.report())
            self.assertEqual(n.stderr().strip(),
                             f"error: {n.role}: PS_FILTERS=key_cache,zsdt: unknown filter zsdt "
                             "(known: fixed, key_cache, lz4, zstd)")

    def test_push_pull_job_with_filters_sums_exactly_as_without(self):
        totals = {}
        for filters in ("", "key_cache,zstd"):
            env = {"PS_FILTERS": filters, "PS_VERBOSE": "1"} if filters else {}
            job = self.run_job(2, 2, env=env, args=["--rounds", "8"], program=KV_JOB)
            job.wait(timeout=60)
            for n in job.nodes:
                self.assertEqual(n.proc.returncode, 0, job.report())
            lines = sorted(re.search(r"worker \d+: .*", n.stdout()).group(0)
                           for n in job.role("worker"))
            for line in lines:
                self.assertIn(": 20000 sums, 0 wrong, total ", line)
            totals[filters] = lines
            if filters:
                # PS_VERBOSE=1: each node logs what its filters did at Finalize.
                for n in job.role("worker"):
                    self.assertRegex(n.stderr(), r"KVWorker app 0 customer 0: filter key_cache: "
                                                 r"encoded 18 messages \(18 changed\)")
                    self.assertIn("filter zstd: encoded", n.stderr())
                for n in job.role("server"):
                    self.assertRegex(n.stderr(), r"KVServer app 0: filter key_cache: encoded \d+ "
                                                 r"messages \(0 changed\).*; decoded 18 messages")
        self.assertEqual(totals[""], totals["key_cache,zstd"])

    def test_consistency_is_chosen_through_the_environment(self):
        job = self.run_job(1, 2, env={"PS_CONSISTENCY": "sequential", "PS_VERBOSE": "1"},
                           args=["--rounds", "4"], program=KV_JOB)
        job.wait(timeout=60)
        for n in job.nodes:
            self.assertEqual(n.proc.returncode, 0, job.report())
        for n in job.role("worker"):
            self.assertRegex(n.stdout(), r": 20000 sums, 0 wrong, total ", job.report())
            # PS_VERBOSE=1: each KVWorker reports what its model did at Finalize.
            self.assertRegex(n.stderr(), r"KVWorker app 0 customer 0: consistency sequential, "
                                         r"\d+ requests, at most 1 in flight", job.report())

    def test_bad_consistency_is_a_one_line_error(self):
        job = self.run_job(1, 1, env={"PS_CONSISTENCY": "bounded:x"}, program=KV_JOB)
        job.wait(timeout=10)
        for n in job.nodes:
            self.assertEqual(n.proc.returncode, 1, job.report())
            self.assertEqual(n.stderr().strip(),
                             f"error: {n.role}: PS_CONSISTENCY=bounded:x: the delay x is not a number "
                             "from 0 to 1048576; use sequential, bounded:N or eventual")

    def test_program_built_through_pkg_config_runs_as_a_job(self):
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(BUILD_DIR, "pkgconfig"))
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "ps"], env=env, check=True,
                               stdout=subprocess.PIPE, text=True).stdout
        with tempfile.TemporaryDirectory() as tmp:
            program = os.path.join(tmp, "consumer")
            source = os.path.join(ROOT, "tests", "consumer", "consumer.cc")
            subprocess.run(["g++", source, "-o", program, *shlex.split(flags)], check=True)
            job = self.run_job(1, 2, program=program)
            job.wait(timeout=60)
        for n in job.nodes:
            self.assertEqual(n.proc.returncode, 0, job.report())
        for n in job.role("worker"):
            self.assertIn("pulled 20 40 60", n.stdout(), job.report())


if __name__ == "__main__":
    unittest.main()
