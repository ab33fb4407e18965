"""Matrix factorization by SGD on SSP tables, in Python: ratings r(u, i) ~ <U[u], V[i]>.

    python3 tracker/launch.py -s 1 -n 2 -- /usr/bin/python3 demo/python/mf.py --staleness=2

The Python form of demo/mf: each worker owns the users u with u % workers == rank and keeps
their factors U; the item factors V are the rows of SSP table 0 (width --rank), read at the
start of each clock with the table's staleness and incremented by the worker's SGD steps. One
clock is one pass over the worker's ratings. Table 1 (sparse) collects each clock's squared
error and rating count of every worker; worker 0 reads it at staleness 0 at the end and prints
one JSON line: the training RMSE per clock and after the last one.

Data: synthetic, users x items with true factors of rank --true-rank, a fraction --density
rated, plus Gaussian noise --noise; every worker draws the same data from --seed.
"""
import argparse
import json
import time

import numpy as np

import slackline as sl

SSE, COUNT = 0, 1  # columns of the statistics table (row c: clock c)


def ratings(args):
    """This worker's ratings: (users, items, values)."""
    rng = np.random.default_rng(args.seed)
    scale = args.true_rank ** -0.25
    u = rng.normal(size=(args.users, args.true_rank)) * scale
    v = rng.normal(size=(args.items, args.true_rank)) * scale
    rated = rng.random((args.users, args.items)) < args.density
    noisy = u @ v.T + rng.normal(size=rated.shape) * args.noise
    users, items = np.nonzero(rated)
    mine = users % sl.num_workers() == sl.rank()
    users, items = users[mine], items[mine]
    return users, items, noisy[users, items]


def run_worker(group, args):
    users, items, values = ratings(args)
    rng = np.random.default_rng(args.seed * 7919 + sl.rank())
    order = rng.permutation(len(values))
    users, items, values = users[order].tolist(), items[order].tolist(), values[order].tolist()
    user = rng.uniform(0, 0.1, size=(args.users, args.rank))
    worker = sl.SSPWorker(group, 0)
    item_table, stats = worker.table(0), worker.table(1)
    mine = sorted(set(items))
    start = time.monotonic()
    for c in range(args.clocks):
        v = {i: item_table.get(i) for i in mine}  # at most --staleness clocks stale
        delta = {i: np.zeros(args.rank) for i in mine}
        sse = 0.0
        for a, b, r in zip(users, items, values):
            u, vb = user[a], v[b]
            e = r - u @ vb
            sse += e * e
            du = args.lr * (e * vb - args.reg * u)
            dv = args.lr * (e * u - args.reg * vb)
            u += du
            vb += dv
            delta[b] += dv
        for i in mine:
            item_table.inc_row(i, delta[i])
        stats.batch_inc(c, np.array([SSE, COUNT], dtype=np.uint64),
                        np.array([sse, float(len(values))]))
        worker.clock()
    seconds = time.monotonic() - start
    if sl.rank() != 0:
        return
    # At clock "clocks", staleness 0 includes every clock of every worker.
    per_clock = []
    for c in range(args.clocks):
        _, totals = stats.get(c, 0)
        per_clock.append(float(np.sqrt(totals[SSE] / max(1.0, totals[COUNT]))))
    s = group.stats()
    print(json.dumps({"rmse": per_clock[-1], "clocks": args.clocks, "seconds": round(seconds, 3),
                      "staleness": args.staleness, "workers": sl.num_workers(),
                      "cache_hit_rate": round(s["cache_hit_rate"], 4),
                      "blocked_reads": s["blocked_reads"],
                      "rmse_per_clock": [round(x, 4) for x in per_clock]}), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--staleness", type=int, default=2)
    ap.add_argument("--eager", action="store_true", help="ESSP: servers push fresh rows")
    ap.add_argument("--clocks", type=int, default=40)
    ap.add_argument("--users", type=int, default=400)
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--true-rank", type=int, default=4)
    ap.add_argument("--density", type=float, default=0.2)
    ap.add_argument("--noise", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=0.03)
    ap.add_argument("--reg", type=float, default=0.001)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    sl.start()
    if not sl.is_scheduler():
        tables = [(0, args.rank, args.staleness), (1, 0, max(1, args.staleness))]
        with sl.SSPTableGroup(1, tables, eager=args.eager) as group:
            if sl.is_worker():
                run_worker(group, args)
            sl.barrier(sl.SERVERS + sl.WORKERS)  # servers serve until every worker is done
    sl.finalize()


if __name__ == "__main__":
    main()
