"""Access control of the served storage: sss keys, per-user /out, anonymous clients refused.

Every client here is a real ``xrdcp`` process, so each one presents exactly the credential
its environment names (the XRootD client reads ``$XrdSecsssKT`` once per process).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hepstream.errors import ConfigError
from hepstream.io.auth import (
    KEYTAB_ENV,
    authdb_text,
    check_keytab,
    create_keytab,
    keytab_users,
    user_keytab,
)
from hepstream.tools.serve import XRootDServer, _config_text

pytestmark = pytest.mark.xrootd

XRDCP_TIMEOUT_S = 60


def _xrdcp(src: str, dst: str, keytab: Path | None, home: Path) -> subprocess.CompletedProcess:
    """One real ``xrdcp``; ``keytab=None`` is an anonymous client (no key anywhere)."""
    if shutil.which("xrdcp") is None:
        pytest.fail("xrdcp missing: apt-get install -y xrootd-client (make test does this)")
    env = {k: v for k, v in os.environ.items() if k not in (KEYTAB_ENV, "XrdSecSSSKT")}
    env["HOME"] = str(home)  # no ~/.xrd/sss.keytab fallback either
    env |= {"XRD_CONNECTIONRETRY": "1"}
    if keytab is not None:
        env[KEYTAB_ENV] = str(keytab)
    return subprocess.run(
        ["xrdcp", "--force", "--nopbar", src, dst],
        env=env,
        capture_output=True,
        text=True,
        timeout=XRDCP_TIMEOUT_S,
        check=False,
    )


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    path = tmp_path / "payload.bin"
    path.write_bytes(b"hepstream" * 1000)
    return path


@pytest.fixture
def two_users(sample_dir: Path) -> Iterator[tuple[XRootDServer, dict[str, Path]]]:
    """A server whose keytab lets alice and bob in; each user holds only their own key."""
    base = Path(tempfile.mkdtemp(prefix="hepstream-auth-"))
    try:
        site = create_keytab(base / "site.keytab", ["alice", "bob"])
        keys = {user: user_keytab(site, user, base / f"{user}.keytab") for user in ("alice", "bob")}
        with XRootDServer(sample_dir, keytab=site) as server:
            yield server, keys
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_anonymous_write_is_refused_and_the_authenticated_one_succeeds(
    xrootd_server, sss_credential, payload, tmp_path
):
    url = xrootd_server.out_url("auth/anon.bin")
    anonymous = _xrdcp(str(payload), url, None, tmp_path)
    assert anonymous.returncode != 0
    assert "Auth failed" in anonymous.stderr
    assert not xrootd_server.out_path("auth/anon.bin").exists()
    signed = _xrdcp(str(payload), url, sss_credential, tmp_path)
    assert signed.returncode == 0, signed.stderr
    assert xrootd_server.out_path("auth/anon.bin").read_bytes() == payload.read_bytes()


def test_anonymous_reads_are_refused_too(xrootd_server, tmp_path):
    # xrootd 5.5 cannot offer anonymous access beside sss (binding 'host' disables every
    # other protocol; 'unix' identities are self-declared), so the storage is key holders only
    got = _xrdcp(xrootd_server.data_url("tau11_mc_000.root"), str(tmp_path / "x"), None, tmp_path)
    assert got.returncode != 0
    assert not (tmp_path / "x").exists()


def test_a_second_user_is_refused_on_the_first_users_area(two_users, payload, tmp_path):
    server, keys = two_users
    assert server.users == ["alice", "bob"]
    own = _xrdcp(str(payload), server.out_url("a.bin", user="alice"), keys["alice"], tmp_path)
    assert own.returncode == 0, own.stderr
    intruder = _xrdcp(str(payload), server.out_url("b.bin", user="alice"), keys["bob"], tmp_path)
    assert intruder.returncode != 0
    assert "permission denied" in intruder.stderr
    overwrite = _xrdcp(str(payload), server.out_url("a.bin", user="alice"), keys["bob"], tmp_path)
    assert overwrite.returncode != 0
    assert sorted(p.name for p in server.out_path(user="alice").iterdir()) == ["a.bin"]
    bobs = _xrdcp(str(payload), server.out_url("b.bin", user="bob"), keys["bob"], tmp_path)
    assert bobs.returncode == 0, bobs.stderr
    # both read /data; outside /data and their own area nobody writes
    for user, key in keys.items():
        got = _xrdcp(server.data_url("tau11_mc_000.root"), str(tmp_path / user), key, tmp_path)
        assert got.returncode == 0, got.stderr
    top = _xrdcp(str(payload), f"{server.url}//out/top.bin", keys["alice"], tmp_path)
    assert top.returncode != 0
    assert not (server.out_dir / "top.bin").exists()


def test_keytabs_are_private_and_the_daemon_gets_its_own_copy(two_users):
    server, keys = two_users
    for key in keys.values():
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert len(keytab_users(key)) == 1
    assert server.admin_dir is not None
    secret = server.admin_dir / "sss.keytab"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    if os.geteuid() == 0:
        import pwd

        assert secret.stat().st_uid == pwd.getpwnam(server.config.user).pw_uid
    assert str(secret) in (server.admin_dir / "xrootd.cfg").read_text()
    assert "k:" not in (server.admin_dir / "xrootd.cfg").read_text()  # path, never the key


def test_a_readable_keytab_is_refused(tmp_path, sample_dir):
    keytab = create_keytab(tmp_path / "shared.keytab", ["carol"])
    keytab.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        check_keytab(keytab)
    with pytest.raises(ConfigError, match="chmod 600"):
        XRootDServer(sample_dir, keytab=keytab).start()


def test_rules_and_loopback_only_config(tmp_path):
    assert authdb_text(["alice", "bob"]).splitlines() == [
        "u * /data rl",
        "u alice /out/alice/ a",
        "u bob /out/bob/ a",
    ]
    with pytest.raises(ConfigError):
        authdb_text(["../etc"])
    text = _config_text(0, tmp_path, tmp_path, tmp_path, (tmp_path / "k", tmp_path / "a"))
    assert "xrd.allow host 127.0.0.1" in text.splitlines()
    assert "sec.protbind * only sss" in text.splitlines()
    assert "ofs.persist manual hold 0" in text
    assert "xrd.allow" not in _config_text(0, tmp_path, tmp_path, tmp_path, None, False)


def test_the_credential_stays_out_of_reports_and_output(
    xrootd_server, sss_credential, sample_dir, tmp_path
):
    import subprocess as sp
    import sys

    plugin = Path(__file__).resolve().parent.parent / "examples" / "tau1n.py"
    report = tmp_path / "r.json"
    proc = sp.run(
        [sys.executable, "-m", "hepstream", "run", str(plugin),
         xrootd_server.data_url("tau11_mc_000.root"), "-o",
         xrootd_server.out_url("cred/o.root"), "--report", str(report), "--no-progress"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    key = sss_credential.read_text().split("k:")[1].split()[0]
    for text in (proc.stdout, proc.stderr, report.read_text()):
        assert str(sss_credential) not in text
        assert key not in text
    assert json.loads(report.read_text())["status"] == "ok"


def test_serve_and_run_in_two_shells_share_the_users_own_key(sample_dir, tmp_path):
    """No ``$XrdSecsssKT`` anywhere: ``hepstream serve`` makes ~/.config/hepstream's key and
    trusts it; ``hepstream run`` of the same user finds it and writes to /out/<user>/."""
    import getpass
    import signal
    import sys

    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in (KEYTAB_ENV, "XrdSecSSSKT")}
    env |= {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    out = Path(tempfile.mkdtemp(prefix="hepstream-shells-"))
    out.chmod(0o777)
    serve = subprocess.Popen(
        [sys.executable, "-m", "hepstream", "serve", str(sample_dir), "--out", str(out), "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert serve.stdout is not None
        info = json.loads(serve.stdout.readline())
        keytab = home / ".config" / "hepstream" / "xrootd-sss.keytab"
        assert info["keytab"] == str(keytab)
        assert info["users"] == [getpass.getuser()]
        assert stat.S_IMODE(keytab.stat().st_mode) == 0o600
        plugin = Path(__file__).resolve().parent.parent / "examples" / "tau1n.py"
        run = subprocess.run(
            [sys.executable, "-m", "hepstream", "run", str(plugin),
             f"{info['data']}tau11_mc_000.root", "-o", f"{info['out']}two-shells.root",
             "--no-progress"],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert (out / getpass.getuser() / "two-shells.root").stat().st_size > 0
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=30) == 0
    finally:
        if serve.poll() is None:
            serve.kill()
        serve.communicate()
        shutil.rmtree(out, ignore_errors=True)


def test_no_auth_serves_anyone_as_xrootd_does_by_default(sample_dir, payload, tmp_path):
    with XRootDServer(sample_dir, auth=False) as server:
        assert server.users == []
        assert server.out_url("x.bin") == f"{server.url}//out/x.bin"
        got = _xrdcp(str(payload), server.out_url("x.bin"), None, tmp_path)
        assert got.returncode == 0, got.stderr
        assert server.out_path("x.bin").read_bytes() == payload.read_bytes()
        assert "sec.protocol" not in (server.admin_dir / "xrootd.cfg").read_text()
