#!/usr/bin/env python3
"""cluster_lr: the parameter server paper's experiment on the simulated cluster, where the
network is the bottleneck.

    bench/cluster_lr.py [--servers 1] [--workers 3] [--rate 100mbit] [--rows 100000]
                        [--features 100000] [--straggler-ms 20] [--max-iter 30]
                        [--repeats 1] [--models sequential,bounded:1,...] [--build-dir build]

The logistic regression demo (demo/linear, bcd, KKT on, l1 = 2) runs on data from
tools/gen_data (written once into BUILD/bench/cluster-data/), through tracker/launch.py
--launcher mpi on a simulated cluster (tests/cluster/netcluster.py): the scheduler on the
head host, each server and each worker on a host of its own, every link limited to --rate in
both directions. For each consistency model, without and with a straggler (worker 1 sleeps
--straggler-ms before each of its 16 blocks), it reports the seconds until the objective is
within 1% of the best final objective of all runs (from --trace=on), and where each worker's
training time went (the demo's "worker_times": computing, waiting for answers, held back by
the model, waiting for the other workers at the end of an iteration), as shares of its time.
Then sequential again with PS_FILTERS=key_cache,fixed:8,zstd (and the lossless
key_cache,zstd), with --kkt=off, and both: the bytes on the wire and the seconds, next to
sequential with neither from the same round. Wire bytes are what the links' htb classes
counted (TCP/IP headers included); "server link busy" is the busier server link's bytes in
each direction over what its rate could carry in the run's seconds.

Runs are interleaved: each round runs every case once; with --repeats N each figure is the
median of N rounds, with the spread (lowest to highest). One JSON line per run, then
Markdown tables. Needs root and `ip netns`; elsewhere it says why and exits 0.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "cluster"))
import netcluster  # noqa: E402

MODELS = "sequential,bounded:1,bounded:2,bounded:4,bounded:8,eventual"
FILTERS = "key_cache,fixed:8,zstd"
RUN_SECONDS = 300  # one run's deadline


def log(message):
    print(f"cluster_lr: {message}", file=sys.stderr, flush=True)


def generate(build, rows, features):
    data = build / "bench" / "cluster-data"
    data.mkdir(parents=True, exist_ok=True)
    path = data / f"{rows}x{features}.train"
    if not path.exists():
        log(f"generating {rows} rows by {features} features")
        tmp = path.with_suffix(".tmp")
        subprocess.run([str(build / "tools" / "gen_data"), f"--rows={rows}",
                        f"--features={features}", "--nnz=20", "--seed=1", f"--out={tmp}"],
                       check=True, stdout=subprocess.DEVNULL)
        tmp.rename(path)
    return path


def run_case(cluster, args, build, data, model, straggler_ms, kkt="on", filters=""):
    """Runs the demo once on the cluster; returns its summary with worker_times added."""
    job = ["--launcher", "mpi", "-H", cluster.all_hostfile, "-s", str(args.servers),
           "-n", str(args.workers), "--timeout", str(RUN_SECONDS)]
    if filters:
        job += ["--env", f"PS_FILTERS={filters}"]
    demo = [str(build / "demo" / "linear"), f"--data={data}", "--l1=2", "--trace=on", "--times=on",
            f"--consistency={model}", f"--kkt={kkt}", f"--max-iter={args.max_iter}"]
    if straggler_ms:
        demo.append(f"--straggler=1:{straggler_ms}")
    before = [cluster.link_bytes(i) for i in range(cluster.size)]
    p = cluster.run(0, [sys.executable, str(REPO / "tracker" / "launch.py"), *job, "--",
                        *demo], cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True,
                    text=True, timeout=RUN_SECONDS + 60)
    if p.returncode != 0:
        raise SystemExit(f"cluster_lr: error: {model} failed ({p.returncode}):\n"
                         + "\n".join((p.stdout + p.stderr).splitlines()[-30:]))
    summary, times = None, {}
    for line in p.stdout.splitlines():
        match = re.fullmatch(r"\[worker (\d+)\] (\{.*\})", line)
        if not match:
            continue
        row = json.loads(match[2])
        if "worker_times" in row:
            times[int(match[1])] = row["worker_times"]
        elif "objective" in row:
            summary = row
    if summary is None or len(times) != args.workers:
        raise SystemExit(f"cluster_lr: error: {model}: no summary or worker times:\n"
                         + p.stdout[-3000:])
    summary["worker_times"] = [times[r] for r in sorted(times)]
    after = [cluster.link_bytes(i) for i in range(cluster.size)]
    delta = [{k: a[k] - b[k] for k in a} for a, b in zip(after, before)]
    summary["wire_bytes"] = sum(d["out"] for d in delta)
    # How busy the servers' links were over the run, in each direction: the busier server's.
    capacity = netcluster.rate_bytes_per_second(args.rate) * summary["seconds"]
    servers = delta[1:1 + args.servers]
    summary["server_link_in"] = max(d["in"] for d in servers) / capacity
    summary["server_link_out"] = max(d["out"] for d in servers) / capacity
    return summary


def shares(times):
    """Per worker: compute, wait, held, sync as fractions of its training time."""
    out = []
    for t in times:
        total = max(t["train_seconds"], 1e-9)
        out.append({k: t[k] / total for k in ("compute", "wait", "held", "sync")})
    return out


def to_target(trace, best):
    for seconds, objective in trace:
        if objective <= best * 1.01:
            return seconds
    return None


def median_spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None, None
    return statistics.median(values), min(values), max(values)


def fmt(m, lo, hi, digits=2):
    if m is None:
        return "never"
    if lo == hi:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})"


def pct(x):
    return f"{100 * x:.0f}%"


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", type=int, default=1)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--rate", default="100mbit")
    ap.add_argument("--rows", type=int, default=100000)
    ap.add_argument("--features", type=int, default=100000)
    ap.add_argument("--straggler-ms", type=int, default=20)
    ap.add_argument("--max-iter", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--models", default=MODELS)
    ap.add_argument("--no-filters", action="store_true", help="skip the filter and KKT runs")
    ap.add_argument("--build-dir", default=os.environ.get("PS_BUILD_DIR", "build"))
    args = ap.parse_args(argv)
    if args.workers < 2 or args.servers < 1:
        ap.error("--workers must be at least 2 (worker 1 is the straggler), --servers 1 or more")
    try:
        netcluster.check_rate(args.rate)
    except netcluster.ClusterError as e:
        ap.error(str(e))
    reason = netcluster.unavailable()
    if reason:
        log(f"skipped: the simulated cluster {reason}")
        return 0
    build = REPO / args.build_dir
    for binary in ("demo/linear", "tools/gen_data"):
        if not (build / binary).exists():
            ap.error(f"{build / binary} is missing: make demos tools")
    data = generate(build, args.rows, args.features)
    models = args.models.split(",")
    cases = [(m, s, "on", "") for s in (0, args.straggler_ms) for m in models]
    extra = [] if args.no_filters else [("sequential", 0, "on", FILTERS),
                                        ("sequential", 0, "on", "key_cache,zstd"),
                                        ("sequential", 0, "off", ""),
                                        ("sequential", 0, "off", FILTERS)]
    runs = {}
    hosts = 1 + args.servers + args.workers
    started = time.monotonic()
    with netcluster.Cluster(hosts=hosts, rate=args.rate) as cluster:
        for round_ in range(args.repeats):
            for case in cases + extra:
                log(f"round {round_ + 1}/{args.repeats}: {case[0]}, straggler {case[1]} ms, "
                    f"kkt {case[2]}, filters {case[3] or 'none'}")
                runs.setdefault(case, []).append(run_case(cluster, args, build, data, *case))
    log(f"{len(cases + extra) * args.repeats} runs in {time.monotonic() - started:.0f} s")

    best = min(r["objective"] for case in cases for r in runs[case])
    for case, results in runs.items():
        model, straggler, kkt, filters = case
        for r in results:
            row = {"model": model, "straggler_ms": straggler, "kkt": kkt,
                   "filters": filters, "rate": args.rate, "servers": args.servers,
                   "workers": args.workers, "best": best,
                   "to_target": to_target(r["trace"], best), "seconds": r["seconds"],
                   "iterations": r["iterations"], "objective": r["objective"],
                   "bytes_sent": r["bytes_sent"], "wire_bytes": r["wire_bytes"],
                   "server_link_in": r["server_link_in"],
                   "server_link_out": r["server_link_out"],
                   "shares": shares(r["worker_times"]),
                   "trace": r["trace"] if not filters and kkt == "on" else None}
            if row["trace"] is None:
                del row["trace"]  # the plot shows the models, not these
            print(json.dumps(row), flush=True)

    print(f"\ncluster_lr: {args.servers} server host(s), {args.workers} worker hosts, "
          f"links of {args.rate}, {args.rows} rows by {args.features} features, best "
          f"objective {best:.1f}; median of {args.repeats} round(s) (spread)\n")
    print("| model | straggler | seconds to 1% of best | iterations | seconds | computing | "
          "waiting for answers | held back by the model | iteration sync | straggler: "
          "computing / waiting / held / sync | server link busy, in / out |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for case in cases:
        model, straggler = case[0], case[1]
        results = runs[case]
        others = [s for r in results for i, s in enumerate(shares(r["worker_times"]))
                  if i != 1]
        slow = [shares(r["worker_times"])[1] for r in results]
        mean = {k: statistics.mean(s[k] for s in others) for k in others[0]}
        slow_mean = {k: statistics.mean(s[k] for s in slow) for k in slow[0]}
        print(f"| {model} | {f'{straggler} ms' if straggler else 'none'} | "
              f"{fmt(*median_spread([to_target(r['trace'], best) for r in results]))} | "
              f"{fmt(*median_spread([r['iterations'] for r in results]), digits=0)} | "
              f"{fmt(*median_spread([r['seconds'] for r in results]))} | "
              f"{pct(mean['compute'])} | {pct(mean['wait'])} | {pct(mean['held'])} | "
              f"{pct(mean['sync'])} | {' / '.join(pct(slow_mean[k]) for k in slow_mean)} | "
              f"{pct(statistics.median(r['server_link_in'] for r in results))} / "
              f"{pct(statistics.median(r['server_link_out'] for r in results))} |")
    if not extra:
        return 0
    base = runs[("sequential", 0, "on", "")]
    print("\n| kkt | filters | bytes on the wire | bytes vs kkt on, no filters | seconds | "
          "seconds vs kkt on, no filters | seconds to 1% of best | objective |")
    print("|---|---|---|---|---|---|---|---|")
    for case in [("sequential", 0, "on", "")] + extra:
        results = runs[case]
        bytes_ratio = [r["wire_bytes"] / b["wire_bytes"] for r, b in zip(results, base)]
        time_ratio = [r["seconds"] / b["seconds"] for r, b in zip(results, base)]
        print(f"| {case[2]} | {case[3] or 'none'} | "
              f"{statistics.median(r['wire_bytes'] for r in results):,.0f} | "
              f"{fmt(*median_spread(bytes_ratio), digits=3)} | "
              f"{fmt(*median_spread([r['seconds'] for r in results]))} | "
              f"{fmt(*median_spread(time_ratio))} | "
              f"{fmt(*median_spread([to_target(r['trace'], best) for r in results]))} | "
              f"{statistics.median(r['objective'] for r in results):.1f} |")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except netcluster.ClusterError as e:
        print(f"cluster_lr: error: {e}", file=sys.stderr)
        sys.exit(1)
