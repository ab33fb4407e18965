"""Slackline's parameter server from Python: the key-value and SSP APIs on numpy arrays.

    import numpy as np
    import slackline as sl

    sl.start()                      # every node of the job, as tracker/launch.py started it
    if sl.is_server():
        server = sl.KVServer(0, "default")          # sums pushes, answers pulls, in C++
    elif sl.is_worker():
        kv = sl.KVWorker(0, 0)                      # float32 values
        keys = np.array([1, 3, 5], dtype=np.uint64)
        kv.wait(kv.push(keys, np.ones(3, dtype=np.float32)))
        vals = kv.wait(kv.pull(keys))               # a new array; or pull(keys, out=array)
    sl.finalize()

Errors of the library raise slackline.Error with the library's one-line message; a bad
argument (dtype, layout, unsorted keys, sizes) raises ValueError naming the argument.
Blocking calls release the GIL; callbacks and Python request handles take it back.
"""
from ._core import (ALL, KEY_DTYPE, SCHEDULER, SERVERS, WORKERS, Error, KVMeta, KVServer,
                    KVWorker, Request, SSPTable, SSPTableGroup, SSPWorker, barrier, finalize,
                    is_scheduler, is_server, is_worker, num_servers, num_workers, rank, start)

__all__ = ["ALL", "KEY_DTYPE", "SCHEDULER", "SERVERS", "WORKERS", "Error", "KVMeta", "KVServer",
           "KVWorker", "Request", "SSPTable", "SSPTableGroup", "SSPWorker", "barrier",
           "finalize", "is_scheduler", "is_server", "is_worker", "num_servers", "num_workers",
           "rank", "start"]
