"""The logistic regression demo (demo/linear) on a9a and on tools/gen_data, through the launcher.

Real data: a9a and a9a.t from the shared data folder, by default ../shared/data next to the
repository (set SLACKLINE_DATA_DIR to read them elsewhere). Without SLACKLINE_DATA_DIR and
without that folder the a9a tests are skipped, saying why; when the folder is there (or the
variable set), a missing file is a failure. The reference optimum is liblinear's (see that
folder's README).

Everywhere: generated data against liblinear-train (Debian's liblinear-tools) on the same file,
in the same run.
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import unittest

from jobs import BUILD_DIR, LAUNCH, ROOT, free_port, processes_with, run_launched, wait_for
from jobs import worker_summary as summary

LINEAR = os.path.join(BUILD_DIR, "demo", "linear")
GEN_DATA = os.path.join(BUILD_DIR, "tools", "gen_data")
DATA_DIR = os.environ.get("SLACKLINE_DATA_DIR",
                          os.path.join(os.path.dirname(ROOT), "shared", "data"))
HAVE_DATA = "SLACKLINE_DATA_DIR" in os.environ or os.path.isdir(DATA_DIR)
NO_DATA = ("a9a checks: no data at ../shared/data; set SLACKLINE_DATA_DIR")
LIBLINEAR_A9A_L1 = 10558.95  # liblinear-train -s 6 -c 1 -e 0.0001 a9a


def a9a(name="a9a"):
    path = os.path.join(DATA_DIR, name)
    if not os.path.exists(path):
        raise AssertionError(f"{path} is absent: the a9a checks need the shared data folder "
                             "(../shared/data next to the repository, or SLACKLINE_DATA_DIR)")
    return path


def run_linear(servers, workers, *args, timeout=120):
    return run_launched(LINEAR, servers, workers, *args, timeout=timeout)


def progress(out):
    """The rows of the progress table: iteration, objective, change, nnz, active, %, seconds."""
    rows = []
    for l in out.splitlines():
        if not l.startswith("[worker ") or "] {" in l:
            continue
        f = l.split("] ", 1)[1].split()
        if len(f) == 7 and f[0].isdigit():
            rows.append((int(f[0]), float(f[1]), float(f[2]), int(f[3]), int(f[4]),
                         float(f[5].rstrip("%")), float(f[6])))
    return rows


def gen_data(folder, *args):
    out = os.path.join(folder, "train.libsvm")
    test = os.path.join(folder, "test.libsvm")
    p = subprocess.run([GEN_DATA, f"--out={out}", f"--test-out={test}", *args],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError(p.stdout)
    return out, test


@unittest.skipUnless(HAVE_DATA, NO_DATA)
class A9aTest(unittest.TestCase):
    """l1 = 1, l2 = 0 on a9a, tested on a9a.t, against liblinear's optimum."""

    def check_bcd(self, servers, workers, *flags):
        code, out = run_linear(servers, workers, f"--data={a9a()}", f"--test={a9a('a9a.t')}",
                               "--l1=1", "--l2=0", *flags)
        self.assertEqual(code, 0, out)
        s = summary(out)
        self.assertLess(abs(s["objective"] - LIBLINEAR_A9A_L1) / LIBLINEAR_A9A_L1, 0.005, out)
        self.assertGreaterEqual(s["test_accuracy"], 0.845, out)
        self.assertGreater(s["test_auc"], 0.85)
        self.assertLess(s["test_logloss"], 0.4)
        self.assertEqual(s["workers"], workers)
        self.assertEqual(s["servers"], servers)
        self.assertEqual(len(progress(out)), s["iterations"], out)
        self.assertGreater(s["bytes_sent"], 0)
        self.assertGreater(s["bytes_received"], 0)
        return s, out

    def test_bcd_one_server_two_workers_within_half_a_percent_of_liblinear(self):
        s, out = self.check_bcd(1, 2)
        rows = progress(out)
        self.assertEqual([r[0] for r in rows], list(range(len(rows))))
        # The objective of the last row is the summary's (the filter keeps copies exact).
        self.assertAlmostEqual(rows[-1][1], s["objective"], delta=0.01)

    def test_bcd_two_servers_four_workers_within_half_a_percent_of_liblinear(self):
        self.check_bcd(2, 4)

    def test_bcd_eventual_with_a_straggler_still_converges(self):
        s, _ = self.check_bcd(1, 2, "--consistency=eventual", "--straggler=1:1", "--blocks=8")
        self.assertEqual(s["consistency"], "eventual")

    def test_bcd_bounded_delay_without_kkt(self):
        s, _ = self.check_bcd(2, 2, "--consistency=bounded:2", "--kkt=off")
        self.assertEqual(s["consistency"], "bounded:2")
        self.assertEqual(s["keys_filtered_pct"], 0)

    def test_sgd_reaches_84_percent_within_10_epochs(self):
        code, out = run_linear(1, 2, f"--data={a9a()}", f"--test={a9a('a9a.t')}", "--l1=1",
                               "--algo=sgd", "--epochs=10")
        self.assertEqual(code, 0, out)
        s = summary(out)
        self.assertEqual(s["iterations"], 10)
        self.assertGreaterEqual(s["test_accuracy"], 0.84, out)
        self.assertEqual(len(progress(out)), 10)

    def test_model_out_then_predict_from_the_model(self):
        with tempfile.TemporaryDirectory() as tmp:
            model = os.path.join(tmp, "model.txt")
            pred = os.path.join(tmp, "pred.txt")
            code, out = run_linear(1, 2, f"--data={a9a()}", f"--test={a9a('a9a.t')}",
                                   f"--model-out={model}")
            self.assertEqual(code, 0, out)
            trained = summary(out)
            with open(model) as f:
                lines = f.read().splitlines()
            self.assertEqual(len(lines), trained["nnz"])
            features = [int(l.split("\t")[0]) for l in lines]
            self.assertEqual(features, sorted(features))
            self.assertTrue(all(1 <= f <= 123 for f in features), features)
            self.assertTrue(all(float(l.split("\t")[1]) != 0 for l in lines))
            code, out = run_linear(1, 1, f"--model-in={model}", f"--predict={pred}",
                                   f"--test={a9a('a9a.t')}")
            self.assertEqual(code, 0, out)
            predicted = summary(out)
            with open(pred) as f:
                probs = [float(l) for l in f]
            self.assertEqual(len(probs), 16281)
            self.assertTrue(all(0 < p < 1 for p in probs))
            self.assertAlmostEqual(predicted["test_accuracy"], trained["test_accuracy"], places=3)


