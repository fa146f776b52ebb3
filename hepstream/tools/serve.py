"""Debian's real ``xrootd`` daemon serving a local directory on loopback, for demos and tests.

``/data`` is exported read-only from ``data_dir`` and ``/out`` read-write from ``out_dir``, the
layout of the paper's central storage, so jobs read inputs and write outputs over ``root://``.

By default every client authenticates with XRootD's ``sss`` shared secret (see
:mod:`hepstream.io.auth`): ``/data`` is readable by every key holder, ``/out/<user>/`` writable
only by that user; a client without a key is refused (xrootd 5.5 cannot offer anonymous
access beside ``sss``: binding the ``host`` protocol negates every other one). Only
loopback clients may connect when the server's address is loopback.
"""

from __future__ import annotations

import atexit
import grp
import ipaddress
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from hepstream.errors import ConfigError, InputError
from hepstream.io.auth import authdb_text, check_keytab, default_keytab, keytab_users
from hepstream.procs import Service, stop_group

_PORT_RE = re.compile(r"xrootd \S+:(\d+) initialization completed")
_LIVE: set[XRootDServer] = set()


@dataclass(frozen=True)
class ServerConfig:
    """Timeouts and identities of the embedded server."""

    user: str = "xrootd"  # Debian's xrootd refuses to run as root; it drops to this account
    startup_timeout: float = 20.0  # s: the daemon is up in < 1 s; slack for a loaded 2-core VM
    ping_timeout: int = 2  # s per client ping while waiting for the server to answer
    stop_timeout: float = 5.0  # s to exit after SIGTERM before it is killed
    log_tail_lines: int = 15  # lines of the xrootd log quoted when it fails to start


