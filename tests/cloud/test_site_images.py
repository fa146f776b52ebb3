"""Images once per site: the local driver pulls a repository image into its site directory,
through the site's XCache, one download per blob however many VMs, threads or shims ask.

The WAN is a real origin ``xrootd`` serving the repository behind a :class:`WanProxy`, whose
byte count is what crossed it; the site is a real :class:`SiteCache` in front of the proxy.
No VM boots: :meth:`LocalQemuDriver.disk` is what ``boot()`` resolves an image with.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from hepstream.cloud.drivers.local import LocalQemuDriver
from hepstream.cloud.model import Cloud
from hepstream.errors import ConfigError, InputError
from hepstream.tools.serve import XRootDServer
from hepstream.tools.sitecache import SiteCache
from tests.support.wanproxy import WanProxy
from vmimage.repo import Manifest, blob_name, push, sha256_file

ROOT = Path(__file__).resolve().parents[2]
#: Random (incompressible) data written into each 64 MiB image: its qcow2 is ~this size.
DATA_BYTES = 4 << 20
#: Everything but blob bytes that may cross the WAN per pull: the manifest (~300 B) and
#: XRootD's requests and responses (handshake, login, stat, open, close).
PER_PULL_SLACK = 16 * 1024


def make_image(path: Path, seed: int) -> Path:
    """A 64 MiB qcow2 holding DATA_BYTES of seeded random data (its own digest per seed)."""
    raw = path.with_suffix(".raw")
    with raw.open("wb") as f:
        f.truncate(64 << 20)
        f.seek(1 << 20)
        f.write(random.Random(seed).randbytes(DATA_BYTES))
    subprocess.run(
        ["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(path)], check=True
    )
    raw.unlink()
    return path


@dataclass
class Site:
    repo_dir: Path  # the repository on the central host's disk, served as /data/images
    repository: str  # its URL across the WAN
    cache_url: str
    wan: WanProxy
    images: dict[str, Manifest]

    def wan_bytes(self) -> int:
        """Bytes that crossed the WAN so far, both ways."""
        stats = self.wan.stats
        return stats.bytes_down + stats.bytes_up


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    """Central origin (the repository under /data) -- WAN proxy -- the site's XCache."""
    base = Path(tempfile.mkdtemp(prefix="hepstream-site-images-"))
    base.chmod(0o755)  # the daemons' user walks into it
    try:
        data = base / "central"
        data.mkdir(mode=0o755)
        images = {}
        for seed, name in enumerate(("threads", "procs", "damaged")):
            image = make_image(base / f"{name}.qcow2", seed)
            images[name] = push(image, data / "images", name, "1").manifest
        with (
            XRootDServer(data) as origin,
            WanProxy((origin.host, origin.port), rtt_ms=20, bandwidth_mbps=200) as wan,
            SiteCache(f"root://127.0.0.1:{wan.port}", base / "xcache") as cache,
        ):
            yield Site(
                data / "images",
                f"root://127.0.0.1:{wan.port}//data/images",
                cache.url,
                wan,
                images,
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)


def site_driver(site: Site, image_dir: Path) -> LocalQemuDriver:
    options = {"repository": site.repository, "image_dir": str(image_dir)}
    cloud = Cloud("site-a", 8, driver="local", site_cache=site.cache_url, options=options)
    return LocalQemuDriver(cloud, "test")


@pytest.mark.xrootd
def test_eight_vms_of_one_image_cross_the_wan_once(site, tmp_path, caplog):
    manifest = site.images["threads"]
    driver = site_driver(site, tmp_path / "host1")
    before = site.wan_bytes()
    with caplog.at_level("INFO", logger="hepstream.cloud"), ThreadPoolExecutor(8) as pool:
        disks = list(pool.map(lambda _: driver.disk("threads:1"), range(8)))
    wan = site.wan_bytes() - before
    assert set(disks) == {tmp_path / "host1" / blob_name(manifest.digest)}
    assert sha256_file(disks[0]) == manifest.digest
    assert driver.image_bytes.pulled == manifest.size  # one download ...
    assert driver.image_bytes.found == 7 * manifest.size  # ... seven found it there
    assert manifest.size <= wan <= manifest.size + 8 * PER_PULL_SLACK, wan
    pulled = [
        r.getMessage() for r in caplog.records if f"{manifest.size} bytes pulled" in r.message
    ]
    assert len(pulled) == 1, caplog.text
    assert site.cache_url in pulled[0]

    # a second host of the site, behind the same cache: the blob comes from the cache
    second = site_driver(site, tmp_path / "host2")
    before = site.wan_bytes()
    assert sha256_file(second.disk("threads:1")) == manifest.digest
    assert second.image_bytes.pulled == manifest.size
    assert site.wan_bytes() - before <= PER_PULL_SLACK  # the manifest only
    print(
        f"image {manifest.size} B; 8 threads: {wan} WAN B; second host: {site.wan_bytes() - before}"
    )


