"""What a simulation runs: clouds and how they behave, the jobs, and the shim's policy.

Read from TOML (``[policy]``, ``[jobs]``, ``[[cloud]]`` with a ``sim`` table each; the
format is in docs/cloud.md) or taken from a preset (``paper``: the paper's four clouds).
"""

from __future__ import annotations

import math
import random
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hepstream.cloud.model import Cloud
from hepstream.cloud.policy import Policy, cloud_from_table, policy_from_table
from hepstream.errors import ConfigError

_DIST_PARAMS = {
    "fixed": ("value",),
    "uniform": ("low", "high"),
    "normal": ("mean", "sd"),  # clipped at 0
    "lognormal": ("median", "sigma"),
    "exponential": ("mean",),
}


@dataclass(frozen=True)
class Dist:
    """A distribution of a non-negative number (seconds, events)."""

    kind: str = "fixed"
    a: float = 0.0
    b: float = 0.0

    def sample(self, rng: random.Random) -> float:
        if self.kind == "fixed":
            return self.a
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b)
        if self.kind == "normal":
            return max(0.0, rng.gauss(self.a, self.b))
        if self.kind == "lognormal":
            return rng.lognormvariate(math.log(self.a), self.b)
        return rng.expovariate(1.0 / self.a) if self.a > 0 else 0.0  # exponential

    @classmethod
    def parse(cls, value: Any, where: str) -> Dist:
        """A number (fixed) or a table ``{dist = "uniform", low = 1, high = 2}``."""
        if isinstance(value, int | float) and not isinstance(value, bool):
            if value < 0:
                raise ConfigError(f"{where} = {value}: must be >= 0")
            return cls("fixed", float(value))
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: give a number or a table with dist = ...")
        table = dict(value)
        kind = str(table.pop("dist", "fixed"))
        if kind not in _DIST_PARAMS:
            raise ConfigError(f"{where}: dist {kind!r} unknown; use {', '.join(_DIST_PARAMS)}")
        names = _DIST_PARAMS[kind]
        if set(table) != set(names):
            raise ConfigError(
                f"{where}: dist {kind!r} takes {', '.join(names)}; got {', '.join(sorted(table))}"
            )
        try:
            params = [float(table[n]) for n in names]
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: {', '.join(names)} must be numbers") from None
        if any(p < 0 for p in params) or (kind == "lognormal" and params[0] <= 0):
            raise ConfigError(f"{where}: parameters must be >= 0 (lognormal median > 0)")
        if kind == "uniform" and params[0] > params[1]:
            raise ConfigError(f"{where}: low {params[0]} is above high {params[1]}")
        return cls(kind, *params)


@dataclass(frozen=True)
class SimCloud:
    """A simulated cloud: the config the shim sees plus how it behaves."""

    cloud: Cloud
    boot_s: float | Dist = 300.0  # boot time; a bare number means that +-20 %
    transfer_s: float = 0.0  # extra boot time per VM already starting (shared image link)
    error_rate: float = 0.0  # share of boots that end in error state
    silent_rate: float = 0.0  # share of boots that never register
    events_per_s: float = 110.0  # per job, the paper's Tau1N-data rate (+-10 % per job)
    kb_per_s: float = 440.0
    refuse_rate: float = 0.0  # share of boot calls the cloud's API refuses

    def boot_delay(self) -> Callable[[random.Random, int], float]:
        """The fake driver's boot delay: a draw plus the transfer wait per pending VM."""
        dist = self.boot_s
        if not isinstance(dist, Dist):
            dist = Dist("uniform", 0.8 * dist, 1.2 * dist)
        transfer = self.transfer_s

        def delay(rng: random.Random, pending: int) -> float:
            return dist.sample(rng) + transfer * pending

        return delay


@dataclass(frozen=True)
class SimConfig:
    """Clouds, jobs and policy of one simulation."""

    clouds: list[SimCloud]
    policy: Policy = field(default_factory=Policy)
    jobs: int = 1000
    job_events: float | Dist = 4.75e6  # per job: the paper's ~12 h at 110 events/s
    image: str = "babar-sl55"


