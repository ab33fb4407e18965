"""Server replication (PS_REPLICATION): jobs of real processes that lose servers.

Each test kills (SIGKILL) or freezes (SIGSTOP) a server at a random round of the workers; the
seed is printed, and PS_TEST_SEED replays it."""
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import unittest

from jobs import BUILD_DIR, LAUNCH, SANITIZED, Job, free_port

REPLICATION_JOB = os.path.join(BUILD_DIR, "tests", "integration", "replication_job")
# Deaths are found fast; a sanitizer build moving 200K keys a push can be silent for longer.
FAST = {"PS_HEARTBEAT_INTERVAL": "0.2", "PS_HEARTBEAT_TIMEOUT": "4" if SANITIZED else "1.5"}
SLOW = 4 if SANITIZED else 1  # how much longer a job may take to end
SEED = int(os.environ.get("PS_TEST_SEED", str(random.SystemRandom().randrange(1 << 30))))
print(f"test_replication: PS_TEST_SEED={SEED}", flush=True)


class ReplicationTest(unittest.TestCase):
    def setUp(self):
        self.rng = random.Random(f"{SEED}-{self.id()}")

    def job(self, servers, workers, k, *args, env=None):
        e = dict(FAST, PS_REPLICATION=str(k))
        e.update(env or {})
        job = Job(servers, workers, env=e, args=list(args), program=REPLICATION_JOB)
        self.addCleanup(job.stop)
        return job

    def server_of_rank(self, job, rank):
        for n in job.role("server"):
            self.assertTrue(job.wait_for_output(n, "server rank", 30), job.report())
            if re.search(rf"server rank {rank}\b", n.stdout()):
                return n
        self.fail(f"no server of rank {rank}:\n" + job.report())

    def at_random_round(self, job, rounds):
        """Waits until the first worker reached a random round of the first half."""
        r = self.rng.randrange(5, rounds // 2)
        worker = job.role("worker")[0]
        self.assertTrue(job.wait_for_output(worker, f"round {r}\n", 60), job.report())
        return r

    def assert_exact(self, job, survivors):
        for n in survivors:
            self.assertEqual(n.proc.returncode, 0, f"{n.name}:\n" + job.report())
        for w in job.role("worker"):
            line = [l for l in w.stdout().splitlines() if l.startswith("{")]
            self.assertEqual(len(line), 1, job.report())
            got = json.loads(line[0])
            self.assertTrue(got["exact"], job.report())
            self.assertEqual(got["wrong"], 0, job.report())

    def kill_one_and_check(self, rank, *args):
        rounds = 400
        job = self.job(3, 3, 2, "--rounds", str(rounds), "--round-ms", "2", *args)
        victim = self.server_of_rank(job, rank)
        r = self.at_random_round(job, rounds)
        os.killpg(victim.proc.pid, signal.SIGKILL)
        survivors = [n for n in job.nodes if n is not victim]
        job.wait(timeout=90 * SLOW, nodes=survivors)
        with self.subTest(rank=rank, round=r, seed=SEED):
            self.assert_exact(job, survivors)

    def test_killed_server_of_each_rank_loses_and_doubles_no_push(self):
        for rank in range(3):
            self.kill_one_and_check(rank)

    def test_killed_server_during_synchronous_rounds_changes_no_sum(self):
        # KVServerSyncHandle replicates each round's sum once (replication after aggregation).
        self.kill_one_and_check(self.rng.randrange(3), "--sync", "1")

    def test_frozen_server_is_fenced_when_it_comes_back(self):
        job = self.job(3, 3, 2, "--rounds", "1500", "--round-ms", "2", env={"PS_VERBOSE": "1"})
        victim = self.server_of_rank(job, self.rng.randrange(3))
        self.at_random_round(job, 200)
        os.killpg(victim.proc.pid, signal.SIGSTOP)
        scheduler = job.role("scheduler")[0]
        deadline = time.monotonic() + 30
        while "failover to epoch 1" not in scheduler.stderr() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertIn("failover to epoch 1", scheduler.stderr(), job.report())
        # Back while the job still runs: it must exit, saying it was replaced, and change nothing.
        os.killpg(victim.proc.pid, signal.SIGCONT)
        job.wait(timeout=90 * SLOW)
        self.assertEqual(victim.proc.returncode, 1, job.report())
        self.assertRegex(victim.stderr(), r"error: server \d: server \d \(node \d+ at [^)]+\) "
                                          r"was replaced: it was declared dead \(.*sent no "
                                          r"heartbeat.*\), and server \d \(node \d+", job.report())
        self.assert_exact(job, [n for n in job.nodes if n is not victim])

    def wait_job(self, job, timeout, nodes=None):
        try:
            job.wait(timeout=timeout, nodes=nodes)
        except subprocess.TimeoutExpired:
            self.fail("the job did not end:\n" + job.report())

    def wait_for_log(self, node, text, timeout, job):
        deadline = time.monotonic() + timeout
        while text not in node.stderr() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertIn(text, node.stderr(), job.report())

    def replace_then_kill_another(self, *args, spare=False, rounds=3000, round_ms=2):
        """Kills a server; a replacement joins (a spare started before the death, or started
        after it) and syncs; then a second original server dies, one that shares a key range
        with the first: only the restored factor keeps that range."""
        job = self.job(3, 3, 2, "--rounds", str(rounds), "--round-ms", str(round_ms), *args)
        first = self.rng.randrange(3)
        victim = self.server_of_rank(job, first)
        second = self.server_of_rank(job, (first + self.rng.choice([1, 2])) % 3)
        scheduler = job.role("scheduler")[0]
        if spare:
            replacement = job.add("server")
            self.wait_for_log(scheduler, "waits to replace the next server that dies", 30, job)
        r = self.at_random_round(job, min(400, rounds))
        os.killpg(victim.proc.pid, signal.SIGKILL)
        if not spare:
            # Started at once, as a launcher restarting it would: perhaps before its death is
            # known.
            replacement = job.add("server")
        self.wait_for_log(scheduler, "holds its key ranges", 60, job)
        self.assertIn(f"server rank {first}", replacement.stdout(), job.report())
        worker = job.role("worker")[0]
        self.assertNotIn(f"round {rounds - 1}\n", worker.stdout(), "too late: " + job.report())
        os.killpg(second.proc.pid, signal.SIGKILL)
        survivors = [n for n in job.nodes if n not in (victim, second)]
        self.wait_job(job, 120 * SLOW, survivors)
        with self.subTest(first=first, round=r, seed=SEED):
            self.assert_exact(job, survivors)
            self.assertIn("every key range is on 2 servers again", scheduler.stderr(),
                          job.report())

    def test_replacement_server_restores_the_replication_factor(self):
        self.replace_then_kill_another()

    def test_replacement_under_synchronous_rounds_restores_the_factor(self):
        self.replace_then_kill_another("--sync", "1")

    def test_spare_server_takes_the_place_of_the_next_that_dies(self):
        self.replace_then_kill_another(spare=True)

    def test_replacement_copies_large_ranges_in_pieces(self):
        # 70000 keys a range: the copies come in two pieces each (KVServer::kCopyChunkKeys).
        self.replace_then_kill_another("--keys", "210000", "--in-flight", "2", rounds=600,
                                       round_ms=0)

    def test_frozen_server_back_after_its_replacement_synced_changes_nothing(self):
        job = self.job(3, 3, 2, "--rounds", "3000", "--round-ms", "2")
        rank = self.rng.randrange(3)
        victim = self.server_of_rank(job, rank)
        scheduler = job.role("scheduler")[0]
        self.at_random_round(job, 200)
        os.killpg(victim.proc.pid, signal.SIGSTOP)
        # Started at once: it waits as a spare until the frozen server is declared dead.
        replacement = job.add("server")
        self.wait_for_log(scheduler, "every key range is on 2 servers again", 60, job)
        # Back: whatever it sends comes on a connection that no longer holds its node's id.
        os.killpg(victim.proc.pid, signal.SIGCONT)
        self.wait_job(job, 120 * SLOW)
        self.assertNotEqual(victim.proc.returncode, 0, job.report())
        self.assertIn(f"server rank {rank}", replacement.stdout(), job.report())
        self.assert_exact(job, [n for n in job.nodes if n is not victim])

    def test_launcher_restarts_failed_servers_and_the_job_survives_two_deaths(self):
        """launch.py --restart-failed-servers: a killed server is started again and takes its
        place; then another dies, which without the restored factor would lose a range."""
        p = subprocess.Popen(
            [sys.executable, LAUNCH, "-s", "3", "-n", "2", "--restart-failed-servers",
             "--scheduler-port", str(free_port()), "--timeout", "150",
             "--env", "PS_REPLICATION=2", "--env", "PS_HEARTBEAT_INTERVAL=0.2",
             "--env", "PS_HEARTBEAT_TIMEOUT=" + FAST["PS_HEARTBEAT_TIMEOUT"], "--",
             REPLICATION_JOB, "--rounds", "3000", "--round-ms", "2"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.addCleanup(lambda: p.poll() is None and p.kill())
        lines, seen = [], threading.Condition()

        def read():
            for line in p.stdout:
                with seen:
                    lines.append(line)
                    seen.notify_all()
        reader = threading.Thread(target=read, daemon=True)
        reader.start()

        def wait_for(pattern, timeout=60, count=1):
            deadline = time.monotonic() + timeout
            with seen:
                while True:
                    found = [m for m in map(lambda l: re.search(pattern, l), lines) if m]
                    if len(found) >= count:
                        return found[count - 1]
                    left = deadline - time.monotonic()
                    if left <= 0 or p.poll() is not None:
                        self.fail(f"no line matching {pattern!r}:\n" + "".join(lines))
                    seen.wait(min(left, 0.1))

        first = self.rng.randrange(3)
        second = (first + self.rng.choice([1, 2])) % 3
        pid = int(wait_for(rf"server rank {first} pid (\d+)\n")[1])
        other = int(wait_for(rf"server rank {second} pid (\d+)\n")[1])
        wait_for(r"worker 0 round 50\n")
        os.kill(pid, signal.SIGKILL)
        wait_for(r"starting it again \(restart 1\)")
        wait_for(rf"server rank {first} pid \d+ \(a replacement\)")
        wait_for(r"holds its key ranges .*every key range is on 2 servers again")
        os.kill(other, signal.SIGKILL)
        wait_for(r"starting it again \(restart 1\)", count=2)
        p.wait(timeout=150)
        reader.join(10)
        p.stdout.close()
        out = "".join(lines)
        self.assertEqual(p.returncode, 0, out)
        results = [json.loads(l.split("] ", 1)[1]) for l in lines if "] {" in l]
        self.assertEqual(len(results), 2, out)
        for got in results:
            self.assertTrue(got["exact"], out)

    def test_range_lost_when_more_servers_die_than_replicas_cover(self):
        job = self.job(3, 2, 2, "--rounds", "100000", "--round-ms", "2")
        first, second = self.server_of_rank(job, 0), self.server_of_rank(job, 1)
        self.at_random_round(job, 200)
        os.killpg(first.proc.pid, signal.SIGKILL)
        # The job goes on with one server fewer, then loses range 0 with the second.
        worker = job.role("worker")[0]
        line = f"round {self.rng.randrange(250, 300)}\n"
        self.assertTrue(job.wait_for_output(worker, line, 60), job.report())
        os.killpg(second.proc.pid, signal.SIGKILL)
        start = time.monotonic()
        survivors = [n for n in job.nodes if n not in (first, second)]
        job.wait(timeout=30, nodes=survivors)
        self.assertLess(max(n.ended for n in survivors) - start, 5, job.report())
        want = (r"key range \[0, 6148914691236517205\) is lost: servers 0 and 1 \(nodes 8, 10\) "
                r"are dead and PS_REPLICATION=2")
        for n in survivors:
            self.assertNotEqual(n.proc.returncode, 0, job.report())
            self.assertRegex(n.stderr(), want, job.report())

    def test_bad_replication_factor_is_a_one_line_error(self):
        job = self.job(2, 1, 3)
        job.wait(timeout=30)
        for n in job.nodes:
            self.assertNotEqual(n.proc.returncode, 0, job.report())
            self.assertIn("PS_REPLICATION=3 must be between 1 and DMLC_NUM_SERVER=2",
                          n.stderr(), job.report())


if __name__ == "__main__":
    unittest.main()
