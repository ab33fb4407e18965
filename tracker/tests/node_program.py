#!/usr/bin/env python3
"""A node for the launcher's tests: a real process that shows what the launcher gave it.

It prints its DMLC_* variables (then those named by --print-env), one NAME=VALUE per line,
and `cwd=DIR` on stdout, and `stderr of <role>` on stderr. Then it does what it is told:

  --pid-dir DIR        write DIR/<task id>.pids: this process's pid, and its child's
  --child              first start a child process (it sleeps) in this node's process group
  --ignore-sigterm     ignore SIGTERM (the child too)
  --fail ID=CODE       the node whose DMLC_TASK_ID is ID exits with CODE, or kills itself
                       with signal -CODE when CODE is negative, once --wait-for pid files
                       exist in --pid-dir
  --wait-for N         (default 0)
  --fail-runs N        fail (as --fail says) only in the first N runs of the job (launch.py
                       --max-restarts starts it again), counted in --pid-dir/runs-<ID>; then
                       behave as the other nodes
  --sleep SEC          the other nodes sleep SEC seconds, then exit 0 (default 0)
  --show-key           print what it sees of its job key: `key_file=PATH`, `key_mode=OCTAL`,
                       `key_hash=HEX` (a hash of the key, not the key), `key_in_cmdline=N`
                       (processes of this user whose command line holds the key)
"""

import argparse
import hashlib
import os
import signal
import subprocess
import sys
import time

WAIT_LIMIT = 30  # seconds a failing node waits for the others' pid files


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pid-dir")
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--ignore-sigterm", action="store_true")
    parser.add_argument("--fail", default="")
    parser.add_argument("--wait-for", type=int, default=0)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--print-env", action="append", default=[])
    parser.add_argument("--show-key", action="store_true")
    parser.add_argument("--fail-runs", type=int, default=-1)
    args = parser.parse_args()

    pids = [os.getpid()]
    if args.child:
        pids.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]).pid)
    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    task_id = os.environ["DMLC_TASK_ID"]
    if args.pid_dir:
        path = os.path.join(args.pid_dir, f"{task_id}.pids")
        with open(path + ".tmp", "w") as f:
            f.write(" ".join(map(str, pids)))
        os.replace(path + ".tmp", path)  # whole, or not there

    names = sorted(k for k in os.environ if k.startswith("DMLC_")) + args.print_env
    for name in names:
        print(f"{name}={os.environ.get(name)}")
    print(f"cwd={os.getcwd()}", flush=True)
    if args.show_key:
        show_key()
    print(f"stderr of {os.environ['DMLC_ROLE']}", file=sys.stderr, flush=True)

    fail_id, _, code = args.fail.partition("=")
    if fail_id == task_id and args.fail_runs >= 0:
        runs = os.path.join(args.pid_dir, f"runs-{task_id}")
        with open(runs, "a") as f:
            f.write("run\n")
        with open(runs) as f:
            if len(f.readlines()) > args.fail_runs:
                fail_id = None
    if fail_id != task_id:
        time.sleep(args.sleep)
        return 0
    deadline = time.monotonic() + WAIT_LIMIT
    while (args.wait_for and time.monotonic() < deadline
           and len([f for f in os.listdir(args.pid_dir) if f.endswith(".pids")]) < args.wait_for):
        time.sleep(0.01)
    if int(code) < 0:
        os.kill(os.getpid(), -int(code))
    return int(code)


def show_key():
    path = os.environ.get("PS_KEY_FILE", "")
    print(f"key_file={path}")
    if not path:
        return
    print(f"key_mode={os.stat(path).st_mode & 0o777:o}")
    with open(path) as f:
        key = f.read().strip()
    print(f"key_hash={hashlib.sha256(key.encode()).hexdigest()}")
    found = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                found += key.encode() in f.read()
        except OSError:
            pass
    print(f"key_in_cmdline={found}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
