"""A TTree as an event store: baskets per branch, clusters where every branch starts a new
basket. Numbers and lists of numbers are decoded by :mod:`hepstream.root.baskets`, other
branches by uproot."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import awkward as ak

from hepstream.root.baskets import BasketColumn, start_columns
from hepstream.root.reads import StagedReads, check_valid


class TTreeStore(StagedReads):
    """A TTree: baskets per branch, clusters where every branch starts a new basket."""

    kind = "TTree"
    noun = "branch"

    def __init__(self, path: str, obj: Any) -> None:
        super().__init__(path, obj)
        self.num_entries = int(obj.num_entries)
        self._columns: dict[str, BasketColumn | None] = {}  # None: uproot reads it

    def missing(self, names: list[str]) -> list[str]:
        """The ``names`` the TTree has no branch of."""
        return [name for name in names if name not in self.obj]

    def check_readable(self, names: list[str]) -> None:
        """Nothing to check ahead: every branch the TTree lists is read, by hepstream or by
        uproot when the arrays are asked for."""

    def cluster_offsets(self) -> list[int]:
        """The first entry of every cluster, and the number of entries."""
        return [int(x) for x in self.obj.common_entry_offsets()]

    def cut_clusters(self, names: list[str]) -> bool:
        """Whether a cluster much larger than a chunk may be cut (a basket straddling the
        cut is fetched once and read by both chunks): not when a list of ``names`` has
        baskets without entry offsets, which its counter divides a whole basket at a time."""
        return not any(self._generated(names))

    def _generated(self, names: list[str]) -> list[BasketColumn]:
        """The ``kGenerateOffsetMap`` lists of ``names`` (see BasketColumn.generated)."""
        columns = (self._column(name) for name in names)
        return [c for c in columns if c is not None and c.generated]

    def _with_counters(self, names: list[str]) -> list[str]:
        """``names``, then the counters their ``kGenerateOffsetMap`` lists need (read even
        where the plugin does not ask for them: their bytes count in the report's)."""
        counters = (c.counter for c in self._generated(names))
        extra = [name for name in counters if name is not None and name not in names]
        return names + list(dict.fromkeys(extra))

    def bytes_per_entry(self, names: list[str]) -> float:
        """Uncompressed bytes of ``names`` per entry, on average."""
        total: int = sum(self.obj[name].uncompressed_bytes for name in names)
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
        fast = [self._column(name) for name in self._with_counters(names)]
        slow = [name for name in names if self._column(name) is None]
        file = self.obj.file  # uproot's ReadOnlyFile: its source and decompression threads
        layouts_of = start_columns(
            [c for c in fast if c is not None],
            file.source,
            start,
            stop,
            file.decompression_executor,
        )

        def finish() -> Any:
            layouts = layouts_of()
            if slow:
                rest = self.obj.arrays(slow, entry_start=start, entry_stop=stop, library="ak")
                check_valid(rest, "uproot's arrays of branches " + ", ".join(slow))
                layouts.update({name: rest.layout.content(name) for name in slow})
            fields = ak.contents.RecordArray(
                [layouts[name] for name in names], list(names), length=stop - start
            )
            return ak.Array(fields)

        return finish

    def _column(self, name: str) -> BasketColumn | None:
        """How branch ``name``'s baskets decode (None: uproot reads them), found once."""
        if name not in self._columns:
            self._columns[name] = BasketColumn.of(self.obj[name])
        return self._columns[name]
