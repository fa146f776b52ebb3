"""XRootD ``sss`` shared-secret credentials: keytabs, who they name, and the server's rules.

A keytab holds one key per user (``xrdsssadmin`` writes it, mode 0600). The server holds every
user's key; each user holds only their own, and the XRootD client reads it from the file
named by ``$XrdSecsssKT``. hepstream never reads the key material itself: it only checks the
file's mode and reads the user names (``u:NAME``) out of it. No key or path contents ever go
into a log line or a job report.
"""

from __future__ import annotations

import getpass
import os
import shutil
import stat
import subprocess
from pathlib import Path

from hepstream.errors import ConfigError

#: The variable the XRootD client reads (``XrdSecSSSKT`` is its older spelling).
KEYTAB_ENV = "XrdSecsssKT"
_KEYTAB_ENVS = (KEYTAB_ENV, "XrdSecSSSKT")
#: Group recorded in generated keys (informational; the rules go by user).
KEY_GROUP = "hepstream"


def env_keytab() -> Path | None:
    """The keytab named by the environment, if any."""
    for name in _KEYTAB_ENVS:
        value = os.environ.get(name)
        if value:
            return Path(value)
    return None


def default_keytab() -> Path:
    """This user's keytab: ``$XrdSecsssKT``, else ``~/.config/hepstream/xrootd-sss.keytab``,
    created with one key for the login user on first use (like an ssh key)."""
    found = env_keytab()
    if found is not None:
        check_keytab(found)
        return found
    path = _home_keytab()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        create_keytab(path, [getpass.getuser()])
    return use_default_credential() or path


def _home_keytab() -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "hepstream"
    return base / "xrootd-sss.keytab"


def use_default_credential() -> Path | None:
    """Put this user's default keytab in ``$XrdSecsssKT`` if the variable is unset and the
    file exists: what ``hepstream serve`` trusts is then what this process presents. Call it
    before the first XRootD login (the client reads the variable once)."""
    found = env_keytab()
    if found is not None:
        return found
    home = _home_keytab()
    if not home.is_file():
        return None
    check_keytab(home)
    os.environ[KEYTAB_ENV] = str(home)
    return home


def check_keytab(path: Path, given_by: str | None = None) -> None:
    """A keytab must exist and be private (no group or other bits), as sss itself demands.

    ``given_by`` names where the path came from for the error line (``--keytab``); by
    default ``$XrdSecsssKT`` when the variable names it. A keytab that does not exist yet
    is a first run's error: the line says how to make one (docs/access.md says more)."""
    if given_by is None and path == env_keytab():
        given_by = f"${KEYTAB_ENV}"
    where = f" ({given_by})" if given_by else ""
    try:
        st = path.stat()
    except FileNotFoundError:
        user = getpass.getuser()
        make = (
            f"make one with 'xrdsssadmin -k {user}+ -u {user} -g {KEY_GROUP} add {path}' (one "
            f"key per user let in, see docs/access.md)"
        )
        if given_by == "--keytab":
            todo = f"{make}, or leave --keytab out to serve with your own key"
        elif given_by:
            todo = f"point {given_by} at your keytab file, or {make}"
        else:
            todo = make
        raise ConfigError(f"sss keytab {path}{where} does not exist; {todo}") from None
    except OSError as err:
        raise ConfigError(
            f"sss keytab {path}{where}: {err.strerror}; check the file and its directories' "
            f"permissions"
        ) from None
    if not stat.S_ISREG(st.st_mode) or st.st_mode & 0o077:
        raise ConfigError(f"sss keytab {path} must be a private file: chmod 600 {path}")


def _xrdsssadmin() -> str:
    binary = shutil.which("xrdsssadmin")
    if binary is None:
        raise ConfigError("xrdsssadmin not found: apt-get install -y xrootd-server")
    return binary


def _key_name(user: str) -> str:
    """A key's name; the trailing ``+`` lets it work through a NAT or proxy: sss checks the
    address the client saw by default, which a WAN proxy or a VM's user-mode network
    changes. The credential still expires in seconds and the server takes loopback only."""
    return f"{user}+"


def create_keytab(path: Path, users: list[str], group: str = KEY_GROUP) -> Path:
    """A new keytab at ``path`` (mode 0600) with one fresh random key per user."""
    if not users:
        raise ConfigError("a keytab needs at least one user")
    path.unlink(missing_ok=True)
    old_umask = os.umask(0o077)
    try:
        for user in users:
            _check_name(user)
            proc = subprocess.run(
                [_xrdsssadmin(), "-k", _key_name(user), "-u", user, "-g", group, "add", str(path)],
                input="y\n",
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                raise ConfigError(f"xrdsssadmin could not add a key for {user}: {proc.stderr}")
    finally:
        os.umask(old_umask)
    path.chmod(0o600)
    return path


def user_keytab(keytab: Path, user: str, dest: Path) -> Path:
    """Copy of ``keytab`` at ``dest`` (mode 0600) holding only ``user``'s key: what a user gets."""
    names = keytab_users(keytab)
    if user not in names:
        raise ConfigError(f"keytab has no key for user {user!r} (it has {names})")
    dest.unlink(missing_ok=True)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(keytab.read_text())
    for other in names:
        if other != user:
            subprocess.run(
                [_xrdsssadmin(), "-k", _key_name(other), "del", str(dest)],
                capture_output=True,
                check=True,
            )
    return dest


def keytab_users(keytab: Path) -> list[str]:
    """The user names the keys of ``keytab`` authenticate as (``u:NAME`` of each line)."""
    users = []
    for line in keytab.read_text().splitlines():
        for field in line.split():
            if field.startswith("u:") and field[2:] not in users:
                users.append(field[2:])
    return users


def _check_name(user: str) -> None:
    if not user or not all(ch.isalnum() or ch in "._-" for ch in user):
        raise ConfigError(f"user name {user!r}: use letters, digits, '.', '_' or '-'")


def authdb_text(users: list[str]) -> str:
    """XRootD authorization rules: ``/data`` readable (and listable) by every authenticated
    user; ``/out/<user>/`` readable and writable by that user alone; nothing else."""
    for user in users:
        _check_name(user)
    lines = ["u * /data rl"]
    lines += [f"u {user} /out/{user}/ a" for user in users]
    return "\n".join(lines) + "\n"


def with_credential(job: dict[str, object]) -> dict[str, object]:
    """A job mapping for a VM's seed with this process's own key (``sss_keytab``) added,
    unless the job has one. The seed is per VM; the key is never part of an image."""
    keytab = env_keytab()
    if keytab is None or job.get("sss_keytab"):
        return job
    check_keytab(keytab)
    return {**job, "sss_keytab": keytab.read_text()}


def install_credential(text: str, path: Path) -> Path:
    """Write a key received in a job (a VM's seed) to ``path`` (0600) and point this process
    and its children at it; the XRootD client reads the variable at its first sss login."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.environ[KEYTAB_ENV] = str(path)
    return path


def client_env(keytab: Path) -> dict[str, str]:
    """Environment a client process needs to authenticate with ``keytab``."""
    return {KEYTAB_ENV: str(keytab)}
