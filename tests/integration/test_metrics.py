"""PS_METRICS_PORT: every node of a running job serves Prometheus metrics, scraped here with a
real HTTP client (curl) and checked with promtool (Debian's prometheus package).

metrics_job (1 server, 2 workers, through tracker/launch.py) pushes and pulls until told to
stop, then each node prints its own counters and waits until released, so that the final
figures can be compared with the job's: bytes a worker sent to the server equal the bytes the
server received from it, exactly, and the request counts are those the workers made.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from jobs import BUILD_DIR, LAUNCH

METRICS_JOB = os.path.join(BUILD_DIR, "tests", "integration", "metrics_job")
DEADLINE = 60  # seconds; the machine may be busy
ENDPOINT = re.compile(r"^launch\.py: (scheduler|server \d+|worker \d+) metrics at (http://\S+)$")
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'(\w+)="([^"]*)"')


def wait_until(condition, what, seconds=DEADLINE):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def curl(url):
    p = subprocess.run(["curl", "-sS", "--max-time", "10", url], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=30)
    if p.returncode != 0:
        raise AssertionError(f"curl {url}: {p.stderr.strip()}")
    return p.stdout


def parse(text):
    """{(name, ((label, value), ...)): value} of a text-format scrape; a series twice is an
    error (a Prometheus server would drop one of them)."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            raise AssertionError(f"not a sample line: {line!r}")
        labels = tuple(sorted(LABEL.findall(m[2] or "")))
        if (m[1], labels) in samples:
            raise AssertionError(f"series given twice: {line!r}")
        samples[m[1], labels] = float(m[3])
    return samples


def promtool_check(test, text):
    if not shutil.which("promtool"):
        test.fail("promtool is missing: make deps installs Debian's prometheus")
    p = subprocess.run(["promtool", "check", "metrics"], input=text, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=30)
    test.assertEqual(p.returncode, 0, p.stdout)


def value(samples, name, **labels):
    """The one sample of "name" whose labels include "labels"."""
    want = set(labels.items())
    found = [v for (n, ls), v in samples.items() if n == name and want <= set(ls)]
    if len(found) != 1:
        raise AssertionError(f"{len(found)} samples of {name} with {labels}")
    return found[0]