def paper_preset() -> list[SimCloud]:
    """The paper's four clouds (30 + 20 + 40 + 20 slots).

    NRC and EC2 hold the image locally and boot fast; the UVIC clouds pull ~16 GB images
    from NRC over a shared link (60 VMs took ~5 h), and UVIC-b serves the data and ran
    its jobs slowest; UVIC-a ran ~5 % faster than NRC and EC2.
    """
    return [
        SimCloud(Cloud("nrc", 30, priority=1), 300, 0, 0.03, 0.0, 110, 440),
        SimCloud(Cloud("uvic-a", 20, priority=1), 300, 600, 0.05, 0.01, 115.5, 462),
        SimCloud(Cloud("uvic-b", 40, priority=1), 300, 600, 0.05, 0.01, 100, 400),
        SimCloud(Cloud("amazon-ec2", 20, priority=0), 240, 0, 0.02, 0.0, 110, 440),
    ]


PRESETS: dict[str, Callable[[], list[SimCloud]]] = {"paper": paper_preset}

_RATES = ("error_rate", "silent_rate", "refuse_rate")
_NUMBERS = ("transfer_s", "events_per_s", "kb_per_s")


def _sim_cloud(table: dict[str, Any]) -> SimCloud:
    table = dict(table)
    sim = dict(table.pop("sim", {}))
    cloud = cloud_from_table(table)
    where = f"cloud {cloud.name!r} sim"
    values: dict[str, Any] = {}
    if "boot_s" in sim:
        values["boot_s"] = Dist.parse(sim.pop("boot_s"), f"{where}.boot_s")
    for name in (*_RATES, *_NUMBERS):
        if name in sim:
            value = sim.pop(name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"{where}.{name} = {value!r}: must be a number >= 0")
            values[name] = float(value)
    if sim:
        known = ", ".join(("boot_s", *_RATES, *_NUMBERS))
        raise ConfigError(f"{where} has unknown keys {sorted(sim)}; known keys: {known}")
    if sum(values.get(r, 0.0) for r in _RATES[:2]) > 1.0:
        raise ConfigError(f"{where}: error_rate + silent_rate must be <= 1")
    if values.get("refuse_rate", 0.0) > 1.0:
        raise ConfigError(f"{where}: refuse_rate must be <= 1")
    if values.get("events_per_s", 1.0) <= 0:
        raise ConfigError(f"{where}.events_per_s must be > 0")
    return SimCloud(cloud, **values)


def parse_sim_config(text: str, preset: str | None = None) -> SimConfig:
    """Build a :class:`SimConfig` from TOML text; no ``[[cloud]]``: ``preset``'s clouds."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"simulation config is not valid TOML: {err}") from None
    unknown = set(data) - {"policy", "jobs", "cloud", "shim"}
    if unknown:
        raise ConfigError(
            f"simulation config has unknown tables {sorted(unknown)}; use policy, jobs, cloud"
        )
    policy = policy_from_table(data.get("policy", {}))
    clouds = [_sim_cloud(t) for t in data.get("cloud", [])]
    if not clouds:
        clouds = preset_clouds(preset or "paper")
    names = [c.cloud.name for c in clouds]
    if len(set(names)) != len(names):
        raise ConfigError(f"cloud names must be unique, got {names}")
    jobs = dict(data.get("jobs", {}))
    count = jobs.pop("count", 1000)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ConfigError(f"[jobs] count = {count!r}: must be a whole number >= 0")
    events = Dist.parse(jobs.pop("events", 4.75e6), "[jobs] events")
    image = str(jobs.pop("image", "babar-sl55"))
    if jobs:
        raise ConfigError(f"[jobs] has unknown keys {sorted(jobs)}; known: count, events, image")
    return SimConfig(clouds, policy, count, events, image)


def load_sim_config(path: str | Path, preset: str | None = None) -> SimConfig:
    """Read a simulation config file (see docs/cloud.md)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read simulation config {path}: {err.strerror}") from None
    return parse_sim_config(text, preset)


def preset_clouds(name: str) -> list[SimCloud]:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]()
