"""The analyst's plugin API: a ``Selection`` subclass in a Python file.

This interface is stable; the runner, the VM agent and the scheduler depend on it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import inspect
import os
import sys
import traceback
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from hepstream.errors import HepstreamError, PluginError


class Selection:
    """Base class of a selection plugin.

    Subclass it in a plugin file and set the class attributes; the runner creates one
    instance per job and calls :meth:`select` once per chunk.

    Attributes
    ----------
    tree : str
        Name of the TTree to read.
    branches : list of str
        Branches to read; ``select`` gets an ``awkward.Array`` with these fields.
    preselect : list of str
        Optional subset of ``branches`` that :meth:`preselect_mask` needs. When set,
        the runner reads these first and fetches the other branches only for
        entry ranges that still hold passing events.
    conditions : list of str
        Conditions records the selection needs (e.g. ``["beam"]``); empty for none.
        The runner then splits each chunk where a record's IOV changes and, inside
        :meth:`select` and :meth:`output`, :meth:`payload` gives the payload valid
        for exactly the events passed in.
    run_branch, subrun_branch : str or None
        Branches (listed in ``branches``) holding each event's run and sub-run
        number; no sub-run branch means sub-run 0.
    """

    tree: ClassVar[str] = "events"
    branches: ClassVar[list[str]] = []
    preselect: ClassVar[list[str]] = []
    conditions: ClassVar[list[str]] = []
    run_branch: ClassVar[str | None] = "run"
    subrun_branch: ClassVar[str | None] = None
    #: Set by the runner before each select()/output() call: record -> payload value.
    _hepstream_payloads: dict[str, Any] | None = None

    def select(self, events: Any) -> np.ndarray:
        """Return a boolean mask, one entry per event, True for events to keep."""
        raise NotImplementedError

    def preselect_mask(self, events: Any) -> np.ndarray:
        """Cheap mask on the ``preselect`` branches; False events are never read further."""
        return np.ones(len(events), dtype=bool)

    def output(self, events: Any) -> dict[str, Any]:
        """Columns to write for the selected ``events`` (default: every branch read)."""
        return {name: events[name] for name in events.fields}

    def payload(self, record: str) -> Any:
        """The payload of ``record`` valid for the events of this select()/output() call.

        A ``.npz`` payload is a dict of read-only numpy arrays (pass them to numba as
        they are); a JSON payload is the decoded document.
        """
        payloads = self._hepstream_payloads
        if payloads is None or record not in payloads:
            raise PluginError(
                f"payload({record!r}) is available only inside select() and output() of a "
                f"plugin that lists {record!r} in its conditions (it lists {self.conditions})"
            )
        return payloads[record]


def _layout(array: Any, field: str | None) -> Any:
    """The awkward layout of ``array`` (or of its ``field``) without building new Arrays.

    ``events.name`` builds a high-level Array per access (~20 us each); reading the
    RecordArray's content directly costs ~1 us, which matters once per chunk per branch.
    """
    import awkward as ak

    layout = array.layout if isinstance(array, ak.Array) else ak.to_layout(array)
    if field is None:
        return layout
    if isinstance(layout, ak.contents.RecordArray):
        return layout.content(field)
    return ak.to_layout(array[field])  # sliced or indexed records: let awkward resolve


def flat(array: Any, field: str | None = None) -> np.ndarray:
    """A flat branch as a numpy array (no copy when possible): cheap to pass to numba.

    Call it as ``flat(events.ntrk)`` or, faster, ``flat(events, "ntrk")``.
    """
    import awkward as ak

    layout = _layout(array, field)
    if isinstance(layout, ak.contents.NumpyArray):
        return np.asarray(layout.data)
    return ak.to_numpy(ak.Array(layout))


def jagged(array: Any, field: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A jagged branch as ``(offsets, content)`` numpy arrays; event ``i`` owns
    ``content[offsets[i]:offsets[i + 1]]``. numba takes these without per-call unboxing
    of awkward types, which dominates a kernel that rejects most events early.

    Call it as ``jagged(events.trk_p)`` or, faster, ``jagged(events, "trk_p")``.
    """
    import awkward as ak

    layout = _layout(array, field)
    if not (
        isinstance(layout, ak.contents.ListOffsetArray)
        and isinstance(layout.content, ak.contents.NumpyArray)
    ):  # sliced or indexed views: pack them once
        layout = ak.to_layout(ak.to_packed(ak.Array(layout)))
    return np.asarray(layout.offsets.data), np.asarray(layout.content.data)


