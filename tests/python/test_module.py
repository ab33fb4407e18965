"""The slackline module in real jobs: Python schedulers, servers and workers started by
tracker/launch.py over loopback. Numbers are checked exactly."""
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import unittest

from common import (BUILD_DIR, ROOT, alive, env, launch_args, module_missing, pids, reports,
                    run_job, wait_until, NODE)

MISSING = module_missing()


@unittest.skipIf(MISSING, f"the slackline module does not import: {MISSING}")
class KVTest(unittest.TestCase):
    def job(self, servers, workers, *args, **extra):
        code, out = run_job(servers, workers, *args, **extra)
        self.assertEqual(code, 0, out)
        got = reports(out)
        self.assertEqual(len(got), workers, out)
        return got, out

    def test_sums_from_three_workers_on_one_server_are_exact(self):
        got, out = self.job(1, 3, "sums", 1000, 5)
        for r in got:
            self.assertEqual(r["want"], 30)
            self.assertEqual((r["dtype"], r["n"]), ("float32", 1000))
            self.assertEqual(r["got"], [30], out)
            self.assertEqual(r["into"], [30], out)
            self.assertEqual(r["push_pull"], [30], out)

    def test_float64_sums_from_two_workers_on_two_servers_are_exact(self):
        got, out = self.job(2, 2, "sums", 100000, 3, TEST_DTYPE="float64")
        for r in got:
            self.assertEqual(r["dtype"], "float64")
            self.assertEqual((r["got"], r["into"], r["push_pull"]), ([9], [9], [9]), out)

    def test_bounded_consistency_and_filters_keep_sums_exact_on_two_servers(self):
        # Five back-to-back pushes under bounded:2: a call beyond the bound is held back (it
        # blocks without the GIL). key_cache and zstd on workers and servers, both ways. The
        # library's PS_VERBOSE lines at finalize say what each applied.
        got, out = self.job(2, 2, "sums", 100000, 5, TEST_CONSISTENCY="bounded:2",
                            TEST_FILTERS="key_cache,zstd", PS_VERBOSE=1)
        for r in got:
            self.assertEqual(r["consistency"], "bounded:2", out)
            self.assertEqual(r["want"], 15)
            self.assertEqual((r["got"], r["into"], r["push_pull"]), ([15], [15], [15]), out)
        in_flight = re.findall(r"consistency bounded:2, \d+ requests, at most (\d+) in flight",
                               out)
        self.assertEqual(len(in_flight), 2, out)
        self.assertTrue(all(1 <= int(n) <= 3 for n in in_flight), in_flight)
        for node in ("worker 0: KVWorker", "worker 1: KVWorker", "server 0: KVServer",
                     "server 1: KVServer"):
            for f in ("key_cache", "zstd"):
                lines = re.findall(node + r" app 0(?: customer 0)?: filter " + f +
                                   r": encoded \d+ messages", out)
                self.assertEqual(len(lines), 1, (node, f, out))
        # Requests shrink on the way out (keys cached, values compressed); answers compress.
        for f in ("key_cache", "zstd"):
            self.assertRegex(out, r"KVWorker app 0 customer 0: filter " + f +
                             r": encoded \d+ messages \([1-9]\d* changed\)")
        self.assertRegex(out, r"KVServer app 0: filter zstd: encoded \d+ messages \([1-9]\d* "
                              r"changed\)")

    def test_sync_handle_on_two_servers_sums_each_round_of_every_worker(self):
        got, out = self.job(2, 2, "sync_rounds", 1000, 4, TEST_HANDLE="sync")
        for r in got:
            self.assertEqual(r["seen"], [[(i + 1) * 3] for i in range(4)], out)

    def test_pushed_array_is_the_buffer_sent_and_pulls_are_not_copied(self):
        got, out = self.job(1, 2, "zero_copy", 1000, TEST_HANDLE="sync")
        for r in got:
            # 8: the second push of rank 0 sent the fives written after push() returned.
            self.assertEqual(r["got"], [8], out)
            self.assertFalse(r["pulled_owns_data"], out)
            self.assertTrue(r["writeable"], out)
        rank0 = [r for r in got if r["rank"] == 0][0]
        self.assertEqual(rank0["held"], 1, out)

    def test_custom_python_handle_that_raises_fails_that_request_only(self):
        got, out = self.job(1, 1, "raising_handle", TEST_HANDLE="python_sum")
        r = got[0]
        self.assertIn("request handle raised ValueError: boom on cmd 1", r["error"], out)
        self.assertEqual(r["got"], [5.0, 5.0, 5.0], out)
        self.assertIn("request handle answered a pull badly: the handle's answer: expected a "
                      "numpy array of float32, got list", r["bad_answer"], out)
        self.assertIn("boom on cmd 1", out)  # the server says so too

    def test_wait_in_a_callback_is_an_error_not_a_hang(self):
        got, out = self.job(1, 1, "wait_in_callback")
        r = got[0]
        self.assertEqual(len(r["seen"]), 1, out)
        self.assertIn("Wait called from a", r["seen"][0])
        self.assertIn("callback", r["seen"][0])
        self.assertEqual((r["calls"], r["got"]), (1, [2.0]), out)

    def test_blocking_calls_release_the_gil(self):
        with tempfile.TemporaryDirectory() as tmp:
            got, out = self.job(1, 2, "gil_released", TEST_DIR=tmp)
        self.assertTrue(all(r["flag"] for r in got), out)

    def test_ssp_tables_hold_every_clock_of_every_worker(self):
        got, out = self.job(2, 2, "ssp", 5)
        for r in got:
            want = r["want"]
            self.assertEqual(want, 15)
            self.assertEqual(r["row5"], [want] * 4, out)
            self.assertEqual(r["row6"], [0, 0, want, 0], out)
            self.assertEqual((r["cols"], r["values"]), ([3, 1000], [want, 2 * want]), out)
            e = r["errors"]
            self.assertEqual(e["inc_col"][0], "Error")
            self.assertIn("column 4", e["inc_col"][1])
            self.assertEqual(e["inc_row_width"][0], "ValueError")
            self.assertIn("deltas: has 3 values for a row of 4", e["inc_row_width"][1])
            self.assertEqual(e["batch_sizes"],
                             ["ValueError", "deltas: has 2 values for 1 columns"])
            self.assertEqual(e["cols_dtype"],
                             ["ValueError", "cols: dtype is int64, expected uint64"])
            self.assertEqual(e["bad_tables"][0], "ValueError")
            self.assertIn("tables: table 0 has row_width -1", e["bad_tables"][1])