CHILD = """
import json, sys, threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from hepstream.cloud.drivers.local import LocalQemuDriver
from hepstream.cloud.model import Cloud

options = json.loads(sys.argv[1])
cache = options.pop("site_cache")
driver = LocalQemuDriver(Cloud("site-a", 8, driver="local", site_cache=cache, options=options), "shim")
print("ready", flush=True)
sys.stdin.readline()  # both shims are up: go together
with ThreadPoolExecutor(4) as pool:
    disks = set(pool.map(lambda _: str(driver.disk("procs:1")), range(4)))
print(json.dumps({"disks": sorted(disks), "pulled": driver.image_bytes.pulled,
                  "found": driver.image_bytes.found}), flush=True)
"""


@pytest.mark.xrootd
def test_two_shims_on_one_host_download_once(site, tmp_path):
    manifest = site.images["procs"]
    options = {"repository": site.repository, "site_cache": site.cache_url}
    options["image_dir"] = str(tmp_path / "host")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, json.dumps(options)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "ready\n"
        before = site.wan_bytes()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outs = [proc.communicate(timeout=120)[0] for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    wan = site.wan_bytes() - before
    assert [proc.returncode for proc in procs] == [0, 0], outs
    results = [json.loads(out) for out in outs]
    assert {d for r in results for d in r["disks"]} == {
        str(tmp_path / "host" / blob_name(manifest.digest))
    }
    assert sum(r["pulled"] for r in results) == manifest.size
    assert sum(r["found"] for r in results) == 7 * manifest.size
    assert manifest.size <= wan <= manifest.size + 8 * PER_PULL_SLACK, wan
    print(f"image {manifest.size} B; 2 shims x 4 threads: {wan} WAN B")


@pytest.mark.xrootd
def test_a_damaged_blob_is_one_line_and_leaves_nothing(site, tmp_path):
    manifest = site.images["damaged"]
    with (site.repo_dir / "blobs" / blob_name(manifest.digest)).open("r+b") as f:
        f.seek(2 << 20)
        f.write(b"bit rot")
    driver = site_driver(site, tmp_path / "host")
    with pytest.raises(InputError) as err:
        driver.disk("damaged:1")
    line = str(err.value)
    assert "\n" not in line
    assert manifest.digest[:12] in line
    assert f"blobs/{blob_name(manifest.digest)}" in line  # which blob, and where
    assert "push the image again" in line  # what to do
    assert site.cache_url in line
    # no blob, no temp file: only the lock file beside where the blob would be
    assert [p.name for p in (tmp_path / "host").iterdir()] == [
        f".{blob_name(manifest.digest)}.lock"
    ]
    print(line)


def test_images_paths_and_local_repositories_still_work(tmp_path):
    image = make_image(tmp_path / "img.qcow2", 7)
    repo = tmp_path / "repo"
    manifest = push(image, repo, "img", "2").manifest
    options = {"images": {"named": str(image)}, "repository": str(repo)}
    options["image_dir"] = str(tmp_path / "site")
    driver = LocalQemuDriver(Cloud("c", 8, driver="local", options=options), "s")
    assert driver.disk("named") == image  # the images table wins, no pull
    assert driver.disk(str(image)) == image  # a path is a path
    with ThreadPoolExecutor(8) as pool:
        disks = set(pool.map(lambda _: driver.disk("img:2"), range(8)))
    assert disks == {tmp_path / "site" / blob_name(manifest.digest)}
    assert (driver.image_bytes.pulled, driver.image_bytes.found) == (
        manifest.size,
        7 * manifest.size,
    )
    with pytest.raises(ConfigError, match="no qcow2 for image"):
        LocalQemuDriver(Cloud("c", 1, driver="local"), "s").disk("img:2")
    with pytest.raises(InputError, match="nope"):
        driver.disk("nope:1")


def test_default_image_dir_is_beside_the_clouds_vm_dirs(tmp_path):
    driver = LocalQemuDriver(Cloud("c", 1, driver="local"), "s", workdir=tmp_path)
    assert driver.image_dir == tmp_path / "images"
    assert driver.workdir == tmp_path / "c"
