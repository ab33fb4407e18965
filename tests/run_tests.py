#!/usr/bin/env python3
"""Runs every test of the project and ends with one line: 'N passed, M failed', followed by
', K skipped' when some tests could not run here; each reason for a skip is printed on a line of
its own before it.

GoogleTest binaries under BUILD/tests/{unit,integration} and the Python unittest suites
(tests/integration/test_*.py, tracker/tests/test_*.py,
tests/cluster/test_*.py) are run one suite at a time; the slackline
module's suites (tests/python/test_*.py) run under the interpreter the module is built for
(PS_PYTHON, set by make test; Debian's /usr/bin/python3 by default). Exits 1 if any test failed
or a suite did not finish; skipped tests do not fail the run.

A Python test that cannot run here (data this machine lacks) is skipped with unittest's
skip and a reason that reads "<what>: <why>"; tests skipped for the same reason are printed as
one line "skipped N <what>: <why>".
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP_REASON = re.compile(r" \.\.\. skipped '(.*)'$", re.M)  # unittest -v
SUITE_TIMEOUT = 300  # seconds; a suite that runs longer is killed and counted as failed
SANITIZER_TIMEOUT = 900  # the same under ASAN or TSAN, which run several times slower


def run(cmd, env, cwd=ROOT):
    start = time.monotonic()
    try:
        p = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=SUITE_TIMEOUT)
        return p.returncode, p.stdout, time.monotonic() - start
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return None, out + f"\n(killed after {SUITE_TIMEOUT} s)", time.monotonic() - start


def gtest_suite(binary, env):
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "report.json")
        code, out, secs = run([binary, f"--gtest_output=json:{report}"], env)
        try:
            with open(report) as f:
                data = json.load(f)
            total, failed = data["tests"], data["failures"] + data.get("errors", 0)
        except (OSError, ValueError, KeyError):
            total, failed = 1, 1  # crashed before writing its report
    if code != 0 and failed == 0:
        failed = 1  # a non-zero exit is a failure even when every test passed
        total = max(total, 1)
    return total - failed, failed, 0, out, secs


def python_suite(folder, env, python=sys.executable):
    code, out, secs = run([python, "-m", "unittest", "discover", "-v", "-s", folder,
                           "-p", "test_*.py"], env)
    ran = re.search(r"^Ran (\d+) tests? in", out, re.M)
    total = int(ran.group(1)) if ran else 0
    failed = sum(int(n) for n in re.findall(r"(?:failures|errors)=(\d+)", out.splitlines()[-1]
                                            if out.strip() else ""))
    skipped = re.search(r"skipped=(\d+)", out.splitlines()[-1] if out.strip() else "")
    skipped = int(skipped.group(1)) if skipped else 0
    if code != 0 and failed == 0:
        failed = max(1, total)
    return total - failed - skipped, failed, skipped, out, secs


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("-k", "--filter", default="", help="run only suites whose name has this")
    args = ap.parse_args()
    global SUITE_TIMEOUT
    if os.path.basename(os.path.normpath(args.build_dir)) != "build":
        SUITE_TIMEOUT = SANITIZER_TIMEOUT
    env = dict(os.environ, PS_BUILD_DIR=args.build_dir, PYTHONDONTWRITEBYTECODE="1")
    # Sanitizer builds: libzmq is not instrumented (see tests/tsan.supp); any report fails.
    # TSAN ignores the memory accesses of uninstrumented libraries (libzmq's I/O thread filling
    # receive buffers): otherwise every large message read here is a report to suppress, each
    # symbolized, and a job that moves megabytes runs a hundred times slower.
    env.setdefault("TSAN_OPTIONS", f"suppressions={ROOT}/tests/tsan.supp halt_on_error=1 "
                                   "ignore_noninstrumented_modules=1")
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    build = os.path.join(ROOT, args.build_dir)

    suites = []
    for kind in ("unit", "integration"):
        top = os.path.join(build, "tests", kind)
        for dirpath, _, files in sorted(os.walk(top)):
            for f in sorted(files):
                path = os.path.join(dirpath, f)
                if f.endswith("_test") and os.access(path, os.X_OK):
                    suites.append((os.path.relpath(path, build), "gtest", path))
    for folder in ("tests/integration", "tracker/tests", "tests/cluster"):
        if os.path.isdir(os.path.join(ROOT, folder)):
            suites.append((folder + "/test_*.py", "python", os.path.join(ROOT, folder)))
    module_python = os.environ.get("PS_PYTHON", "/usr/bin/python3")
    suites.append(("tests/python/test_*.py", "module", os.path.join(ROOT, "tests/python")))

    passed = failed = skipped = 0
    reasons = {}  # reason -> tests skipped for it
    for name, kind, path in suites:
        if args.filter not in name:
            continue
        if kind == "gtest":
            p, f, k, out, secs = gtest_suite(path, env)
        elif kind == "module" and not os.access(module_python, os.X_OK):
            p, f, k, secs = 0, 0, 1, 0.0
            out = f"{name} ... skipped 'the slackline module's tests: {module_python} not found'"
        else:
            p, f, k, out, secs = python_suite(
                path, env, module_python if kind == "module" else sys.executable)
        passed, failed, skipped = passed + p, failed + f, skipped + k
        more = f", {k} skipped" if k else ""
        print(f"{'PASS' if f == 0 else 'FAIL'} {name}: {p} passed, {f} failed{more} "
              f"({secs:.1f} s)", flush=True)
        if f:
            print("\n".join("    " + line for line in out.splitlines()[-60:]), flush=True)
        for reason in SKIP_REASON.findall(out):
            reasons[reason] = reasons.get(reason, 0) + 1
    for reason, n in reasons.items():
        print(f"skipped {n} {reason}")
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
