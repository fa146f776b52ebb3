"""What the reader needs to know of one input's event store, TTree or RNTuple.

Each adapter answers the same questions from the file's metadata: how many entries, where
the clusters end, how many bytes an entry holds, which byte ranges uproot will ask for to
read some fields of some entries (and in which order), and the arrays themselves. The
reader plans and streams both kinds through the same code.
"""

from __future__ import annotations

import zlib
from typing import Any

from hepstream.errors import HepstreamError, InputError


class TreeInput:
    """A TTree: baskets per branch, clusters where every branch starts a new basket."""

    kind = "TTree"
    #: A cluster much larger than a chunk may be cut: a basket straddling the cut is
    #: fetched once and read by both chunks.
    cut_clusters = True

    def __init__(self, path: str, obj: Any) -> None:
        self.path = path
        self.obj = obj
        self.num_entries = int(obj.num_entries)

    def missing(self, names: list[str]) -> list[str]:
        return [name for name in names if name not in self.obj]

    def cluster_offsets(self) -> list[int]:
        return [int(x) for x in self.obj.common_entry_offsets()]

    def bytes_per_entry(self, names: list[str]) -> float:
        total = sum(self.obj[name].uncompressed_bytes for name in names)
        return total / max(1, self.num_entries)

    def ranges(self, names: list[str], start: int, stop: int) -> list[tuple[int, int]]:
        """Byte ranges of the baskets holding entries ``[start, stop)`` of ``names``."""
        return [
            (int(where[0]), int(where[1]))
            for name in names
            for _, where in self.obj[name].entries_to_ranges_or_baskets(start, stop)
            if isinstance(where, tuple)
        ]

    def arrays(self, names: list[str], start: int, stop: int) -> Any:
        return _guard(self.path, start, stop, lambda: self.obj.arrays(
            names, entry_start=start, entry_stop=stop, library="ak"
        ))  # fmt: skip