class Launched:
    """tracker/launch.py running metrics_job, its output collected line by line."""

    def __init__(self, servers, workers, tmp, *env, job_args=()):
        self.stop_file = os.path.join(tmp, "stop")
        self.release_file = os.path.join(tmp, "release")
        args = [a for e in env for a in ("--env", e)]
        self.proc = subprocess.Popen(
            [sys.executable, LAUNCH, "-s", str(servers), "-n", str(workers), "--timeout",
             str(3 * DEADLINE), *args, "--", METRICS_JOB, "--stop", self.stop_file, "--release",
             self.release_file, *job_args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        self.lines = []
        self.lock = threading.Lock()
        self.readers = [threading.Thread(target=self._read, args=(s,), daemon=True)
                        for s in (self.proc.stdout, self.proc.stderr)]
        for r in self.readers:
            r.start()

    def _read(self, stream):
        with stream:
            for line in stream:
                with self.lock:
                    self.lines.append(line.rstrip("\n"))

    def output(self):
        with self.lock:
            return list(self.lines)

    def endpoints(self):
        return {m[1]: m[2] for m in map(ENDPOINT.match, self.output()) if m}

    def summaries(self):
        out = {}
        for line in self.output():
            m = re.match(r"^\[((?:server|worker) \d+)\] (\{.*\})$", line)
            if m:
                out[m[1]] = json.loads(m[2])
        return out

    def touch(self, path):
        with open(path, "w"):
            pass

    def finish(self):
        self.touch(self.stop_file)
        self.touch(self.release_file)
        try:
            code = self.proc.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        for r in self.readers:
            r.join(5)
        return code


class MetricsTest(unittest.TestCase):
    def setUp(self):
        if not os.access(METRICS_JOB, os.X_OK):
            raise AssertionError(f"{METRICS_JOB} is missing: run make first")
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def test_scraped_while_running_and_equal_to_the_jobs_counters_at_the_end(self):
        # Heartbeats every 0.1 s: a few go by while the job runs.
        job = Launched(1, 2, self.tmp.name, "PS_METRICS_PORT=0", "PS_FILTERS=key_cache",
                       "PS_HEARTBEAT_INTERVAL=0.1")
        try:
            names = ("scheduler", "server 0", "worker 0", "worker 1")
            urls = wait_until(lambda: len(job.endpoints()) == 4 and job.endpoints(),
                              "four metrics endpoints")
            self.assertEqual(sorted(urls), sorted(names), job.output())

            # The figures move while the job works.
            def scraped(name, metric, **labels):
                return value(parse(curl(urls[name])), metric, **labels)

            def requests(name):
                return scraped(name, "slackline_requests_total", app="0", customer="0")

            first = wait_until(lambda: requests("worker 0") > 0, "worker 0's first requests")
            wait_until(lambda: requests("worker 0") > first, "more requests")
            for rank in range(2):
                wait_until(lambda: scraped(f"worker {rank}", "slackline_heartbeats_sent_total"),
                           f"worker {rank}'s first heartbeat")
            promtool_check(self, curl(urls["worker 0"]))

            job.touch(job.stop_file)
            got = wait_until(lambda: len(job.summaries()) == 3 and job.summaries(),
                             "the nodes' own counters")
            final = {name: parse(curl(urls[name])) for name in names}

            server = final["server 0"]
            self.assertEqual(value(server, "slackline_node_registered", role="server",
                                   rank="0"), 1)
            rounds = 0
            for rank in range(2):
                name, peer = f"worker {rank}", f"worker-{rank}"
                w, mine = final[name], got[name]
                rounds += mine["rounds"]
                self.assertGreater(mine["rounds"], 0)
                sent, msgs_sent, received, msgs_received = mine["peers"]["server-0"]
                # The worker's figures are its own counters, and the server saw the same bytes.
                for metric, own, other in (
                        ("slackline_peer_sent_bytes_total", sent,
                         "slackline_peer_received_bytes_total"),
                        ("slackline_peer_sent_messages_total", msgs_sent,
                         "slackline_peer_received_messages_total"),
                        ("slackline_peer_received_bytes_total", received,
                         "slackline_peer_sent_bytes_total"),
                        ("slackline_peer_received_messages_total", msgs_received,
                         "slackline_peer_sent_messages_total")):
                    self.assertEqual(value(w, metric, role="worker", rank=str(rank),
                                           peer="server-0"), own, metric)
                    self.assertEqual(value(server, other, peer=peer), own, metric)
                self.assertEqual(got["server 0"]["peers"][peer],
                                 [received, msgs_received, sent, msgs_sent])
                self.assertGreater(sent, 0)
                # Each round is a push and a pull; one more pull after the last round.
                n = mine["rounds"]
                labels = dict(app="0", customer="0")
                self.assertEqual(value(w, "slackline_requests_total", **labels), 2 * n + 1)
                self.assertEqual(value(w, "slackline_requests_in_flight", **labels), 0)
                self.assertEqual(value(w, "slackline_request_duration_seconds_count",
                                       kind="push", **labels), n)
                self.assertEqual(value(w, "slackline_request_duration_seconds_count",
                                       kind="pull", **labels), n + 1)
                self.assertEqual(value(w, "slackline_request_duration_seconds_bucket",
                                       kind="pull", le="+Inf", **labels), n + 1)
                self.assertEqual(value(w, "slackline_dead_nodes"), 0)
                self.assertGreater(value(w, "slackline_heartbeats_sent_total"), 0)
                self.assertEqual(value(w, "slackline_dropped_messages_total",
                                       reason="bad meta"), 0)
            # What the key cache did: the server decoded exactly the bytes the workers encoded,
            # and the signatures saved bytes.
            key_cache = dict(filter="key_cache")  # one chain per node here
            out = sum(value(final[f"worker {r}"], "slackline_filter_bytes_out_total",
                            direction="encode", **key_cache) for r in range(2))
            self.assertEqual(value(server, "slackline_filter_bytes_in_total", direction="decode",
                                   **key_cache), out)
            self.assertGreater(value(final["worker 0"], "slackline_filter_saved_bytes_total",
                                     **key_cache), 0)
            # 1000 keys, each pushed 1 per round by every worker: the sums are exact.
            for rank in range(2):
                self.assertEqual(got[f"worker {rank}"]["sum"], 1000 * rounds)
            self.assertEqual(value(final["scheduler"], "slackline_node_up", role="scheduler"),
                             1)
        finally:
            code = job.finish()
        self.assertEqual(code, 0, "\n".join(job.output()))

    def test_consistency_and_ssp_figures_equal_the_jobs_own(self):
        # Sequential: each round's pull is held back while its push is in flight; then every
        # worker runs 20 clocks of an SSP table (app 1). Before all that, each worker built and
        # dropped a KVWorker of app 2 twice: no series of theirs is left, none is given twice.
        clocks = 20
        job = Launched(1, 2, self.tmp.name, "PS_METRICS_PORT=0", "PS_FILTERS=key_cache",
                       job_args=("--consistency", "sequential", "--ssp-clocks", str(clocks),
                                 "--recreate"))
        try:
            names = ("scheduler", "server 0", "worker 0", "worker 1")
            urls = wait_until(lambda: len(job.endpoints()) == 4 and job.endpoints(),
                              "four metrics endpoints")
            self.assertEqual(sorted(urls), sorted(names), job.output())
            wait_until(lambda: value(parse(curl(urls["worker 1"])), "slackline_requests_total",
                                     app="0", customer="0") > 0, "worker 1's first requests")
            job.touch(job.stop_file)
            got = wait_until(lambda: len(job.summaries()) == 3 and job.summaries(),
                             "the nodes' own counters")
            texts = {name: curl(urls[name]) for name in names}
            final = {name: parse(text) for name, text in texts.items()}
            for text in texts.values():
                promtool_check(self, text)

            for rank in range(2):
                name = f"worker {rank}"
                w, mine = final[name], got[name]
                kv = dict(app="0", customer="0")
                c = mine["consistency"]
                self.assertEqual(c["requests"], 2 * mine["rounds"] + 1)
                self.assertGreater(c["held_back"], 0, c)
                for metric, own in (("slackline_requests_total", c["requests"]),
                                    ("slackline_held_back_total", c["held_back"]),
                                    ("slackline_deferred_total", c["deferred"]),
                                    ("slackline_requests_in_flight_max", c["max_in_flight"])):
                    self.assertEqual(value(w, metric, **kv), own, metric)
                self.assertAlmostEqual(value(w, "slackline_held_back_seconds_total", **kv),
                                       c["held_back_seconds"], delta=1e-9)

                ssp, app = mine["ssp"], dict(app="1")
                self.assertEqual(ssp["reads"], 10 * clocks + 1)
                self.assertEqual(ssp["clocks"], clocks)
                self.assertEqual(ssp["cache_hits"] + ssp["blocked_reads"], ssp["reads"])
                self.assertGreater(ssp["blocked_reads"], 0, ssp)  # a row's first read waits
                for metric, own in (("slackline_ssp_reads_total", ssp["reads"]),
                                    ("slackline_ssp_cache_hits_total", ssp["cache_hits"]),
                                    ("slackline_ssp_blocked_reads_total", ssp["blocked_reads"]),
                                    ("slackline_ssp_clocks_total", ssp["clocks"]),
                                    ("slackline_ssp_staleness_count", ssp["reads"])):
                    self.assertEqual(value(w, metric, **app), own, metric)
                self.assertAlmostEqual(value(w, "slackline_ssp_cache_hit_rate", **app),
                                       ssp["cache_hits"] / ssp["reads"], places=12)
                self.assertAlmostEqual(value(w, "slackline_ssp_blocked_seconds_total", **app),
                                       ssp["blocked_seconds"], delta=1e-9)
                # The staleness histogram: bucket d counts the reads d clocks stale (the last
                # one d or more), cumulative as Prometheus has it.
                cumulative = 0
                for d, n in enumerate(ssp["staleness"]):
                    cumulative += n
                    le = "+Inf" if d + 1 == len(ssp["staleness"]) else str(d)
                    self.assertEqual(value(w, "slackline_ssp_staleness_bucket", le=le, **app),
                                     cumulative, le)
                self.assertEqual(cumulative, ssp["reads"])
                # Read at staleness 0 after the last clock: every increment of both workers.
                self.assertEqual(mine["ssp_sum"], 2 * clocks)

                gone = [k for k in w if ("app", "KVWorker app 2 customer 0") in k[1]]
                self.assertEqual(gone, [])
            server = final["server 0"]
            self.assertEqual(got["server 0"]["ssp"]["global_clock"], clocks)
            self.assertEqual(value(server, "slackline_ssp_global_clock", app="1"), clocks)
        finally:
            code = job.finish()
        self.assertEqual(code, 0, "\n".join(job.output()))

    def test_bad_port_is_a_one_line_error(self):
        with socket.socket() as busy:
            busy.bind(("0.0.0.0", 0))
            busy.listen()
            port = busy.getsockname()[1]
            for setting, text in (("abc", "PS_METRICS_PORT=abc is not a number"),
                                  ("70000", "PS_METRICS_PORT=70000 is out of range"),
                                  (str(port), f"PS_METRICS_PORT={port}: cannot serve metrics")):
                job = Launched(1, 1, self.tmp.name, f"PS_METRICS_PORT={setting}")
                job.touch(job.stop_file)
                job.touch(job.release_file)
                code = job.proc.wait(timeout=DEADLINE)
                for r in job.readers:
                    r.join(5)
                out = "\n".join(job.output())
                self.assertNotEqual(code, 0, out)
                self.assertIn(text, out)
                self.assertNotIn("terminate called", out)


if __name__ == "__main__":
    unittest.main()
