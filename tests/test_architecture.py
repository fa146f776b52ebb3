"""The import contracts in pyproject.toml hold, and they catch a deliberate violation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the packages and the contracts, to break on purpose."""
    for name in ("hepstream", "vmimage", "bench"):
        shutil.copytree(
            REPO / name,
            tmp_path / name,
            ignore=shutil.ignore_patterns("__pycache__", ".data", "results"),
        )
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_contracts_hold(tree):
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        (
            "hepstream/io/budget.py",
            "import hepstream.job.reader",
            "hepstream.io.budget -> hepstream.job.reader",
        ),
        (
            "hepstream/job/reader.py",
            "import hepstream.cli",
            "hepstream.job.reader -> hepstream.cli",
        ),
        (
            "hepstream/job/runner.py",
            "import bench.settings",
            "hepstream.job.runner -> bench.settings",
        ),
    ],
)
def test_a_deliberate_violation_breaks_a_contract(tree, module, line, broken):
    path = tree / module
    path.write_text(path.read_text() + f"\n{line}  # a deliberate violation\n")
    result = _lint(tree)
    assert result.returncode != 0
    assert broken in result.stdout


def test_readme_layout_table_names_every_module_and_only_real_ones():
    """README's layout table matches the code: every module of hepstream/ is in a row
    (by path, by a name beside a path, or by its package), and every path named exists."""
    import re

    repo = Path(__file__).resolve().parent.parent
    text = (repo / "README.md").read_text()
    table = text[text.index("| module | holds |") :].split("\n\n")[0]
    covered: set[Path] = set()
    for row in table.splitlines()[2:]:
        base: Path | None = None
        for token in re.findall(r"`([^`]+)`", row.split(" | ")[0]):
            path = repo / token if "/" in token else (base or repo) / token
            if "/" in token:
                base = path.parent if token.endswith(".py") else path
            assert path.exists(), f"README layout table names {token}, which does not exist"
            covered.add(path)
    modules = [m for m in (repo / "hepstream").rglob("*.py")
               if m.name not in ("__init__.py", "__main__.py", "_version.py")]  # fmt: skip
    missing = [str(m.relative_to(repo)) for m in modules
               if not any(m == c or c in m.parents for c in covered)]  # fmt: skip
    assert not missing, f"modules missing from README's layout table: {missing}"
