"""What the reader needs to know of one input's event store, TTree or RNTuple.

Each adapter answers the same questions from the file's metadata: how many entries, where
the clusters end, how many bytes an entry holds, which byte ranges uproot will ask for to
read some fields of some entries (and in which order), and the arrays themselves. The
reader plans and streams both kinds through the same code.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from hepstream.errors import HepstreamError, InputError
from hepstream.io.spans import ColumnPages, active_pages, page_ranges

T = TypeVar("T")


class _Reads:
    """The arrays of some entries, asked for in two steps (both adapters): ``prepare``
    starts the reads and decodes, ``arrays`` waits for them and builds the arrays."""

    def __init__(self, path: str, obj: Any) -> None:
        self.path = path
        self.obj = obj
        self._pending: dict[tuple, Callable[[], Any]] = {}

    def prepare(self, names: list[str], start: int, stop: int) -> None:
        """Start reading entries ``[start, stop)`` of ``names`` now: their byte ranges are
        asked for and each is decoded as it arrives, while the caller builds an earlier
        chunk. :meth:`arrays` with the same arguments finishes it; nothing is read twice."""
        key = (tuple(names), start, stop)
        if key not in self._pending:
            self._pending[key] = self._started(names, start, stop)

    def arrays(self, names: list[str], start: int, stop: int) -> Any:
        """Entries ``[start, stop)`` of ``names`` as one awkward record array."""
        finish = self._pending.pop((tuple(names), start, stop), None)
        if finish is None:
            finish = self._started(names, start, stop)
        return guard(self.path, f"entries {start}-{stop}", finish)

    def _started(self, names: list[str], start: int, stop: int) -> Callable[[], Any]:
        try:
            return self._start(names, start, stop)
        except Exception as err:  # damage found this early is raised with the arrays
            failure = err

            def failed() -> Any:
                raise failure

            return failed

    def _start(self, names: list[str], start: int, stop: int) -> Callable[[], Any]:
        raise NotImplementedError


class TreeInput(_Reads):
    """A TTree: baskets per branch, clusters where every branch starts a new basket."""

    kind = "TTree"

    def __init__(self, path: str, obj: Any) -> None:
        super().__init__(path, obj)
        self.num_entries = int(obj.num_entries)
        self._columns: dict[str, Any] = {}  # name -> BasketColumn, or None for uproot's

    def missing(self, names: list[str]) -> list[str]:
        return [name for name in names if name not in self.obj]

    def cluster_offsets(self) -> list[int]:
        return [int(x) for x in self.obj.common_entry_offsets()]

    def cut_clusters(self, names: list[str]) -> bool:
        """Whether a cluster much larger than a chunk may be cut (a basket straddling the
        cut is fetched once and read by both chunks): not when a list of ``names`` has
        baskets without entry offsets, which its counter divides a whole basket at a time."""
        return not any(self._generated(names))

    def _generated(self, names: list[str]) -> list[Any]:
        """The ``kGenerateOffsetMap`` lists of ``names`` (see BasketColumn.generated)."""
        columns = (self._column(name) for name in names)
        return [c for c in columns if c is not None and c.generated]

    def _with_counters(self, names: list[str]) -> list[str]:
        """``names``, then the counters their ``kGenerateOffsetMap`` lists need (read even
        where the plugin does not ask for them: their bytes count in the report's)."""
        extra = [c.counter for c in self._generated(names) if c.counter not in names]
        return names + list(dict.fromkeys(extra))

    def bytes_per_entry(self, names: list[str]) -> float:
        total = sum(self.obj[name].uncompressed_bytes for name in names)
        return total / max(1, self.num_entries)

    def ranges(self, names: list[str], start: int, stop: int) -> list[tuple[int, int]]:
        """Byte ranges of the baskets holding entries ``[start, stop)`` of ``names``, in the
        order :meth:`arrays` asks for them: the plan and the read share one basket list."""
        out: list[tuple[int, int]] = []
        for name in self._with_counters(names):
            column = self._column(name)
            if column is not None:
                out += [column.range_of(k) for k, _, _ in column.baskets(start, stop)]
            else:
                out += [
                    (int(where[0]), int(where[1]))
                    for _, where in self.obj[name].entries_to_ranges_or_baskets(start, stop)
                    if isinstance(where, tuple)
                ]
        return out

    def _start(self, names: list[str], start: int, stop: int) -> Callable[[], Any]:
        """Start the reads (see :meth:`prepare`); the function giving the arrays. Numbers
        and lists of numbers are decoded by :mod:`hepstream.root.baskets`; other branches by
        uproot, when the arrays are asked for."""
        import awkward as ak

        from hepstream.root.baskets import start_columns

        fast = [self._column(name) for name in self._with_counters(names)]
        slow = [name for name in names if self._column(name) is None]
        file = self.obj._file  # uproot's ReadOnlyFile: its source and decompression threads
        layouts_of = start_columns(
            [c for c in fast if c is not None], file.source, start, stop,
            file.decompression_executor,
        )  # fmt: skip

        def finish() -> Any:
            layouts = layouts_of()
            if slow:
                rest = self.obj.arrays(slow, entry_start=start, entry_stop=stop, library="ak")
                _valid(rest, "uproot's arrays of branches " + ", ".join(slow))
                layouts.update({name: rest.layout.content(name) for name in slow})
            return ak.Array(ak.contents.RecordArray(
                [layouts[name] for name in names], list(names), length=stop - start
            ))  # fmt: skip

        return finish

    def _column(self, name: str) -> Any:
        from hepstream.root.baskets import BasketColumn

        if name not in self._columns:
            self._columns[name] = BasketColumn.of(self.obj[name])
        return self._columns[name]


class NTupleInput(_Reads):
    """An RNTuple: pages per column and cluster, read whole clusters at a time. Numbers and
    offsets are decoded by :mod:`hepstream.root.pages`, other columns by uproot; the arrays are
    built on uproot's form of the fields."""

    kind = "RNTuple"

    def __init__(self, path: str, obj: Any) -> None:
        super().__init__(path, obj)
        self._offsets: list[int] | None = None
        self._links: list[list[ColumnPages]] | None = None
        self._alternatives: dict[int, list[int]] | None = None
        self.num_entries = guard(path, "the RNTuple's page lists", self.cluster_offsets)[-1]
        self._decoders: dict[int, Any] = {}  # column -> PageColumn, or None for uproot's
        self._top: set[str] | None = None
        self._schema: tuple | None = None  # what the form depends on (see _form)

    def missing(self, names: list[str]) -> list[str]:
        if self._top is None:
            records = self.obj.ntuple.field_records
            self._top = {r.field_name for i, r in enumerate(records) if r.parent_field_id == i}
        return [name for name in names if name not in self._top and name not in self.obj]

    def check_readable(self, names: list[str]) -> None:
        """One clear line for a field uproot cannot read (found before any page is read)."""
        import uproot

        failures = (NotImplementedError, AssertionError, KeyError, ValueError, TypeError)
        try:  # one form for all (uproot walks every field per call): the common case
            self.columns(names)
            return
        except failures:
            pass  # which one: field by field
        for name in names:
            try:
                self.columns([name])
            except failures as err:
                # uproot's reason, without the record it appends ("... MetaData(...)")
                first = (str(err).strip().splitlines() or [type(err).__name__])[0]
                reason = first.split(" MetaData(")[0].rstrip(" .:") or type(err).__name__
                kinds = {r.field_name: r.type_name for r in self.obj.ntuple.field_records}
                kind = f" ({kinds[name]})" if kinds.get(name) else ""
                raise InputError(
                    f"{self.path}: RNTuple field {name!r}{kind} cannot be read by uproot "
                    f"{uproot.__version__} ({reason}); drop it from the plugin's branches"
                ) from None

    def _form(self, names: list[str]) -> tuple[Any, list[str], list[int]]:
        """uproot's awkward form of ``names``, its keys (uproot's order) and the column
        indices they read. Files written with one schema share it: it is made once per
        schema, not once per file."""
        if self._schema is None:
            ntuple = self.obj.ntuple
            extension = ntuple.footer.extension_links
            self._schema = (
                int(ntuple.header.checksum),  # xxh3 of the header: its fields and columns
                tuple(repr(r) for r in (*extension.field_records, *extension.column_records,
                                        *extension.alias_column_records)),
            )  # fmt: skip
        key = (self._schema, tuple(names))
        made = _FORMS.get(key)
        if made is None:
            form, _ = self.obj.to_akform(filter_name=list(names))
            keys: list[str] = []
            _form_keys(form, keys)
            columns = list(dict.fromkeys(_column_of(k) for k in keys if k.startswith("column-")))
            made = (form, keys, columns)
            if len(_FORMS) >= _FORMS_KEPT:
                _FORMS.clear()
            _FORMS[key] = made
        return made

    def columns(self, names: list[str]) -> list[int]:
        """The column indices read for ``names``, in the order they are read."""
        return list(self._form(names)[2])

    def cut_clusters(self, names: list[str]) -> bool:  # noqa: ARG002  (the stores' protocol)
        """Never: pages do not line up across columns, so a chunk cut inside a cluster
        would read and decode the cluster's pages twice."""
        return False

    def cluster_offsets(self) -> list[int]:
        """The first entry of every cluster, and the number of entries."""
        self._layout()
        assert self._offsets is not None
        return self._offsets

    def _layout(self) -> tuple[list[list[ColumnPages]], dict[int, list[int]]]:
        """The page layout as plain data (see :func:`hepstream.io.spans.page_ranges`)."""
        if self._links is None:
            from hepstream.root.pages import page_lists

            ntuple = self.obj.ntuple
            self._offsets, self._links = page_lists(ntuple)
            by_field: dict[int, list[int]] = {}
            for index, record in enumerate(ntuple.column_records):
                by_field.setdefault(record.field_id, []).append(index)
            self._alternatives = {
                index: by_field[record.field_id]
                for index, record in enumerate(ntuple.column_records)
            }
        assert self._alternatives is not None
        return self._links, self._alternatives

    def _clusters(self, start: int, stop: int) -> range:
        offsets = self.cluster_offsets()
        first = bisect.bisect_right(offsets, start) - 1
        last = bisect.bisect_left(offsets, stop)
        return range(max(first, 0), min(last, len(offsets) - 1))

    def bytes_per_entry(self, names: list[str]) -> float:
        ntuple = self.obj.ntuple
        links, alternatives = self._layout()
        total = 0
        for column in self.columns(names):
            size = ntuple.get_field_metadata(column).dtype_result.itemsize
            for row in links:
                pages = active_pages(column, row, alternatives)
                total += size * sum(pages.elements) if pages is not None else 0
        return total / max(1, self.num_entries)

    def ranges(self, names: list[str], start: int, stop: int) -> list[tuple[int, int]]:
        """Byte ranges of the pages read for entries ``[start, stop)`` of ``names``, in the
        order :meth:`arrays` asks for them."""
        if stop <= start:
            return []
        links, alternatives = self._layout()
        mine, theirs = self._decoders_of(names)
        order = [d.index for d in mine] + theirs
        checked = {d.index for d in mine}  # uproot's own reads leave checksums unread
        return page_ranges(order, self._clusters(start, stop), links, alternatives, checked)

    def _start(self, names: list[str], start: int, stop: int) -> Callable[[], Any]:
        """Start the reads (see :meth:`prepare`) of the whole clusters; the function giving
        the arrays. Numbers and offsets are decoded by :mod:`hepstream.root.pages`, other
        columns by uproot when the arrays are asked for; the arrays are built on uproot's
        form."""
        import awkward as ak
        from uproot.behaviors.RNTuple import _fill_container_dict

        from hepstream.root.pages import start_pages

        ntuple = self.obj.ntuple
        file = ntuple.file  # uproot's ReadOnlyFile: its source and decompression threads
        offsets = self.cluster_offsets()
        clusters = self._clusters(start, stop)
        if not clusters and len(offsets) > 1:  # no entries: one cluster gives the types
            k = min(max(bisect.bisect_right(offsets, start) - 1, 0), len(offsets) - 2)
            clusters = range(k, k + 1)
        first = offsets[clusters.start] if clusters else 0
        length = offsets[clusters.stop] - first if clusters else 0
        form, keys, _ = self._form(names)
        links, _ = self._layout()
        mine, theirs = self._decoders_of(names)  # the order of the plan (see ranges)
        items = self._check_counts(form, clusters)
        buffers_of = start_pages(
            mine, links, clusters, file.source, file.decompression_executor, items
        )

        def finish() -> Any:
            buffers = buffers_of()
            for column in theirs:
                padding = int(ntuple.column_records[column].first_element_index) - first
                buffers[column] = ntuple.read_cluster_range(
                    column, clusters.start, clusters.stop, array_cache=None,
                    missing_element_padding=max(padding, 0),
                )  # fmt: skip
            container: dict[str, Any] = {}
            for key in keys:
                if key.startswith("column-"):
                    column = _column_of(key)
                    record = ntuple.column_records[column]
                    _fill_container_dict(container, buffers[column], key, record.type, None)
            out = ak.from_buffers(form, length, container)[start - first : stop - first]
            if theirs:
                _valid(out, "the fields uproot decodes")
            if list(out.fields) != list(names):
                out = ak.zip({name: out[name] for name in names}, depth_limit=1)
            return out

        return finish

    def _elements(self, column: int, cluster: int) -> int | None:
        """The elements the page lists give ``column`` in ``cluster`` (None: no pages)."""
        links, alternatives = self._layout()
        pages = active_pages(column, links[cluster], alternatives)
        return None if pages is None else sum(pages.elements)

    def _check_counts(self, form: Any, clusters: range) -> dict[int, list[int | None]]:
        """Check that the page lists agree with the clusters: a top-level field has one
        element per entry, the fields under one list the same number of items; the items
        under each list column, per cluster, for :func:`~hepstream.root.pages.start_pages` to
        hold its decoded offsets against. A ``ValueError`` names what disagrees."""
        offsets = self.cluster_offsets()
        items: dict[int, list[int | None]] = {}
        for parent, children in _counted(form):
            per: list[int | None] = []
            for cluster in clusters:
                entries = offsets[cluster + 1] - offsets[cluster]
                counts = {
                    n for child in children if (n := self._elements(child, cluster)) is not None
                }
                if parent is None and counts - {entries}:
                    raise ValueError(
                        f"cluster {cluster} holds {entries:,} entries, but its page lists "
                        f"give fields {sorted(counts)} elements"
                    )
                if len(counts) > 1:
                    raise ValueError(
                        f"the fields under list column {parent} disagree on their items in "
                        f"cluster {cluster}: {sorted(counts)}"
                    )
                per.append(counts.pop() if counts else None)
            if parent is not None:
                items[parent] = per
        return items

    def _decoders_of(self, names: list[str]) -> tuple[list[Any], list[int]]:
        """The columns of ``names`` hepstream decodes (as PageColumns), then uproot's: the
        order in which they are planned and read."""
        from hepstream.root.pages import PageColumn

        mine, theirs = [], []
        for column in self.columns(names):
            if column not in self._decoders:
                self._decoders[column] = PageColumn.of(self.obj.ntuple, column)
            decoder = self._decoders[column]
            if decoder is None:
                theirs.append(column)
            else:
                mine.append(decoder)
        return mine, theirs


#: Forms made, by schema and field names (a few schemas per job): see NTupleInput._form.
_FORMS: dict[tuple, tuple[Any, list[str], list[int]]] = {}
_FORMS_KEPT = 64


def _column_of(key: str) -> int:
    """The column index of an uproot form key, ``column-<index>[-...]``."""
    return int(key.split("-")[1])


def _valid(array: Any, what: str) -> None:
    """Raise if ``array``'s lists point outside their items or run backwards (what a
    plugin's compiled loop would read out of bounds): arrays hepstream did not build itself
    are checked before they reach it."""
    import awkward as ak

    problem = ak.validity_error(array)
    if problem:
        raise ValueError(f"{what} are inconsistent ({problem.split(' (in compiled code')[0]})")


def _counted(form: Any) -> Iterator[tuple[int | None, list[int]]]:
    """Each list column of uproot's RNTuple ``form`` (None first: the entries themselves)
    with the columns directly under it, whose elements it counts."""
    yield None, _columns_under(form)
    for node in _nodes(form):
        if _class(node) == "ListOffset" and _key_column(node) is not None:
            yield _key_column(node), _columns_under(node.content)


def _class(form: Any) -> str:
    """awkward's name of a form's kind: ``Numpy``, ``ListOffset``, ``Record``, ..."""
    return type(form).__name__.removesuffix("Form")


def _key_column(form: Any) -> int | None:
    """The column a NumpyArray or ListOffsetArray form reads (``column-<index>``), or None."""
    key = getattr(form, "form_key", None) or ""
    parts = key.split("-")
    if len(parts) == 2 and parts[0] == "column" and parts[1].isdigit():
        return int(parts[1])
    return None


def _columns_under(form: Any) -> list[int]:
    """The columns with one element per element of ``form``: its own (a number or list
    column), or those of a record's fields. Other nodes (options, unions, regular arrays)
    count differently and are left out."""
    kind = _class(form)
    if kind in ("Numpy", "ListOffset"):
        column = _key_column(form)
        return [] if column is None else [column]
    if kind == "Record":
        return [c for content in form.contents for c in _columns_under(content)]
    return []


def _nodes(form: Any) -> Iterator[Any]:
    """``form`` and every form inside it."""
    yield form
    for content in getattr(form, "contents", ()) or ():
        yield from _nodes(content)
    inner = getattr(form, "content", None)
    if inner is not None and hasattr(inner, "form_key"):
        yield from _nodes(inner)


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


def guard(path: str, what: str, read: Callable[[], T]) -> T:
    """Run ``read``; whatever a damaged file makes uproot or the decoders raise becomes one
    :class:`InputError` naming the file and ``what`` (exit 3, or a skipped file under
    ``--skip-bad-files``).

    Any ``Exception``: a shifted or flipped structure surfaces as whatever the parser meets
    first (uproot's ``DeserializationError``, ``struct.error``, ``IndexError``, ``KeyError``,
    ``OverflowError``, a ``MemoryError`` from a size no file holds, ...), and a list of the
    expected ones only moves the traceback to the next one. Interruptions
    (``KeyboardInterrupt``) and hepstream's own errors pass through.
    """
    try:
        return read()
    except HepstreamError:
        raise
    except Exception as err:
        raise damaged(path, what, err) from err


def damaged(path: str, what: str, err: Exception) -> InputError:
    """The one line for ``err``, met reading ``what`` of the file ``path`` (see :func:`guard`)."""
    if isinstance(err, MemoryError):
        return InputError(
            f"{path}: cannot read {what}: it claims a size no memory holds; "
            f"the file may be corrupt, copy it again"
        )
    said = " ".join(str(err).split())  # uproot's messages run over several lines
    first = said if len(said) <= 200 else said[:199] + "…"
    return InputError(
        f"{path}: cannot read {what} ({type(err).__name__}: {first}); "
        f"the file may be corrupt, copy it again"
    )


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
