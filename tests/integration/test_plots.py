"""bench/plot.py, run with Debian's /usr/bin/python3 (python3-matplotlib), on the output of real
demo runs: the PNG exists, is a PNG, and has the size plot.py promises (640 x 400)."""
import json
import os
import struct
import subprocess
import tempfile
import unittest

from jobs import BUILD_DIR, ROOT, run_launched, worker_summary

PLOT = os.path.join(ROOT, "bench", "plot.py")
PYTHON = "/usr/bin/python3"  # Debian's: the one python3-matplotlib is for
LINEAR = os.path.join(BUILD_DIR, "demo", "linear")
GEN_DATA = os.path.join(BUILD_DIR, "tools", "gen_data")
MF = os.path.join(BUILD_DIR, "demo", "mf")


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise AssertionError(f"{path} is not a PNG")
    return struct.unpack(">II", head[16:24])


class PlotTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        train, test = os.path.join(d, "train"), os.path.join(d, "test")
        subprocess.run([GEN_DATA, "--rows=5000", "--features=2000", f"--out={train}",
                        "--test-rows=1000", f"--test-out={test}"], check=True,
                       stdout=subprocess.DEVNULL, timeout=60)
        cls.demo_logs, cls.summaries = [], []
        for model in ("sequential", "eventual"):
            code, out = run_launched(LINEAR, 1, 2, f"--data={train}", f"--test={test}",
                                     "--trace=on", f"--consistency={model}")
            if code != 0:
                raise AssertionError(out)
            log = os.path.join(d, f"{model}.log")
            with open(log, "w") as f:
                f.write(out)
            cls.demo_logs.append(log)
            cls.summaries.append(worker_summary(out))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def plot(self, kind, lines_or_path):
        path = lines_or_path
        if isinstance(lines_or_path, list):
            path = os.path.join(self.tmp.name, kind + ".jsonl")
            with open(path, "w") as f:
                f.write("".join(json.dumps(l) + "\n" for l in lines_or_path))
        out = os.path.join(self.tmp.name, kind + ".png")
        if os.path.exists(out):
            os.remove(out)
        p = subprocess.run([PYTHON, PLOT, kind, path, out], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertEqual(p.stdout.strip(), f"plot: {out}")
        self.assertEqual(png_size(out), (640, 400))

    def test_demo_run_objective_against_time(self):
        self.plot("demo", self.demo_logs[0])

    def test_lr_consistency_one_line_per_model(self):
        best = min(s["objective"] for s in self.summaries)
        self.plot("lr_consistency", [
            {"bench": "lr_consistency", "model": s["consistency"], "straggler_ms": 0,
             "best": best, "trace": s["trace"]} for s in self.summaries])

    def test_cluster_lr_one_line_per_model(self):
        best = min(s["objective"] for s in self.summaries)
        rows = [{"model": s["consistency"], "straggler_ms": 0, "best": best, "rate": "100mbit",
                 "workers": 3, "servers": 1, "trace": s["trace"]} for s in self.summaries]
        # Later rounds of the same case, and the filter runs (no trace), are left out.
        self.plot("cluster_lr", rows + rows[:1] + [{"model": "sequential", "filters": "zstd"}])

    def test_ssp_staleness_rmse_against_time(self):
        lines = []
        for staleness in (0, 2):
            code, out = run_launched(MF, 1, 2, f"--staleness={staleness}", "--clocks=5")
            self.assertEqual(code, 0, out)
            s = worker_summary(out)
            s["case"] = f"ssp s={staleness}"
            lines.append(s)
        self.plot("ssp_staleness", lines)

    def test_consistency_bench_bars(self):
        self.plot("consistency_bench", [
            {"model": m, "req_per_s": r, "straggler_req_per_s": r / 2}
            for m, r in (("sequential", 1000), ("bounded:2", 2500), ("eventual", 4000))])

    def test_bad_input_is_a_one_line_error(self):
        empty = os.path.join(self.tmp.name, "empty.jsonl")
        open(empty, "w").close()
        for args, text in ((["demo", empty], f"{empty}: no JSON line with \"trace\" in it"),
                           (["demo", "/nonexistent"], "cannot read /nonexistent"),
                           (["pie", empty], "usage: plot.py")):
            p = subprocess.run([PYTHON, PLOT, *args, os.path.join(self.tmp.name, "x.png")],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               timeout=60)
            self.assertNotEqual(p.returncode, 0)
            self.assertEqual(len(p.stdout.strip().splitlines()), 1, p.stdout)
            self.assertIn(text, p.stdout)


if __name__ == "__main__":
    unittest.main()
