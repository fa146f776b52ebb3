"""Suite 1: the reference selection as a numba kernel, vectorized awkward and plain Python.

Every kernel runs on the same events, already in memory as the awkward arrays a job hands
to ``select()``. Plain Python is timed twice: as a plugin (``select_python``: the arrays
to lists, then the loop), and as the loop alone on lists prepared untimed, which no job
can hand over but which bounds what any plain-Python plugin could reach.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.conftest import PLUGIN, REPO
from bench.settings import BenchSettings

pytestmark = pytest.mark.benchmark(group="kernels")


@pytest.fixture(scope="session")
def kernel_events(settings: BenchSettings, sample_files: list[Path]):
    """``settings.kernel_events`` events of the plugin's branches, read from local disk."""
    import awkward as ak
    import uproot

    from hepstream.plugin.loader import load_plugin

    branches = list(load_plugin(str(PLUGIN)).branches)
    parts, need = [], settings.kernel_events
    for path in sample_files:
        with uproot.open(path) as file:
            tree = file["events"]
            part = tree.arrays(branches, entry_stop=min(need, tree.num_entries), library="ak")
        parts.append(part)
        need -= len(part)
        if need <= 0:
            break
    return ak.concatenate(parts) if len(parts) > 1 else parts[0]


@pytest.fixture(scope="session")
def numba_mask(kernel_events) -> np.ndarray:
    from hepstream.plugin.loader import load_plugin

    return np.asarray(load_plugin(str(PLUGIN)).select(kernel_events))


def _extra(benchmark, kernel: str, events: int) -> None:
    benchmark.extra_info.update({"suite": "kernels", "kernel": kernel, "events": events})


def test_numba(benchmark, settings: BenchSettings, kernel_events, numba_mask) -> None:
    from hepstream.plugin.loader import load_plugin

    select = load_plugin(str(PLUGIN)).select  # compiled (or cached) by the numba_mask fixture
    _extra(benchmark, "numba", len(kernel_events))
    mask = benchmark.pedantic(
        select, args=(kernel_events,), rounds=settings.rounds_kernel, warmup_rounds=1
    )
    assert np.array_equal(mask, numba_mask)


def test_awkward(benchmark, settings: BenchSettings, kernel_events, numba_mask) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "tau1n_awkward", REPO / "examples" / "tau1n_awkward.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _extra(benchmark, "awkward", len(kernel_events))
    mask = benchmark.pedantic(
        module.tau1n_mask, args=(kernel_events,), rounds=settings.rounds_kernel, warmup_rounds=1
    )
    assert np.array_equal(mask, numba_mask)


def test_python(benchmark, settings: BenchSettings, kernel_events, numba_mask) -> None:
    from bench.tau1n_python import select_python

    _extra(benchmark, "python", len(kernel_events))
    benchmark.extra_info["note"] = "plain-Python plugin: the arrays to lists, then the loop"
    mask = benchmark.pedantic(select_python, args=(kernel_events,), rounds=settings.rounds_python)
    assert np.array_equal(np.asarray(mask, dtype=bool), numba_mask)


def test_python_loop(benchmark, settings: BenchSettings, kernel_events, numba_mask) -> None:
    from bench.tau1n_python import tau1n_mask_python, to_python

    columns = to_python(kernel_events)  # not timed: lists a job cannot hand over
    _extra(benchmark, "python-loop", len(kernel_events))
    benchmark.extra_info["note"] = "the loop alone, on lists prepared untimed"
    mask = benchmark.pedantic(tau1n_mask_python, args=(columns,), rounds=settings.rounds_python)
    assert np.array_equal(np.asarray(mask, dtype=bool), numba_mask)
