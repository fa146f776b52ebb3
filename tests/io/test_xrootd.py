import zlib

import pytest

from hepstream.errors import InputError, OutputError
from hepstream.io.xrootd import _remote_adler32, split_url, upload


@pytest.mark.xrootd
def test_upload_is_verified_by_the_servers_adler32(xrootd_server, tmp_path):
    from XRootD import client

    local = tmp_path / "blob.bin"
    local.write_bytes(bytes(range(256)) * 4000)
    assert upload(str(local), xrootd_server.out_url("up/blob.bin")) == local.stat().st_size
    served = xrootd_server.out_path("up/blob.bin")
    assert served.read_bytes() == local.read_bytes()
    fs = client.FileSystem(xrootd_server.url)
    remote = xrootd_server.out_url("up/blob.bin").split("//", 2)[2]
    assert _remote_adler32(fs, f"/{remote}", 10) == zlib.adler32(local.read_bytes())
    assert sorted(p.name for p in served.parent.iterdir()) == ["blob.bin"]


@pytest.mark.xrootd
def test_upload_to_a_read_only_export_fails_cleanly(xrootd_server, tmp_path):
    local = tmp_path / "x.bin"
    local.write_bytes(b"x" * 10)
    with pytest.raises(OutputError, match="cannot upload"):
        upload(str(local), xrootd_server.data_url("x.bin"))


def test_split_url():
    assert split_url("root://h:1094//data/a.root") == ("root://h:1094", "/data/a.root")
    with pytest.raises(InputError, match="not an XRootD URL"):
        split_url("http://h/a.root")
