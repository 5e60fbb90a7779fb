"""Fuzzing ``read_image``, the suite's fast tier: a few hundred hostile files, nothing but one-line refusals.

The mutations are ``fuzz_mutations``' (shared with ``benchmarks/fuzz_reader.py``, which runs
10,000 files per format). Reads happen in one spawned worker process with a 3 GiB address-space
limit, each with a time limit, so a regression shows up as a failed test rather than an
exhausted machine or a hung suite.
"""

from __future__ import annotations

import multiprocessing
import random
import subprocess
import sys
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from . import fuzz_mutations  # noqa: E402

READ_TIMEOUT = 20  # seconds: a read past it is a hang (a refusal takes milliseconds)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def reader():
    """``read(path, frame)`` -> (outcome, detail), in a spawned worker (no fork of a process that may run TF)."""
    context = multiprocessing.get_context("spawn")
    pool = context.Pool(1, initializer=fuzz_mutations.limit_memory, initargs=(3.0,))

    def read(path, frame=0, max_size=None):
        try:
            return pool.apply_async(fuzz_mutations.read_outcome, (str(path), frame, max_size)).get(READ_TIMEOUT)
        except multiprocessing.TimeoutError:
            pool.terminate()
            pytest.fail(f"read_image hung on {path} (over {READ_TIMEOUT} s)")

    yield read
    pool.terminate()
    pool.join()


PER_FORMAT = {"dicom": 120, "png": 60, "jpeg": 60, "tiff": 60}


@pytest.mark.parametrize("kind", sorted(PER_FORMAT))
def test_fixed_seed_hostile_files(kind, reader, tmp_path):
    outcomes, uncaught = {"ok": 0, "error": 0, "uncaught": 0}, []
    for index in range(PER_FORMAT[kind]):
        data, label = fuzz_mutations.hostile_file(kind, 0, index)
        path = tmp_path / f"{index}"
        path.write_bytes(data)
        outcome, detail = reader(path, frame=None if index % 5 == 0 else 0)
        outcomes[outcome] += 1
        if outcome == "uncaught":
            uncaught.append(f"#{index} {label}: {detail}")
    assert not uncaught, uncaught
    assert outcomes["error"] > 0  # the mutations do break files


@st.composite
def hostile(draw):
    """A seed and up to three mutations, every choice drawn by Hypothesis (so it can shrink a failure)."""
    kind = draw(st.sampled_from(fuzz_mutations.FORMATS))
    seeds = fuzz_mutations.seeds(kind)
    name, data = seeds[draw(st.integers(0, len(seeds) - 1))]
    mutations = fuzz_mutations.MUTATIONS[kind]
    steps = draw(st.lists(st.tuples(st.integers(0, len(mutations) - 1), st.integers(0, 2 ** 32 - 1)),
                          min_size=1, max_size=3))
    for which, seed in steps:
        try:
            data = mutations[which](data, random.Random(seed))
        except Exception:  # noqa: BLE001  as fuzz_mutations.mutate: a mutation that cannot apply
            pass
    if draw(st.booleans()):  # and raw bytes of Hypothesis' own, somewhere
        position = draw(st.integers(0, max(0, len(data) - 1)))
        data = data[:position] + draw(st.binary(min_size=1, max_size=16)) + data[position + 1:]
    return kind, name, data


@settings(max_examples=120, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(case=hostile(), whole_stack=st.booleans())
def test_hypothesis_hostile_files(case, whole_stack, reader, tmp_path):
    kind, name, data = case
    path = tmp_path / "hostile"
    path.write_bytes(data)
    outcome, detail = reader(path, frame=None if whole_stack else 0)
    assert outcome != "uncaught", f"{kind} from {name}: {detail}"


def test_benchmark_harness_runs(tmp_path):
    """``benchmarks/fuzz_reader.py`` itself: a short run ends with its summary line and exit 0."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "fuzz_reader.py"), "--per-format", "15", "--seed", "1",
         "--quiet", "--keep", str(tmp_path / "failures")],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "uncaught: 0 hangs: 0 crashes: 0"
    assert "| dicom | 15 |" in result.stdout
