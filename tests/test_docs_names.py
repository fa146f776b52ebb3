"""Every code name README.md and docs/*.md mention is real.

Where a doc names code: its inline code spans (a span may wrap lines) outside fenced blocks,
and the import lines of its ```python blocks. A span names code when, whole, it is one of
the forms below; every other span (a command, a flag, `NAME=VALUE` or `key = value`, an
environment variable, a number, a user's file) is prose to this test.

1. A path under a top folder of this repo (`hepstream/io/spans.py`, `tests/support/`,
   `bench/plugins/*.py`, `vmimage/layers.py::layer_keys`): it must exist (a glob must match),
   and a `::NAME` must be bound in that file. Paths under a folder .gitignore names
   (`/bench/results/`) are outputs the code writes, not checked.
2. A bare `NAME.py`: a file of that name must exist under one of those folders.
3. A dotted name, maybe called (`hepstream.cloud.decide.plan(...)`, `ak.Array`):
   - headed by a package of this repo, or by a module the repo's code imports (under the
     name it imports it as, `ak` or `np`): it must import, each further part being an
     attribute (or a dataclass field);
   - ending in a file suffix (`tau1n_mc_000.root`): a user's file, not checked;
   - otherwise, like a bare identifier (`run_job`, `StreamingSource`, `AUTO_CACHE_MAX`,
     `BuildConfig.keep_images`): each part that looks like code (CamelCase with two capitals,
     snake_case, UPPER_SNAKE_CASE) must be a Python builtin, bound in the source of
     CODE_DIRS (a def, class, assignment, parameter, field or import, or a word of a string
     literal: a key or setting the code reads or writes; docstrings do not count), or be
     one of EXTERNAL_NAMES.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import importlib
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
#: Whose Python source binds the names the docs may use (this file aside: it lists names).
CODE_DIRS = ("hepstream", "vmimage", "bench", "tests")
#: Top folders of the repo a path in a doc may start with.
PATH_ROOTS = (*CODE_DIRS, "examples", "docs")
#: The last part of a dotted span that makes it a file name rather than code.
FILE_SUFFIXES = frozenset(
    {"json", "npz", "parquet", "png", "qcow2", "root", "sqlite", "toml", "txt"}
)

#: Code-looking names of other software that no source here binds or spells (names the
#: code spells, such as ROOT's RDataFrame in bench's ROOT macros, need no entry).
EXTERNAL_NAMES = frozenset(
    {
        # ROOT's C++ classes that docs/performance.md compares against
        "TChain",
        "TNetXNGFile",
        # scitokens.cfg keys a site sets for WLCG tokens (docs/access.md)
        "default_user",
        "map_subject",
    }
)

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_SPAN = re.compile(r"`((?:[^`\n]|\n(?![ \t]*\n))+)`")
_DOTTED = re.compile(rf"({_IDENT}(?:\.{_IDENT})*)(?:\(.*\))?")
_PATH = re.compile(rf"(?:{'|'.join(PATH_ROOTS)})/[\w./*-]*(?:::{_IDENT})?")
_PY_FILE = re.compile(r"[\w-]+\.py")
_IMPORT = re.compile(rf"\s*(?:from\s+({_IDENT}(?:\.{_IDENT})*)\s+import\s+(.+)|import\s+(.+))")
_WORD = re.compile(_IDENT)
_CAMEL = re.compile(r"[A-Z][A-Za-z0-9]*")
_SNAKE = re.compile(r"_?[a-z][a-z0-9]*(?:_[a-z0-9]+)+|_[a-z][a-z0-9]*")
_UPPER_SNAKE = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")


def _looks_like_code(part: str) -> bool:
    camel = (
        _CAMEL.fullmatch(part) is not None
        and sum(c.isupper() for c in part) >= 2
        and any(c.islower() for c in part)
    )
    return camel or bool(_SNAKE.fullmatch(part) or _UPPER_SNAKE.fullmatch(part))


def _mentions(text: str) -> Iterator[tuple[int, str, bool]]:
    """(line number, text, whether it is a python import line) of each inline code span
    and each import line of a python block in the markdown ``text``."""
    prose: list[str] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = None if fence is not None else stripped[3:].strip()
            prose.append("")
        elif fence is None:
            prose.append(line)
        else:
            prose.append("")
            if fence == "python" and _IMPORT.fullmatch(line):
                yield number, stripped, True
    joined = "\n".join(prose)
    for match in _SPAN.finditer(joined):
        number = joined.count("\n", 0, match.start()) + 1
        yield number, " ".join(match.group(1).split()), False


@dataclasses.dataclass(frozen=True)
class _Source:
    """What the Python source of CODE_DIRS binds, and the external modules it imports."""

    names: frozenset[str]
    modules: dict[str, str]  # name the code imports it as -> module


def _scan(tree: ast.AST, names: set[str], modules: dict[str, str]) -> None:
    """Add what module ``tree`` binds to ``names`` and its external imports to ``modules``."""
    bare = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.split(".")[0])
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in bare
        ):
            names.update(_WORD.findall(node.value))
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] not in CODE_DIRS:
                    bound = alias.asname or alias.name.split(".")[0]
                    modules[bound] = alias.name if alias.asname else bound
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            top = node.module.split(".")[0]
            if top not in CODE_DIRS:
                modules[top] = top


@cache
def _file_names(path: Path) -> frozenset[str]:
    names: set[str] = set()
    _scan(ast.parse(path.read_text(), str(path)), names, {})
    return frozenset(names)


@cache
def _source() -> _Source:
    me = Path(__file__).resolve()
    names: set[str] = set(dir(builtins))
    modules: dict[str, str] = {}
    for folder in CODE_DIRS:
        for path in sorted((REPO / folder).rglob("*.py")):
            if path.resolve() != me:
                _scan(ast.parse(path.read_text(), str(path)), names, modules)
    return _Source(frozenset(names), modules)


@cache
def _ignored_dirs() -> tuple[str, ...]:
    """Repo folders .gitignore names from the root (``/bench/results/``): outputs."""
    lines = (REPO / ".gitignore").read_text().splitlines()
    return tuple(line[1:] for line in lines if line.startswith("/") and line.endswith("/"))


def _resolve(dotted: str, modules: dict[str, str]) -> str | None:
    """None when ``dotted`` imports and resolves, else why not."""
    parts = dotted.split(".")
    head = modules.get(parts[0], parts[0])
    for index in range(len(parts), 0, -1):
        name = ".".join([head, *parts[1:index]])
        try:
            obj: object = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name is None or not name.startswith(error.name):
                raise  # the module exists but cannot import: a failure of its own
            continue
        for attr in parts[index:]:
            fields = getattr(obj, "__dataclass_fields__", {})
            if not hasattr(obj, attr) and attr not in fields:
                return f"{getattr(obj, '__name__', obj)} has no {attr}"
            obj = getattr(obj, attr, None)
        return None
    return f"no module {head}"


def _check_path(token: str) -> str | None:
    path, _, name = token.partition("::")
    if path.startswith(_ignored_dirs()):
        return None
    if not (any(REPO.glob(path.rstrip("/"))) if "*" in path else (REPO / path).exists()):
        return "no such file"
    if name and name not in _file_names(REPO / path):
        return f"{path} binds no {name}"
    return None


def _check_dotted(dotted: str) -> str | None:
    parts = dotted.split(".")
    source = _source()
    if len(parts) > 1 and parts[0] in CODE_DIRS:
        return _resolve(dotted, {})
    if len(parts) > 1 and parts[0] in source.modules:
        return _resolve(dotted, source.modules)
    if len(parts) > 1 and parts[-1] in FILE_SUFFIXES:
        return None
    unknown = [
        part
        for part in parts
        if _looks_like_code(part) and part not in source.names and part not in EXTERNAL_NAMES
    ]
    return f"no code here binds {', '.join(unknown)}" if unknown else None


def _check_span(span: str) -> str | None:
    """Why ``span`` names code that does not exist, or None (it exists or is not code)."""
    if _PATH.fullmatch(span):
        return _check_path(span)
    if _PY_FILE.fullmatch(span):
        found = any(any((REPO / root).rglob(span)) for root in PATH_ROOTS)
        return None if found else "no such file"
    called = _DOTTED.fullmatch(span)
    return None if called is None else _check_dotted(called.group(1))


def _check_import(line: str) -> str | None:
    match = _IMPORT.fullmatch(line)
    assert match is not None
    module, names, plain = match.groups()
    if module is None:
        dotted = [m.split(" as ")[0].strip() for m in plain.split(",")]
    else:
        dotted = [f"{module}.{n.split(' as ')[0].strip()}" for n in names.strip("()").split(",")]
    errors = [
        f"{name}: {why}"
        for name in dotted
        if name.split(".")[0] in CODE_DIRS and (why := _resolve(name, {}))
    ]
    return "; ".join(errors) or None


def test_every_code_name_in_the_docs_is_real() -> None:
    stale = []
    for doc in DOCS:
        for number, text, is_import in _mentions(doc.read_text()):
            why = _check_import(text) if is_import else _check_span(text)
            if why:
                stale.append(f"{doc.relative_to(REPO)}:{number}: `{text}`: {why}")
    assert not stale, "docs name code that does not exist:\n" + "\n".join(stale)


def test_the_rule_tells_code_from_prose() -> None:
    real = [
        "hepstream.job.runner",
        "hepstream.job.runner.run_job",
        "hepstream.io.auth.create_keytab(path, ['alice'])",
        "hepstream/io/spans.py",
        "tests/support/",
        "hepstream/io/*.py",
        "vmimage/layers.py::layer_keys",
        "spans.py",
        "run_job",
        "JobSpec",
        "JobSpec.fetch_ahead",
        "ak.Array",
        "OSError",
    ]
    stale = [
        "hepstream.job.nothing",
        "hepstream.job.runner.no_such_function",
        "hepstream/io/nothing.py",
        "hepstream/io/*.nothing",
        "vmimage/layers.py::no_such_function",
        "nothing_here.py",
        "no_such_function",
        "NoSuchClass",
        "NO_SUCH_CONSTANT",
        "JobSpec.no_such_field",
        "ak.NoSuchArray",
    ]
    prose = [
        "--readahead",
        "hepstream run",
        "$XrdSecsssKT",
        "NO_SUCH_SETTING=1",
        "1M",
        "samples/",
        "no_such_sample.root",
        "bench/results/latest.md",
    ]
    assert [s for s in real + prose if _check_span(s)] == []
    assert [s for s in stale if not _check_span(s)] == []


def test_spans_are_found_across_lines_and_outside_code_blocks() -> None:
    text = (
        "one `run_job` and `a\nwrapped span`\n\n"
        "```sh\nhepstream `not_a_span`\n```\n"
        "```python\nfrom hepstream.job.runner import run_job\n```\n"
        "unpaired ` tick\n\nlast `JobSpec`\n"
    )
    assert list(_mentions(text)) == [
        (8, "from hepstream.job.runner import run_job", True),
        (1, "run_job", False),
        (1, "a wrapped span", False),
        (12, "JobSpec", False),
    ]
