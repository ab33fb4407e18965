"""The build's own output: one short line a step by default (`CXX    src/van/van.cc`,
`AR     build/libps.a`), the full commands with `make V=1`.

Read from make's dry run of `make test` with every target out of date (`make -n -B`), which
prints each recipe line of the whole build, the Python module and the fuzz targets included,
without running any. The compilers' own output (warnings, errors) is never redirected: only the
echo of the command is left out.
"""
import os
import re
import subprocess
import unittest

from jobs import ROOT

# $(call say,CXX,file) in front of a command, as the dry run prints it.
SAY = re.compile(r"^printf '%-6s %s\\n' '([A-Z]+)' '([^']*)';(.*)$")
# Steps that are bookkeeping, not building, and print nothing of their own by design.
QUIET_ALWAYS = ("mkdir", "rm", "touch")
NOT_STEPS = ("bash make/install_deps.sh", "python3 tests/run_tests.py")


def dry_run(*args):
    """The command lines of `make -n -B test` (continuation lines joined to theirs)."""
    # The default build's steps, also when this runs under make test ASAN=1 or TSAN=1.
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "V", "ASAN", "TSAN")}
    p = subprocess.run(["make", "-n", "-B", *args, "test"], cwd=ROOT, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    if p.returncode != 0:
        raise AssertionError(p.stdout)
    lines = []
    for line in p.stdout.splitlines():
        if line[:1].isspace() and lines and lines[-1].endswith("\\"):
            lines[-1] = lines[-1][:-1] + " " + line.strip()
        elif line.strip():
            lines.append(line)
    return lines


def is_step(command):
    word = command.split()[0] if command.split() else ""
    return word not in QUIET_ALWAYS and not command.startswith(NOT_STEPS)


class QuietBuildTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.quiet = dry_run()
        cls.verbose = dry_run("V=1")

    def test_every_step_prints_one_short_line_by_default(self):
        said = []
        for line in self.quiet:
            m = SAY.match(line)
            if m:
                said.append((m[1], m[2]))
                self.assertTrue(is_step(m[3]), line)
                self.assertNotRegex(m[3], r"2>|>\s*/dev/null", line)  # errors still show
            else:
                self.assertFalse(is_step(line), f"a step that prints its whole command: {line}")
        self.assertIn(("CXX", "src/van/van.cc"), said)
        self.assertIn(("AR", "build/libps.a"), said)
        self.assertIn(("LD", "build/libps.so"), said)
        self.assertIn(("PROTOC", "src/message/meta.proto"), said)
        self.assertTrue(any(kind == "LD" and what.startswith("build/python/slackline/_core")
                            for kind, what in said), said)
        sources = sorted(os.path.relpath(os.path.join(d, f), ROOT)
                         for d, _, files in os.walk(os.path.join(ROOT, "src"))
                         for f in files if f.endswith(".cc"))
        compiled = {what for kind, what in said if kind == "CXX"}
        self.assertEqual([s for s in sources if s not in compiled], [])

    def test_v1_prints_the_full_commands(self):
        steps = [line for line in self.verbose if is_step(line)]
        self.assertFalse([line for line in self.verbose if SAY.match(line)])
        self.assertTrue(any(re.search(r" -c src/van/van\.cc -o build/obj/src/van/van\.o$", line)
                            for line in steps), steps)
        self.assertIn("ar rcs build/libps.a", "\n".join(steps))
        # The same steps as the quiet build, only shown whole.
        quiet_steps = [SAY.match(line)[3] for line in self.quiet if SAY.match(line)]
        self.assertEqual(sorted(steps), sorted(quiet_steps))


if __name__ == "__main__":
    unittest.main()