def liblinear(train, test, l1, folder):
    """liblinear's optimum and test accuracy for l1-regularized logistic regression: with -s 6 it
    minimizes ||w||_1 + C loss, the demo loss + l1 ||w||_1; so C = 1 / l1 and the optimum in the
    demo's scaling is liblinear's objective divided by C."""
    c = 1.0 / l1
    model, pred = os.path.join(folder, "liblinear.model"), os.path.join(folder, "liblinear.pred")
    out = subprocess.run(["liblinear-train", "-s", "6", "-c", repr(c), "-e", "0.0001", train,
                          model], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         check=True, timeout=60).stdout
    objective = float(re.search(r"^Objective value = (\S+)$", out, re.M).group(1)) / c
    out = subprocess.run(["liblinear-predict", test, model, pred], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, check=True, timeout=60).stdout
    accuracy = float(re.search(r"^Accuracy = ([0-9.]+)%", out, re.M).group(1)) / 100
    return objective, accuracy


class GeneratedDataTest(unittest.TestCase):
    def test_bcd_on_generated_data_within_half_a_percent_of_liblinear(self):
        # Needs no shipped data: the reference runs on the same generated file in this run.
        with tempfile.TemporaryDirectory() as tmp:
            train, test = gen_data(tmp, "--rows=20000", "--features=5000", "--seed=11",
                                   "--test-rows=5000")
            best, best_accuracy = liblinear(train, test, 2.0, tmp)
            for servers, workers in ((1, 2), (2, 3)):
                code, out = run_linear(servers, workers, f"--data={train}", f"--test={test}",
                                       "--l1=2")
                self.assertEqual(code, 0, out)
                s = summary(out)
                self.assertLess(abs(s["objective"] - best) / best, 0.005, (s, best))
                self.assertGreaterEqual(s["test_accuracy"], best_accuracy - 0.01,
                                        (s, best_accuracy))
                self.assertEqual(s["test_rows"], 5000)

    def test_gen_data_is_reproducible(self):
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            files_a = gen_data(a, "--rows=2000", "--features=5000", "--seed=7")
            files_b = gen_data(b, "--rows=2000", "--features=5000", "--seed=7")
            for fa, fb in zip(files_a, files_b):
                with open(fa, "rb") as x, open(fb, "rb") as y:
                    self.assertEqual(x.read(), y.read())
            with open(files_a[0]) as f:
                rows = f.read().splitlines()
            self.assertEqual(len(rows), 2000)
            for r in rows[:50]:
                label, *feats = r.split()
                self.assertIn(label, ("1", "-1"))
                ids = [int(x.split(":")[0]) for x in feats]
                self.assertEqual(ids, sorted(set(ids)))
                self.assertTrue(all(1 <= i <= 5000 for i in ids))

    def test_kkt_filter_reaches_the_unfiltered_objective_and_filters_most_keys(self):
        # The check at a quarter of its size (bench/lr_kkt runs 200k rows by 1M features).
        with tempfile.TemporaryDirectory() as tmp:
            train, test = gen_data(tmp, "--rows=50000", "--features=250000", "--seed=3")
            results = {}
            for kkt in ("on", "off"):
                code, out = run_linear(1, 2, f"--data={train}", f"--test={test}", "--l1=2",
                                       f"--kkt={kkt}")
                self.assertEqual(code, 0, out)
                results[kkt] = (summary(out), progress(out))
            on, on_rows = results["on"]
            off, _ = results["off"]
            self.assertLess(abs(on["objective"] - off["objective"]) / off["objective"], 0.001)
            active = on_rows[0][4] / (1 - on_rows[0][5] / 100)  # keys before the filter
            self.assertLess(on["nnz"], 0.05 * active, on_rows)
            for row in on_rows[-3:]:
                self.assertGreaterEqual(row[5], 80.0, on_rows)
            self.assertGreater(on["keys_filtered_pct"], 50)
            self.assertEqual(off["keys_filtered_pct"], 0)
            self.assertLess(on["bytes_sent"], off["bytes_sent"])

    def test_unseen_test_features_weigh_zero(self):
        with tempfile.TemporaryDirectory() as tmp:
            train, _ = gen_data(tmp, "--rows=3000", "--features=1000", "--seed=5")
            test = os.path.join(tmp, "unseen.libsvm")
            with open(test, "w") as f:
                f.write("1 2000000:1 18446744073709551615:1\n0 99999999:2.5\n")
            code, out = run_linear(1, 2, f"--data={train}", f"--test={test}", "--max-iter=3")
            self.assertEqual(code, 0, out)
            s = summary(out)
            self.assertEqual(s["test_rows"], 2)
            # Every weight is 0: each probability is 0.5, the log loss log 2.
            self.assertAlmostEqual(s["test_logloss"], 0.693147, places=5)


