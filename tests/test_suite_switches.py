"""The test suite's own switches (tests/conftest.py): ``FASTCONV_TEST_SAMPLE``, the fixed
sample of parametrized cases that CI's debug-build run takes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _collect(sample=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.pop("FASTCONV_TEST_SAMPLE", None)
    env.pop("FASTCONV_TEST_BACKENDS", None)
    if sample is not None:
        env["FASTCONV_TEST_SAMPLE"] = sample
    r = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                        "-p", "no:cacheprovider", str(HERE / "test_conv.py")],
                       capture_output=True, text=True, env=env, cwd=HERE.parent, timeout=300)
    ids = [line for line in r.stdout.splitlines() if "::" in line]
    return r.returncode, ids, r.stdout + r.stderr


def test_sample_keeps_every_test_function_and_a_fixed_fraction_of_the_cases():
    rc, full, out = _collect()
    assert rc == 0, out
    rc, part, out = _collect("0.25")
    assert rc == 0, out
    assert set(part) < set(full)
    funcs = {i.split("[", 1)[0] for i in full}
    assert {i.split("[", 1)[0] for i in part} == funcs  # every test function still runs
    assert len(funcs) <= len(part) <= len(funcs) + 0.4 * len(full), (len(part), len(full))
    rc, again, _ = _collect("0.25")
    assert again == part  # the same cases in every run


def test_sample_rejects_a_value_that_is_not_a_fraction():
    for bad in ("0", "1.5", "a quarter"):
        rc, _, out = _collect(bad)
        assert rc != 0 and "FASTCONV_TEST_SAMPLE" in out, (bad, out[-500:])
