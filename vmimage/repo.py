"""Image repository: content-addressed qcow2 blobs plus small JSON manifests.

Layout (a local directory or an XRootD URL ``root://host:port//path``)::

    blobs/<sha256>.qcow2              one per image or overlay, named by its digest
    manifests/<name>/<version>.json   name, version, digest, base digest, size, created

An overlay's backing file is rewritten to the relative name ``<base sha256>.qcow2`` before
it is hashed, so a pulled overlay finds its pulled base next to it and digests stay stable.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from hepstream.errors import ConfigError, InputError, OutputError
from hepstream.io.partfiles import atomic_path, exclusive_lock
from hepstream.io.urls import is_remote, via_cache
from hepstream.io.xrootd import copy as xrootd_copy

_BLOBS = "blobs"
_MANIFESTS = "manifests"


@dataclass(frozen=True)
class Manifest:
    """What the repository knows about one named image version."""

    name: str
    version: str
    digest: str  # sha256 of the blob
    size: int
    created: str  # ISO 8601, UTC
    base: str | None = None  # digest of the backing image for overlays
    format: str = "qcow2"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def blob_name(digest: str) -> str:
    return f"{digest}.qcow2"


def manifest_path(name: str, version: str) -> str:
    if "/" in name or "/" in version or not name or not version:
        raise ConfigError(f"image name {name!r} / version {version!r} must be non-empty, no '/'")
    return f"{_MANIFESTS}/{name}/{version}.json"


def parse_ref(ref: str) -> tuple[str, str]:
    """``name[:version]`` -> (name, version); the version defaults to ``latest``."""
    name, _, version = ref.partition(":")
    return name, version or "latest"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Store(Protocol):
    """The few operations a repository needs from where it lives."""

    def exists(self, rel: str) -> bool: ...
    def put(self, local: Path, rel: str) -> None: ...
    def get(self, rel: str, local: Path) -> None: ...
    def list(self, rel: str) -> list[str]: ...


class LocalStore:
    """A repository in a local directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def exists(self, rel: str) -> bool:
        return (self.root / rel).exists()

    def put(self, local: Path, rel: str) -> None:
        dest = self.root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".partial")
        shutil.copyfile(local, tmp)
        tmp.replace(dest)

    def get(self, rel: str, local: Path) -> None:
        src = self.root / rel
        if not src.exists():
            raise InputError(f"{src} is not in the repository: check the name and version")
        shutil.copyfile(src, local)

    def list(self, rel: str) -> list[str]:
        base = self.root / rel
        return sorted(str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file())


class XRootDStore:
    """A repository under an XRootD URL (``root://host:port//path``)."""

    def __init__(self, url: str) -> None:
        # loaded for a root:// repository only: loading the client fixes its XRD_* settings
        # and adds an exit hook (hepstream.io.xrootd loads it the same way)
        from XRootD import client

        self.client = client
        rest = url.split("://", 1)[1]
        host, _, path = rest.partition("/")
        self.server = f"root://{host}"
        self.path = "/" + path.lstrip("/")
        self.fs = client.FileSystem(self.server)

    def _url(self, rel: str) -> str:
        return f"{self.server}/{self.path.rstrip('/')}/{rel}"

    def exists(self, rel: str) -> bool:
        status, _ = self.fs.stat(f"{self.path.rstrip('/')}/{rel}")
        return bool(status.ok)

    def put(self, local: Path, rel: str) -> None:
        # xrootd's CopyProcess writes to the final name; manifests are written after blobs,
        # so a reader never sees a manifest whose blob is incomplete.
        xrootd_copy(str(local), self._url(rel))

    def get(self, rel: str, local: Path) -> None:
        if not self.exists(rel):
            raise InputError(f"{self._url(rel)} is not in the repository: check name and version")
        xrootd_copy(self._url(rel), str(local))

    def list(self, rel: str) -> list[str]:
        flags = self.client.flags
        out: list[str] = []
        todo = [rel]
        while todo:
            cur = todo.pop()
            status, listing = self.fs.dirlist(
                f"{self.path.rstrip('/')}/{cur}", flags.DirListFlags.STAT
            )
            if not status.ok or listing is None:
                continue
            for entry in listing:
                child = f"{cur}/{entry.name}"
                if entry.statinfo.flags & flags.StatInfoFlags.IS_DIR:
                    todo.append(child)
                else:
                    out.append(child)
        return sorted(out)


def open_store(location: str | Path) -> Store:
    """A :class:`Store` for a local directory or a ``root://`` URL."""
    text = str(location)
    if is_remote(text):
        return XRootDStore(text)
    return LocalStore(Path(text))