def pids_of(role, port):
    """Processes of this machine that are the "role" node of the job at scheduler port "port"."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = dict(e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e)
        except OSError:
            continue
        if env.get(b"DMLC_ROLE") == role.encode() and \
                env.get(b"DMLC_PS_ROOT_PORT") == str(port).encode():
            found.append(int(pid))
    return found


class ReplicatedDemoTest(unittest.TestCase):
    def run_killing_a_server(self, servers, workers, kill_at, *args):
        """Runs the demo with PS_REPLICATION=2 through the launcher; once worker 0 printed
        iteration "kill_at", a server is killed with SIGKILL. Returns (exit code, output)."""
        port = free_port()
        cmd = [sys.executable, LAUNCH, "-s", str(servers), "-n", str(workers), "--timeout", "120",
               "--scheduler-port", str(port), "--env", "PS_REPLICATION=2",
               "--env", "PS_HEARTBEAT_INTERVAL=0.2", "--env", "PS_HEARTBEAT_TIMEOUT=2",
               "--", LINEAR, *args]
        lines, killed = [], None
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) as p:
            for line in p.stdout:
                lines.append(line)
                f = line.split("] ", 1)[1].split() if line.startswith("[worker 0] ") else []
                if killed is None and kill_at is not None and f and f[0] == str(kill_at):
                    victims = pids_of("server", port)
                    self.assertEqual(len(victims), servers, "".join(lines))
                    killed = victims[1]
                    os.kill(killed, signal.SIGKILL)
            p.wait(timeout=30)
        if kill_at is not None:
            self.assertIsNotNone(killed, "".join(lines))
        return p.returncode, "".join(lines)

    def test_bcd_with_a_server_killed_mid_training_ends_as_without(self):
        with tempfile.TemporaryDirectory() as tmp:
            train, test = gen_data(tmp, "--rows=20000", "--features=5000", "--seed=11",
                                   "--test-rows=5000")
            args = (f"--data={train}", f"--test={test}", "--l1=2")
            code, out = self.run_killing_a_server(3, 2, None, *args)
            self.assertEqual(code, 0, out)
            whole = summary(out)
            code, out = self.run_killing_a_server(3, 2, 4, *args)
            self.assertEqual(code, 0, out)
            self.assertRegex(out, r"launch.py: server \d was killed by SIGKILL; the job goes on")
            cut = summary(out)
            self.assertLess(abs(cut["objective"] - whole["objective"]) / whole["objective"],
                            0.001, (cut, whole))
            self.assertEqual(cut["iterations"], whole["iterations"], (cut, whole))
            self.assertEqual(cut["test_rows"], 5000)


class BadInputTest(unittest.TestCase):
    def one_line_error(self, out, text):
        errors = [l for l in out.splitlines() if "linear: error:" in l]
        self.assertTrue(errors, out)
        self.assertIn(text, errors[0])
        self.assertNotIn("Stack trace", out)
        self.assertNotIn("terminate called", out)

    def test_missing_file(self):
        code, out = run_linear(1, 2, "--data=/nonexistent/train.libsvm", timeout=30)
        self.assertNotEqual(code, 0)
        self.one_line_error(out, "cannot read /nonexistent/train.libsvm")

    def test_malformed_line_names_file_and_line(self):
        with tempfile.TemporaryDirectory() as tmp:
            bad = os.path.join(tmp, "bad.libsvm")
            with open(bad, "w") as f:
                f.write("1 1:1 3:0.5\n-1 2:1\n0 4:1\n1 5:abc\n1 6:1\n")
            for workers in (1, 2):
                code, out = run_linear(1, workers, f"--data={bad}", timeout=30)
                self.assertNotEqual(code, 0)
                self.one_line_error(out, f"{bad}:4: malformed libsvm line")
            with open(bad, "w") as f:
                f.write("1 1:1\n2 3:1\n")
            code, out = run_linear(1, 1, f"--data={bad}", timeout=30)
            self.one_line_error(out, f"{bad}:2: malformed libsvm line: label 2 is not 1, 0 or -1")

    def test_malformed_test_file(self):
        with tempfile.TemporaryDirectory() as tmp:
            train, _ = gen_data(tmp, "--rows=500", "--features=100")
            bad = os.path.join(tmp, "bad.libsvm")
            with open(bad, "w") as f:
                f.write("1 1:1\n1 x:1\n")
            code, out = run_linear(1, 1, f"--data={train}", f"--test={bad}", "--max-iter=2",
                                   timeout=30)
            self.assertNotEqual(code, 0)
            self.one_line_error(out, f"{bad}:2: malformed libsvm line: expected index:value")

    def test_unknown_flag_and_bad_values(self):
        for flag, text in (("--colour=red", "unknown option --colour"),
                           ("--algo=newton", "--algo=newton: takes bcd or sgd"),
                           ("--consistency=bounded:x", "--consistency=bounded:x"),
                           ("--straggler=1", "--straggler=1: takes RANK:MS"),
                           ("--l1=abc", "--l1=abc: not a number")):
            code, out = run_linear(1, 1, "--data=" + LAUNCH, flag, timeout=30)
            self.assertEqual(code, 2, out)
            self.one_line_error(out, text)


class CheckpointTest(unittest.TestCase):
    """PS_CHECKPOINT_DIR: the demo checkpoints after every iteration and resumes from the latest
    checkpoint, through the launcher's restart."""

    def launch(self, ckpt, *args, restarts=0, tag="", out=None, servers=2):
        cmd = [sys.executable, LAUNCH, "-s", str(servers), "-n", "2", "--timeout", "120",
               "--max-restarts", str(restarts), "--env", f"PS_CHECKPOINT_DIR={ckpt}",
               "--env", f"TEST_TAG={tag}", "--", LINEAR, *args]
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True)

    def check_killed_scheduler_resumes(self, *flags, kill_at):
        with tempfile.TemporaryDirectory() as tmp:
            train, _ = gen_data(tmp, "--rows=20000", "--features=5000", "--seed=11")
            args = [f"--data={train}", "--l1=1", *flags]
            code, whole = run_linear(2, 2, *args)
            self.assertEqual(code, 0, whole)
            want = summary(whole)
            tag = os.path.basename(tmp)
            log = os.path.join(tmp, "launch.out")
            with open(log, "w") as f:
                # --straggler slows the iterations down (and changes no number), so that the
                # scheduler dies mid-training.
                p = self.launch(os.path.join(tmp, "ckpt"), *args, "--straggler=0:4",
                                restarts=1, tag=tag, out=f)
            self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))

            def output():
                with open(log) as f:
                    return f.read()
            wait_for(lambda: re.search(rf"^\[worker 0\] +{kill_at} ", output(), re.M), 60,
                     f"iteration {kill_at}")
            pids = processes_with(tag, "scheduler")
            self.assertEqual(len(pids), 1, output())
            os.kill(pids[0], signal.SIGKILL)
            self.assertEqual(p.wait(timeout=120), 0, output())
            out = output()
            self.assertIn("launch.py: restart 1 of 1: scheduler was killed by SIGKILL", out)
            resumed = re.search(r"resuming from checkpoint \S+ after (\d+) iterations", out)
            self.assertIsNotNone(resumed, out)
            self.assertGreaterEqual(int(resumed.group(1)), kill_at, out)
            got = summary(out)
            self.assertEqual(got["iterations"], want["iterations"], (got, want))
            self.assertLess(abs(got["objective"] - want["objective"]) / want["objective"],
                            0.001, (got, want))

    def test_bcd_resumes_after_the_scheduler_died(self):
        # Until convergence (--epsilon): the resumed run stops at the same iteration.
        self.check_killed_scheduler_resumes("--max-iter=60", kill_at=8)

    def test_sgd_resumes_after_the_scheduler_died(self):
        self.check_killed_scheduler_resumes("--algo=sgd", "--epochs=12", "--batch=50",
                                            kill_at=4)

    def test_other_options_are_refused(self):
        with tempfile.TemporaryDirectory() as tmp:
            train, _ = gen_data(tmp, "--rows=2000", "--features=500", "--seed=5")
            ckpt = os.path.join(tmp, "ckpt")
            p = self.launch(ckpt, f"--data={train}", "--max-iter=3", out=subprocess.PIPE)
            out = p.communicate(timeout=120)[0]
            self.assertEqual(p.returncode, 0, out)
            p = self.launch(ckpt, f"--data={train}", "--max-iter=6", "--l1=3",
                            out=subprocess.PIPE)
            out = p.communicate(timeout=120)[0]
            self.assertNotEqual(p.returncode, 0, out)
            self.assertRegex(out, r"linear: error: checkpoint \S+step-3 cannot be resumed from: "
                                  r"it was written with algo=bcd,l1=1,")


if __name__ == "__main__":
    unittest.main()
