"""Conditions metadata in SQLite (default, embedded) or PostgreSQL, one schema for both.

A conditions directory holds ``conditions.sqlite`` and ``payloads/`` (content-addressed
files, see :mod:`hepstream.conditions.payload`); an offline snapshot has the same layout
with one global tag. With PostgreSQL (``postgresql://`` URL) the metadata live in the
server and the payload directory is given separately.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hepstream.conditions import payload as payload_files
from hepstream.conditions.model import (
    IOV,
    LOCKED,
    OPEN,
    GlobalTag,
    Payload,
    Since,
    Tag,
    check_name,
    check_since,
)
from hepstream.errors import ConfigError, InputError

SQLITE_NAME = "conditions.sqlite"
#: What to do about a conditions directory whose files are damaged or missing.
DAMAGED = "take the snapshot again (hepstream conditions snapshot) or restore the directory"
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS global_tag (
        name TEXT PRIMARY KEY,
        status TEXT NOT NULL CHECK (status IN ('OPEN', 'LOCKED')),
        created TEXT NOT NULL,
        locked TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS tag (
        global_tag TEXT NOT NULL REFERENCES global_tag (name),
        record TEXT NOT NULL,
        name TEXT NOT NULL,
        PRIMARY KEY (global_tag, record)
    )""",
    """CREATE TABLE IF NOT EXISTS payload (
        sha256 TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        size BIGINT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS iov (
        global_tag TEXT NOT NULL,
        record TEXT NOT NULL,
        since_run BIGINT NOT NULL,
        since_subrun BIGINT NOT NULL,
        payload TEXT NOT NULL REFERENCES payload (sha256),
        PRIMARY KEY (global_tag, record, since_run, since_subrun),
        FOREIGN KEY (global_tag, record) REFERENCES tag (global_tag, record)
    )""",
)


def is_postgres(db: str) -> bool:
    return db.startswith(("postgresql://", "postgres://"))


