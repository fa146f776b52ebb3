"""Everything a job writes: the reduced output (ROOT TTree via uproot, or Parquet) and its
report, local or uploaded to ``root://`` — always to a temp name first, put in place only
when complete (renamed locally; verified upload with persist-on-successful-close remotely).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

import awkward as ak
import numpy as np
import uproot

from hepstream.codecs import OUTPUT_DEFAULT, parquet_codec, uproot_codec
from hepstream.errors import ConfigError, OutputError
from hepstream.hists.store import CUTFLOW_KEY, Results, sidecar_of, write_results
from hepstream.io.partfiles import create_part
from hepstream.io.urls import is_remote
from hepstream.io.xrootd import upload
from hepstream.plugin.take import is_numbers
from hepstream.report import JobReport, write_json_atomic

FORMATS = (".root", ".parquet")

#: One chunk's output: column name -> array, every column one entry per selected event.
Columns = dict[str, Any]


class Output(Protocol):
    """Where a job's selected columns go: an :class:`OutputWriter`, or a worker's pipe to
    the process that writes."""

    #: Key -> text stored in the output at commit (e.g. the conditions provenance).
    metadata: dict[str, str]

    def write(self, columns: Columns, index: int = 0) -> None:
        """Columns of one chunk of input ``index``."""

    def add_results(self, results: Results) -> None:
        """Histograms and cut flow to store with the output (merged with any already given)."""

    def commit(self) -> int:
        """All written: the output at its target; its size in bytes."""

    def abort(self) -> None:
        """Nothing reaches the target."""


#: Selected entries, or bytes, an :class:`OutputWriter` holds before writing them at once.
FLUSH_ENTRIES = 200_000
FLUSH_BYTES = 8 << 20


def _packed(value: Any) -> Any:
    """A column as its own compact copy: no view keeps the chunk it came from alive."""
    if isinstance(value, np.ndarray):
        return value.copy() if value.base is not None else value
    array = ak.Array(value)
    if _owns_packed(array.layout):  # e.g. gathered by hepstream.plugin.take.take: as it is
        return array
    return ak.copy(ak.to_packed(array))


def _owns_packed(layout: Any) -> bool:
    """Numbers, or lists of numbers, packed and in arrays of their own (no views)."""
    if _is_number_list(layout):
        offsets = layout.offsets.data
        if offsets.base is not None or not len(offsets):
            return False
        if offsets[0] != 0 or offsets[-1] != layout.content.length:
            return False
        layout = layout.content
    return is_numbers(layout) and layout.data.base is None


def _concatenate(parts: list[Any]) -> Any:
    """Pieces of one column as one: numpy for numbers and for lists of numbers (awkward's
    own ``concatenate`` pays a pass of Python per piece), awkward for the rest."""
    if all(isinstance(part, np.ndarray) for part in parts):
        return np.concatenate(parts)
    layouts = [ak.Array(part).layout for part in parts]
    if all(_is_number_list(layout) for layout in layouts) and (
        len({layout.content.data.dtype for layout in layouts}) == 1
    ):
        counts, contents = [], []
        for layout in layouts:
            offsets = np.asarray(layout.offsets.data)
            counts.append(np.diff(offsets))
            contents.append(layout.content.data[offsets[0] : offsets[-1]])
        joined = np.zeros(sum(len(c) for c in counts) + 1, np.int64)
        np.cumsum(np.concatenate(counts), out=joined[1:])
        joined_layout = ak.contents.ListOffsetArray(
            ak.index.Index64(joined), ak.contents.NumpyArray(np.concatenate(contents))
        )
        return ak.Array(joined_layout)
    return ak.concatenate([ak.Array(part) for part in parts])


def _is_number_list(layout: Any) -> bool:
    """A list of numbers per entry, offsets in numpy, no parameters."""
    return (
        isinstance(layout, ak.contents.ListOffsetArray)
        and not layout.parameters
        and isinstance(layout.offsets.data, np.ndarray)
        and is_numbers(layout.content)
    )


def _as_array(value: Any) -> Any:
    """numpy for flat columns without missing values, awkward for everything else."""
    if isinstance(value, np.ndarray):
        return value
    array = ak.Array(value)
    if array.ndim == 1:
        try:
            return ak.to_numpy(array, allow_missing=False)
        except ValueError:
            return array
    return array


def _zip_lists(fields: dict[str, ak.Array]) -> ak.Array | None:
    """``fields`` (lists with equal counts per entry) as one list of records, built from
    their packed offsets and contents (no broadcasting); None when the counts differ or a
    field is not a plain list."""
    offsets: np.ndarray | None = None
    contents = []
    for array in fields.values():
        layout = ak.to_packed(array).layout
        if not isinstance(layout, ak.contents.ListOffsetArray) or layout.parameters:
            return None
        these = np.asarray(layout.offsets)
        if offsets is None:
            offsets = these
        elif not np.array_equal(offsets, these):
            return None
        contents.append(layout.content)
    assert offsets is not None
    record = ak.contents.RecordArray(contents, list(fields), length=int(offsets[-1]))
    return ak.Array(ak.contents.ListOffsetArray(ak.index.Index(offsets), record))


def group_columns(columns: dict[str, Any]) -> dict[str, Any]:
    """Group jagged ``prefix_field`` columns with equal counts into one record per prefix.

    uproot then writes one counter branch ``nprefix`` and branches ``prefix_field``,
    the layout the input had. Flat counters duplicated by a group are dropped.
    """
    arrays = {name: _as_array(value) for name, value in columns.items()}
    groups: dict[str, dict[str, ak.Array]] = {}
    flat: dict[str, Any] = {}
    for name, array in arrays.items():
        if isinstance(array, ak.Array) and array.ndim > 1 and "_" in name:
            prefix, rest = name.split("_", 1)
            groups.setdefault(prefix, {})[rest] = array
        else:
            flat[name] = array
    out: dict[str, Any] = {}
    for prefix, fields in groups.items():
        record = _zip_lists(fields)
        if record is not None:
            out[prefix] = record
            flat.pop(f"n{prefix}", None)
        else:
            out.update({f"{prefix}_{k}": v for k, v in fields.items()})
    out.update(flat)
    return out


def scratch_dir() -> str:
    """Where files bound for ``root://`` are staged: ``$HEPSTREAM_SCRATCH``, ``$TMPDIR``, /tmp."""
    return os.environ.get("HEPSTREAM_SCRATCH") or os.environ.get("TMPDIR") or "/tmp"


