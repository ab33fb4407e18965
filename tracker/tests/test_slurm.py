"""tracker/launch.py --launcher slurm against a real Slurm: munged, slurmctld and slurmd started
on this host with a throwaway configuration (slurm_cluster.py), running ps_job (1 server,
2 workers, every request answered) through srun directly and from an sbatch script, and kv_job
(pushes and pulls, exact sums) through srun.

Run from the repository root: python3 -m unittest discover -s tracker/tests -v
"""

import os
import re
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

import slurm_cluster

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
LAUNCH = REPO / "tracker" / "launch.py"
BUILD = REPO / os.environ.get("PS_BUILD_DIR", "build")
PS_JOB = BUILD / "tests" / "integration" / "ps_job"
KV_JOB = BUILD / "tests" / "integration" / "kv_job"
JOB_SECONDS = 90

WHY_NOT = slurm_cluster.why_not()


def check_ps_job(test, out, servers, workers):
    """ps_job's own counts: every worker got every answer, every server every request."""
    for rank in range(workers):
        m = re.search(rf"^\[worker {rank}\] worker {rank} got (\d+) answers \(expected (\d+)\)$",
                      out, re.M)
        test.assertTrue(m, out)
        test.assertEqual(m[1], m[2], out)
    for rank in range(servers):
        m = re.search(rf"^\[server {rank}\] server {rank} handled (\d+) requests "
                      rf"\(expected (\d+)\)$", out, re.M)
        test.assertTrue(m, out)
        test.assertEqual(m[1], m[2], out)
    test.assertEqual(out.count("] scheduler done"), 1, out)


@unittest.skipIf(WHY_NOT, WHY_NOT)
class SlurmLauncherTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for program in (PS_JOB, KV_JOB):
            if not os.access(program, os.X_OK):
                raise AssertionError(f"{program} is missing: run make first")
        cls.slurm = slurm_cluster.SlurmCluster().__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.slurm.stop()

    def launch(self, *args, env=None):
        p = subprocess.run([sys.executable, str(LAUNCH), *args], env=env or self.slurm.env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=JOB_SECONDS + 30)
        return p.returncode, p.stdout

    def test_srun_runs_one_server_two_workers_with_exact_counts(self):
        code, out = self.launch("--launcher", "slurm", "-s", "1", "-n", "2",
                                "--timeout", str(JOB_SECONDS), "--", str(PS_JOB))
        self.assertEqual(code, 0, out + self.slurm.logs())
        check_ps_job(self, out, 1, 2)
        # Labels follow the ranks the nodes report.
        for rank in range(2):
            self.assertIn(f"[worker {rank}] worker rank {rank} of 2", out)

    def test_srun_pushes_and_pulls_with_exact_sums_and_prints_metrics_endpoints(self):
        # kv_job: each worker pushes (i % 13 + 1) (rank + 1) / 4 to key i, 5 times, then pulls:
        # every sum is 5 (1 + 2) (i % 13 + 1) / 4, exactly.
        rounds, keys = 5, 20000
        code, out = self.launch("--launcher", "slurm", "-s", "1", "-n", "2",
                                "--timeout", str(JOB_SECONDS), "--env", "PS_METRICS_PORT=0",
                                "--", str(KV_JOB), "--rounds", str(rounds), "--keys", str(keys))
        self.assertEqual(code, 0, out + self.slurm.logs())
        total = sum(0.25 * (i % 13 + 1) * rounds * 3 for i in range(keys))
        for rank in range(2):
            self.assertIn(f"[worker {rank}] worker {rank}: {keys} sums, 0 wrong, "
                          f"total {total:.2f}\n", out)
        # The tasks' reports reach the launcher through srun, which prints each endpoint once.
        endpoints = re.findall(r"^launch\.py: (.+) metrics at http://\S+:\d+/metrics$", out,
                               re.M)
        self.assertEqual(sorted(endpoints), ["scheduler", "server 0", "worker 0", "worker 1"],
                         out)

    def test_roles_come_from_slurm_procid(self):
        code, out = self.launch("--launcher", "slurm", "-s", "2", "-n", "1", "--", "sh", "-c",
                                "echo task $SLURM_PROCID of $SLURM_NTASKS is $DMLC_ROLE "
                                "at $DMLC_PS_ROOT_URI:$DMLC_PS_ROOT_PORT in $DMLC_JOB_CLUSTER")
        self.assertEqual(code, 0, out)
        host = self.slurm.host
        for label, task, role in (("scheduler", 0, "scheduler"), ("server 0", 1, "server"),
                                  ("server 1", 2, "server"), ("worker 0", 3, "worker")):
            self.assertRegex(out, rf"\[{label}\] task {task} of 4 is {role} at {host}:\d+ in "
                                  r"slurm\n")

    def test_failing_worker_fails_the_job_with_its_exit_code(self):
        code, out = self.launch("--launcher", "slurm", "-s", "1", "-n", "2", "--", "sh", "-c",
                                'if [ "$SLURM_PROCID" = 3 ]; then exit 7; fi; sleep 60')
        self.assertEqual(code, 7, out)
        self.assertIn("launch.py: exit status 7: worker 1 exited with code 7", out)

    def test_sbatch_script_runs_the_job(self):
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "job.sh"
            output = Path(tmp) / "job.out"
            script.write_text("#!/bin/sh\n"
                              "#SBATCH --ntasks=3 --overcommit\n"
                              f"exec {sys.executable} {LAUNCH} --launcher slurm -s 1 -n 2 "
                              f"--timeout {JOB_SECONDS} -- {PS_JOB}\n")
            p = subprocess.run(["sbatch", "--parsable", f"--output={output}", str(script)],
                               env=self.slurm.env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stdout)
            job = p.stdout.strip().split(";")[0]

            def finished():
                q = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], env=self.slurm.env,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                   text=True, timeout=30)
                return q.stdout.strip() == ""

            slurm_cluster.wait_until(finished, JOB_SECONDS + 30, f"batch job {job} to end")
            out = output.read_text()
            check_ps_job(self, out, 1, 2)
            self.assertNotIn("launch.py: exit status", out)


if __name__ == "__main__":
    unittest.main()
