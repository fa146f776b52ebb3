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


# -- readv limits ------------------------------------------------------------------------


def test_readv_limits_from_the_servers_answer_else_the_protocols():
    from hepstream.io.config import XRD_MAX_VECTOR_ELEMENT_BYTES, XRD_MAX_VECTOR_ELEMENTS
    from hepstream.io.xrootd import ReadvLimits, parse_readv_limits

    assert parse_readv_limits(b"512\n1048576\n") == ReadvLimits(512, 1 << 20)
    protocol = ReadvLimits(XRD_MAX_VECTOR_ELEMENTS, XRD_MAX_VECTOR_ELEMENT_BYTES)
    assert parse_readv_limits(None) == protocol
    assert parse_readv_limits(b"readv_iov_max\nreadv_ior_max\n") == protocol  # names echoed
    assert parse_readv_limits(b"99999\n99999999\n") == protocol  # never above the protocol


def test_split_readv_cuts_big_segments_and_long_lists():
    from hepstream.io.xrootd import ReadvLimits, split_readv

    limits = ReadvLimits(max_elements=3, max_element_bytes=100)
    requests = split_readv(((0, 250), (300, 310), (400, 500)), limits)
    assert requests == [[(0, 100), (100, 200), (200, 250)], [(300, 310), (400, 500)]]
    assert split_readv(((5, 5),), limits) == [[(5, 5)]]


@pytest.mark.xrootd
def test_server_limits_are_asked_and_big_vector_reads_split(xrootd_server, sample_dir):
    from hepstream.io.xrootd import XRootDBackend, readv_limits

    limits = readv_limits(xrootd_server.url)
    assert (limits.max_elements, limits.max_element_bytes) == (1024, 2 * 1024 * 1024 - 16)
    local = (sample_dir / "tau1n_mc_000.root").read_bytes()
    backend = XRootDBackend(xrootd_server.data_url("tau1n_mc_000.root"))
    try:
        size = backend.size
        wanted = ((0, 4 << 20), (size - (5 << 20), size))  # each above one readv element
        assert backend.readv(wanted) == [local[a:b] for a, b in wanted]
        many = tuple((i * 10_000, i * 10_000 + 100) for i in range(2500))  # > 1024 elements
        assert backend.readv(many) == [local[a:b] for a, b in many]
    finally:
        backend.close()
