"""The shim's memory in SQLite: which VMs it booted, and how boots ended.

Rows are written *before* a boot call, so a shim killed at any point finds either the
row or the tagged VM on the cloud after a restart, and leaks neither.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypedDict, Unpack

from hepstream.cloud.model import SpecKey, VMSpec
from hepstream.cloud.queues.local import connect
from hepstream.cloud.sitestats import BootOutcome

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vms (
    name TEXT PRIMARY KEY,
    cloud TEXT NOT NULL,
    cloud_id TEXT,
    image TEXT NOT NULL,
    cpus INTEGER NOT NULL,
    memory_mb INTEGER NOT NULL,
    owner TEXT NOT NULL,
    job_id TEXT NOT NULL,
    booted_at REAL NOT NULL,
    registered_at REAL,
    idle_since REAL,
    last_state TEXT NOT NULL DEFAULT 'starting',
    gone_at REAL
);
CREATE TABLE IF NOT EXISTS boot_outcomes (
    image TEXT NOT NULL,
    cloud TEXT NOT NULL,
    at REAL NOT NULL,
    ok INTEGER NOT NULL,
    vm TEXT
);
CREATE INDEX IF NOT EXISTS boot_outcomes_at ON boot_outcomes(at);
CREATE TABLE IF NOT EXISTS history (
    at REAL NOT NULL,
    cloud TEXT NOT NULL,
    starting INTEGER NOT NULL,
    running INTEGER NOT NULL,
    error INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class VMRow:
    """A VM the shim booted or adopted and has not yet seen destroyed."""

    name: str
    cloud: str
    cloud_id: str | None
    spec: VMSpec
    job_id: str
    booted_at: float
    registered_at: float | None
    idle_since: float | None
    last_state: str


class RowChanges(TypedDict, total=False):
    """The columns of a VM row that change after its boot."""

    cloud_id: str | None
    registered_at: float | None
    idle_since: float | None
    last_state: str


class StateStore:
    """VM rows and boot outcomes; shares the SQLite file with the local queue."""

    def __init__(self, path: str | Path, cache_live: bool = False) -> None:
        """``cache_live``: keep the live rows in memory too (a sole writer, e.g. the
        simulator's in-memory store, reads them every round without a query)."""
        self.path = Path(path)
        self._conn = connect(self.path)
        self._conn.executescript(_SCHEMA)
        self._cache: dict[str, VMRow] | None = None
        if cache_live:
            self._cache = {r.name: r for r in self._query_live()}

    def close(self) -> None:
        self._conn.close()

    @staticmethod
    def _row(r: sqlite3.Row) -> VMRow:
        return VMRow(
            name=r["name"],
            cloud=r["cloud"],
            cloud_id=r["cloud_id"],
            spec=VMSpec(r["image"], r["cpus"], r["memory_mb"], r["owner"]),
            job_id=r["job_id"],
            booted_at=r["booted_at"],
            registered_at=r["registered_at"],
            idle_since=r["idle_since"],
            last_state=r["last_state"],
        )

    def add(
        self,
        name: str,
        cloud: str,
        spec: VMSpec,
        job_id: str,
        booted_at: float,
        cloud_id: str | None = None,
    ) -> None:
        """Record a VM about to be booted (or found on a cloud); idempotent on name."""
        self._conn.execute(
            "INSERT OR IGNORE INTO vms (name, cloud, cloud_id, image, cpus, memory_mb, owner,"
            " job_id, booted_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                name,
                cloud,
                cloud_id,
                spec.image,
                spec.cpus,
                spec.memory_mb,
                spec.owner,
                job_id,
                booted_at,
            ),
        )
        if self._cache is not None and name not in self._cache and not self.was_gone(name):
            self._cache[name] = VMRow(
                name, cloud, cloud_id, spec, job_id, booted_at, None, None, "starting"
            )

    def get(self, name: str) -> VMRow | None:
        r = self._conn.execute("SELECT * FROM vms WHERE name=?", (name,)).fetchone()
        return self._row(r) if r else None

    def live(self) -> list[VMRow]:
        """VMs not yet seen destroyed, oldest first."""
        if self._cache is not None:
            return sorted(self._cache.values(), key=lambda r: r.booted_at)
        return self._query_live()

    def _query_live(self) -> list[VMRow]:
        cur = self._conn.cursor()
        cur.row_factory = None
        cur.execute(
            "SELECT name, cloud, cloud_id, image, cpus, memory_mb, owner, job_id, booted_at,"
            " registered_at, idle_since, last_state FROM vms WHERE gone_at IS NULL"
            " ORDER BY booted_at"
        )
        specs: dict[SpecKey, VMSpec] = {}
        out = []
        for name, cloud, cid, image, cpus, mem, owner, job, booted, reg, idle, last in cur:
            key = (image, cpus, mem, owner)
            spec = specs.get(key)
            if spec is None:
                spec = specs[key] = VMSpec(image, cpus, mem, owner)
            out.append(VMRow(name, cloud, cid, spec, job, booted, reg, idle, last))
        return out

    def has_live(self) -> bool:
        """True while any VM is not yet seen destroyed."""
        if self._cache is not None:
            return bool(self._cache)
        q = "SELECT 1 FROM vms WHERE gone_at IS NULL LIMIT 1"
        return self._conn.execute(q).fetchone() is not None

    def update(self, name: str, **values: Unpack[RowChanges]) -> None:
        """Set some of a row's :class:`RowChanges` columns."""
        allowed = RowChanges.__optional_keys__
        if not set(values) <= allowed:  # untyped callers
            raise ValueError(f"cannot update {sorted(set(values) - allowed)}")
        cols = ", ".join(f"{k}=?" for k in values)
        self._conn.execute(f"UPDATE vms SET {cols} WHERE name=?", (*values.values(), name))
        if self._cache is not None and name in self._cache:
            self._cache[name] = replace(self._cache[name], **values)

    def gone(self, name: str, at: float) -> None:
        self._conn.execute("UPDATE vms SET gone_at=? WHERE name=?", (at, name))
        if self._cache is not None:
            self._cache.pop(name, None)

    def was_gone(self, name: str) -> bool:
        r = self._conn.execute("SELECT gone_at FROM vms WHERE name=?", (name,)).fetchone()
        return r is not None and r[0] is not None

    def outcome(self, image: str, cloud: str, at: float, ok: bool, vm: str | None) -> None:
        self._conn.execute(
            "INSERT INTO boot_outcomes (image, cloud, at, ok, vm) VALUES (?,?,?,?,?)",
            (image, cloud, at, int(ok), vm),
        )

    def outcomes(self, since: float) -> list[BootOutcome]:
        rows = self._conn.execute(
            "SELECT image, cloud, at, ok FROM boot_outcomes WHERE at>=?", (since,)
        )
        return [BootOutcome(r[0], r[1], r[2], bool(r[3])) for r in rows]

    def all_outcomes(self) -> dict[str, int]:
        rows = self._conn.execute("SELECT ok, COUNT(*) FROM boot_outcomes GROUP BY ok")
        return {("ok" if r[0] else "failed"): r[1] for r in rows}

    def snapshot(self, at: float, counts: dict[str, dict[str, int]]) -> None:
        """Append VM counts per cloud and state (the history behind a fig.-2 plot)."""
        self._conn.executemany(
            "INSERT INTO history (at, cloud, starting, running, error) VALUES (?,?,?,?,?)",
            [
                (at, cloud, c.get("starting", 0), c.get("running", 0), c.get("error", 0))
                for cloud, c in counts.items()
            ],
        )
