"""Payload files, addressed by the SHA-256 of their bytes: named numpy arrays or JSON.

``root/ab/abcdef...`` holds the payload whose digest is ``abcdef...``. Files arrive under a
temp name in the same directory and are renamed into place, so a reader (another job on
the same machine included) sees a whole file or none; every read checks the digest.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from hepstream.conditions.model import Payload
from hepstream.errors import ConfigError, InputError
from hepstream.partfiles import atomic_path

BLOCK = 1 << 20


def sha256_file(path: str | Path) -> tuple[str, int]:
    """Digest and size of a file, read in blocks."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while block := handle.read(BLOCK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def detect_kind(path: str | Path) -> str:
    """``npz`` for a numpy ``.npz`` archive, ``json`` for a JSON document; else a ConfigError."""
    path = Path(path)
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                for name in archive.files:
                    archive[name]  # every member must load without pickle
        except (OSError, ValueError, zipfile.BadZipFile) as err:
            raise ConfigError(f"payload {path} is not a numpy .npz archive: {err}") from None
        return "npz"
    if path.suffix == ".json":
        try:
            json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise ConfigError(f"payload {path} is not a JSON document: {err}") from None
        return "json"
    raise ConfigError(f"payload {path}: use a .npz file (named numpy arrays) or a .json file")


def path_in(root: str | Path, sha256: str) -> Path:
    return Path(root) / sha256[:2] / sha256


def write_stream(root: str | Path, sha256: str, blocks: Iterable[bytes]) -> Path:
    """Stream ``blocks`` to ``root`` under ``sha256``; the digest is checked before rename.

    A mismatch leaves nothing behind and raises an InputError naming the payload.
    """
    final = path_in(root, sha256)
    with atomic_path(final) as tmp:
        digest = hashlib.sha256()
        with open(tmp, "wb") as handle:
            for block in blocks:
                digest.update(block)
                handle.write(block)
        if digest.hexdigest() != sha256:
            raise InputError(
                f"payload {sha256}: checksum mismatch in transfer (got {digest.hexdigest()}); "
                f"the server or proxy sent damaged data, retry or clear the cache"
            )
    return final


def put_file(root: str | Path, source: str | Path) -> Payload:
    """Copy a payload file into ``root`` (no-op when already there); returns its Payload."""
    kind = detect_kind(source)
    sha, size = sha256_file(source)
    if not path_in(root, sha).is_file():
        with open(source, "rb") as handle:
            write_stream(root, sha, iter(lambda: handle.read(BLOCK), b""))
    return Payload(sha, kind, size)


def read_verified(path: str | Path, payload: Payload) -> bytes:
    """The bytes of a payload file, or an InputError naming the payload if they are wrong."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise InputError(f"payload {payload.sha256}: cannot read {path}: {err.strerror}") from None
    got = hashlib.sha256(data).hexdigest()
    if got != payload.sha256:
        raise InputError(
            f"payload {payload.sha256}: checksum mismatch in {path} (got {got}); "
            f"the file is damaged, delete it so it is fetched again"
        )
    return data


def decode(data: bytes, payload: Payload) -> Any:
    """A verified payload's value: a dict of read-only numpy arrays, or the JSON document."""
    if payload.kind == "json":
        return json.loads(data)
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    for array in arrays.values():
        array.flags.writeable = False  # shared by every piece of the job: never edited
    return arrays
