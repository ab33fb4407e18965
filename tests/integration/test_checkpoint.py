"""Checkpoints and restarts (PS_CHECKPOINT_DIR, launch.py --max-restarts): jobs of real processes
through the launcher, checked exactly (tests/integration/checkpoint_job.cc)."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest
import uuid

from jobs import BUILD_DIR, LAUNCH, processes_with, wait_for

CHECKPOINT_JOB = os.path.join(BUILD_DIR, "tests", "integration", "checkpoint_job")


def launch(servers, workers, env, *args, restarts=0, timeout=90, wait=True, out=None):
    """Runs checkpoint_job through the launcher; returns (exit code, output), or the Popen when
    not "wait" (its output goes to file "out")."""
    if not os.access(CHECKPOINT_JOB, os.X_OK):
        raise AssertionError(f"{CHECKPOINT_JOB} is missing: run make first")
    cmd = [sys.executable, LAUNCH, "-s", str(servers), "-n", str(workers), "--timeout",
           str(timeout), "--max-restarts", str(restarts)]
    for k, v in env.items():
        cmd += ["--env", f"{k}={v}"]
    cmd += ["--", CHECKPOINT_JOB, *args]
    if not wait:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout + 30)
    return p.returncode, p.stdout


def summary(out):
    lines = [l.split("] ", 1)[1] for l in out.splitlines() if "] {" in l]
    if len(lines) != 1:
        raise AssertionError("not one JSON summary:\n" + out)
    return json.loads(lines[0])


class CheckpointTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ckpt")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.env = {"PS_CHECKPOINT_DIR": self.dir}

    def run_ok(self, servers, workers, *args, env=None):
        code, out = launch(servers, workers, dict(self.env, **(env or {})), *args)
        self.assertEqual(code, 0, out)
        got = summary(out)
        self.assertTrue(got["exact"], out)
        self.assertEqual(got["wrong"], 0, out)
        return got, out

    def steps_on_disk(self):
        return sorted(int(d[5:]) for d in os.listdir(self.dir) if d.startswith("step-"))

    def test_two_servers_written_three_reading_pull_exactly(self):
        got, _ = self.run_ok(2, 2, "--steps", "4")
        self.assertEqual(got["start"], 0)
        self.assertEqual(self.steps_on_disk(), [3, 4])  # PS_CHECKPOINT_KEEP=2
        got, out = self.run_ok(3, 2, "--steps", "8")
        self.assertEqual(got["start"], 4)
        self.assertEqual(len(re.findall(r"server \d restored \d+ keys", out)), 3, out)

    def test_ragged_values_resplit_under_replication(self):
        self.run_ok(3, 2, "--steps", "3", "--ragged", "1", env={"PS_REPLICATION": "2"})
        got, out = self.run_ok(2, 2, "--steps", "5", "--ragged", "1",
                               env={"PS_REPLICATION": "2"})
        self.assertEqual(got["start"], 3)
        # Under PS_REPLICATION=2 with 2 servers each holds both ranges: every key.
        self.assertEqual(len(re.findall(r"restored 5000 keys of 2 key range", out)), 2, out)

    def test_every_and_keep(self):
        self.run_ok(1, 2, "--steps", "9", env={"PS_CHECKPOINT_EVERY": "2",
                                               "PS_CHECKPOINT_KEEP": "3"})
        self.assertEqual(self.steps_on_disk(), [4, 6, 8])

    def damage_latest_and_resume(self, damage, message):
        self.run_ok(2, 2, "--steps", "4")
        damage(os.path.join(self.dir, "step-4", "range-1"))
        got, out = self.run_ok(2, 2, "--steps", "6")
        self.assertEqual(got["start"], 3, out)
        path = os.path.join(self.dir, "step-4", "range-1")
        self.assertRegex(out, re.escape(f"checkpoint {path} {message}"))
        self.assertIn(f"falling back to checkpoint {os.path.join(self.dir, 'step-3')} (step 3)",
                      out)

    def test_truncated_latest_falls_back(self):
        self.damage_latest_and_resume(lambda p: os.truncate(p, os.path.getsize(p) - 8),
                                      "is truncated: ")

    def test_wrong_checksum_falls_back(self):
        def flip(path):
            with open(path, "r+b") as f:
                f.seek(100)
                b = f.read(1)
                f.seek(100)
                f.write(bytes([b[0] ^ 0xFF]))
        self.damage_latest_and_resume(flip, "has a wrong checksum")

    def test_another_jobs_checkpoint_is_refused(self):
        self.run_ok(1, 1, "--steps", "2")
        code, out = launch(1, 1, dict(self.env, PS_JOB_ID="other"), "--steps", "4")
        self.assertNotEqual(code, 0, out)
        manifest = os.path.join(self.dir, "step-2", "MANIFEST")
        self.assertIn(f"checkpoint {manifest} belongs to job 'checkpoint_job', not to this job "
                      "'other'", out)
        self.assertIn("holds 2 checkpoint(s) and none can be used", out)

    def test_another_value_type_is_refused(self):
        self.run_ok(1, 1, "--steps", "2")
        code, out = launch(1, 1, self.env, "--steps", "4", "--double", "1")
        self.assertNotEqual(code, 0, out)
        self.assertRegex(out, re.escape(f"checkpoint {os.path.join(self.dir, 'step-2')}/MANIFEST "
                                        "holds values of type 9, but KVServer app 0 has values "
                                        "of type 10"))

    def test_bad_setting_is_one_line(self):
        code, out = launch(1, 1, dict(self.env, PS_CHECKPOINT_KEEP="1"), "--steps", "1")
        self.assertNotEqual(code, 0, out)
        self.assertIn("PS_CHECKPOINT_KEEP=1 is out of range (2 to", out)

    def test_scheduler_killed_the_launcher_restarts_and_it_resumes(self):
        tag = uuid.uuid4().hex
        log = os.path.join(self.dir, "launch.out")
        with open(log, "w") as f:
            p = launch(2, 2, dict(self.env, TEST_TAG=tag), "--steps", "40", "--step-ms", "20",
                       restarts=1, wait=False, out=f)
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))

        def output():
            with open(log) as f:
                return f.read()
        wait_for(lambda: "[worker 0] step 10\n" in output(), 60, "step 10")
        pids = processes_with(tag, "scheduler")
        self.assertEqual(len(pids), 1, output())
        os.kill(pids[0], signal.SIGKILL)
        self.assertEqual(p.wait(timeout=90), 0, output())
        out = output()
        self.assertIn("launch.py: restart 1 of 1: scheduler was killed by SIGKILL; starting the "
                      "whole job again from the latest checkpoint", out)
        got = summary(out)
        self.assertTrue(got["exact"], out)
        self.assertGreaterEqual(got["start"], 10, out)
        self.assertEqual(got["steps"], 40)

    def test_a_dead_servers_ranges_are_written_by_their_replicas(self):
        tag = uuid.uuid4().hex
        log = os.path.join(self.dir, "launch.out")
        env = dict(self.env, TEST_TAG=tag, PS_REPLICATION="2", PS_HEARTBEAT_INTERVAL="0.2",
                   PS_HEARTBEAT_TIMEOUT="1.5")
        with open(log, "w") as f:
            p = launch(3, 2, env, "--steps", "30", "--step-ms", "20", wait=False, out=f)
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))

        def output():
            with open(log) as f:
                return f.read()
        wait_for(lambda: "[worker 0] step 5\n" in output(), 60, "step 5")
        os.kill(processes_with(tag, "server")[0], signal.SIGKILL)
        self.assertEqual(p.wait(timeout=90), 0, output())
        self.assertTrue(summary(output())["exact"], output())
        with open(os.path.join(self.dir, "step-30", "MANIFEST")) as f:
            self.assertEqual(len(re.findall(r"^file range-\d ", f.read(), re.M)), 3)
        got, _ = self.run_ok(2, 2, "--steps", "34")
        self.assertEqual(got["start"], 30)

    def test_without_restarts_the_job_ends(self):
        tag = uuid.uuid4().hex
        log = os.path.join(self.dir, "launch.out")
        with open(log, "w") as f:
            p = launch(1, 1, dict(self.env, TEST_TAG=tag), "--steps", "400", "--step-ms", "20",
                       wait=False, out=f)
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
        wait_for(lambda: processes_with(tag, "scheduler"), 30, "the scheduler")
        os.kill(processes_with(tag, "scheduler")[0], signal.SIGKILL)
        self.assertEqual(p.wait(timeout=60), 137)
        with open(log) as f:
            self.assertNotIn("restart", f.read())


if __name__ == "__main__":
    unittest.main()
