"""The matrix factorization demo on SSP tables, started through the launcher."""
import json
import os
import subprocess
import sys
import unittest

from jobs import BUILD_DIR, ROOT

MF = os.path.join(BUILD_DIR, "demo", "mf")
LAUNCH = os.path.join(ROOT, "tracker", "launch.py")


def run_mf(workers, *args):
    if not os.access(MF, os.X_OK):
        raise AssertionError(f"{MF} is missing: run make first")
    p = subprocess.run([sys.executable, LAUNCH, "-s", "2", "-n", str(workers), "--timeout", "120",
                        "--", MF, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=150)
    return p.returncode, p.stdout


def summary(out):
    # Printed by the worker of rank 0, which need not be the launcher's worker 0.
    lines = [l.split("] ", 1)[1] for l in out.splitlines()
             if l.startswith("[worker ") and "] {" in l]
    if len(lines) != 1:
        raise AssertionError("not one JSON summary:\n" + out)
    return json.loads(lines[0])


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


if __name__ == "__main__":
    unittest.main()