def plugin_cache_dir() -> Path:
    """Where numba caches the kernels of plugins that hepstream loads.

    numba's cache records the module name a kernel was compiled under and imports that
    module when it loads the kernel. An analyst who also imports the plugin under its own
    name (tests, notebooks) would otherwise share ``__pycache__`` entries across names,
    and the job would fail with ``No module named ...``. Jobs keep their own cache, under
    ``NUMBA_CACHE_DIR`` when set, else ``~/.cache/hepstream``.
    """
    base = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "hepstream"
    )
    return Path(base) / "plugins"


@contextlib.contextmanager
def _own_numba_cache():
    """Point numba's cache at ``plugin_cache_dir()`` while a plugin's kernels are defined.

    numba picks a function's cache location when ``@njit(cache=True)`` runs, so the
    setting is needed only while the plugin module executes.
    """
    where = str(plugin_cache_dir())
    config = sys.modules.get("numba.core.config")
    if config is not None:
        before = config.CACHE_DIR
        config.CACHE_DIR = where
        try:
            yield
        finally:
            config.CACHE_DIR = before
        return
    # numba not imported yet: the plugin's own import reads the environment
    before_env = os.environ.get("NUMBA_CACHE_DIR")
    os.environ["NUMBA_CACHE_DIR"] = where
    try:
        yield
    finally:
        if before_env is None:
            del os.environ["NUMBA_CACHE_DIR"]
        else:
            os.environ["NUMBA_CACHE_DIR"] = before_env
        config = sys.modules.get("numba.core.config")
        if config is not None:  # as numba would have read it without us
            config.CACHE_DIR = before_env or ""


def _plugin_module_name(path: Path) -> str:
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    return f"hepstream_plugin_{path.stem}_{digest}"


def _last_frame_in(path: Path, err: BaseException) -> str:
    """``file:line`` of the deepest traceback frame inside the plugin, if any."""
    where = ""
    for frame in traceback.extract_tb(err.__traceback__):
        if Path(frame.filename).resolve() == path:
            where = f" (line {frame.lineno})"
    return where


def _numba_kernel(err: BaseException) -> str | None:
    """Name of the numba kernel whose compilation raised ``err``, if numba raised it."""
    if not any(cls.__module__.startswith("numba") for cls in type(err).__mro__[:-2]):
        return None
    name = "?"
    tb = err.__traceback__
    while tb is not None:  # the dispatcher that was compiling: its frame's ``self``
        owner = tb.tb_frame.f_locals.get("self")
        func = getattr(owner, "py_func", None)
        if func is not None and type(owner).__module__.startswith("numba"):
            name = func.__qualname__
        tb = tb.tb_next
    return name


def plugin_failure(where: str, err: BaseException) -> PluginError:
    """One line for an exception raised by plugin code at ``where``; a numba compile error
    names the kernel, and its many-line text goes to the error's ``detail``."""
    kernel = _numba_kernel(err)
    text = str(err).strip()
    if kernel is None:
        return PluginError(f"{where} raised {type(err).__name__}: {err}")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # numba's first line names the pipeline stage; the next one says what failed
    first = lines[1] if len(lines) > 1 and lines[0].startswith("Failed in") else (lines or [""])[0]
    failure = PluginError(
        f"{where}: numba could not compile kernel {kernel} ({type(err).__name__}: {first})"
    )
    failure.detail = "".join(traceback.format_exception(err))
    return failure