class Store:
    """Read and author global tags. Thread-safe (one lock around the connection)."""

    def __init__(self, db: str | Path, payloads: str | Path | None = None, create: bool = False):
        db = str(db)
        self.db = db
        #: The database as error lines name it: the SQLite file, or the PostgreSQL URL.
        self.where = db if is_postgres(db) else str(Path(db) / SQLITE_NAME)
        self._lock = threading.RLock()
        if is_postgres(db):
            if payloads is None:
                raise ConfigError(
                    "a PostgreSQL conditions database needs --payloads DIR for the payload files"
                )
            try:
                # lazy: the optional `postgres` extra, ~70 ms (python -X importtime)
                import psycopg

                self._conn: Any = psycopg.connect(db)
            except Exception as err:
                raise InputError(f"cannot connect to {db}: {str(err).strip()}") from None
            self._param = "%s"
        else:
            directory = Path(db)
            if not (directory / SQLITE_NAME).is_file():
                if not create:
                    raise InputError(
                        f"{directory} is not a conditions database (no {SQLITE_NAME}); "
                        f"create one with: hepstream conditions create GLOBALTAG --db {directory}"
                    )
                directory.mkdir(parents=True, exist_ok=True)
            with self._readable():
                self._conn = sqlite3.connect(directory / SQLITE_NAME, check_same_thread=False)
                self._conn.execute("PRAGMA foreign_keys = ON")
            self._param = "?"
            payloads = payloads or directory / "payloads"
        self.payloads = Path(payloads)
        if create:
            with self._tx() as cur:
                for statement in SCHEMA:
                    cur.execute(statement)

    # -- plumbing ---------------------------------------------------------------------
    @contextlib.contextmanager
    def _readable(self) -> Iterator[None]:
        """SQLite's complaint about its file (truncated, overwritten, another program's
        database, a newer file format) as one InputError naming the file."""
        try:
            yield
        except sqlite3.DatabaseError as err:
            if isinstance(err, sqlite3.ProgrammingError):  # hepstream's own SQL: a bug
                raise
            raise InputError(f"conditions database {self.where}: {err}; {DAMAGED}") from None

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Any]:
        with self._lock, self._readable():
            cur = self._conn.cursor()
            try:
                yield cur
                self._conn.commit()
            except BaseException:
                self._conn.rollback()
                raise
            finally:
                cur.close()

    def _q(self, sql: str) -> str:
        return sql.replace("?", self._param)

    def _rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with self._tx() as cur:
            cur.execute(self._q(sql), args)
            return list(cur.fetchall())

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ----------------------------------------------------------------------
    def names(self) -> list[tuple[str, str]]:
        """``(name, status)`` of every global tag."""
        return [(n, s) for n, s in self._rows("SELECT name, status FROM global_tag ORDER BY name")]

    def status(self, name: str) -> str:
        rows = self._rows("SELECT status FROM global_tag WHERE name = ?", name)
        if not rows:
            known = ", ".join(n for n, _ in self.names()) or "none"
            raise InputError(f"no global tag {name!r} in {self.db} (known: {known})")
        status: str = rows[0][0]
        return status

    def global_tag(self, name: str) -> GlobalTag:
        """The whole global tag: tags, IOVs and the payloads they point at."""
        with self._lock:
            status = self.status(name)
            tags = self._rows("SELECT record, name FROM tag WHERE global_tag = ?", name)
            iovs = self._rows(
                "SELECT record, since_run, since_subrun, payload FROM iov WHERE global_tag = ? "
                "ORDER BY record, since_run, since_subrun",
                name,
            )
            pays = self._rows(
                "SELECT DISTINCT p.sha256, p.kind, p.size FROM payload p "
                "JOIN iov i ON i.payload = p.sha256 WHERE i.global_tag = ?",
                name,
            )
        by_record: dict[str, list[IOV]] = {record: [] for record, _ in tags}
        listed = {sha for sha, _, _ in pays}
        for record, run, subrun, sha in iovs:
            if record not in by_record or sha not in listed:  # foreign keys forbid this
                raise InputError(
                    f"conditions database {self.where}: global tag {name} has an IOV of record "
                    f"{record} at {run}:{subrun} with no tag or payload row; {DAMAGED}"
                )
            by_record[record].append(IOV((int(run), int(subrun)), sha))
        return GlobalTag(
            name,
            status,
            {record: Tag(tname, record, tuple(by_record[record])) for record, tname in tags},
            {sha: Payload(sha, kind, int(size)) for sha, kind, size in pays},
        )

    def payload_file(self, payload: Payload) -> Path:
        path = payload_files.path_in(self.payloads, payload.sha256)
        if not path.is_file():
            raise InputError(f"payload {payload.sha256} is missing from {self.payloads}; {DAMAGED}")
        return path

    # -- authoring --------------------------------------------------------------------
    def create(self, name: str) -> None:
        check_name("global tag", name)
        if self._rows("SELECT 1 FROM global_tag WHERE name = ?", name):
            raise ConfigError(f"global tag {name} already exists in {self.db}")
        with self._tx() as cur:
            cur.execute(
                self._q("INSERT INTO global_tag (name, status, created) VALUES (?, ?, ?)"),
                (name, OPEN, _now()),
            )

    def _require_open(self, name: str) -> None:
        if self.status(name) == LOCKED:
            raise ConfigError(
                f"global tag {name} is LOCKED: it can no longer change; create a new one"
            )

    def add(
        self, name: str, record: str, source: str | Path, since: Since, tag: str | None = None
    ) -> tuple[Payload, IOV]:
        """Copy a payload file in and start an IOV of ``record`` at ``since`` with it."""
        check_name("record", record)
        since = check_since(since)
        with self._lock:
            self._require_open(name)
            existing = self._rows(
                "SELECT name FROM tag WHERE global_tag = ? AND record = ?", name, record
            )
            tag_name = check_name("tag", tag or f"{record}-{name}")
            if existing and tag and existing[0][0] != tag:
                raise ConfigError(
                    f"record {record} of {name} already uses tag {existing[0][0]}, not {tag}"
                )
            if self._rows(
                "SELECT 1 FROM iov WHERE global_tag = ? AND record = ? AND since_run = ? "
                "AND since_subrun = ?",
                name,
                record,
                *since,
            ):
                raise ConfigError(
                    f"record {record} of {name} already has an IOV at {since[0]}:{since[1]}"
                )
            payload = payload_files.put_file(self.payloads, source)
            with self._tx() as cur:
                if not existing:
                    cur.execute(
                        self._q("INSERT INTO tag (global_tag, record, name) VALUES (?, ?, ?)"),
                        (name, record, tag_name),
                    )
                self._insert_payload(cur, payload)
                cur.execute(
                    self._q(
                        "INSERT INTO iov (global_tag, record, since_run, since_subrun, payload) "
                        "VALUES (?, ?, ?, ?, ?)"
                    ),
                    (name, record, since[0], since[1], payload.sha256),
                )
        return payload, IOV(since, payload.sha256)

    def _insert_payload(self, cur: Any, payload: Payload) -> None:
        cur.execute(self._q("SELECT 1 FROM payload WHERE sha256 = ?"), (payload.sha256,))
        if cur.fetchone() is None:
            cur.execute(
                self._q("INSERT INTO payload (sha256, kind, size) VALUES (?, ?, ?)"),
                (payload.sha256, payload.kind, payload.size),
            )

    def lock(self, name: str) -> None:
        """Make a global tag immutable (jobs refuse OPEN tags unless told otherwise)."""
        with self._lock:
            self._require_open(name)
            with self._tx() as cur:
                cur.execute(
                    self._q("UPDATE global_tag SET status = ?, locked = ? WHERE name = ?"),
                    (LOCKED, _now(), name),
                )

    def put_global_tag(self, gt: GlobalTag) -> None:
        """Insert a whole global tag as it is (used by snapshots); payload files go separately."""
        with self._tx() as cur:
            cur.execute(
                self._q("INSERT INTO global_tag (name, status, created) VALUES (?, ?, ?)"),
                (gt.name, gt.status, _now()),
            )
            for payload in gt.payloads.values():
                self._insert_payload(cur, payload)
            for record, tag in gt.tags.items():
                cur.execute(
                    self._q("INSERT INTO tag (global_tag, record, name) VALUES (?, ?, ?)"),
                    (gt.name, record, tag.name),
                )
                for iov in tag.iovs:
                    cur.execute(
                        self._q(
                            "INSERT INTO iov (global_tag, record, since_run, since_subrun, "
                            "payload) VALUES (?, ?, ?, ?, ?)"
                        ),
                        (gt.name, record, iov.since[0], iov.since[1], iov.payload),
                    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
