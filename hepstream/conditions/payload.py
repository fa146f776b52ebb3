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
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from hepstream.conditions.model import Payload
from hepstream.errors import ConfigError, InputError
from hepstream.io.partfiles import atomic_path

BLOCK = 1 << 20


def sha256_file(path: str | Path) -> tuple[str, int]:
    """Digest and size of a file, read in blocks."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while block := handle.read(BLOCK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


#: What numpy's ``.npz`` reader raises on a zip archive it cannot read whole: a bad CRC or a
#: cut member (BadZipFile, EOFError), a damaged compressed member (zlib.error), a pickled
#: object array under ``allow_pickle=False`` (ValueError), an encrypted or unsupported zip
#: (RuntimeError, NotImplementedError).
_NPZ_ERRORS = (
    OSError,
    ValueError,
    EOFError,
    RuntimeError,
    KeyError,
    zipfile.BadZipFile,
    zlib.error,
)


def _npz_arrays(data: bytes) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` archive, read without pickle; else a ValueError saying
    what is wrong with it (and in which member)."""
    if not data:
        raise ValueError("it is empty (0 bytes)")
    if not data.startswith((b"PK\x03\x04", b"PK\x05\x06")):  # np.load would try pickle
        raise ValueError(f"it is not a zip archive (it starts with {data[:8]!r})")
    arrays = {}
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            for name in archive.files:
                try:
                    arrays[name] = archive[name]
                except _NPZ_ERRORS as err:
                    raise ValueError(f"member {name!r}: {err}") from None
                if not isinstance(arrays[name], np.ndarray):  # numpy hands back raw bytes
                    raise ValueError(f"member {name!r} is not a .npy array")
    except _NPZ_ERRORS as err:
        raise ValueError(str(err) or type(err).__name__) from None
    return arrays


def detect_kind(path: str | Path) -> str:
    """``npz`` for a numpy ``.npz`` archive, ``json`` for a JSON document; else a ConfigError."""
    path = Path(path)
    if path.suffix not in (".npz", ".json"):
        raise ConfigError(f"payload {path}: use a .npz file (named numpy arrays) or a .json file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"payload {path} cannot be read: {err.strerror}") from None
    kind = path.suffix[1:]
    try:
        parse(data, kind)
    except ValueError as err:
        what = "a numpy .npz archive" if kind == "npz" else "a JSON document"
        raise ConfigError(f"payload {path} is not {what}: {err}") from None
    return kind


def parse(data: bytes, kind: str) -> Any:
    """The value of a payload's bytes (``npz``: a dict of arrays); a ValueError if they are
    not a whole payload of that kind."""
    if kind == "json":
        return json.loads(data)  # JSONDecodeError and UnicodeDecodeError are ValueErrors
    return _npz_arrays(data)


def path_in(root: str | Path, sha256: str) -> Path:
    return Path(root) / sha256[:2] / sha256


def write_stream(
    root: str | Path,
    sha256: str,
    blocks: Iterable[bytes],
    origin: str = "transfer",
    fix: str = "the server or proxy sent damaged data, retry or clear the cache",
) -> Path:
    """Stream ``blocks`` (from ``origin``) to ``root`` under ``sha256``; the digest is
    checked before rename.

    A mismatch leaves nothing behind and raises an InputError naming the payload and ``fix``.
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
                f"payload {sha256}: checksum mismatch in {origin} (got {digest.hexdigest()}); {fix}"
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


def read_verified(
    path: str | Path, payload: Payload, fix: str = "delete it so it is fetched again"
) -> bytes:
    """The bytes of a payload file, or an InputError naming the payload (and ``fix``) if
    they are wrong."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise InputError(f"payload {payload.sha256}: cannot read {path}: {err.strerror}") from None
    got = hashlib.sha256(data).hexdigest()
    if got != payload.sha256:
        raise InputError(
            f"payload {payload.sha256}: checksum mismatch in {path} (got {got}); "
            f"the file is damaged: {fix}"
        )
    return data


def decode(data: bytes, payload: Payload, what: str | None = None) -> Any:
    """A verified payload's value: a dict of read-only numpy arrays, or the JSON document.

    Bytes that match their digest but do not parse were published so: an InputError names
    the payload (``what``, e.g. with its record and source) and says to republish it.
    """
    try:
        value = parse(data, payload.kind)
    except ValueError as err:
        kind = "a numpy .npz archive" if payload.kind == "npz" else "a JSON document"
        raise InputError(
            f"{what or f'payload {payload.sha256}'} is not {kind}: {err}; its bytes match "
            f"its checksum, so it was published like this: add a good file (hepstream "
            f"conditions add) to a new global tag"
        ) from None
    if payload.kind == "npz":
        for array in value.values():
            array.flags.writeable = False  # shared by every piece of the job: never edited
    return value
