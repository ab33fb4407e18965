"""Sparse logistic regression with minibatch SGD, in Python, on Slackline.

    python3 tracker/launch.py -s 1 -n 2 -- /usr/bin/python3 demo/python/linear.py \\
        --data=train.libsvm --test=test.libsvm

Every node runs this script; tracker/launch.py tells each its role. The servers hold, per
feature, two numbers, its weight w and its sum of squared gradients n, and run the built-in
"default" handle (in C++: it adds what is pushed). Each worker reads its share of the libsvm
rows and, per minibatch, pulls [w, n] of the minibatch's features, computes the gradient g of the
logistic loss with numpy and pushes [-alpha * g / (beta + sqrt(n + g^2)), g^2]: AdaGrad per
coordinate, like the C++ demo's FTRL without the l1 term. At the end, worker 0 pulls the
weights of the test features and prints one JSON line with the test accuracy.
"""
import argparse
import json
import sys
import time

import numpy as np

import slackline as sl

MIX = np.uint64(0x9E3779B97F4A7C15)  # odd: feature id -> key is a bijection that spreads keys


def read_libsvm(path, part=0, parts=1):
    """Rows part, part + parts, ... of a libsvm file: (labels in {0, 1}, CSR indptr, feature
    ids). Feature values are taken as 1 (the generated data is binary)."""
    labels, indptr, ids = [], [0], []
    with open(path) as f:
        for i, line in enumerate(f):
            if i % parts != part:
                continue
            fields = line.split()
            if not fields:
                continue
            labels.append(1.0 if float(fields[0]) > 0 else 0.0)
            ids.extend(int(x.split(":", 1)[0]) for x in fields[1:])
            indptr.append(len(ids))
    return np.array(labels), np.array(indptr), np.array(ids, dtype=np.uint64)


def keys_of(features):
    """Sorted unique keys of the given feature ids, and for each id its key's position."""
    mixed = features * MIX  # wraps modulo 2^64
    keys, where = np.unique(mixed, return_inverse=True)
    return keys, where


def margins(w, where, indptr):
    """Per row, the sum of the weights of its features (binary features)."""
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    return np.bincount(rows, weights=w[where], minlength=len(indptr) - 1), rows


def train(kv, args):
    y, indptr, ids = read_libsvm(args.data, sl.rank(), sl.num_workers())
    rng = np.random.default_rng(args.seed * 1000003 + sl.rank())
    # A key holds as many values as its first push gave: [0, 0] for every feature of this
    # worker, before any pull (a key never pushed reads as one zero).
    keys, _ = keys_of(ids)
    kv.wait(kv.push(keys, np.zeros(2 * len(keys), dtype=np.float32)))
    sl.barrier(sl.WORKERS)
    pushes = []
    for epoch in range(args.epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(order), args.batch):
            rows = order[start:start + args.batch]
            lo, hi = indptr[rows], indptr[rows + 1]
            take = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi)])
            batch_ptr = np.concatenate([[0], np.cumsum(hi - lo)])
            keys, where = keys_of(ids[take])
            wn = kv.wait(kv.pull(keys))  # [w, n] per key
            w, n = wn[0::2], wn[1::2]
            m, row_of = margins(w.astype(np.float64), where, batch_ptr)
            d = 1 / (1 + np.exp(-m)) - y[rows]
            g = np.bincount(where, weights=d[row_of], minlength=len(keys))
            step = np.empty(2 * len(keys), dtype=np.float32)
            step[0::2] = -args.alpha * g / (args.beta + np.sqrt(n + g * g))
            step[1::2] = g * g
            pushes.append(kv.push(keys, step))  # sent as it is; kept until waited
        for ts in pushes:
            kv.wait(ts)
        pushes.clear()


def test_accuracy(kv, path):
    y, indptr, ids = read_libsvm(path)
    keys, where = keys_of(ids)
    lens = np.zeros(len(keys), dtype=np.int32)  # features never trained hold one zero
    wn = kv.wait(kv.pull(keys, lens=lens))
    w = wn[np.concatenate([[0], np.cumsum(lens)[:-1]])].astype(np.float64)
    m, _ = margins(w, where, indptr)
    return float(np.mean((m > 0) == (y > 0))), len(y)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="libsvm training rows")
    ap.add_argument("--test", help="libsvm test rows")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--alpha", type=float, default=0.1, help="learning rate")
    ap.add_argument("--beta", type=float, default=1.0, help="learning rate offset")
    ap.add_argument("--seed", type=int, default=0, help="minibatch order")
    args = ap.parse_args()

    sl.start()
    if sl.is_server():
        server = sl.KVServer(0, "default")  # noqa: F841: serves until finalize
    elif sl.is_worker():
        kv = sl.KVWorker(0, 0)
        start = time.monotonic()
        train(kv, args)
        sl.barrier(sl.WORKERS)  # every worker's pushes are in
        if sl.rank() == 0:
            summary = {"algo": "python-sgd", "epochs": args.epochs,
                       "seconds": round(time.monotonic() - start, 3),
                       "workers": sl.num_workers(), "servers": sl.num_servers()}
            if args.test:
                summary["test_accuracy"], summary["test_rows"] = test_accuracy(kv, args.test)
            print(json.dumps(summary), flush=True)
    sl.finalize()


if __name__ == "__main__":
    sys.exit(main())