def _staged(target: str) -> Path:
    """The local path of ``target``: itself, or its name in scratch for a ``root://`` URL
    (then staged as ``.NAME.hepstream-<pid>.part`` and uploaded)."""
    if is_remote(target):
        return Path(scratch_dir()) / Path(target.split("?")[0]).name
    return Path(target)


class OutputWriter:
    """Writes chunks of columns to a temp file; :meth:`commit` puts it at ``target`` (a path
    or a ``root://`` URL) or not at all."""

    def __init__(
        self,
        target: str | Path,
        tree: str = "events",
        compression: str = OUTPUT_DEFAULT,
        events: bool = True,
    ) -> None:
        self.target = str(target)
        #: False for a histograms-only output: a ROOT file with no tree.
        self.events = events
        #: Histograms and cut flow written at commit: into a ROOT output, or into a sidecar
        #: ROOT file of its own beside a Parquet one (:func:`sidecar_of`).
        self.results = Results()
        self.sidecar: Path | None = None
        self.compression = compression
        self.path = _staged(self.target)
        self.tree = tree
        self.suffix = self.path.suffix.lower()
        if self.suffix not in FORMATS:
            raise ConfigError(
                f"output {self.path}: unknown format {self.suffix or '(none)'}; use .root or .parquet"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = create_part(self.path)
        except OSError as err:
            raise OutputError(
                f"cannot write output in {self.path.parent}: {err.strerror}; choose a writable path"
            ) from None
        self._file: Any = None
        self._parquet: Any = None
        self._schema: Any = None
        self._pending: list[dict[str, Any]] = []
        self._pending_entries = self._pending_bytes = 0
        self.entries = 0
        #: Key -> text written into the file at commit (a TObjString per key in ROOT,
        #: key-value metadata in Parquet), e.g. the conditions provenance.
        self.metadata: dict[str, str] = {}

    def add_results(self, results: Results) -> None:
        self.results.merge(results)

    def _failed(self, err: OSError) -> OutputError:
        """ENOSPC, EDQUOT, EROFS, EACCES, ... while writing: one line naming path and cause."""
        cause = err.strerror or str(err)
        return OutputError(
            f"cannot write output {self.path}: {cause}; free space or choose another path"
        )

    def write(self, columns: Columns, index: int = 0) -> None:  # noqa: ARG002
        """Append one chunk of selected events (every column the same length) of input
        ``index`` (a file keeps them in the order they come, which is input order).

        Chunks are packed (copied out of the chunk they were selected from, which can then
        go) and held until :data:`FLUSH_ENTRIES` entries or :data:`FLUSH_BYTES` bytes, then
        written at once: fewer, larger baskets or row groups, and uproot's fixed cost per
        write paid a few times per file instead of once per chunk.
        """
        packed = {name: _packed(value) for name, value in columns.items()}
        self._pending.append(packed)
        self._pending_entries += len(next(iter(packed.values())))
        self._pending_bytes += sum(value.nbytes for value in packed.values())
        if self._pending_entries >= FLUSH_ENTRIES or self._pending_bytes >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write what :meth:`write` holds."""
        if not self._pending:
            return
        pieces, self._pending = self._pending, []
        self._pending_entries = self._pending_bytes = 0
        if len(pieces) == 1:
            columns = pieces[0]
        else:
            columns = {name: _concatenate([piece[name] for piece in pieces]) for name in pieces[0]}
        try:
            if self.suffix == ".root":
                self._write_root(group_columns(columns))
            else:
                self._write_parquet(columns)
        except OSError as err:
            raise self._failed(err) from None

    def _write_root(self, columns: dict[str, Any]) -> None:
        length = len(next(iter(columns.values())))
        if self._file is None:
            self._file = uproot.recreate(self.tmp, compression=uproot_codec(self.compression))
            types = {
                name: (value.dtype if isinstance(value, np.ndarray) else value.type)
                for name, value in columns.items()
            }
            self._file.mktree(self.tree, types)
        if length:
            self._file[self.tree].extend(columns)
            self.entries += length

    def _write_parquet(self, columns: dict[str, Any]) -> None:
        import pyarrow.parquet as pq  # only Parquet outputs pay for its import

        table = ak.to_arrow_table(ak.zip(dict(columns), depth_limit=1), extensionarray=False)
        if self._parquet is None:
            self._schema = table.schema
            codec, level = parquet_codec(self.compression)
            self._parquet = pq.ParquetWriter(
                self.tmp, self._schema, compression=codec, compression_level=level
            )
        if table.num_rows:
            self._parquet.write_table(table.cast(self._schema))
            self.entries += table.num_rows

    def commit(self, empty_columns: dict[str, Any] | None = None) -> int:
        """Close and put the output at its target (renamed, or uploaded and verified);
        returns its size in bytes."""
        size = self.finish(empty_columns)
        if is_remote(self.target):
            if self.sidecar is not None:  # before the output: a reader finds both or no output
                upload(str(self.sidecar), sidecar_of(self.target))
            upload(str(self.tmp), self.target)
            self.abort()  # the staged parts go
            return size
        try:
            if self.sidecar is not None:
                os.replace(self.sidecar, sidecar_of(str(self.path)))
                self.sidecar = None
            os.replace(self.tmp, self.path)
        except OSError as err:
            raise self._failed(err) from None
        return size

    def finish(self, empty_columns: dict[str, Any] | None = None) -> int:
        """Close the temp file, complete, without renaming it (a staged upload sends
        :attr:`tmp` and then deletes it); returns its size in bytes."""
        self.flush()
        if (
            self.events
            and self._file is None
            and self._parquet is None
            and empty_columns is not None
        ):
            self.write(empty_columns)
            self.flush()
        try:
            if self.results:
                self._write_results()
            if self.metadata:
                self._write_metadata()
            self._close()
            return self.tmp.stat().st_size
        except OSError as err:
            raise self._failed(err) from None

    def _write_results(self) -> None:
        """The histograms and cut flow: into the ROOT output, or a sidecar beside Parquet."""
        if self.suffix == ".root":
            if self._file is None:  # histograms only, or no event selected
                self._file = uproot.recreate(self.tmp, compression=uproot_codec(self.compression))
            write_results(self._file, self.results)
            return
        if not self.results.histograms:  # a cut flow alone: in the Parquet file's metadata
            self.metadata[CUTFLOW_KEY] = json.dumps(self.results.cutflow)
            return
        self.sidecar = create_part(Path(sidecar_of(str(self.path))))
        with uproot.recreate(self.sidecar, compression=uproot_codec(self.compression)) as file:
            write_results(file, self.results)

    def _write_metadata(self) -> None:
        if self._file is not None:
            for key, text in self.metadata.items():
                self._file[key] = text  # uproot writes a str as a TObjString
        elif self._parquet is not None:
            self._parquet.add_key_value_metadata(dict(self.metadata))

    def abort(self) -> None:
        """Close and delete the temp file; nothing reaches the final path."""
        try:
            self._close()
        except OSError:
            pass  # e.g. a full disk refusing the last flush: the file goes anyway
        finally:
            self._file = self._parquet = None
            self._pending = []
            self.tmp.unlink(missing_ok=True)
            if self.sidecar is not None:
                self.sidecar.unlink(missing_ok=True)
                self.sidecar = None

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None


def write_report(report: JobReport, target: str) -> None:
    """Write the job report at ``target``: locally (atomic) or uploaded to ``root://``."""
    text = report.to_json()
    local = _staged(target)
    try:
        if not is_remote(target):
            write_json_atomic(local, text)
            return
        part = create_part(local)
        part.write_text(text)
    except OSError as err:
        raise OutputError(
            f"cannot write report {local}: {err.strerror or err}; free space or choose another path"
        ) from None
    try:
        upload(str(part), target)
    finally:
        part.unlink(missing_ok=True)
