"""The job record: one :class:`JobSpec`, its one validation, and its two translations.

Every producer and consumer of a job goes through here: the ``hepstream run`` CLI parses
its options into a mapping and calls :meth:`JobSpec.from_mapping`; the VM agent's
user-data, the local queue rows, the dataset splitter and the batch engines hold the same
mapping (:meth:`JobSpec.to_mapping`); every process launcher builds its command line with
:meth:`JobSpec.to_argv`.

Adding a setting is one edit: a field on :class:`JobSpec` (or :class:`StreamConfig`).
It is then accepted in mappings under its name (``stream.NAME`` or a nested ``stream:``
table for stream options) and on the command line as ``--set NAME=VALUE``, and
``to_argv``/``to_mapping`` emit it whenever it differs from its default. The few settings
with a dedicated ``hepstream run`` option (``--readahead``, ``--cache``, ``--chunk``,
``--prefetch``, ``--site``, ``--report``) are emitted that way. Unknown keys are a
:class:`ConfigError` naming them (a typo must not silently run the default).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hepstream.codecs import OUTPUT_DEFAULT, parse_codec
from hepstream.errors import ConfigError
from hepstream.io.config import MIB, StreamConfig, parse_size

#: Fields given in bytes: mappings and ``--set`` accept ``1M``, ``256k``, ...
_SIZE_FIELDS = frozenset(
    {
        "chunk_bytes",
        "stream.readahead",
        "stream.cache",
        "stream.coalesce_gap",
        "stream.max_request_bytes",
    }
)
#: Keys of the ``hepstream run`` options that are not field names, and the field they set.
_ALIASES = {"readahead": "stream.readahead", "cache": "stream.cache", "chunk": "chunk_bytes"}
#: Fields with their own ``hepstream run`` option (everything else goes out as ``--set``).
_OPTIONS = {
    "report": "--report",
    "site": "--site",
    "stream.readahead": "--readahead",
    "chunk_bytes": "--chunk",
    "prefetch": "--prefetch",
    "conditions": "--conditions",  # repeated, one per source
    "global_tag": "--global-tag",
    "allow_open_tag": "--allow-open-tag",  # a flag
    "skip_bad_files": "--skip-bad-files",  # a flag
    "histograms_only": "--histograms-only",  # a flag
    "workers": "--workers",
}

EntryRange = tuple[int, "int | None"]
#: The smallest chunk a job accepts (``--chunk``): below it a cluster cut into chunks of a
#: few entries each makes a job thousands of times slower, never faster.
MIN_CHUNK_BYTES = 16 * 1024


@dataclass(frozen=True)
class JobSpec:
    """Everything one job needs; see the module docstring for how it travels."""

    plugin: str
    inputs: tuple[str, ...]
    output: str
    report: str | None = None
    site: str = field(default_factory=lambda: os.environ.get("HEPSTREAM_SITE", "local"))
    stream: StreamConfig = field(default_factory=StreamConfig)
    #: Size the job's byte budget from each file's read plan (the chunk being read plus
    #: ``fetch_ahead`` chunks in flight, and the next file's metadata windows); False keeps
    #: ``stream.cache`` exactly, as given on the command line.
    auto_cache: bool = True
    #: Uncompressed bytes per chunk: large enough to amortize Python overhead per call,
    #: small enough that a few chunks in flight keep a job far below 1 GB of memory.
    chunk_bytes: int = 8 * MIB
    #: Decompressed chunks waiting ahead of the selection; 1 hides I/O behind compute.
    prefetch: int = 1
    #: Input files opened, planned and first-chunk prefetched ahead of the one being read.
    open_ahead: int = 2
    #: Chunks whose baskets or pages are fetched ahead of the one being decoded, across file
    #: edges, as far as the budget allows. The reader decodes one chunk ahead, so the bytes
    #: in flight are the chunks past that one: with two, a WAN link idles between chunks of
    #: well-compressed files; four keep it busy, for one more chunk held twice (see --cache;
    #: the measurements are in docs/performance.md).
    fetch_ahead: int = 4
    #: Threads that decompress baskets (zlib, lz4 and zstd release the GIL). The selection
    #: takes a small part of a core, so the job's cores are best spent decompressing.
    decompress_threads: int = field(default_factory=lambda: min(4, os.cpu_count() or 1))
    #: Entries ``[start, stop)`` to read of each input (``stop`` None: to the end), one
    #: per input in order; empty reads every input whole. Set by the dataset splitter so
    #: one big file can be several jobs; inputs must then be files, not globs.
    entry_ranges: tuple[EntryRange, ...] = ()
    #: Skip an input that is missing, truncated or corrupt instead of failing the job (as
    #: coffea's ``skipbadfiles``): the report lists it, its status is ``partial``, and the
    #: output holds exactly the other files' events (each file's output is held in memory
    #: until the file has been read to its end). A server that stops answering still fails.
    skip_bad_files: bool = False
    #: Write the plugin's histograms and cut flow only, no events: the output is a ROOT file
    #: of histograms (``output()`` is never called).
    histograms_only: bool = False
    #: Output compression, ``NAME[:LEVEL]`` (:mod:`hepstream.codecs`): zstd, zlib, lz4 or
    #: none. zstd:1 writes much faster than zlib:1 for about the same size.
    compression: str = OUTPUT_DEFAULT
    #: Processes that read and select, each with its own interpreter (and GIL): worker ``w``
    #: of ``N`` takes inputs ``w, w+N, w+2N, ...`` and this process writes their output in
    #: input order, as one process would. 1 runs the job in this process; 0 starts one per
    #: core this process may use. Never more than there are inputs; ``stream.cache`` is
    #: shared between them.
    workers: int = 1
    # --- conditions (hepstream.conditions.job) ---------------------------------------------
    #: Conditions sources tried in order: http(s):// service URLs or snapshot directories.
    conditions: tuple[str, ...] = ()
    #: Global tag the plugin's conditions records are resolved in.
    global_tag: str | None = None
    #: Accept an OPEN (still changing) global tag; for test jobs only.
    allow_open_tag: bool = False
    #: On-disk payload cache shared by the jobs of one machine (default: see client.py).
    conditions_cache: str | None = None

    def __post_init__(self) -> None:
        # tuples whatever the caller passed (JSON gives lists): the record stays hashable
        object.__setattr__(self, "inputs", tuple(str(i) for i in self.inputs))
        object.__setattr__(self, "conditions", tuple(str(c) for c in self.conditions))
        ranges = tuple((int(r[0]), None if r[1] is None else int(r[1])) for r in self.entry_ranges)
        object.__setattr__(self, "entry_ranges", ranges)

    # -- the mapping form (JSON, TOML, user-data, queue rows) ---------------------------
    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, where: str = "job spec") -> JobSpec:
        """A validated spec from a mapping; unknown keys are a :class:`ConfigError`.

        Keys are field names; stream options as ``stream.NAME`` or a nested ``stream``
        mapping; ``readahead``/``cache``/``chunk`` as on the command line (``cache`` also
        turns ``auto_cache`` off, as ``--cache`` does). Sizes accept units (``1M``).
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where} must be a mapping, not {type(data).__name__}")
        flat: dict[str, Any] = {}
        for key, value in data.items():
            if key == "stream" and isinstance(value, Mapping):
                flat.update({f"stream.{k}": v for k, v in value.items()})
            elif key == "cache" and value is not None:
                flat["stream.cache"] = value
                flat.setdefault("auto_cache", False)
            elif value is not None or key not in _ALIASES:
                flat[_ALIASES.get(key, key)] = value
        fields = _field_names()
        unknown = sorted(k for k in flat if k not in fields)
        if unknown:
            raise ConfigError(
                f"{where} has unknown key(s) {', '.join(unknown)}; known: {', '.join(fields)}"
            )
        missing = [k for k in ("plugin", "inputs", "output") if not flat.get(k)]
        if missing:
            raise ConfigError(f"{where} lacks {', '.join(missing)}: add them")
        inputs = flat["inputs"]
        flat["inputs"] = (inputs,) if isinstance(inputs, str) else tuple(inputs)
        stream_kw = {k[7:]: _convert(k, v) for k, v in flat.items() if k.startswith("stream.")}
        kw = {k: _convert(k, v) for k, v in flat.items() if not k.startswith("stream.")}
        if stream_kw:
            kw["stream"] = StreamConfig(**stream_kw)
        spec = cls(**kw)
        validate_spec(spec)
        return spec

    def to_mapping(self) -> dict[str, Any]:
        """The JSON-ready mapping :meth:`from_mapping` reads back: required keys plus every
        setting that differs from its default (so the running machine's defaults apply)."""
        out: dict[str, Any] = {
            "plugin": self.plugin,
            "inputs": list(self.inputs),
            "output": self.output,
        }
        for name, value in self._settings(site=self.site != _defaults().site):
            if name.startswith("stream."):
                out.setdefault("stream", {})[name[7:]] = value
            else:
                out[name] = [list(r) for r in value] if name == "entry_ranges" else value
        return out

    # -- the command-line form ----------------------------------------------------------
    def to_argv(self, *, progress: bool = False) -> list[str]:
        """The ``hepstream run`` arguments (after ``hepstream``) that rebuild this spec."""
        argv = ["run", self.plugin, *self.inputs, "-o", self.output]
        for name, value in self._settings():
            if name == "stream.cache" and not self.auto_cache:
                argv += ["--cache", str(value)]
            elif name == "auto_cache" and not value:
                continue  # --cache above says it
            elif name in _OPTIONS and isinstance(value, tuple):
                argv += [part for item in value for part in (_OPTIONS[name], str(item))]
            elif name in _OPTIONS and isinstance(value, bool):
                argv += [_OPTIONS[name]] if value else []
            elif name in _OPTIONS:
                argv += [_OPTIONS[name], str(value)]
            else:
                argv += ["--set", f"{name}={_text(name, value)}"]
        if not progress:
            argv.append("--no-progress")
        return argv

    def _settings(self, *, site: bool = True) -> list[tuple[str, Any]]:
        """(name, value) of every optional setting to carry: ``site`` (if asked) and report
        when set, the rest when not the default; ``auto_cache`` off brings its cache."""
        default = _defaults()
        out: list[tuple[str, Any]] = []
        for f in dataclasses.fields(self):
            if f.name in ("plugin", "inputs", "output"):
                continue
            value = getattr(self, f.name)
            if f.name == "stream":
                for s in dataclasses.fields(StreamConfig):
                    sub = getattr(value, s.name)
                    forced = s.name == "cache" and not self.auto_cache
                    if forced or sub != getattr(default.stream, s.name):
                        out.append((f"stream.{s.name}", sub))
            else:
                if f.name == "site":
                    if site:
                        out.append((f.name, value))
                elif (f.name == "report" and value is not None) or (
                    f.name != "report" and value != getattr(default, f.name)
                ):
                    out.append((f.name, value))
        return out