def load_plugin(path: str | Path) -> Selection:
    """Import a plugin file and return an instance of its one ``Selection`` subclass."""
    plugin = Path(path)
    if not plugin.is_file():
        raise PluginError(f"plugin {plugin} not found; pass the path of a .py file")
    resolved = plugin.resolve()
    name = _plugin_module_name(resolved)
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise PluginError(f"plugin {plugin} cannot be imported; is it a .py file?")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        with _own_numba_cache():
            spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[name]
        if _numba_kernel(err) is not None:  # eager compile (explicit signature) at import
            where = f"plugin {plugin} import{_last_frame_in(resolved, err)}"
            raise plugin_failure(where, err) from err
        raise PluginError(
            f"plugin {plugin} failed to import: {type(err).__name__}: {err}"
            f"{_last_frame_in(resolved, err)}"
        ) from err
    found = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, Selection)
        and obj is not Selection
        and obj.__module__ == name
    ]
    if len(found) != 1:
        names = ", ".join(cls.__name__ for cls in found) or "none"
        raise PluginError(
            f"plugin {plugin} must define exactly one hepstream.Selection subclass (found: {names})"
        )
    cls = found[0]
    if not isinstance(cls.branches, list | tuple) or not cls.branches:
        raise PluginError(f"plugin {plugin}: {cls.__name__}.branches must be a non-empty list")
    if not isinstance(cls.tree, str) or not cls.tree:
        raise PluginError(f"plugin {plugin}: {cls.__name__}.tree must name a TTree or RNTuple")
    extra = set(cls.preselect) - set(cls.branches)
    if extra:
        raise PluginError(
            f"plugin {plugin}: preselect branches {sorted(extra)} are not in branches"
        )
    try:
        selection = cls()
    except Exception as err:
        raise PluginError(
            f"plugin {plugin}: {cls.__name__}() failed: {type(err).__name__}: {err}"
        ) from err
    selection.__hepstream_path__ = str(plugin)  # type: ignore[attr-defined]
    return selection


def check_mask(mask: Any, length: int, where: str) -> np.ndarray:
    """The plugin's mask as a numpy bool array of ``length``, or a PluginError saying why."""
    try:
        array = np.asarray(mask)
    except Exception as err:
        raise PluginError(f"{where}: mask is not array-like ({type(mask).__name__})") from err
    if array.dtype != np.bool_:
        raise PluginError(
            f"{where}: returned {array.dtype} values; return a numpy bool mask "
            f"(one True/False per event)"
        )
    if array.ndim != 1 or len(array) != length:
        raise PluginError(f"{where}: returned a mask of shape {array.shape}; expected ({length},)")
    return array


def take(events: Any, mask: np.ndarray) -> Any:
    """``events[mask]`` as new, packed arrays. A chunk's fields are numbers or lists of
    numbers, gathered here by compiled passes (:mod:`hepstream.plugin.gather`), one per field,
    with the GIL released; awkward's own ``events[mask]`` is
    lazy and its packing later costs ~1 ms of Python per field and chunk. Other layouts
    (options, strings, records, parameters) take awkward's way; the result is the same."""
    import awkward as ak

    layout = ak.to_layout(events)
    if not isinstance(layout, ak.contents.RecordArray) or layout.parameters or layout.is_tuple:
        return events[mask]
    index = np.flatnonzero(mask)
    fields = []
    for content in layout.contents:
        taken = _take_plain(content, index)
        if taken is None:
            return events[mask]
        fields.append(taken)
    return ak.Array(ak.contents.RecordArray(fields, layout.fields, length=len(index)))


def is_numbers(layout: Any) -> bool:
    """Whether an awkward layout is plain numbers: 1-D numpy data, no parameters."""
    import awkward as ak

    return (
        isinstance(layout, ak.contents.NumpyArray)
        and not layout.parameters
        and layout.data.ndim == 1
        and isinstance(layout.data, np.ndarray)
    )


def _take_plain(layout: Any, index: np.ndarray) -> Any:
    """Entries ``index`` of numbers or lists of numbers, packed; None for other layouts."""
    import awkward as ak

    from hepstream.plugin.gather import KINDS, gather, gather_lists

    if is_numbers(layout):
        values = layout.data[: layout.length]
        taken = gather(values, index) if values.dtype in KINDS else values[index]
        return ak.contents.NumpyArray(taken)
    if not (
        isinstance(layout, ak.contents.ListOffsetArray)
        and not layout.parameters
        and is_numbers(layout.content)
        and isinstance(layout.offsets.data, np.ndarray)
        and layout.content.data.dtype in KINDS
    ):
        return None
    new, items = gather_lists(layout.offsets.data, layout.content.data, index)
    return ak.contents.ListOffsetArray(ak.index.Index64(new), ak.contents.NumpyArray(items))


def call_plugin(selection: Selection, where: str, method: str, *args: Any) -> Any:
    """Call one of the plugin's methods; anything it raises becomes one PluginError line."""
    try:
        return getattr(selection, method)(*args)
    except HepstreamError:
        raise
    except Exception as err:
        raise plugin_failure(f"{where}: {method}()", err) from err
