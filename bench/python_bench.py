"""The Python side of bench/python_bench.cc (read that first): the driver, and the Python
worker of the job.

    build/bench/python_bench [--rounds R]     (what make bench runs; it starts this driver)

Prints one JSON line per op and key count: the medians of the C++ and the Python worker's
turns (best of N requests each), and ratio = C++ ms / Python ms (1.0: Python is as fast); then
the cost of issuing a 1-key push in each, and Python's overhead per call, in microseconds.
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = (1, 1000, 100000, 1000000)
ISSUED = 1000  # one-key pushes per timing of the call cost


def reps_for(n):
    """As the C++ worker: about 0.1 s of transfers per best-of-N."""
    nbytes = n * 12
    return max(3, min(300, int(0.1 / (nbytes / 4e9 + 5e-5))))


def best(reps, fn):
    t = 1e9
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        t = min(t, time.perf_counter() - t0)
    return t


def node(rounds):
    import numpy as np
    import slackline as sl

    sl.start()
    kv = sl.KVWorker(0, 0)
    for n in SIZES:
        keys = np.arange(n, dtype=np.uint64) * np.uint64((2 ** 64 - 1) // n)
        vals = np.full(n, 0.5, dtype=np.float32)
        reps = reps_for(n)
        for op in ("push", "pull"):
            if op == "push":
                fn = lambda: kv.wait(kv.push(keys, vals))  # noqa: E731
            else:
                fn = lambda: kv.wait(kv.pull(keys))  # noqa: E731
            turns = []
            for _ in range(rounds):
                sl.barrier(sl.WORKERS)  # the C++ worker's turn
                sl.barrier(sl.WORKERS)
                turns.append(best(reps, fn))
                sl.barrier(sl.WORKERS)
            turns.sort()
            print(json.dumps({"side": "python", "op": op, "keys": n, "reps": reps,
                              "ms": round(turns[len(turns) // 2] * 1e3, 5)}), flush=True)
    key, val = np.ones(1, dtype=np.uint64), np.full(1, 0.5, dtype=np.float32)
    turns = []
    for _ in range(rounds):
        sl.barrier(sl.WORKERS)
        sl.barrier(sl.WORKERS)
        per_call = 1e9
        for _ in range(3):
            t0 = time.perf_counter()
            ts = [kv.push(key, val) for _ in range(ISSUED)]
            per_call = min(per_call, (time.perf_counter() - t0) / ISSUED)
            for t in ts:
                kv.wait(t)
        turns.append(per_call)
        sl.barrier(sl.WORKERS)
    turns.sort()
    print(json.dumps({"side": "python", "op": "issue", "keys": 1, "reps": ISSUED,
                      "ms": round(turns[len(turns) // 2] * 1e3, 6)}), flush=True)
    sl.barrier(sl.SERVERS + sl.WORKERS)
    sl.finalize()


def driver(build, rounds):
    program = os.path.join(build, "bench", "python_bench")
    module = os.path.join(build, "python")
    env = dict(os.environ, PYTHONPATH=module, PS_PYTHON=sys.executable)
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tracker", "launch.py"), "-s", "1",
                        "-n", "2", "--timeout", "900", "--", program, "--rounds", str(rounds)],
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        sys.exit(f"python_bench: the job failed (exit {p.returncode}):\n{p.stdout}")
    got = {}
    for line in p.stdout.splitlines():
        if line.startswith("[worker ") and '"side"' in line:
            r = json.loads(line.split("] ", 1)[1])
            got[(r["side"], r["op"], r["keys"])] = r
    for n in SIZES:
        for op in ("push", "pull"):
            c, py = got[("cpp", op, n)], got[("python", op, n)]
            print(json.dumps({"bench": "python", "op": op, "keys": n, "rounds": rounds,
                              "reps": c["reps"], "cpp_ms": c["ms"], "python_ms": py["ms"],
                              "ratio": round(c["ms"] / py["ms"], 3)}), flush=True)
    c, py = got[("cpp", "issue", 1)], got[("python", "issue", 1)]
    print(json.dumps({"bench": "python", "op": "push issue", "keys": 1, "calls": ISSUED,
                      "cpp_us_per_call": round(c["ms"] * 1e3, 2),
                      "python_us_per_call": round(py["ms"] * 1e3, 2),
                      "overhead_us_per_call": round((py["ms"] - c["ms"]) * 1e3, 2)}), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--node", action="store_true", help="run as the job's Python worker")
    ap.add_argument("--rounds", type=int, default=9, help="turns per case (median)")
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    args = ap.parse_args()
    if args.node:
        node(args.rounds)
    else:
        driver(args.build_dir, args.rounds)


if __name__ == "__main__":
    main()
