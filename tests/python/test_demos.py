"""The Python demos (demo/python/) through the launcher: logistic regression against the C++
sgd demo on the same generated data, and matrix factorization on SSP tables."""
import json
import os
import subprocess
import tempfile
import unittest

from common import BUILD_DIR, ROOT, module_missing, reports, run_job

MISSING = module_missing()
LINEAR_PY = os.path.join(ROOT, "demo", "python", "linear.py")
MF_PY = os.path.join(ROOT, "demo", "python", "mf.py")
LINEAR = os.path.join(BUILD_DIR, "demo", "linear")
# The data generator: in BUILD/tools/ where the tools have their own folder, else with the demos.
GEN_DATA = next((p for p in (os.path.join(BUILD_DIR, "tools", "gen_data"),
                             os.path.join(BUILD_DIR, "demo", "gen_data")) if os.path.exists(p)),
                os.path.join(BUILD_DIR, "demo", "gen_data"))


@unittest.skipIf(MISSING, f"the slackline module does not import: {MISSING}")
class DemoTest(unittest.TestCase):
    def test_python_logistic_regression_is_within_a_point_of_the_cpp_sgd_demo(self):
        with tempfile.TemporaryDirectory() as tmp:
            train, test = os.path.join(tmp, "train"), os.path.join(tmp, "test")
            subprocess.run([GEN_DATA, "--rows=20000", "--features=20000", "--seed=11",
                            f"--out={train}", f"--test-out={test}", "--test-rows=5000"],
                           check=True, stdout=subprocess.DEVNULL)
            code, out = run_job(1, 2, f"--data={train}", f"--test={test}", script=LINEAR_PY)
            self.assertEqual(code, 0, out)
            py = reports(out)
            code, cpp_out = run_job(1, 2, f"--data={train}", f"--test={test}", "--algo=sgd",
                                    script=LINEAR)
        self.assertEqual(code, 0, cpp_out)
        cpp = [json.loads(l.split("] ", 1)[1]) for l in cpp_out.splitlines()
               if l.startswith("[worker ") and '"test_accuracy"' in l]
        self.assertEqual((len(py), len(cpp)), (1, 1), out + cpp_out)
        self.assertEqual((py[0]["epochs"], py[0]["test_rows"]), (10, 5000))
        self.assertGreater(cpp[0]["test_accuracy"], 0.7, cpp_out)
        self.assertLessEqual(abs(py[0]["test_accuracy"] - cpp[0]["test_accuracy"]), 0.01,
                             f"python {py[0]}, C++ {cpp[0]}")

    def test_python_matrix_factorization_reaches_the_noise_level(self):
        code, out = run_job(1, 2, "--clocks=15", "--noise=0.1", script=MF_PY)
        self.assertEqual(code, 0, out)
        s = reports(out)
        self.assertEqual(len(s), 1, out)
        self.assertEqual(len(s[0]["rmse_per_clock"]), 15)
        self.assertGreater(s[0]["rmse_per_clock"][0], 0.5, out)
        self.assertLess(s[0]["rmse"], 0.15, out)


if __name__ == "__main__":
    unittest.main()
