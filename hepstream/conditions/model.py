"""The conditions data model as plain frozen dataclasses (no I/O).

A global tag names one tag per record; a tag is an ordered list of IOVs; an IOV starts at
``since = (run, subrun)`` and lasts until the next IOV's ``since`` (the last one is
open-ended); it points at an immutable payload addressed by the SHA-256 of its bytes.
``since`` values compare as tuples, i.e. lexicographically: (5, 0) < (5, 3) < (6, 0).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from hepstream.errors import ConfigError

OPEN = "OPEN"
LOCKED = "LOCKED"
STATUSES = (OPEN, LOCKED)
KINDS = ("npz", "json")
#: runs and sub-runs are non-negative and below these bounds (the resolver packs them
#: into one int64 key, run in the high 31 bits, sub-run in the low 32)
MAX_RUN = 2**31
MAX_SUBRUN = 2**32
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")

Since = tuple[int, int]


def check_name(what: str, name: str) -> str:
    """A global tag or record name: letters, digits, ``.``, ``_``, ``-`` (safe in URLs)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"{what} {name!r} is not a valid name; use letters, digits, '.', '_' or '-'"
        )
    return name


def check_since(since: Since) -> Since:
    run, subrun = since
    if not (0 <= run < MAX_RUN and 0 <= subrun < MAX_SUBRUN):
        raise ConfigError(
            f"IOV since {run}:{subrun} is out of range; runs are 0..{MAX_RUN - 1}, "
            f"sub-runs 0..{MAX_SUBRUN - 1}"
        )
    return (int(run), int(subrun))


def parse_since(text: str) -> Since:
    """``"1234"`` -> (1234, 0); ``"1234:5"`` -> (1234, 5)."""
    try:
        run, _, subrun = text.partition(":")
        return check_since((int(run), int(subrun or 0)))
    except ValueError:
        raise ConfigError(f"IOV since {text!r}: write RUN or RUN:SUBRUN, e.g. 10001:0") from None


@dataclass(frozen=True)
class Payload:
    """An immutable payload: ``kind`` is ``npz`` (named numpy arrays) or ``json``."""

    sha256: str
    kind: str
    size: int

    def __post_init__(self) -> None:
        if not _SHA.match(self.sha256):
            raise ConfigError(f"payload id {self.sha256!r} is not a SHA-256 hex digest")
        if self.kind not in KINDS:
            raise ConfigError(f"payload {self.sha256}: unknown kind {self.kind!r}")


@dataclass(frozen=True, order=True)
class IOV:
    """Interval of validity: from ``since`` until the next IOV of the tag starts."""

    since: Since
    payload: str  # SHA-256 of the payload


@dataclass(frozen=True)
class Tag:
    """One record's history: IOVs sorted by ``since``, no two with the same ``since``."""

    name: str
    record: str
    iovs: tuple[IOV, ...] = ()

    def __post_init__(self) -> None:
        sinces = [iov.since for iov in self.iovs]
        if sinces != sorted(sinces) or len(set(sinces)) != len(sinces):
            raise ConfigError(f"tag {self.name}: IOVs must be sorted by since, without repeats")


@dataclass(frozen=True)
class GlobalTag:
    """A named set of tags, one per record, OPEN (still edited) or LOCKED (immutable)."""

    name: str
    status: str = OPEN
    tags: dict[str, Tag] = field(default_factory=dict)
    payloads: dict[str, Payload] = field(default_factory=dict)

    @property
    def locked(self) -> bool:
        return self.status == LOCKED

    def to_dict(self) -> dict[str, Any]:
        """The JSON form the server sends and snapshots keep (stable key order)."""
        return {
            "name": self.name,
            "status": self.status,
            "tags": {
                record: {
                    "name": tag.name,
                    "iovs": [[*iov.since, iov.payload] for iov in tag.iovs],
                }
                for record, tag in sorted(self.tags.items())
            },
            "payloads": {
                sha: {"kind": p.kind, "size": p.size} for sha, p in sorted(self.payloads.items())
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GlobalTag:
        try:
            tags = {
                record: Tag(
                    name=tag["name"],
                    record=record,
                    iovs=tuple(IOV((int(r), int(s)), str(sha)) for r, s, sha in tag["iovs"]),
                )
                for record, tag in data["tags"].items()
            }
            payloads = {
                sha: Payload(sha, p["kind"], int(p["size"])) for sha, p in data["payloads"].items()
            }
            unlisted = {iov.payload for tag in tags.values() for iov in tag.iovs} - set(payloads)
            if unlisted:
                raise ValueError(f"IOVs point at payloads it does not list: {min(unlisted)}")
            status = data["status"]
            if status not in STATUSES:
                raise ValueError(f"status {status!r}")
            return cls(str(data["name"]), status, tags, payloads)
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"malformed global tag document: {err}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))


def iov_hash(used: list[tuple[str, Since, str]]) -> str:
    """SHA-256 over the (record, since, payload) triples a job resolved, order-independent."""
    canon = json.dumps(sorted([r, list(s), p] for r, s, p in used), separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()


def diff(a: GlobalTag, b: GlobalTag) -> list[tuple[str, str, str, str]]:
    """``(change, record, since, detail)`` rows turning ``a`` into ``b``.

    ``change`` is ``+`` (in b only), ``-`` (in a only) or ``~`` (same since, other payload).
    """
    rows: list[tuple[str, str, str, str]] = []
    for record in sorted(set(a.tags) | set(b.tags)):
        old = {iov.since: iov.payload for iov in a.tags[record].iovs} if record in a.tags else {}
        new = {iov.since: iov.payload for iov in b.tags[record].iovs} if record in b.tags else {}
        for since in sorted(set(old) | set(new)):
            where = f"{since[0]}:{since[1]}"
            if since not in new:
                rows.append(("-", record, where, old[since]))
            elif since not in old:
                rows.append(("+", record, where, new[since]))
            elif old[since] != new[since]:
                rows.append(("~", record, where, f"{old[since]} -> {new[since]}"))
    return rows