class XRootDServer(Service):
    """An ``xrootd`` process exporting ``/data`` (read-only) and ``/out`` (writable) on loopback.

    Parameters
    ----------
    data_dir
        Directory served read-only as ``/data``.
    out_dir
        Directory served writable as ``/out``; default: a fresh directory in the admin dir
        (removed with it at :meth:`stop` unless ``cleanup=False``).
    port
        TCP port; 0 lets the daemon pick a free one (read back from its log).
    host
        Address clients use. xrootd 5.5 has no bind-address directive and listens on every
        IPv4 interface; for a loopback ``host`` it refuses any other client at accept
        (``xrd.allow host 127.0.0.1``), and every client must authenticate anyway.
    admin_dir
        Parent of the server's private admin directory (config, log, pid); default: system temp.
    cleanup
        Remove the private admin directory when the server stops.
    config
        Timeouts and the unprivileged user; defaults to :class:`ServerConfig`.
    auth
        Require ``sss`` authentication (default). False serves anonymously, reads and
        writes, as xrootd does out of the box: only for a private, throwaway server.
    keytab
        The server's keytab (one key per user allowed in). Default: the caller's own,
        :func:`hepstream.io.auth.default_keytab` (``$XrdSecsssKT`` or one made on first use).
    trace_reads
        Log every read request (``xrootd.trace fs fsio``): the server's own count of the
        bytes it served, which :func:`traced_read_bytes` sums. A line per request: for tests
        and benchmarks, not production.
    posc_dir
        Where xrootd keeps its persist-on-successful-close log; a restarted server deletes
        the files of uploads its crash interrupted. Default: ``admin_dir/posc`` when
        ``admin_dir`` is given (it survives restarts), else inside the private admin dir.
    """

    def __init__(
        self,
        data_dir: str | Path,
        out_dir: str | Path | None = None,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        admin_dir: str | Path | None = None,
        cleanup: bool = True,
        config: ServerConfig | None = None,
        auth: bool = True,
        keytab: str | Path | None = None,
        posc_dir: str | Path | None = None,
        trace_reads: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.host = host
        self.port = port
        self.cleanup = cleanup
        self.config = config or ServerConfig()
        self._admin_parent = Path(admin_dir) if admin_dir is not None else None
        self.admin_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.auth = auth
        self.keytab = Path(keytab) if keytab is not None else None
        #: Users the server lets in (from the keytab); the first is :attr:`user`.
        self.users: list[str] = []
        self._posc_dir = Path(posc_dir) if posc_dir is not None else None
        self.trace_reads = trace_reads

    # -- public -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``root://HOST:PORT`` without a trailing slash."""
        return f"root://{self.host}:{self.port}"

    def data_url(self, name: str = "") -> str:
        """URL of ``name`` under the read-only ``/data`` export."""
        return f"{self.url}//data/{name}"

    @property
    def user(self) -> str | None:
        """The keytab's first user: whose ``/out/<user>/`` :meth:`out_url` names."""
        return self.users[0] if self.users else None

    def out_url(self, name: str = "", user: str | None = None) -> str:
        """URL of ``name`` in ``user``'s writable area: ``/out/<user>/name`` (``/out/name``
        without authentication)."""
        return f"{self.url}//out/{self._out_rel(name, user)}"

    def out_path(self, name: str = "", user: str | None = None) -> Path:
        """Where :meth:`out_url` of ``name`` lands on this machine's disk."""
        assert self.out_dir is not None, "the server is not started"
        return self.out_dir / self._out_rel(name, user)

    def _out_rel(self, name: str, user: str | None) -> str:
        who = user or self.user
        return f"{who}/{name}" if self.auth and who else name

    @property
    def pid(self) -> int | None:
        """Process id of the running daemon, or None."""
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path | None:
        """The daemon's log file."""
        return self.admin_dir / "xrootd.log" if self.admin_dir is not None else None

    @property
    def running(self) -> bool:
        """True while the daemon process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> XRootDServer:
        """Write the config, start the daemon and wait until it answers a ping."""
        if self.running:
            return self
        binary = shutil.which("xrootd")
        if binary is None:
            raise ConfigError(
                "xrootd not found: apt-get install -y xrootd-server (make test does this)"
            )
        ident = _daemon_identity(self.config.user)
        data_dir = self._checked_data_dir(ident)
        self.admin_dir = self._make_admin_dir(ident)
        try:
            text = self._config(ident, data_dir)
        except BaseException:
            self.stop()
            raise
        cfg_path = self.admin_dir / "xrootd.cfg"
        cfg_path.write_text(text)
        cfg_path.chmod(0o644)
        cmd = [binary, "-c", str(cfg_path), "-l", str(self.log_path), "-I", "v4"]
        if ident is not None:
            cmd += ["-R", self.config.user]
        with open(self.admin_dir / "stdout.txt", "wb") as sink:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop() signals it as a whole
                env=self._environment(),
            )
        _LIVE.add(self)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def restart(self) -> str:
        """Start the daemon again, on the same port, after it died; the tail of the log it
        left (the admin dir, and that log, go with the old process)."""
        tail = self._log_tail()
        port = self.port
        self.stop()
        self.port = port
        self.start()
        return tail

    def stop(self) -> None:
        """Terminate the daemon (and its process group), wait, remove the admin dir."""
        proc, self._proc = self._proc, None
        _LIVE.discard(self)
        if proc is not None:
            stop_group(proc, self.config.stop_timeout)
        if self.cleanup and self.admin_dir is not None:
            shutil.rmtree(self.admin_dir, ignore_errors=True)
            self.admin_dir = None

    def __repr__(self) -> str:
        return f"XRootDServer({str(self.data_dir)!r}, url={self.url!r}, pid={self.pid})"

    # -- what a subclass changes -------------------------------------------------------------

    def _config(self, ident: tuple[int, set[int]] | None, data_dir: Path) -> str:
        """The daemon's configuration text; makes the directories it names."""
        assert self.admin_dir is not None
        out_dir = self._checked_out_dir(ident)
        root = self.admin_dir / "root"
        root.mkdir()
        (root / "data").symlink_to(data_dir, target_is_directory=True)
        (root / "out").symlink_to(out_dir, target_is_directory=True)
        root.chmod(0o755)
        posc = self._posc_dir or (
            self._admin_parent / "posc" if self._admin_parent else self.admin_dir / "posc"
        )
        posc.mkdir(parents=True, exist_ok=True)
        _give(posc, ident)
        security = self._security(ident, out_dir) if self.auth else None
        text = _config_text(
            self.port, root, self.admin_dir, posc, security, _is_loopback(self.host)
        )
        return text + ("xrootd.trace fs fsio\n" if self.trace_reads else "")

    def _environment(self) -> dict[str, str] | None:
        """The daemon's environment; None inherits ours."""
        return None

    # -- private ----------------------------------------------------------------------------

    def _security(self, ident: tuple[int, set[int]] | None, out_dir: Path) -> tuple[Path, Path]:
        """The keys and rules (see :meth:`_keys`); creates each user's ``/out/<user>/`` (a
        rule for ``/out/<user>/`` does not cover making it)."""
        secret, authdb = self._keys(ident)
        for user in self.users:
            area = out_dir / user
            if not area.exists():
                area.mkdir(mode=0o755)
                _give(area, ident)
        return secret, authdb

    def _keys(self, ident: tuple[int, set[int]] | None) -> tuple[Path, Path]:
        """The daemon's private copy of the keytab and its authorization file."""
        assert self.admin_dir is not None
        if self.keytab is None:
            self.keytab = default_keytab()
        check_keytab(self.keytab)
        self.users = keytab_users(self.keytab)
        if not self.users:
            raise ConfigError(f"keytab {self.keytab} holds no keys; create one with xrdsssadmin")
        secret = private_copy(self.keytab, self.admin_dir / "sss.keytab", ident)
        authdb = self.admin_dir / "authdb"
        authdb.write_text(authdb_text(self.users))
        authdb.chmod(0o644)
        return secret, authdb

    def _checked_data_dir(self, ident: tuple[int, set[int]] | None) -> Path:
        data = self.data_dir.resolve()
        if not data.is_dir():
            raise ConfigError(f"cannot serve {self.data_dir}: not a directory")
        if not _can(data, ident, os.R_OK | os.X_OK):
            raise ConfigError(
                f"cannot serve {self.data_dir}: not readable by the '{self.config.user}' user the "
                f"daemon runs as; chmod a+rx it and its parent directories"
            )
        return data

    def _checked_out_dir(self, ident: tuple[int, set[int]] | None) -> Path:
        assert self.admin_dir is not None
        if self.out_dir is None:
            self.out_dir = self.admin_dir / "out"
            self.out_dir.mkdir(mode=0o755)
            _give(self.out_dir, ident)
        out = self.out_dir.resolve()
        if not out.is_dir():
            raise ConfigError(f"cannot serve {self.out_dir} as /out: not a directory; create it")
        if not _can(out, ident, os.R_OK | os.W_OK | os.X_OK):
            raise ConfigError(
                f"cannot serve {self.out_dir} as /out: not writable by the '{self.config.user}' "
                f"user; chown {self.config.user} it (or chmod a+rwx) and make its parents a+x"
            )
        return out

    def _make_admin_dir(self, ident: tuple[int, set[int]] | None) -> Path:
        parent = self._admin_parent
        if parent is not None:
            parent.mkdir(parents=True, exist_ok=True)
        admin = Path(tempfile.mkdtemp(prefix="hepstream-xrootd-", dir=parent))
        admin.chmod(0o755)
        _give(admin, ident)
        if not _can(admin, ident, os.W_OK | os.X_OK):
            shutil.rmtree(admin, ignore_errors=True)
            raise ConfigError(
                f"admin dir {admin} is not reachable by the '{self.config.user}' user: "
                f"choose an admin_dir whose parents are a+x (e.g. under /tmp)"
            )
        return admin

    def _wait_ready(self) -> None:
        # loaded here, not at import: loading the client fixes its XRD_* settings from the
        # environment as it is then (hepstream.io.xrootd loads it the same way)
        from XRootD import client

        deadline = time.monotonic() + self.config.startup_timeout
        last = "no answer"
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise InputError(
                    f"xrootd exited with code {self._proc.returncode} at start; log: "
                    f"{self._log_tail()}"
                )
            # wait for the daemon's own "initialization completed" line before the first ping:
            # a refused connection would put the client's channel to that port in error state
            match = _PORT_RE.search(self._log_text())
            if match is None:
                time.sleep(0.05)
                continue
            self.port = int(match.group(1))
            if self.auth:  # our own key need not be in the server's keytab: probe TCP only
                try:
                    socket.create_connection(
                        (self.host, self.port), timeout=self.config.ping_timeout
                    ).close()
                    return
                except OSError as err:
                    last = str(err)
            else:
                status, _ = client.FileSystem(self.url).ping(timeout=self.config.ping_timeout)
                if status.ok:
                    return
                last = status.message
            time.sleep(0.1)
        raise InputError(
            f"xrootd at {self.url} did not answer within {self.config.startup_timeout:.0f} s "
            f"({last}); log: {self._log_tail()}"
        )

    def read_bytes(self) -> int:
        """Bytes this server has read for its clients so far (needs ``trace_reads``)."""
        if not self.trace_reads:
            raise ConfigError("read_bytes needs a server started with trace_reads=True")
        return traced_read_bytes(self._log_text())

    def _log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace") if self.log_path else ""
        except FileNotFoundError:
            return ""

    def _log_tail(self) -> str:
        text = self._log_text()
        if self.admin_dir is not None and (self.admin_dir / "stdout.txt").exists():
            text += (self.admin_dir / "stdout.txt").read_text(errors="replace")
        lines = [line for line in text.splitlines() if line.strip()]
        return " | ".join(lines[-self.config.log_tail_lines :]) or "(empty)"


#: A read request the server traced (xrootd 5.5): ``[fh=N] read|pgread|readV LEN@OFFSET``; a
#: vector read logs one line per element.
_TRACED_READ = re.compile(r"Xrootd_Protocol: (?:\d+ )?(?:fh=\d+ )?(?:pg)?read[V]? (\d+)@\d+")


def traced_read_bytes(log: str) -> int:
    """Sum of the bytes of every read request in an xrootd log with ``xrootd.trace fs fsio``."""
    return sum(int(m.group(1)) for m in _TRACED_READ.finditer(log))


def _config_text(
    port: int,
    root: Path,
    admin: Path,
    posc: Path,
    security: tuple[Path, Path] | None = None,
    loopback_only: bool = True,
) -> str:
    """The daemon's configuration: two exports under one local root, no DNS lookups."""
    lines = [
        f"xrd.port {port or 'any'}",
        "xrd.network nodnr",  # never resolve client names: loopback tests need no DNS
        "all.export /data r/o",
        "all.export /out",
        f"oss.localroot {root}",
        f"all.adminpath {admin}",
        f"all.pidpath {admin}",
        "xrootd.chksum adler32",  # server-side checksums: uploads verify without a read-back
        # persist-on-successful-close when the client asks (uploads do): a file whose writer
        # vanished is deleted at once (hold 0), or at restart from this log if xrootd died
        f"ofs.persist manual hold 0 logdir {posc}",
    ]
    if loopback_only:  # no bind-address directive in 5.5: refuse other peers at accept
        lines += LOOPBACK_ONLY
    if security is not None:
        lines += security_lines(*security)
    return "\n".join([*lines, ""])


#: Only loopback peers: xrootd 5.5 has no bind-address directive, so they are refused at accept.
LOOPBACK_ONLY = ("xrd.allow host 127.0.0.1", "xrd.allow host localhost")


def security_lines(keytab: Path, authdb: Path) -> list[str]:
    """sss for every client, and the rules in ``authdb``."""
    return [
        "xrootd.seclib libXrdSec.so",
        f"sec.protocol sss -s {keytab}",
        "sec.protbind * only sss",  # no anonymous or unix (self-declared) identities
        "ofs.authorize 1",
        f"acc.authdb {authdb}",
        "acc.audit deny",  # refused requests are logged with the user and the path
    ]


def private_copy(src: Path, dest: Path, ident: tuple[int, set[int]] | None) -> Path:
    """A 0600 copy of the key file ``src`` for the daemon's user alone."""
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(src.read_text())
    if ident is not None:
        os.chown(dest, ident[0], -1)
    return dest


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _daemon_identity(user: str) -> tuple[int, set[int]] | None:
    """(uid, gids) the daemon will run as when we are root, None when it runs as ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ConfigError(
            f"user '{user}' does not exist: apt-get install -y xrootd-server creates it"
        ) from None
    gids = {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    return entry.pw_uid, gids


def _give(path: Path, ident: tuple[int, set[int]] | None) -> None:
    """Hand a directory we created to the daemon's user (when we are root)."""
    if ident is not None:
        os.chown(path, ident[0], -1)


def _can(path: Path, ident: tuple[int, set[int]] | None, want: int) -> bool:
    """Whether the daemon's user may access ``path`` (``want`` of R/W/X) and traverse parents."""
    if ident is None:
        return os.access(path, want)
    uid, gids = ident
    parents = [p for p in reversed(path.parents)]
    checks = [(p, os.X_OK) for p in parents] + [(path, want)]
    for p, bits in checks:
        st = p.stat()
        if st.st_uid == uid:
            shift = 6
        elif st.st_gid in gids:
            shift = 3
        else:
            shift = 0
        granted = (st.st_mode >> shift) & 0o7
        if granted & bits != bits:
            return False
        if not stat.S_ISDIR(st.st_mode):
            return False
    return True


@atexit.register
def _stop_all() -> None:
    """No leaked daemons: stop every server still running when the interpreter exits."""
    for server in list(_LIVE):
        server.stop()
