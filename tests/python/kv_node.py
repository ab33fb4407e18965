"""A node of the Python tests' jobs, started by tracker/launch.py: every node runs it, its role
comes from DMLC_ROLE. The first argument picks what workers (and servers) do (WORKER_MODES,
SERVER_HANDLES). Workers print one JSON line with what they saw; the tests check it.

Environment: TEST_DTYPE (float32, float64), TEST_HANDLE (a key of SERVER_HANDLES or a built-in
handle name), TEST_DIR (a folder for flag files), TEST_CONSISTENCY (the workers'
set_consistency), TEST_FILTERS (set_filters of workers and servers).
"""
import json
import os
import sys
import threading
import time

import numpy as np

import slackline as sl


def report(**fields):
    print(json.dumps(fields), flush=True)


def spread_keys(n):
    """n sorted keys spread over the whole key space: every server gets some."""
    return np.arange(n, dtype=np.uint64) * np.uint64((2 ** 64 - 1) // max(n, 1))


# ---- workers ------------------------------------------------------------------------------

def sums(kv, n, rounds):
    """Each worker pushes (rank + 1) for n keys "rounds" times, then pulls after a barrier of the
    workers: every key holds rounds * (1 + ... + W)."""
    n, rounds = int(n), int(rounds)
    keys = spread_keys(n)
    vals = np.full(n, sl.rank() + 1, dtype=kv.dtype)
    for t in [kv.push(keys, vals) for _ in range(rounds)]:
        kv.wait(t)
    sl.barrier(sl.WORKERS)
    got = kv.wait(kv.pull(keys))
    into = np.zeros(n, dtype=kv.dtype)
    kv.wait(kv.pull(keys, out=into))
    both = np.zeros(n, dtype=kv.dtype)
    kv.wait(kv.push_pull(keys, np.zeros(n, dtype=kv.dtype), out=both))
    w = sl.num_workers()
    report(rank=sl.rank(), dtype=str(got.dtype), n=int(got.size), consistency=kv.consistency,
           want=rounds * w * (w + 1) // 2, got=sorted(set(got.tolist())),
           into=sorted(set(into.tolist())), push_pull=sorted(set(both.tolist())))


def sync_rounds(kv, n, rounds):
    """With the "sync" handle: each round sums one push of every worker; a pull after round r
    sees exactly r rounds, pushed by every worker."""
    n, rounds = int(n), int(rounds)
    keys = spread_keys(n)
    seen = []
    for r in range(rounds):
        out = np.zeros(n, dtype=kv.dtype)
        kv.wait(kv.push_pull(keys, np.full(n, sl.rank() + 1, dtype=kv.dtype), out=out))
        seen.append(sorted(set(out.tolist())))
    w = sl.num_workers()
    report(rank=sl.rank(), seen=seen, per_round=w * (w + 1) // 2)


def zero_copy(kv, n):
    """The pushed array is the buffer sent. With "sync" and 2 workers: rank 0's second push
    executes after its first, which finishes only once rank 1 pushed, which rank 1 does only
    after a barrier that rank 0 enters after changing the array it passed to the second push.
    A copy at push() sends ones (each key sums 1+1+1+1 = 4); the array itself sends fives (8)."""
    n = int(n)
    keys = np.arange(n, dtype=np.uint64)
    if sl.rank() == 0:
        first = kv.push(keys, np.ones(n, dtype=kv.dtype))
        vals = np.ones(n, dtype=kv.dtype)
        base = sys.getrefcount(vals)
        second = kv.push(keys, vals, after=[first])
        # References the library holds on the array of a push that waits for its dependency (a
        # push already sent may have dropped its reference by now: the first one's is not
        # counted).
        held = sys.getrefcount(vals) - base
        vals[:] = 5
        sl.barrier(sl.WORKERS)
        kv.wait(first)
        kv.wait(second)
    else:
        sl.barrier(sl.WORKERS)
        for _ in range(2):
            kv.wait(kv.push(keys, np.ones(n, dtype=kv.dtype)))
        held = None
    got = kv.wait(kv.pull(keys))
    pulled = kv.pull(keys)
    arr = kv.wait(pulled)
    # A pull from one server hands the received buffer over: the array does not own its data.
    report(rank=sl.rank(), got=sorted(set(got.tolist())), held=held,
           pulled_owns_data=bool(arr.flags.owndata), writeable=bool(arr.flags.writeable))


def bad_args(kv):
    """Every bad argument: the exception's type and message."""
    keys = np.array([1, 2, 3], dtype=np.uint64)
    vals = np.ones(3, dtype=np.float32)
    readonly = np.zeros(3, dtype=np.float32)
    readonly.flags.writeable = False
    cases = {
        "keys_dtype": lambda: kv.push(keys.astype(np.int64), vals),
        "keys_list": lambda: kv.push([1, 2, 3], vals),
        "keys_strided": lambda: kv.push(np.arange(6, dtype=np.uint64)[::2], vals),
        "keys_unsorted": lambda: kv.push(np.array([1, 3, 2], dtype=np.uint64), vals),
        "keys_repeated": lambda: kv.pull(np.array([1, 1, 2], dtype=np.uint64)),
        "vals_dtype": lambda: kv.push(keys, vals.astype(np.float64)),
        "vals_strided": lambda: kv.push(keys, np.ones(6, dtype=np.float32)[::2]),
        "vals_shape": lambda: kv.push(keys, np.ones(7, dtype=np.float32)),
        "lens_count": lambda: kv.push(keys, vals, np.array([1, 2], dtype=np.int32)),
        "lens_sum": lambda: kv.push(keys, vals, np.array([1, 1, 2], dtype=np.int32)),
        "lens_dtype": lambda: kv.push(keys, vals, np.array([1, 1, 1], dtype=np.int64)),
        "out_dtype": lambda: kv.pull(keys, out=np.zeros(3, dtype=np.float64)),
        "out_shape": lambda: kv.pull(keys, out=np.zeros(4, dtype=np.float32)),
        "out_readonly": lambda: kv.pull(keys, out=readonly),
        "out_empty": lambda: kv.pull(keys, out=np.zeros(0, dtype=np.float32)),
        "out_strided": lambda: kv.pull(keys, out=np.zeros(6, dtype=np.float32)[::2]),
        "pull_lens_count": lambda: kv.pull(keys, lens=np.zeros(2, dtype=np.int32)),
        "callback": lambda: kv.push(keys, vals, callback=3),
        "consistency": lambda: kv.set_consistency("bounded:x"),
        "filters": lambda: kv.set_filters("zsdt"),
        "worker_dtype": lambda: sl.KVWorker(1, 0, dtype=np.int32),
        "server_on_worker": lambda: sl.KVServer(1),
        "barrier_group": lambda: sl.barrier(0),
        "wait_unknown": lambda: kv.wait(12345),
    }
    got = {}
    for name, call in cases.items():
        try:
            call()
            got[name] = ["no error", ""]
        except Exception as e:  # noqa: BLE001: the test checks the type
            got[name] = [type(e).__name__, str(e)]
    # The worker still works after all that.
    kv.wait(kv.push(keys, vals))
    got["after"] = kv.wait(kv.pull(keys)).tolist()
    report(rank=sl.rank(), cases=got)


def raising_handle(kv):
    """The "python_sum" handle raises on cmd 1: that request fails at wait, others go on."""
    keys = np.array([1, 2, 3], dtype=np.uint64)
    kv.wait(kv.push(keys, np.full(3, 2, dtype=kv.dtype)))
    error = None
    try:
        kv.wait(kv.push(keys, np.full(3, 100, dtype=kv.dtype), cmd=1))
    except sl.Error as e:
        error = str(e)
    kv.wait(kv.push(keys, np.full(3, 3, dtype=kv.dtype), lens=np.array([1, 1, 1], np.int32)))
    got = kv.wait(kv.pull(keys))
    bad_answer = None
    try:
        kv.wait(kv.pull(keys, cmd=2))  # the handle answers a pull with a list
    except sl.Error as e:
        bad_answer = str(e)
    report(rank=sl.rank(), error=error, got=got.tolist(), bad_answer=bad_answer)


def wait_in_callback(kv):
    """A callback that calls wait gets slackline.Error; nothing hangs."""
    keys = np.array([7], dtype=np.uint64)
    first = kv.push(keys, np.ones(1, dtype=kv.dtype))
    seen = []

    def callback():
        try:
            kv.wait(first)
            seen.append("no error")
        except sl.Error as e:
            seen.append(str(e))

    kv.wait(first)
    kv.wait(kv.push(keys, np.ones(1, dtype=kv.dtype), callback=callback))
    calls = []
    ts = kv.pull(keys, callback=lambda: calls.append(threading.current_thread().name))
    got = kv.wait(ts)
    report(rank=sl.rank(), seen=seen, calls=len(calls), got=got.tolist())


def gil_released(kv):
    """Rank 0 blocks in a barrier while a thread of its own runs Python code; rank 1 enters the
    barrier only once that thread wrote a flag file. A barrier that kept the GIL would hang."""
    flag = os.path.join(os.environ["TEST_DIR"], "counted")
    if sl.rank() == 0:
        entering = threading.Event()

        def count():
            entering.wait()
            n = 0
            while n < 1_000_000:
                n += 1
            with open(flag, "w") as f:
                f.write(str(n))

        t = threading.Thread(target=count)
        t.start()
        entering.set()
        sl.barrier(sl.WORKERS)
        t.join()
    else:
        deadline = time.monotonic() + 60
        while not os.path.exists(flag) and time.monotonic() < deadline:
            time.sleep(0.01)
        sl.barrier(sl.WORKERS)
    report(rank=sl.rank(), flag=os.path.exists(flag))


def block(kv):
    """For the SIGINT tests: rank 0 blocks in a barrier rank 1 never reaches; rank 1 waits in
    Python code. Both print their pid first."""
    if sl.rank() == 0:
        report(rank=0, blocking=True, process=os.getpid())
        sl.barrier(sl.WORKERS)
    else:
        report(rank=1, waiting=True, process=os.getpid())
        threading.Event().wait()


def ssp(kv, clocks):
    """Each worker adds (rank + 1) to a dense and a sparse row per clock; after the last clock a
    read at staleness 0 holds every worker's clocks exactly."""
    clocks = int(clocks)
    with sl.SSPTableGroup(1, [(0, 4, 1), (1, 0, 1)]) as group:
        w = sl.SSPWorker(group, 0)
        dense, sparse = w.table(0), w.table(1)
        r = float(sl.rank() + 1)
        for _ in range(clocks):
            dense.get(5)
            dense.inc_row(5, np.full(4, r))
            dense.inc(6, 2, r)
            sparse.batch_inc(9, np.array([3, 1000], dtype=np.uint64), np.array([r, 2 * r]))
            w.clock()
        row5, row6 = dense.get(5, 0), dense.get(6, 0)
        cols, values = sparse.get(9, 0)
        errors = {}
        for name, call in {"inc_col": lambda: dense.inc(5, 4, 1.0),
                           "inc_row_width": lambda: dense.inc_row(5, np.ones(3)),
                           "batch_sizes": lambda: sparse.batch_inc(9, np.array([1], np.uint64),
                                                                   np.ones(2)),
                           "cols_dtype": lambda: sparse.batch_inc(9, np.array([1]), np.ones(1)),
                           "bad_tables": lambda: sl.SSPTableGroup(2, [(0, -1, 0)])}.items():
            try:
                call()
                errors[name] = ["no error", ""]
            except Exception as e:  # noqa: BLE001
                errors[name] = [type(e).__name__, str(e)]
        stats = group.stats()
        del w
        sl.barrier(sl.SERVERS + sl.WORKERS)
    n = sl.num_workers()
    report(rank=sl.rank(), row5=row5.tolist(), row6=row6.tolist(), cols=cols.tolist(),
           values=values.tolist(), want=clocks * n * (n + 1) / 2, errors=errors,
           reads=stats["reads"])


WORKER_MODES = {"sums": sums, "sync_rounds": sync_rounds, "zero_copy": zero_copy,
                "bad_args": bad_args, "raising_handle": raising_handle,
                "wait_in_callback": wait_in_callback, "gil_released": gil_released,
                "block": block, "ssp": ssp}


# ---- servers ------------------------------------------------------------------------------

def python_sum():
    """A custom handle in Python: sums pushes per key; raises on cmd 1; answers cmd 2 badly."""
    store = {}

    def handle(req, keys, vals):
        if req.cmd == 1:
            raise ValueError("boom on cmd 1")
        if req.push:
            for k, v in zip(keys.tolist(), vals.tolist()):
                store[k] = store.get(k, 0) + v
        if req.pull:
            if req.cmd == 2:
                return [1, 2, 3]
            return np.array([store.get(k, 0) for k in keys.tolist()], dtype=np.float32)
        return None

    return handle


SERVER_HANDLES = {"python_sum": python_sum}


def server_bad_args():
    got = {}
    for name, call in {"handle_name": lambda: sl.KVServer(5, "nope"),
                       "handle_type": lambda: sl.KVServer(5, 42),
                       "worker_on_server": lambda: sl.KVWorker(5)}.items():
        try:
            call()
            got[name] = ["no error", ""]
        except Exception as e:  # noqa: BLE001
            got[name] = [type(e).__name__, str(e)]
    report(role="server", cases=got)


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    dtype = np.float64 if os.environ.get("TEST_DTYPE") == "float64" else np.float32
    handle = os.environ.get("TEST_HANDLE", "default")
    report(role=os.environ.get("DMLC_ROLE"), pid=os.getpid(),
           module=os.path.dirname(sl.__file__))
    sl.start()
    if sl.is_server():
        if mode == "bad_args":
            server_bad_args()
        if mode == "ssp":
            with sl.SSPTableGroup(1, [(0, 4, 1), (1, 0, 1)]):
                sl.barrier(sl.SERVERS + sl.WORKERS)
        else:
            server = sl.KVServer(0, SERVER_HANDLES[handle]() if handle in SERVER_HANDLES
                                 else handle, dtype=dtype)
            if "TEST_FILTERS" in os.environ:
                server.set_filters(os.environ["TEST_FILTERS"])
        sl.finalize()
        return
    if sl.is_worker():
        kv = None if mode == "ssp" else sl.KVWorker(0, 0, dtype=dtype)
        if "TEST_CONSISTENCY" in os.environ:
            kv.set_consistency(os.environ["TEST_CONSISTENCY"])
        if "TEST_FILTERS" in os.environ:
            kv.set_filters(os.environ["TEST_FILTERS"])
        WORKER_MODES[mode](kv, *args)
    sl.finalize()


if __name__ == "__main__":
    main()