def _qemu_info(image: Path) -> dict[str, Any]:
    proc = subprocess.run(
        ["qemu-img", "info", "--output=json", str(image)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise InputError(f"{image} is not a readable qcow2: {proc.stderr.strip()}")
    info: dict[str, Any] = json.loads(proc.stdout)
    return info


def _backing_path(image: Path) -> Path | None:
    info = _qemu_info(image)
    name = info.get("full-backing-filename") or info.get("backing-filename")
    if not name:
        return None
    path = Path(name)
    return path if path.is_absolute() else image.parent / path


@dataclass
class PushResult:
    manifest: Manifest
    uploaded: list[str]  # blobs sent
    skipped: list[str]  # blobs the repository already had
    seconds: float


def push(image: Path, location: str | Path, name: str, version: str) -> PushResult:
    """Upload ``image`` (and its base, if an overlay) and write its manifest."""
    t0 = time.monotonic()
    store = open_store(location)
    uploaded: list[str] = []
    skipped: list[str] = []
    base_digest: str | None = None
    with tempfile.TemporaryDirectory(prefix="hepstream-push-") as tmp:
        blob = image
        backing = _backing_path(image)
        if backing is not None:
            base_res = push_blob(backing, store)
            base_digest = base_res[0]
            (uploaded if base_res[1] else skipped).append(base_digest)
            blob = Path(tmp) / "overlay.qcow2"
            shutil.copyfile(image, blob)
            _rebase_unsafe(blob, blob_name(base_digest))
        digest, sent = push_blob(blob, store)
        (uploaded if sent else skipped).append(digest)
        manifest = Manifest(
            name=name,
            version=version,
            digest=digest,
            size=blob.stat().st_size,
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            base=base_digest,
        )
        mpath = Path(tmp) / "manifest.json"
        mpath.write_text(manifest.to_json())
        store.put(mpath, manifest_path(name, version))
    return PushResult(manifest, uploaded, skipped, time.monotonic() - t0)


def push_blob(image: Path, store: Store) -> tuple[str, bool]:
    """Upload one standalone blob unless present; (digest, whether it was sent)."""
    if _backing_path(image) is not None and not _is_relative_backing(image):
        raise ConfigError(f"{image} is an overlay of an overlay: push its base chain first")
    digest = sha256_file(image)
    rel = f"{_BLOBS}/{blob_name(digest)}"
    if store.exists(rel):
        return digest, False
    store.put(image, rel)
    return digest, True


def _is_relative_backing(image: Path) -> bool:
    name = _qemu_info(image).get("backing-filename") or ""
    return not name.startswith("/")


def _rebase_unsafe(image: Path, backing: str) -> None:
    """Point an overlay at a new backing name without touching its data."""
    proc = subprocess.run(
        ["qemu-img", "rebase", "-u", "-F", "qcow2", "-b", backing, str(image)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise OutputError(f"qemu-img rebase of {image} failed: {proc.stderr.strip()}")


@dataclass
class PullResult:
    image: Path  # the pulled blob, usable in place (its base sits next to it)
    manifest: Manifest
    downloaded: list[str]
    skipped: list[str]
    seconds: float

    @property
    def downloaded_bytes(self) -> int:
        """Bytes this pull fetched into the site directory."""
        return sum(self._size(d) for d in self.downloaded)

    @property
    def skipped_bytes(self) -> int:
        """Bytes this pull found already in the site directory."""
        return sum(self._size(d) for d in self.skipped)

    def _size(self, digest: str) -> int:
        return (self.image.parent / blob_name(digest)).stat().st_size


def read_manifest(store: Store, name: str, version: str) -> Manifest:
    with tempfile.TemporaryDirectory(prefix="hepstream-manifest-") as tmp:
        local = Path(tmp) / "m.json"
        store.get(manifest_path(name, version), local)
        return Manifest.from_json(local.read_text())


def pull(location: str | Path, ref: str, site_dir: Path, *, cache: str | None = None) -> PullResult:
    """Fetch ``name[:version]`` and its base into ``site_dir``, checking every digest.

    Blobs already in ``site_dir`` are skipped: they were verified when they arrived and
    their name is their digest. ``cache`` (a site cache, ``root://host:port``) serves the
    blobs of a ``root://`` repository; the manifest is always read at ``location``, because a
    name can be pushed again and the cache would keep serving the old manifest, while a blob's
    name is its content.
    """
    t0 = time.monotonic()
    store = open_store(location)
    blob_source = via_cache(str(location), cache)
    blobs = store if blob_source == str(location) else open_store(blob_source)
    name, version = parse_ref(ref)
    manifest = read_manifest(store, name, version)
    site_dir.mkdir(parents=True, exist_ok=True)
    downloaded: list[str] = []
    skipped: list[str] = []
    for digest in [d for d in (manifest.base, manifest.digest) if d]:
        dest = site_dir / blob_name(digest)
        # one download of a blob per host: threads and processes (two shims on one host)
        # booting the same image wait here; the lock also keeps two threads of one process
        # off atomic_path's per-pid temp name
        with exclusive_lock(dest.with_name(f".{dest.name}.lock")):
            if dest.exists():
                skipped.append(digest)
                continue
            _fetch_blob(blobs, blob_source, digest, dest, cached=blobs is not store)
        downloaded.append(digest)
    return PullResult(
        site_dir / blob_name(manifest.digest), manifest, downloaded, skipped, time.monotonic() - t0
    )


def _fetch_blob(store: Store, source: str, digest: str, dest: Path, *, cached: bool) -> None:
    """Download one blob to ``dest``, checked: nothing is left at ``dest`` if it is damaged."""
    rel = f"{_BLOBS}/{blob_name(digest)}"
    with atomic_path(dest) as partial:
        store.get(rel, partial)
        got = sha256_file(partial)
        if got != digest:
            # a cache keeps serving what it fetched, so pulling again cannot help there
            todo = (
                f"the site cache's or the repository's copy is damaged: delete {rel} from both "
                "and push the image again"
                if cached
                else f"pull again; if it repeats, delete {rel} from the repository and push the "
                "image again"
            )
            raise InputError(
                f"image blob {digest[:12]} from {source} arrived with digest {got[:12]} "
                f"(nothing kept in {dest.parent}): {todo}"
            )


def list_images(location: str | Path) -> list[Manifest]:
    """Every manifest in the repository, sorted by name then version."""
    store = open_store(location)
    out = []
    with tempfile.TemporaryDirectory(prefix="hepstream-list-") as tmp:
        for rel in store.list(_MANIFESTS):
            if not rel.endswith(".json"):
                continue
            local = Path(tmp) / "m.json"
            store.get(rel, local)
            out.append(Manifest.from_json(local.read_text()))
    return sorted(out, key=lambda m: (m.name, m.version))
