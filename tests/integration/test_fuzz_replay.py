"""Replays the committed fuzz corpus (fuzz/corpus/<target>/) through each libFuzzer target
(build/fuzz/<target>, built by make test when clang is installed): every input that once found
new coverage, or a crash since fixed, must run clean. Skipped, saying why, without clang."""
import os
import shutil
import subprocess
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FUZZ_DIR = REPO / "build" / "fuzz"
CORPUS = REPO / "fuzz" / "corpus"
TARGETS = ("meta_fuzz", "filter_fuzz", "ssp_wire_fuzz", "van_fuzz")


def have_clang():
    return bool(shutil.which("clang++-14") or shutil.which("clang++"))


class FuzzCorpusReplay(unittest.TestCase):

    def replay(self, target):
        if not have_clang():
            self.skipTest("fuzz replay: clang++ is not installed (clang-14, libclang-rt-14-dev)")
        binary = FUZZ_DIR / target
        self.assertTrue(binary.exists(), f"{binary.relative_to(REPO)} is missing: run make test")
        inputs = sorted(str(p) for p in (CORPUS / target).iterdir())
        self.assertGreater(len(inputs), 0, f"no corpus for {target}")
        result = subprocess.run([str(binary), "-timeout=30", *inputs], capture_output=True,
                                text=True, timeout=240, cwd=REPO)
        self.assertEqual(result.returncode, 0, result.stderr[-4000:])
        self.assertIn(f"Executed {inputs[-1]}", result.stderr)

    def test_meta_decoder(self):
        self.replay("meta_fuzz")

    def test_filter_decoders(self):
        self.replay("filter_fuzz")

    def test_ssp_wire_format(self):
        self.replay("ssp_wire_fuzz")

    def test_van_receive_path_and_control(self):
        self.replay("van_fuzz")


if __name__ == "__main__":
    unittest.main()