#: How a shipped job runs: once, or keep asking ``next_job_url`` for more (pool).
SHIP_MODES = ("once", "pool")
#: The ``plugin`` of a job whose plugin travels inline as ``plugin_source``.
INLINE_PLUGIN = "<plugin_source>"


#: What a shipped job carries beside its spec.
_SHIPPING = ("plugin_source", "owner", "mode", "next_job_url", "sss_keytab")


@dataclass(frozen=True)
class ShippedJob:
    """A :class:`JobSpec` on its way to another machine: VM user-data, queue rows.

    It adds only what the delivery needs: the plugin's text when the machine does not have
    the file, the owner, and pool mode. Its mapping is the spec's mapping plus these keys.
    """

    spec: JobSpec
    plugin_source: str | None = None
    owner: str = ""
    mode: str = "once"
    next_job_url: str | None = None
    #: The user's sss key (keytab text) for a VM's seed only: written 0600 by the agent for
    #: the runner and the uploads, never printed; repr=False keeps it out of any log.
    sss_keytab: str | None = field(default=None, repr=False)

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, where: str = "job spec", site: str | None = None
    ) -> ShippedJob:
        """Validate a shipped job; ``site`` is the default when the mapping names none."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where} must be a mapping, not {type(data).__name__}")
        rest = dict(data)
        own = {k: rest.pop(k) for k in _SHIPPING if k in rest}
        if not rest.get("plugin") and not own.get("plugin_source"):
            raise ConfigError(f"{where} needs 'plugin' (path on the machine) or 'plugin_source'")
        if own.get("plugin_source") and not rest.get("plugin"):
            rest["plugin"] = INLINE_PLUGIN
        mode = own.get("mode") or "once"
        if mode not in SHIP_MODES:
            raise ConfigError(f"job mode {mode!r} is not one of {', '.join(SHIP_MODES)}")
        if site is not None and not rest.get("site"):
            rest["site"] = site
        return cls(
            JobSpec.from_mapping(rest, where=where),
            plugin_source=own.get("plugin_source") or None,
            owner=str(own.get("owner") or ""),
            mode=mode,
            next_job_url=own.get("next_job_url") or None,
            sss_keytab=own.get("sss_keytab") or None,
        )

    # the spec's own fields, read through (the agent's code and tests read them so)
    plugin = property(lambda self: self.spec.plugin)
    inputs = property(lambda self: self.spec.inputs)
    output = property(lambda self: self.spec.output)
    report = property(lambda self: self.spec.report)
    site = property(lambda self: self.spec.site)

    def to_mapping(self) -> dict[str, Any]:
        """The mapping :meth:`from_mapping` reads back (JSON-ready)."""
        out = self.spec.to_mapping()
        if self.plugin_source is not None:
            out["plugin_source"] = self.plugin_source
            if out["plugin"] == INLINE_PLUGIN:
                del out["plugin"]
        if self.owner:
            out["owner"] = self.owner
        if self.mode != "once":
            out["mode"] = self.mode
        if self.next_job_url:
            out["next_job_url"] = self.next_job_url
        if self.sss_keytab:
            out["sss_keytab"] = self.sss_keytab
        return out


def validate_spec(spec: JobSpec) -> None:
    """Cheap checks before any I/O: a bad option fails in milliseconds."""
    if not spec.inputs:
        raise ConfigError("no input files given; pass one or more paths or root:// URLs")
    if spec.chunk_bytes < MIN_CHUNK_BYTES:
        raise ConfigError(
            f"chunk size {spec.chunk_bytes} B is too small: use at least 16k (default 8M); "
            f"every chunk pays the Python calls of a whole read and selection"
        )
    if spec.workers < 0:
        raise ConfigError(f"workers={spec.workers}: use 1 or more, or 0 for one per core")
    if spec.fetch_ahead < 0 or spec.open_ahead < 1 or spec.decompress_threads < 1:
        raise ConfigError(
            "fetch_ahead must be >= 0, open_ahead and decompress_threads >= 1; "
            f"got {spec.fetch_ahead}, {spec.open_ahead}, {spec.decompress_threads}"
        )
    parse_codec(spec.compression)
    if spec.histograms_only and not spec.output.split("?")[0].lower().endswith(".root"):
        raise ConfigError(
            f"--histograms-only writes histograms to a ROOT file; name the output .root "
            f"(got {spec.output})"
        )
    if spec.entry_ranges:
        if len(spec.entry_ranges) != len(spec.inputs):
            raise ConfigError(
                f"entry_ranges has {len(spec.entry_ranges)} range(s) for "
                f"{len(spec.inputs)} input(s); give one start:stop per input"
            )
        if any(c in i for i in spec.inputs for c in "*?["):
            raise ConfigError("entry_ranges need explicit input files, not globs")
        for start, stop in spec.entry_ranges:
            if start < 0 or (stop is not None and stop < start):
                raise ConfigError(f"entry range {start}:{stop} must have 0 <= start <= stop")


def parse_set(pairs: list[str]) -> dict[str, str]:
    """``--set NAME=VALUE`` options as a mapping for :meth:`JobSpec.from_mapping`."""
    out = {}
    for pair in pairs:
        name, eq, value = pair.partition("=")
        if not eq or not name.strip():
            raise ConfigError(f"--set {pair!r}: write NAME=VALUE, e.g. --set fetch_ahead=3")
        out[name.strip()] = value
    return out


def _field_names() -> list[str]:
    names = [f.name for f in dataclasses.fields(JobSpec) if f.name != "stream"]
    return names + [f"stream.{f.name}" for f in dataclasses.fields(StreamConfig)]


def _defaults() -> JobSpec:
    return JobSpec(plugin="", inputs=(), output="")


def _text(name: str, value: Any) -> str:
    """A setting as ``--set`` text that :func:`_convert` reads back."""
    if name == "entry_ranges":
        return ",".join(f"{a}:{'' if b is None else b}" for a, b in value)
    if name == "conditions":
        return ",".join(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:  # e.g. stream.site_cache unset where the machine's default sets one
        return ""
    return str(value)


def _convert(name: str, value: Any) -> Any:
    """A mapping or ``--set`` value as the field's type; a ConfigError names the key."""
    default = _defaults()
    if name.startswith("stream."):
        current = getattr(default.stream, name[7:], None)
    else:
        current = getattr(default, name, None)
    try:
        if name in _SIZE_FIELDS:
            return parse_size(value)
        if name == "entry_ranges":
            return _ranges(value)
        if name == "conditions":
            return tuple(value.split(",") if isinstance(value, str) else value)
        if isinstance(current, bool):
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if isinstance(current, int):
            return int(value)
        if isinstance(current, float):
            return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"job setting {name}={value!r} is not a valid value") from None
    return value


def _ranges(value: Any) -> tuple[EntryRange, ...]:
    if isinstance(value, str):
        pairs = []
        for part in value.split(","):
            start, colon, stop = part.partition(":")
            if not colon:
                raise ValueError(part)
            pairs.append((int(start or 0), int(stop) if stop else None))
        return tuple(pairs)
    return tuple((int(a), None if b is None else int(b)) for a, b in value)