@unittest.skipIf(MISSING, f"the slackline module does not import: {MISSING}")
class BadArgumentTest(unittest.TestCase):
    WANT = {
        "keys_dtype": ("ValueError", "keys: dtype is int64, expected uint64"),
        "keys_list": ("TypeError", "keys: expected a numpy array of uint64, got list"),
        "keys_strided": ("ValueError", "keys: the array is not contiguous"),
        "keys_unsorted": ("ValueError", "keys: keys must be sorted and unique: keys[2]=2 comes "
                                        "after keys[1]=3"),
        "keys_repeated": ("ValueError", "keys: keys must be sorted and unique: keys[1]=1"),
        "vals_dtype": ("ValueError", "vals: dtype is float64, expected float32 (this KVWorker "
                                     "was made with dtype=float32)"),
        "vals_strided": ("ValueError", "vals: the array is not contiguous"),
        "vals_shape": ("ValueError", "vals: 7 values for 3 keys: not a multiple"),
        "lens_count": ("ValueError", "lens: lens has 2 entries for 3 keys"),
        "lens_sum": ("ValueError", "lens: lens add up to 4, but there are 3 values"),
        "lens_dtype": ("ValueError", "lens: dtype is int64, expected int32"),
        "out_dtype": ("ValueError", "out: dtype is float64, expected float32"),
        "out_shape": ("ValueError", "out: holds 4 values for 3 keys: not a multiple"),
        "out_readonly": ("ValueError", "out: the array is read-only"),
        "out_empty": ("ValueError", "out: holds 0 values for 3 keys"),
        "out_strided": ("ValueError", "out: the array is not contiguous"),
        "pull_lens_count": ("ValueError", "lens: has 2 entries for 3 keys"),
        "callback": ("TypeError", "callback: expected a callable or None, got int"),
        "consistency": ("ValueError", "consistency: "),
        "filters": ("ValueError", "filters: unknown filter zsdt"),
        "worker_dtype": ("ValueError", "dtype: values are float32 or float64, not int32"),
        "server_on_worker": ("Error", "KVServer needs a server node; this node is a worker"),
        "barrier_group": ("ValueError", "group: 0 is no node group"),
        "wait_unknown": ("Error", "timestamp 12345 was not issued"),
    }

    def test_every_bad_argument_is_a_one_line_error_naming_it(self):
        code, out = run_job(1, 1, "bad_args")
        self.assertEqual(code, 0, out)
        cases = reports(out)[0]["cases"]
        self.assertEqual(cases.pop("after"), [1.0, 1.0, 1.0], out)
        self.assertEqual(sorted(cases), sorted(self.WANT))
        for name, (kind, text) in self.WANT.items():
            with self.subTest(name):
                self.assertEqual(cases[name][0], kind, cases[name])
                self.assertTrue(cases[name][1].startswith(text), cases[name])
                self.assertNotIn("\n", cases[name][1])
        server = reports(out, "server")[0]["cases"]
        self.assertEqual(server["handle_name"],
                         ["ValueError", "handle: unknown built-in handle 'nope' (known: default, "
                                        "sync); or pass a callable"])
        self.assertEqual(server["handle_type"],
                         ["TypeError", "handle: expected 'default', 'sync' or a callable, got "
                                       "int"])
        self.assertEqual(server["worker_on_server"],
                         ["Error", "KVWorker needs a worker node; this node is a server"])


