"""The matrix factorization demo on SSP tables, started through the launcher."""
import os
import re
import signal
import subprocess
import sys
import tempfile
import unittest

from jobs import BUILD_DIR, LAUNCH, processes_with, run_launched, wait_for
from jobs import worker_summary as summary

MF = os.path.join(BUILD_DIR, "demo", "mf")


def run_mf(workers, *args):
    return run_launched(MF, 2, workers, *args)


class MFTest(unittest.TestCase):
    # Synthetic ratings of noise 0.1: the training RMSE reaches the noise level.
    def check_converges(self, *flags):
        code, out = run_mf(3, "--clocks=40", "--noise=0.1", "--target-rmse=0.15", *flags)
        self.assertEqual(code, 0, out)
        s = summary(out)
        self.assertEqual(s["clocks"], 40)
        self.assertEqual(s["workers"], 3)
        self.assertLess(s["rmse"], 0.15, out)
        self.assertIsNotNone(s["time_to_target"], out)
        self.assertGreaterEqual(s["cache_hit_rate"], 0.0)
        self.assertLessEqual(s["cache_hit_rate"], 1.0)
        self.assertEqual(len(s["rmse_per_clock"]), 40)
        for w in range(3):
            per_clock = [l for l in out.splitlines() if l.startswith(f"[worker {w}] clock ")]
            self.assertEqual(len(per_clock), 40, out)
        return s

    def test_rmse_falls_below_the_noise_level_with_a_straggler(self):
        self.check_converges("--staleness=2", "--straggler=1:5")

    def test_rmse_falls_below_the_noise_level_in_eager_mode(self):
        self.check_converges("--staleness=1", "--essp=on")

    def test_bsp_rmse_falls_below_the_noise_level(self):
        self.check_converges("--staleness=0")

    def test_bad_option_is_a_clear_error(self):
        code, out = run_mf(1, "--essp=maybe")
        self.assertNotEqual(code, 0)
        self.assertIn("--essp takes on or off", out)


class MFCheckpointTest(unittest.TestCase):
    """PS_CHECKPOINT_DIR: the SSP tables and each worker's user factors at a clock every
    worker reached, and the job's resumption there."""

    def launch(self, servers, ckpt, *args, restarts=0, tag="", out=subprocess.PIPE):
        cmd = [sys.executable, LAUNCH, "-s", str(servers), "-n", "2", "--timeout", "120",
               "--max-restarts", str(restarts), "--env", f"PS_CHECKPOINT_DIR={ckpt}",
               "--env", f"TEST_TAG={tag}", "--", MF, *args]
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True)

    def run_ok(self, servers, ckpt, *args):
        p = self.launch(servers, ckpt, *args)
        out = p.communicate(timeout=150)[0]
        self.assertEqual(p.returncode, 0, out)
        return summary(out), out

    def test_bsp_resumes_at_a_clock_with_more_servers_exactly(self):
        # Under BSP (staleness 0) the run is deterministic but for the order in which two
        # workers' increments are added: a resumed run ends where an uninterrupted one does.
        flags = ["--staleness=0", "--noise=0.1"]
        with tempfile.TemporaryDirectory() as tmp:
            whole, _ = self.run_ok(2, os.path.join(tmp, "none"), "--clocks=20", *flags)
            ckpt = os.path.join(tmp, "ckpt")
            first, _ = self.run_ok(2, ckpt, "--clocks=8", *flags)
            self.assertEqual(sorted(os.listdir(ckpt)), ["step-7", "step-8"])
            got, out = self.run_ok(3, ckpt, "--clocks=20", *flags)
            self.assertIn("resuming from the checkpoint at clock 8", out)
            self.assertEqual(len(re.findall(r"SSP server \d restored \d+ rows at clock 8", out)),
                             3, out)
            # Clocks 0-7 ran before the restart: their figures come back from the table.
            self.assertEqual(got["rmse_per_clock"][:8], first["rmse_per_clock"], out)
            self.assertEqual(len(got["rmse_per_clock"]), 20)
            self.assertLess(abs(got["rmse"] - whole["rmse"]) / whole["rmse"], 1e-3, (got, whole))

    def test_ssp_resumes_after_the_scheduler_died(self):
        with tempfile.TemporaryDirectory() as tmp:
            tag = os.path.basename(tmp)
            log = os.path.join(tmp, "launch.out")
            with open(log, "w") as f:
                p = self.launch(2, os.path.join(tmp, "ckpt"), "--clocks=40", "--staleness=2",
                                "--noise=0.1", "--straggler=1:15", restarts=1, tag=tag, out=f)
            self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))

            def output():
                with open(log) as f:
                    return f.read()
            wait_for(lambda: "[worker 0] clock 12 " in output(), 60, "clock 12")
            os.kill(processes_with(tag, "scheduler")[0], signal.SIGKILL)
            self.assertEqual(p.wait(timeout=120), 0, output())
            out = output()
            self.assertIn("launch.py: restart 1 of 1: scheduler was killed by SIGKILL", out)
            resumed = re.search(r"resuming from the checkpoint at clock (\d+)", out)
            self.assertIsNotNone(resumed, out)
            self.assertGreaterEqual(int(resumed.group(1)), 10, out)
            s = summary(out)
            self.assertEqual(s["clocks"], 40)
            self.assertEqual(len(s["rmse_per_clock"]), 40)
            self.assertLess(s["rmse"], 0.15, out)


if __name__ == "__main__":
    unittest.main()
