"""Loading a plugin: import its file under a name of its own, with its numba kernels cached
apart from any other import of the same file, and check the one ``Selection`` it defines."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import inspect
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from hepstream.errors import PluginError
from hepstream.plugin.api import Selection
from hepstream.plugin.calls import numba_kernel, plugin_failure


def load_plugin(path: str | Path) -> Selection:
    """Import a plugin file and return an instance of its one ``Selection`` subclass."""
    plugin = Path(path)
    if not plugin.is_file():
        raise PluginError(f"plugin {plugin} not found; pass the path of a .py file")
    resolved = plugin.resolve()
    name = _plugin_module_name(resolved)
    cls = _selection_class(_import_plugin(plugin, resolved, name), name, plugin)
    try:
        selection = cls()
    except Exception as err:
        raise PluginError(
            f"plugin {plugin}: {cls.__name__}() failed: {type(err).__name__}: {err}"
        ) from err
    selection.__hepstream_path__ = str(plugin)
    return selection


def _import_plugin(plugin: Path, resolved: Path, name: str) -> ModuleType:
    """The plugin file run as module ``name``; its failure as one PluginError line."""
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
        if numba_kernel(err) is not None:  # eager compile (explicit signature) at import
            where = f"plugin {plugin} import{_last_frame_in(resolved, err)}"
            raise plugin_failure(where, err) from err
        raise PluginError(
            f"plugin {plugin} failed to import: {type(err).__name__}: {err}"
            f"{_last_frame_in(resolved, err)}"
        ) from err
    return module


def _selection_class(module: ModuleType, name: str, plugin: Path) -> type[Selection]:
    """The one ``Selection`` subclass the plugin module defines, its attributes checked."""
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
    return cls


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
def _own_numba_cache() -> Iterator[None]:
    """Point numba's cache at ``plugin_cache_dir()`` while a plugin's kernels are defined.

    numba picks a function's cache location when ``@njit(cache=True)`` runs, so the
    setting is needed only while the plugin module executes.
    """
    where = str(plugin_cache_dir())
    config: Any = sys.modules.get("numba.core.config")  # numba ships no type information
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
    """`` (line N)`` of the deepest traceback frame inside the plugin, if any."""
    where = ""
    for frame in traceback.extract_tb(err.__traceback__):
        if Path(frame.filename).resolve() == path:
            where = f" (line {frame.lineno})"
    return where