class NTupleInput:
    """An RNTuple: pages per column and cluster; uproot reads whole clusters, page by page."""

    kind = "RNTuple"
    #: uproot decodes whole clusters: a chunk cut inside one would decode it twice.
    cut_clusters = False

    def __init__(self, path: str, obj: Any) -> None:
        self.path = path
        self.obj = obj
        self.num_entries = int(obj.num_entries)
        self._columns: dict[tuple[str, ...], list[int]] = {}

    def missing(self, names: list[str]) -> list[str]:
        return [name for name in names if name not in self.obj]

    def check_readable(self, names: list[str]) -> None:
        """One clear line for a field uproot cannot read (found before any page is read)."""
        import uproot

        for name in names:
            try:
                self.columns([name])
            except (NotImplementedError, AssertionError, KeyError, ValueError, TypeError) as err:
                first = (str(err).strip().splitlines() or [type(err).__name__])[0]
                raise InputError(
                    f"{self.path}: RNTuple field {name!r} cannot be read by uproot "
                    f"{uproot.__version__} ({first}); drop it from the plugin's branches"
                ) from None

    def columns(self, names: list[str]) -> list[int]:
        """The column indices uproot reads for ``names``, in the order it reads them."""
        key = tuple(names)
        if key not in self._columns:
            form, _ = self.obj.to_akform(filter_name=list(names))
            keys: list[str] = []
            _form_keys(form, keys)
            self._columns[key] = [int(k.split("-")[1]) for k in keys if k.startswith("column-")]
        return self._columns[key]

    def cluster_offsets(self) -> list[int]:
        clusters = self.obj.cluster_summaries
        if not clusters:
            return [0] if self.num_entries == 0 else [0, self.num_entries]
        return [int(c.num_first_entry) for c in clusters] + [
            int(clusters[-1].num_first_entry + clusters[-1].num_entries)
        ]

    def _cluster_range(self, start: int, stop: int) -> range:
        offsets = self.cluster_offsets()
        first = next(i for i in range(len(offsets) - 1) if offsets[i + 1] > start)
        last = next(i for i in range(len(offsets) - 2, -1, -1) if offsets[i] < stop)
        return range(first, last + 1)

    def _physical(self, cluster: int, column: int) -> int:
        """The column whose pages hold ``column``'s data in ``cluster``: a suppressed column
        (another representation was chosen there) defers to its field's active one."""
        ntuple = self.obj.ntuple
        links = ntuple.page_link_list[cluster]
        if column < len(links) and links[column].suppressed:
            field = ntuple.column_records[column].field_id
            return next(
                cr.idx for cr in ntuple._column_records_dict[field] if not links[cr.idx].suppressed
            )
        return column

    def bytes_per_entry(self, names: list[str]) -> float:
        ntuple = self.obj.ntuple
        total = 0
        for cluster, links in enumerate(ntuple.page_link_list):
            for column in self.columns(names):
                physical = self._physical(cluster, column)
                if physical < len(links):
                    size = ntuple.get_field_metadata(physical).dtype_result.itemsize
                    total += size * sum(p.num_elements for p in links[physical].pages)
        return total / max(1, self.num_entries)

    def ranges(self, names: list[str], start: int, stop: int) -> list[tuple[int, int]]:
        """Byte ranges of the pages uproot reads for entries ``[start, stop)`` of ``names``:
        for each column, for each cluster, each page, as uproot asks for them."""
        if stop <= start:
            return []
        links = self.obj.ntuple.page_link_list
        out: list[tuple[int, int]] = []
        for column in self.columns(names):
            for cluster in self._cluster_range(start, stop):
                physical = self._physical(cluster, column)
                if physical >= len(links[cluster]):
                    continue
                for page in links[cluster][physical].pages:
                    loc = page.locator
                    out.append((int(loc.offset), int(loc.offset + loc.num_bytes)))
        return out

    def arrays(self, names: list[str], start: int, stop: int) -> Any:
        def read():
            import awkward as ak

            out = self.obj.arrays(names, entry_start=start, entry_stop=stop, library="ak")
            if list(out.fields) != list(names):
                out = ak.zip({name: out[name] for name in names}, depth_limit=1)
            return out

        return _guard(self.path, start, stop, read)


def _form_keys(form: Any, out: list[str]) -> None:
    """Form keys of ``form`` and its contents, depth first, each once (uproot's order)."""
    key = getattr(form, "form_key", None)
    if key is not None and key not in out:
        out.append(key)
    for content in getattr(form, "contents", ()) or ():
        _form_keys(content, out)
    inner = getattr(form, "content", None)
    if inner is not None and hasattr(inner, "form_key"):
        _form_keys(inner, out)


def _guard(path: str, start: int, stop: int, read):
    """Run ``read``; damaged data becomes one InputError naming the file and entries."""
    try:
        return read()
    except HepstreamError:
        raise
    except (OSError, ValueError, zlib.error, RuntimeError, AssertionError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise InputError(
            f"{path}: cannot read entries {start}-{stop} ({type(err).__name__}: {first}); "
            f"the file may be corrupt, copy it again"
        ) from err


def event_store(path: str, file: Any, name: str) -> TreeInput | NTupleInput:
    """The TTree or RNTuple ``name`` of an open file, as an adapter; clear errors if not."""
    import uproot

    try:
        obj = file[name]
    except (KeyError, uproot.KeyInFileError):
        names = sorted({key.split(";")[0] for key in file.keys(recursive=False)})
        raise InputError(
            f"{path} has no TTree {name!r} nor an RNTuple of that name (it has {names}); "
            f"fix the plugin's tree"
        ) from None
    if isinstance(obj, uproot.behaviors.RNTuple.RNTuple):
        return NTupleInput(path, obj)
    if hasattr(obj, "common_entry_offsets"):
        return TreeInput(path, obj)
    raise InputError(
        f"{path}: {name!r} is a {type(obj).__name__.removeprefix('Model_')}, "
        f"not a TTree or RNTuple; fix the plugin's tree"
    )
