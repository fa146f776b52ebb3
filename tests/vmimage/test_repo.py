"""Content-addressed image repository: local directory and XRootD."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from hepstream.errors import InputError
from vmimage.repo import blob_name, list_images, parse_ref, pull, push, sha256_file


def _overlay(base: Path, path: Path) -> Path:
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", "qcow2", str(path)],
        check=True,
    )
    return path


def test_parse_ref_defaults_to_latest():
    assert parse_ref("tau1n") == ("tau1n", "latest")
    assert parse_ref("tau1n:2") == ("tau1n", "2")


def test_push_pull_list_local(small_base, tmp_path):
    repo = tmp_path / "repo"
    res = push(small_base, repo, "base", "1")
    assert res.manifest.digest == sha256_file(small_base)
    assert res.uploaded == [res.manifest.digest]
    again = push(small_base, repo, "base", "1")
    assert again.uploaded == []
    assert again.skipped == [res.manifest.digest]

    site = tmp_path / "site"
    got = pull(repo, "base:1", site)
    assert got.image == site / blob_name(res.manifest.digest)
    assert sha256_file(got.image) == res.manifest.digest
    assert pull(repo, "base:1", site).downloaded == []  # the site already has it
    assert [(m.name, m.version) for m in list_images(repo)] == [("base", "1")]


def test_overlay_is_pushed_with_its_base_and_boots_from_the_pulled_pair(small_base, tmp_path):
    overlay = _overlay(small_base, tmp_path / "user.qcow2")
    repo = tmp_path / "repo"
    res = push(overlay, repo, "user", "1")
    base_digest = sha256_file(small_base)
    assert res.manifest.base == base_digest
    assert base_digest in res.uploaded

    site = tmp_path / "site"
    got = pull(repo, "user:1", site)
    assert sorted(got.downloaded) == sorted([base_digest, res.manifest.digest])
    info = subprocess.run(
        ["qemu-img", "info", "--backing-chain", str(got.image)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert blob_name(base_digest) in info  # the overlay finds its base next to it
    subprocess.run(["qemu-img", "check", str(got.image)], check=True, capture_output=True)


def test_pull_rejects_a_corrupted_blob(small_base, tmp_path):
    repo = tmp_path / "repo"
    res = push(small_base, repo, "base", "1")
    blob = repo / "blobs" / blob_name(res.manifest.digest)
    with blob.open("r+b") as f:
        f.seek(100)
        f.write(b"corrupt")
    site = tmp_path / "site"
    with pytest.raises(InputError, match="digest"):
        pull(repo, "base:1", site)
    assert not (site / blob_name(res.manifest.digest)).exists()


def test_pull_of_unknown_image_names_it(tmp_path):
    (tmp_path / "repo").mkdir()
    with pytest.raises(InputError, match="nope"):
        pull(tmp_path / "repo", "nope:1", tmp_path / "site")


@pytest.mark.xrootd
def test_push_pull_list_over_xrootd(small_base, tmp_path, xrootd_server):
    repo = xrootd_server.out_url("images")
    overlay = _overlay(small_base, tmp_path / "user.qcow2")
    res = push(overlay, repo, "user", "1")
    assert len(res.uploaded) == 2
    assert push(overlay, repo, "user", "1").uploaded == []
    site = tmp_path / "site"
    got = pull(repo, "user:1", site)
    assert sha256_file(got.image) == res.manifest.digest
    assert pull(repo, "user:1", site).skipped == [res.manifest.base, res.manifest.digest]
    assert ("user", "1") in [(m.name, m.version) for m in list_images(repo)]


def test_cli_push_list_pull_json(small_base, tmp_path, capsys):
    from hepstream.cli import main as hepstream_main

    def main(argv: list[str]) -> int:
        return hepstream_main(["image", *argv])

    repo = str(tmp_path / "repo")
    assert main(["push", str(small_base), repo, "--name", "base", "--version", "7", "--json"]) == 0
    pushed = json.loads(capsys.readouterr().out)
    assert main(["list", repo, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["images"]
    assert [(m["name"], m["version"], m["digest"]) for m in listed] == [
        ("base", "7", pushed["digest"])
    ]
    dest = tmp_path / "site"
    assert main(["pull", repo, "base:7", "--dest", str(dest), "--json"]) == 0
    pulled = json.loads(capsys.readouterr().out)
    assert pulled["downloaded"] == [pushed["digest"]]
    assert main(["pull", repo, "base:404", "--dest", str(dest)]) == 3  # InputError's code
