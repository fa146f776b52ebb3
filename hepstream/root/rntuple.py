"""An RNTuple as an event store: pages per column and cluster, read whole clusters at a
time. Numbers and offsets are decoded by :mod:`hepstream.root.pages`, other columns by
uproot; the arrays are built on uproot's form of the fields."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from typing import Any

import awkward as ak
import numpy.typing as npt
import uproot

from hepstream.errors import InputError
from hepstream.root.pagelists import ColumnPages, active_pages, page_lists, page_ranges
from hepstream.root.pages import PageColumn, start_pages
from hepstream.root.reads import StagedReads, check_valid, guard
from hepstream.root.uproot_internals import fill_container

#: uproot's awkward form of some fields, its keys (uproot's order), the columns they read.
_Form = tuple[Any, list[str], list[int]]
#: What a form depends on besides the field names: the header's checksum (its fields and
#: columns) and the schema extension's records.
_Schema = tuple[int, tuple[str, ...]]


class RNTupleStore(StagedReads):
    """An RNTuple: pages per column and cluster, read whole clusters at a time. Numbers and
    offsets are decoded by :mod:`hepstream.root.pages`, other columns by uproot; the arrays
    are built on uproot's form of the fields."""

    kind = "RNTuple"
    noun = "field"

    def __init__(self, path: str, obj: Any) -> None:
        super().__init__(path, obj)
        self._offsets: list[int] | None = None
        self._links: list[list[ColumnPages]] | None = None
        self._alternatives: dict[int, list[int]] | None = None
        self.num_entries = guard(path, "the RNTuple's page lists", self.cluster_offsets)[-1]
        self._decoders: dict[int, PageColumn | None] = {}  # None: uproot decodes the column
        self._top: set[str] | None = None
        self._schema: _Schema | None = None

    def missing(self, names: list[str]) -> list[str]:
        """The ``names`` the RNTuple has no top-level field of."""
        if self._top is None:
            records = self.obj.ntuple.field_records
            self._top = {r.field_name for i, r in enumerate(records) if r.parent_field_id == i}
        return [name for name in names if name not in self._top and name not in self.obj]

    def check_readable(self, names: list[str]) -> None:
        """One clear line for a field uproot cannot read (found before any page is read)."""
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

    def _form(self, names: list[str]) -> _Form:
        """uproot's awkward form of ``names``, its keys (uproot's order) and the column
        indices they read. Files written with one schema share it: it is made once per
        schema, not once per file."""
        if self._schema is None:
            ntuple = self.obj.ntuple
            extension = ntuple.footer.extension_links
            records = (
                *extension.field_records,
                *extension.column_records,
                *extension.alias_column_records,
            )
            self._schema = (int(ntuple.header.checksum), tuple(repr(r) for r in records))
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
        """The page layout as plain data (see :func:`hepstream.root.pagelists.page_ranges`)."""
        if self._links is None:
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
        """The clusters that hold entries ``[start, stop)``."""
        offsets = self.cluster_offsets()
        first = bisect.bisect_right(offsets, start) - 1
        last = bisect.bisect_left(offsets, stop)
        return range(max(first, 0), min(last, len(offsets) - 1))

    def bytes_per_entry(self, names: list[str]) -> float:
        """Uncompressed bytes of ``names`` per entry, on average."""
        ntuple = self.obj.ntuple
        links, alternatives = self._layout()
        total = 0
        for column in self.columns(names):
            size = int(ntuple.get_field_metadata(column).dtype_result.itemsize)
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
        file = self.obj.ntuple.file  # uproot's ReadOnlyFile: its source and decompression threads
        offsets = self.cluster_offsets()
        clusters = self._read_clusters(start, stop)
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
            self._read_by_uproot(theirs, clusters, first, buffers)
            out = self._built(form, keys, buffers, length)[start - first : stop - first]
            if theirs:
                check_valid(out, "the fields uproot decodes")
            if list(out.fields) != list(names):
                out = ak.zip({name: out[name] for name in names}, depth_limit=1)
            return out

        return finish

    def _read_clusters(self, start: int, stop: int) -> range:
        """The whole clusters read for entries ``[start, stop)``: those holding them, or,
        for no entries, the one at ``start`` (its pages give the arrays' types)."""
        offsets = self.cluster_offsets()
        clusters = self._clusters(start, stop)
        if not clusters and len(offsets) > 1:
            k = min(max(bisect.bisect_right(offsets, start) - 1, 0), len(offsets) - 2)
            clusters = range(k, k + 1)
        return clusters

    def _read_by_uproot(
        self, columns: list[int], clusters: range, first: int, buffers: dict[int, Any]
    ) -> None:
        """The elements of ``columns`` in ``clusters`` (whose first entry is ``first``), read
        and decoded by uproot, into ``buffers``."""
        ntuple = self.obj.ntuple
        for column in columns:
            padding = int(ntuple.column_records[column].first_element_index) - first
            buffers[column] = ntuple.read_cluster_range(
                column,
                clusters.start,
                clusters.stop,
                array_cache=None,
                missing_element_padding=max(padding, 0),
            )

    def _built(
        self, form: Any, keys: list[str], buffers: dict[int, npt.NDArray[Any]], length: int
    ) -> Any:
        """The awkward array of ``length`` entries on uproot's ``form`` from each column's
        elements (``buffers``), converted as uproot's own reader does."""
        records = self.obj.ntuple.column_records
        container: dict[str, Any] = {}
        for key in keys:
            if key.startswith("column-"):
                column = _column_of(key)
                fill_container(container, buffers[column], key, records[column].type)
        return ak.from_buffers(form, length, container)

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

    def _decoders_of(self, names: list[str]) -> tuple[list[PageColumn], list[int]]:
        """The columns of ``names`` hepstream decodes (as PageColumns), then uproot's: the
        order in which they are planned and read."""
        mine: list[PageColumn] = []
        theirs: list[int] = []
        for column in self.columns(names):
            if column not in self._decoders:
                self._decoders[column] = PageColumn.of(self.obj.ntuple, column)
            decoder = self._decoders[column]
            if decoder is None:
                theirs.append(column)
            else:
                mine.append(decoder)
        return mine, theirs


#: Forms made, by schema and field names (a few schemas per job): see RNTupleStore._form.
_FORMS: dict[tuple[_Schema, tuple[str, ...]], _Form] = {}
_FORMS_KEPT = 64


def _column_of(key: str) -> int:
    """The column index of an uproot form key, ``column-<index>[-...]``."""
    return int(key.split("-")[1])


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