@unittest.skipIf(MISSING, f"the slackline module does not import: {MISSING}")
class InterruptTest(unittest.TestCase):
    """SIGINT in a worker (what Ctrl-C does) ends the whole job through the launcher."""

    def start_blocked_job(self):
        proc = subprocess.Popen(launch_args(1, 2, NODE, "block", timeout=60), env=env(),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        self.addCleanup(proc.stdout.close)
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")))
        reader.start()
        self.addCleanup(reader.join)
        ready = lambda: len(pids("".join(lines))) == 4 and len(reports("".join(lines))) == 2
        self.assertTrue(wait_until(ready, 30), "".join(lines))
        return proc, lines

    def pid_of_rank(self, lines, rank):
        # From the line the node prints once it knows its rank: output labels follow ranks
        # only from registration on, so the earlier pid lines may carry another label.
        for line in "".join(lines).splitlines():
            if f'"rank": {rank},' in line and '"process"' in line:
                return json.loads(line.split("] ", 1)[1])["process"]
        raise AssertionError(f"no pid for rank {rank}")

    def check_interrupt_ends_job(self, rank, message):
        proc, lines = self.start_blocked_job()
        everyone = pids("".join(lines))
        os.kill(self.pid_of_rank(lines, rank), signal.SIGINT)
        code = proc.wait(20)
        out = "".join(lines)
        self.assertNotEqual(code, 0, out)
        self.assertIn("was killed by SIGINT", out)
        self.assertIn(message, out)
        self.assertTrue(wait_until(lambda: not any(alive(p) for p in everyone), 10),
                        f"still running: {[p for p in everyone if alive(p)]}\n{out}")

    def test_sigint_while_blocked_in_the_library_ends_the_job(self):
        self.check_interrupt_ends_job(0, "slackline: SIGINT while blocked in the library")

    def test_sigint_in_python_code_ends_the_job(self):
        self.check_interrupt_ends_job(1, "KeyboardInterrupt")


@unittest.skipIf(MISSING, f"the slackline module does not import: {MISSING}")
class InstallTest(unittest.TestCase):
    @unittest.skipUnless(os.path.basename(BUILD_DIR) == "build",
                         "make install-python is checked in the default build only")
    def test_installed_module_runs_a_job_without_the_build_folder(self):
        with tempfile.TemporaryDirectory() as prefix:
            clean = {k: v for k, v in os.environ.items()
                     if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
            p = subprocess.run(["make", "-s", "install-python", f"PREFIX={prefix}"], cwd=ROOT,
                               env=clean, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, timeout=300)
            self.assertEqual(p.returncode, 0, p.stdout)
            site = [os.path.join(d, "dist-packages") for d, _, _ in
                    os.walk(os.path.join(prefix, "lib")) if os.path.basename(d).startswith(
                        "python3")]
            self.assertEqual(len(site), 1, p.stdout)
            self.assertTrue(os.path.exists(os.path.join(site[0], "slackline", "__init__.py")))
            code, out = run_job(1, 2, "sums", 100, 2, PYTHONPATH=site[0])
        self.assertEqual(code, 0, out)
        self.assertIn(os.path.join(site[0], "slackline"), out)
        for r in reports(out):
            self.assertEqual(r["got"], [6], out)


if __name__ == "__main__":
    unittest.main()
