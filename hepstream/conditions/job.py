"""The job side: open the conditions a plugin declares, split chunks, hand out payloads.

The runner calls :func:`open_for_job` once and :meth:`JobConditions.pieces` per chunk, and
hands each piece's payloads to the plugin (:meth:`hepstream.Selection.set_payloads`);
everything else (sources, failover, cache, provenance) stays here, so the runner's hook is
a few lines.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from hepstream.conditions import payload as payload_files
from hepstream.conditions import resolve
from hepstream.conditions.client import Chain, open_source
from hepstream.conditions.model import GlobalTag, Tag, iov_hash
from hepstream.errors import ConfigError, PluginError
from hepstream.plugin.api import Selection, flat

#: The output file's metadata key (a TObjString in ROOT, key-value metadata in Parquet).
METADATA_KEY = "hepstream_conditions"


def declared(selection: Selection) -> list[str]:
    """The records a plugin declares (none for plugins written before conditions)."""
    records = getattr(selection, "conditions", None) or []
    if not isinstance(records, list | tuple) or not all(isinstance(r, str) for r in records):
        raise PluginError(f"{type(selection).__name__}.conditions must be a list of record names")
    return list(records)


class JobConditions:
    """The resolved global tag of one job and the payloads it has loaded so far."""

    def __init__(
        self, selection: Selection, chain: Chain, gt: GlobalTag, records: list[str]
    ) -> None:
        self.chain = chain
        self.gt = gt
        self.tags: dict[str, Tag] = resolve.tags_for(gt, records)
        assert selection.run_branch is not None, "open_for_job() refuses a plugin without one"
        self.run_branch: str = selection.run_branch
        self.subrun_branch: str | None = selection.subrun_branch
        self.values: dict[str, Any] = {}  # payload sha -> decoded value, loaded once per job
        self.used: set[tuple[str, tuple[int, int], str]] = set()
        self.lookup_s = 0.0
        self.open_s = 0.0  # fetching and checking the global tag at job start
        self.pieces_count = 0
        self._last: dict[str, Any] | None = None

    def _value(self, record: str, sha: str) -> Any:
        if sha not in self.values:
            payload = self.gt.payloads[sha]
            data = self.chain.load(payload)
            where = f"payload {sha} of record {record} (from {self.chain.used[sha]})"
            self.values[sha] = payload_files.decode(data, payload, where)
        return self.values[sha]

    def pieces(self, events: Any) -> list[tuple[int, int, dict[str, Any]]]:
        """``(start, stop, {record: payload value})`` covering ``events`` in order: each
        piece's events share one IOV per record."""
        t0 = time.perf_counter()
        runs = flat(events, self.run_branch)
        subruns = flat(events, self.subrun_branch) if self.subrun_branch else None
        out = []
        for piece in resolve.split(self.tags, runs, subruns):
            values = {}
            for record, iov in piece.iovs.items():
                values[record] = self._value(record, iov.payload)
                self.used.add((record, iov.since, iov.payload))
            out.append((piece.start, piece.stop, values))
        if not out:  # no events: select() still runs (it fixes the output's types)
            out = [(0, 0, self._last or self._first_values())]
        self._last = out[-1][2]
        self.pieces_count += len(out)
        self.lookup_s += time.perf_counter() - t0
        return out

    def _first_values(self) -> dict[str, Any]:
        return {r: self._value(r, t.iovs[0].payload) for r, t in self.tags.items() if t.iovs}

    def provenance(self) -> dict[str, Any]:
        """What the output depends on: global tag and the IOVs used (same from any source)."""
        used = sorted(self.used)
        return {
            "global_tag": self.gt.name,
            "status": self.gt.status,
            "iov_hash": iov_hash(used),
            "iovs": [{"record": r, "since": f"{s[0]}:{s[1]}", "payload": p} for r, s, p in used],
        }

    def metadata(self) -> dict[str, str]:
        return {METADATA_KEY: json.dumps(self.provenance(), sort_keys=True)}

    def report(self) -> dict[str, Any]:
        """The provenance plus where things came from and what the lookups cost."""
        return {
            **self.provenance(),
            "sources": sorted(set(self.chain.used.values())),
            "payloads_loaded": len(self.values),
            "pieces": self.pieces_count,
            "open_s": round(self.open_s, 4),
            "lookup_s": round(self.lookup_s, 4),
        }

    def close(self) -> None:
        self.chain.close()


def open_for_job(
    selection: Selection,
    sources: tuple[str, ...] | list[str],
    global_tag: str | None,
    allow_open: bool = False,
    cache_dir: str | Path | None = None,
    plugin: str = "plugin",
) -> JobConditions | None:
    """The job's conditions, or None when the plugin declares none (old plugins)."""
    records = declared(selection)
    if not records:
        return None
    name = type(selection).__name__
    branches = list(selection.branches)
    for attr in ("run_branch", "subrun_branch"):
        branch = getattr(selection, attr, None)
        if branch is not None and branch not in branches:
            raise PluginError(
                f"plugin {plugin}: {name}.{attr} {branch!r} is not in branches; add it there"
            )
    if selection.run_branch is None:
        raise PluginError(f"plugin {plugin}: {name} declares conditions but no run_branch")
    if not sources or not global_tag:
        raise ConfigError(
            f"plugin {plugin} needs conditions {records}: pass --conditions URL-or-DIR "
            f"and --global-tag NAME"
        )
    t0 = time.perf_counter()
    chain = Chain([open_source(s, cache_dir) for s in sources])
    try:
        gt = chain.global_tag(global_tag)
        if not gt.locked and not allow_open:
            raise ConfigError(
                f"global tag {global_tag} is OPEN and may still change; lock it "
                f"(hepstream conditions lock {global_tag}) or pass --allow-open-tag "
                f"for a test job"
            )
        conditions = JobConditions(selection, chain, gt, records)
        conditions.open_s = time.perf_counter() - t0
        return conditions
    except BaseException:
        chain.close()
        raise


__all__ = ["METADATA_KEY", "JobConditions", "declared", "open_for_job"]
