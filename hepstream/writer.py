"""Everything a job writes: the reduced output (ROOT TTree via uproot, or Parquet) and its
report, local or uploaded to ``root://`` — always to a temp name first, put in place only
when complete (renamed locally; verified upload with persist-on-successful-close remotely).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import awkward as ak
import numpy as np

from hepstream.errors import ConfigError, OutputError
from hepstream.io.urls import is_remote
from hepstream.partfiles import create_part

if TYPE_CHECKING:
    from hepstream.report import JobReport

FORMATS = (".root", ".parquet")


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
        counts = [ak.num(a, axis=1) for a in fields.values()]
        if all(ak.array_equal(counts[0], c) for c in counts[1:]):
            out[prefix] = ak.zip(fields, depth_limit=2)
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

    def __init__(self, target: str | Path, tree: str = "events") -> None:
        self.target = str(target)
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
        self.entries = 0
        #: Key -> text written into the file at commit (a TObjString per key in ROOT,
        #: key-value metadata in Parquet), e.g. the conditions provenance.
        self.metadata: dict[str, str] = {}

    def _failed(self, err: OSError) -> OutputError:
        """ENOSPC, EDQUOT, EROFS, EACCES, ... while writing: one line naming path and cause."""
        cause = err.strerror or str(err)
        return OutputError(
            f"cannot write output {self.path}: {cause}; free space or choose another path"
        )

    def write(self, columns: dict[str, Any]) -> None:
        """Append one chunk of selected events (every column the same length)."""
        try:
            if self.suffix == ".root":
                self._write_root(group_columns(columns))
            else:
                self._write_parquet(columns)
        except OSError as err:
            raise self._failed(err) from None

    def _write_root(self, columns: dict[str, Any]) -> None:
        import uproot

        length = len(next(iter(columns.values())))
        if self._file is None:
            self._file = uproot.recreate(self.tmp)
            types = {
                name: (value.dtype if isinstance(value, np.ndarray) else value.type)
                for name, value in columns.items()
            }
            self._file.mktree(self.tree, types)
        if length:
            self._file[self.tree].extend(columns)
            self.entries += length

    def _write_parquet(self, columns: dict[str, Any]) -> None:
        import pyarrow.parquet as pq

        table = ak.to_arrow_table(ak.zip(dict(columns), depth_limit=1), extensionarray=False)
        if self._parquet is None:
            self._schema = table.schema
            self._parquet = pq.ParquetWriter(self.tmp, self._schema, compression="zstd")
        if table.num_rows:
            self._parquet.write_table(table.cast(self._schema))
            self.entries += table.num_rows

    def commit(self, empty_columns: dict[str, Any] | None = None) -> int:
        """Close and put the output at its target (renamed, or uploaded and verified);
        returns its size in bytes."""
        size = self.finish(empty_columns)
        if is_remote(self.target):
            from hepstream.io.xrootd import upload

            upload(str(self.tmp), self.target)
            self.abort()  # the staged part goes
            return size
        try:
            os.replace(self.tmp, self.path)
        except OSError as err:
            raise self._failed(err) from None
        return size

    def finish(self, empty_columns: dict[str, Any] | None = None) -> int:
        """Close the temp file, complete, without renaming it (a staged upload sends
        :attr:`tmp` and then deletes it); returns its size in bytes."""
        if self._file is None and self._parquet is None and empty_columns is not None:
            self.write(empty_columns)
        try:
            if self.metadata:
                self._write_metadata()
            self._close()
            return self.tmp.stat().st_size
        except OSError as err:
            raise self._failed(err) from None

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
            self.tmp.unlink(missing_ok=True)

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None


def write_report(report: JobReport, target: str) -> None:
    """Write the job report at ``target``: locally (atomic) or uploaded to ``root://``."""
    from hepstream.partfiles import atomic_path

    text = report.to_json()
    local = _staged(target)
    try:
        if not is_remote(target):
            with atomic_path(local) as part:
                part.write_text(text)
            return
        part = create_part(local)
        part.write_text(text)
    except OSError as err:
        raise OutputError(
            f"cannot write report {local}: {err.strerror or err}; free space or choose another path"
        ) from None
    try:
        from hepstream.io.xrootd import upload

        upload(str(part), target)
    finally:
        part.unlink(missing_ok=True)
