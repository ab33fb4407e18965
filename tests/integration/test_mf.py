"""The matrix factorization demo on SSP tables, started through the launcher."""
import os
import unittest

from jobs import BUILD_DIR, run_launched
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


if __name__ == "__main__":
    unittest.main()
