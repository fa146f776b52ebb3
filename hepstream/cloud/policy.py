"""The shim's policy numbers and its TOML configuration (``[policy]``, ``[[cloud]]``)."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from hepstream.cloud.model import Cloud
from hepstream.errors import ConfigError
from hepstream.io.config import site_cache_url


@dataclass(frozen=True)
class Policy:
    """Every tunable number of the shim, each with its default and why."""

    # VMs booting at once per cloud: the paper's UVIC boots pulled ~16 GB images each
    # from NRC over one 1 Gb/s link; booting all 60 at once only made each slower.
    max_starting: int = 5
    # A VM not registered as a worker within this time is destroyed and replaced:
    # an image transfer plus boot took well under an hour per VM in the paper.
    boot_timeout_s: float = 3600.0
    # An idle VM stays this long for a next job of the same image before it is shut
    # down: a boot costs minutes, so a short wait is cheaper than a new boot.
    idle_keepalive_s: float = 300.0
    # VMs older than this are retired once idle, so images and credentials get renewed;
    # the paper's jobs ran ~12 h, so two days lets several run back to back.
    max_lifetime_s: float = 48 * 3600.0
    # Black-hole protection per (image, cloud): after at least ``backoff_min_boots``
    # boots within ``backoff_window_s``, a failure fraction of ``backoff_failure_rate``
    # or more keeps that pair out for ``backoff_s`` after its last failure.
    backoff_min_boots: int = 3  # fewer is noise, not a black hole
    backoff_failure_rate: float = 0.5  # more failures than successes: stop feeding it
    backoff_window_s: float = 3600.0  # forget old failures: clouds get repaired
    backoff_s: float = 900.0  # retry a black hole after 15 min, not never
    # Throughput ranking uses the most recent this-many job reports per (image, site):
    # enough to average out one slow node, few enough to follow changing load.
    report_window: int = 20
    # A job whose VM broke is queued again this many times before it is failed, so a
    # bad job cannot cycle VMs forever.
    job_retries: int = 3
    # A VM we booted may not appear in a cloud's list at once (EC2 is eventually
    # consistent); only after this long is a VM absent from the list taken as gone.
    missing_grace_s: float = 120.0
    # Seconds between two reconcile rounds of ``hepstream cloud run``: polling a cloud
    # API more often than this mostly earns rate limits.
    poll_interval_s: float = 30.0


@dataclass(frozen=True)
class ShimConfig:
    """A loaded configuration: policy, clouds and where the shim keeps its state."""

    policy: Policy = field(default_factory=Policy)
    clouds: tuple[Cloud, ...] = ()
    shim_id: str = "hepstream"  # tags every VM so a restarted shim finds its own
    state_path: Path = Path("hepstream-cloud.sqlite")  # shim state and the local queue
    workdir: Path = Path("hepstream-cloud")  # per-VM files of the local driver
    queue: str = "local"  # local (embedded SQLite), condor or slurm


_SECRET_KEYS = ("key", "secret", "password", "token")


def _check_options(cloud: str, options: dict[str, Any]) -> None:
    """Refuse literal credentials: they go in the environment or a file named here."""
    for name, value in options.items():
        lowered = name.lower()
        if lowered.endswith(("_env", "_file")):
            continue
        if any(word in lowered for word in _SECRET_KEYS) and value:
            raise ConfigError(
                f"cloud {cloud!r}: option {name!r} holds a credential; "
                f'put it in the environment and write {name}_env = "VAR" '
                f'(or {name}_file = "path") instead'
            )


def policy_from_table(table: dict[str, Any]) -> Policy:
    """A [policy] table as a :class:`Policy`; unknown keys and non-numbers are refused."""
    known = {f.name: f for f in fields(Policy)}
    values: dict[str, Any] = {}
    for name, value in table.items():
        if name not in known:
            raise ConfigError(
                f"[policy] has unknown key {name!r}; known keys: {', '.join(sorted(known))}"
            )
        default = getattr(Policy(), name)
        try:
            values[name] = type(default)(value)
        except (TypeError, ValueError):
            raise ConfigError(f"[policy] {name} = {value!r} is not a number") from None
    return Policy(**values)


def cloud_from_table(table: dict[str, Any]) -> Cloud:
    """One [[cloud]] table as a :class:`Cloud`; unknown keys and credentials are refused."""
    table = dict(table)
    name = table.pop("name", None)
    if not name:
        raise ConfigError('a [[cloud]] table has no name; add name = "..."')
    if "quota" not in table:
        raise ConfigError(f"cloud {name!r} has no quota; add quota = <VM slots>")
    options = dict(table.pop("options", {}))
    cloud = Cloud(
        name=str(name),
        quota=int(table.pop("quota")),
        priority=int(table.pop("priority", 0)),
        driver=str(table.pop("driver", "fake")),
        max_starting=(int(table["max_starting"]) if "max_starting" in table else None),
        options=options,
        site_cache=site_cache_url(table.pop("site_cache", None), f"cloud {name!r} site_cache"),
    )
    table.pop("max_starting", None)
    if table:
        raise ConfigError(
            f"cloud {name!r} has unknown keys {sorted(table)}; put driver settings in "
            f"[cloud.options]"
        )
    if cloud.quota < 0:
        raise ConfigError(f"cloud {name!r}: quota must be >= 0")
    _check_options(cloud.name, options)
    return cloud


def parse_config(text: str, base: Path | None = None) -> ShimConfig:
    """Build a :class:`ShimConfig` from TOML text; relative paths resolve against ``base``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"cloud config is not valid TOML: {err}") from None
    base = base or Path.cwd()
    policy = policy_from_table(data.get("policy", {}))
    clouds = tuple(cloud_from_table(t) for t in data.get("cloud", []))
    names = [c.name for c in clouds]
    if len(set(names)) != len(names):
        raise ConfigError(f"cloud names must be unique, got {names}")
    shim = data.get("shim", {})
    return ShimConfig(
        policy=policy,
        clouds=clouds,
        shim_id=str(shim.get("id", "hepstream")),
        state_path=base / shim.get("state", "hepstream-cloud.sqlite"),
        workdir=base / shim.get("workdir", "hepstream-cloud"),
        queue=str(shim.get("queue", "local")),
    )


def load_config(path: str | Path) -> ShimConfig:
    """Read a TOML cloud config file (see docs/cloud.md for the format)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read cloud config {path}: {err.strerror}") from None
    return parse_config(text, base=path.parent)


def credential(cloud: Cloud, name: str, default: str | None = None) -> str | None:
    """Resolve credential ``name`` of ``cloud`` from ``<name>_env`` or ``<name>_file``.

    The value is returned to the driver only; it is never stored in the config or logged.
    """
    env = cloud.options.get(f"{name}_env")
    if env:
        value = os.environ.get(str(env))
        if value is None:
            raise ConfigError(
                f"cloud {cloud.name!r}: environment variable {env} for {name} is not set"
            )
        return value
    file = cloud.options.get(f"{name}_file")
    if file:
        try:
            return Path(str(file)).expanduser().read_text().strip()
        except OSError as err:
            raise ConfigError(
                f"cloud {cloud.name!r}: cannot read {name} file {file}: {err.strerror}"
            ) from None
    return default
