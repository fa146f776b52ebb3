"""The import contracts in pyproject.toml hold, and they catch a deliberate violation."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT), str(root / "pyproject.toml"), "--no-cache"],
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
    assert "Contracts: 4 kept, 0 broken." in result.stdout


#: One deliberate violation per rule of the contracts: each pair of neighbouring layers
#: upside down, the two independent siblings, a record, io/, bench/ and tests/support.
VIOLATIONS = [
    ("hepstream/io/budget.py", "hepstream.root.chunks"),
    ("hepstream/root/chunks.py", "hepstream.plugin.gather"),
    ("hepstream/plugin/gather.py", "hepstream.conditions.model"),
    ("hepstream/conditions/model.py", "hepstream.job.signals"),
    ("hepstream/job/signals.py", "hepstream.tools.generate"),
    ("hepstream/tools/generate.py", "vmimage.config"),
    ("vmimage/config.py", "hepstream.cloud.model"),
    ("hepstream/cloud/model.py", "hepstream.dataset.split"),
    ("hepstream/dataset/split.py", "hepstream.storagebench"),
    ("hepstream/storagebench/__init__.py", "hepstream.dataset"),
    ("hepstream/dataset/split.py", "hepstream.cli"),
    ("hepstream/jobspec.py", "hepstream.root.chunks"),
    ("hepstream/io/budget.py", "hepstream.report"),
    ("hepstream/job/signals.py", "bench.settings"),
    ("hepstream/io/budget.py", "tests.support.squid"),
]


@pytest.mark.parametrize(("module", "target"), VIOLATIONS)
def test_a_deliberate_violation_breaks_a_contract(tree, module, target):
    path = tree / module
    path.write_text(path.read_text() + f"\nimport {target}  # a deliberate violation\n")
    result = _lint(tree)
    assert result.returncode != 0
    importer = module.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    shown = target if target.startswith(("hepstream", "vmimage", "bench")) else target.split(".")[0]
    assert f"{importer} -> {shown}" in result.stdout, result.stdout


def _named_by_contracts() -> list[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    named: list[str] = []
    for contract in config["contracts"]:
        for entry in contract.get("layers", []) + contract.get("source_modules", []):
            named += [name.strip() for name in entry.split(":")]
    return named


def test_every_module_is_named_by_a_contract():
    """A module outside every contract could import anything: each module of the product
    lies in a layer, or is a record the contracts name (the package's own __init__,
    __main__ and version aside: the public surface on top of everything)."""
    named = _named_by_contracts()
    loose = []
    for package in ("hepstream", "vmimage"):
        for path in (REPO / package).rglob("*.py"):
            module = ".".join(path.relative_to(REPO).with_suffix("").parts)
            module = module.removesuffix(".__init__")
            if module in ("hepstream", "hepstream.__main__", "hepstream._version"):
                continue
            if not any(module == n or module.startswith(n + ".") for n in named):
                loose.append(module)
    assert not loose, f"modules no import contract names: {loose}"


def test_readme_layout_names_every_module_and_only_real_ones():
    """README's "Layout" has a paragraph per folder, headed by its bold path: every module of
    hepstream/ and vmimage/ is named in its folder's paragraph (``name.py``), or lies in a
    subfolder the paragraph names (``queues/``); every file or folder named exists."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Layout") :].split("\n## ")[0]
    covered: set[Path] = set()
    for paragraph in section.split("\n\n"):
        head = re.match(r"\*\*`([\w/]+/)`\*\*", paragraph)
        if head is None:
            continue
        folder = REPO / head.group(1)
        assert folder.is_dir(), f"README's layout names {head.group(1)}, which does not exist"
        for token in re.findall(r"`([\w/]+(?:\.py|/))`", paragraph):
            path = REPO / token if token == head.group(1) else folder / token
            assert path.exists(), f"README's layout names {token} in {head.group(1)}: no such path"
            covered.add(path)
    covered.discard(REPO / "hepstream")  # the root paragraph names the root's modules only
    loose = [
        str(m.relative_to(REPO))
        for package in ("hepstream", "vmimage")
        for m in (REPO / package).rglob("*.py")
        if m.name not in ("__init__.py", "__main__.py", "_version.py")
        and not any(m == c or c in m.parents for c in covered if c.is_dir() or c == m)
    ]
    assert not loose, f"modules README's layout does not name: {loose}"
