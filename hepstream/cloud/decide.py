"""The shim's one decision function: from what is queued and running to what to do now.

Pure: no clock, no I/O. The edge (:mod:`hepstream.cloud.shim`) and the simulator call it
with snapshots and apply the actions it returns.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from operator import attrgetter

from hepstream.cloud.model import (
    VM,
    Action,
    Boot,
    Cloud,
    Job,
    Replace,
    Retire,
    SiteStats,
    SpecKey,
    VMSpec,
    Wait,
)
from hepstream.cloud.policy import Policy

StatsKey = tuple[str, str]  # (image, cloud)
#: Per kind of job: how many wait, and why each cloud refused them.
Blocked = dict[SpecKey, tuple[int, dict[str, str]]]
#: A job -> its Boot (None: no cloud has room) and why each cloud refused it.
Placer = Callable[[Job], tuple[Boot | None, dict[str, str]]]
#: Cloud ranking: priority, measured or not, events/s, KB/s, free slots, name.
RankKey = tuple[int, bool, float, float, int, str]
_BY_BOOT = attrgetter("booted_at", "id")
_BY_SUBMIT = attrgetter("submitted_at", "id")


def _stats_map(
    site_stats: Iterable[SiteStats] | Mapping[StatsKey, SiteStats],
) -> dict[StatsKey, SiteStats]:
    if isinstance(site_stats, Mapping):
        return dict(site_stats)
    return {(s.image, s.cloud): s for s in site_stats}


def in_backoff(stats: SiteStats | None, now: float, policy: Policy) -> bool:
    """True when (image, cloud) failed too often lately to get another VM yet."""
    if stats is None or stats.boots < policy.backoff_min_boots:
        return False
    if stats.last_failure_at is None or now - stats.last_failure_at >= policy.backoff_s:
        return False
    return stats.boot_failures / stats.boots >= policy.backoff_failure_rate


def _vm_decision(vm: VM, now: float, policy: Policy) -> Action | None:
    """What a single VM needs regardless of demand (broken, over-age); None: keep."""
    age = now - vm.booted_at
    if vm.state == "error":
        return Replace(vm.id, vm.cloud, "cloud reports the VM in error state")
    if vm.state == "starting" and age > policy.boot_timeout_s:
        return Replace(
            vm.id,
            vm.cloud,
            f"not registered {age:.0f} s after boot (timeout {policy.boot_timeout_s:.0f} s)",
        )
    if vm.state == "missing":
        return Retire(vm.id, vm.cloud, "vanished from the cloud's VM list; forgetting it")
    if vm.state == "stopped":
        return Retire(vm.id, vm.cloud, "powered off by itself (its job is over)")
    if vm.state == "running" and not vm.busy and age > policy.max_lifetime_s:
        return Retire(
            vm.id, vm.cloud, f"idle and older than max lifetime {policy.max_lifetime_s:.0f} s"
        )
    return None


def _rank_key(cloud: Cloud, stats: SiteStats | None, free: int) -> RankKey:
    """Priority first, then measured throughput; unmeasured sites rank first among equals
    so every site gets measured once (optimistic exploration)."""
    measured = stats is not None and stats.reports > 0
    eps = stats.events_per_s if stats is not None and measured else 0.0
    kbps = stats.kb_per_s if stats is not None and measured else 0.0
    return (-cloud.priority, measured, -eps, -kbps, -free, cloud.name)


def _throughput_text(stats: SiteStats | None, image: str) -> str:
    if stats is None or stats.reports == 0:
        return f"no job reports yet for {image} here (measure it)"
    return (
        f"{stats.events_per_s:,.0f} ev/s, {stats.kb_per_s:,.0f} KB/s per job over "
        f"{stats.reports} reports of {image}"
    )


def plan(
    queue: Sequence[Job],
    vms: Sequence[VM],
    clouds: Sequence[Cloud],
    site_stats: Iterable[SiteStats] | Mapping[StatsKey, SiteStats],
    now: float,
    policy: Policy,
) -> list[Action]:
    """Decide the actions that move the VM fleet toward what the queue needs.

    Parameters
    ----------
    queue
        Jobs not yet finished (``idle`` or ``running``).
    vms
        The shim's VMs merged with the latest observation of each cloud.
    clouds
        Configured clouds with quota and priority.
    site_stats
        Throughput and boot outcomes per (image, cloud), recent first.
    now
        Current time in seconds (wall clock at the edge, simulated in ``simulate``).
    policy
        The numbers that steer every decision.

    Returns
    -------
    list of Action
        Retire/Replace first, then Boot in job order, then Wait with the reasons.
    """
    actions, live, replaced = _vm_actions(vms, now, policy)
    waiting = _waiting(queue, replaced)
    demand: Counter[SpecKey] = Counter(j.spec.key for j in waiting)
    kept, retired = _match_supply(live, demand, now, policy)
    actions += retired
    room = _Room(
        clouds,
        policy,
        on_cloud=Counter(vm.cloud for vm in kept),
        starting=Counter(vm.cloud for vm in kept if vm.state == "starting"),
    )
    place = partial(_place, room=room, stats=_stats_map(site_stats), now=now, policy=policy)
    boots, blocked = _boot_waiting(waiting, demand, room, place)
    actions += boots
    actions += _waits(blocked)
    return actions


def _vm_actions(
    vms: Sequence[VM], now: float, policy: Policy
) -> tuple[list[Action], list[VM], set[str]]:
    """Each VM's own decision, oldest VM first, and a Wait per cloud whose last poll failed.

    Returns the actions, the VMs kept (live) and the ids of the VMs being replaced.
    """
    actions: list[Action] = []
    live: list[VM] = []
    replaced: set[str] = set()
    unknown: Counter[str] = Counter()
    for vm in sorted(vms, key=_BY_BOOT):
        decision = _vm_decision(vm, now, policy)
        if decision is None:
            live.append(vm)
            if vm.state == "unknown":
                unknown[vm.cloud] += 1
            continue
        actions.append(decision)
        if isinstance(decision, Replace):
            replaced.add(vm.id)
    for cloud, n in sorted(unknown.items()):
        actions.append(Wait(f"cloud {cloud}: last poll failed; keeping its {n} VMs as they were"))
    return actions, live, replaced


def _waiting(queue: Sequence[Job], replaced: set[str]) -> list[Job]:
    """Demand, oldest job first: idle jobs, plus jobs whose VM is being replaced right now."""
    waiting = [
        j for j in queue if j.status == "idle" or (j.status == "running" and j.vm_id in replaced)
    ]
    waiting.sort(key=_BY_SUBMIT)
    return waiting


def _match_supply(
    live: Sequence[VM], demand: Counter[SpecKey], now: float, policy: Policy
) -> tuple[list[VM], list[Retire]]:
    """Let idle registered VMs and VMs still booting for no running job cover ``demand``
    (taken off it); retire idle VMs past their keep-alive that nothing waits for.

    Returns the VMs kept and the retirements.
    """
    kept: list[VM] = []
    retired: list[Retire] = []
    for vm in live:
        covers = not vm.busy and vm.state in ("starting", "running")
        if covers and demand[vm.spec.key] > 0:
            demand[vm.spec.key] -= 1
            kept.append(vm)
            continue
        if (
            vm.state == "running"
            and not vm.busy
            and vm.idle_since is not None
            and now - vm.idle_since >= policy.idle_keepalive_s
        ):
            retired.append(
                Retire(
                    vm.id,
                    vm.cloud,
                    f"idle {now - vm.idle_since:.0f} s (keep-alive {policy.idle_keepalive_s:.0f} s)"
                    f" and no queued job for image {vm.spec.image}",
                )
            )
            continue
        kept.append(vm)
    return kept, retired


@dataclass
class _Room:
    """The clouds' VM counts as this plan's boots fill them: VMs per cloud, and of those the
    ones still starting (each cloud's starting cap)."""

    clouds: Sequence[Cloud]
    policy: Policy
    on_cloud: Counter[str]
    starting: Counter[str]
    by_name: dict[str, Cloud] = field(init=False)
    #: How many VMs may boot at once on each cloud.
    starting_cap: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.by_name = {c.name: c for c in self.clouds}
        self.starting_cap = {
            c.name: c.max_starting if c.max_starting is not None else self.policy.max_starting
            for c in self.clouds
        }

    def take(self, cloud: str) -> None:
        """Count a boot on ``cloud``."""
        self.on_cloud[cloud] += 1
        self.starting[cloud] += 1

    def closed(self) -> bool:
        """True when no cloud has a free slot under its quota and its starting cap."""
        for cloud in self.clouds:
            name = cloud.name
            if self.on_cloud[name] < cloud.quota and self.starting[name] < self.starting_cap[name]:
                return False
        return True


def _boot_waiting(
    waiting: Sequence[Job], demand: Counter[SpecKey], room: _Room, place: Placer
) -> tuple[list[Action], Blocked]:
    """Boots for the unmet ``demand``, oldest job first, and why the jobs left could not
    be placed (per kind of job)."""
    boots: list[Action] = []
    blocked: Blocked = {}
    remaining = dict(demand)
    # A job that found no cloud finds none again while no boot changed the counts: the
    # answer is reused, so thousands of queued jobs cost one placement per kind.
    refused: dict[tuple[SpecKey, tuple[str, ...]], tuple[int, dict[str, str]]] = {}
    placed = 0  # boots so far: a refusal is reused only while this is unchanged
    # Boots only fill clouds: once every cloud is full or at its starting cap, no later job
    # can be placed, and the rest are counted per kind without placing each one.
    closed = room.closed()
    for i, job in enumerate(waiting):
        key = job.spec.key
        if remaining.get(key, 0) <= 0:
            continue
        if closed:
            _block_rest(waiting[i:], remaining, blocked, place)
            break
        remaining[key] -= 1
        seen = refused.get((key, job.target_clouds))
        if seen is not None and seen[0] == placed:
            boot, why_not = None, seen[1]
        else:
            boot, why_not = place(job)
        if boot is None:
            refused[(key, job.target_clouds)] = (placed, why_not)
            count, _ = blocked.get(key, (0, {}))
            blocked[key] = (count + 1, why_not)
            continue
        placed += 1
        boots.append(boot)
        room.take(boot.cloud)
        closed = room.closed()
    return boots, blocked


def _waits(blocked: Blocked) -> list[Wait]:
    """One Wait per kind of job left without a VM, with each cloud's reason."""
    waits = []
    for (image, cpus, mem, owner), (count, why_not) in blocked.items():
        detail = "; ".join(f"{c}: {w}" for c, w in sorted(why_not.items())) or "no cloud"
        waits.append(
            Wait(
                f"{count} job(s) of {owner} for image {image} ({cpus} cpu, {mem} MB) "
                f"wait: {detail}",
                jobs=count,
            )
        )
    return waits


def _block_rest(
    rest: Sequence[Job], remaining: dict[SpecKey, int], blocked: Blocked, place: Placer
) -> None:
    """Count ``rest`` (jobs no cloud can take) as blocked, as placing each one would: a kind
    counts its unmet demand (each of its jobs in ``rest`` until that is used up), with the
    reasons given to its first job here."""
    first: dict[SpecKey, Job] = {}
    wanted = sum(1 for n in remaining.values() if n > 0)
    for job in rest:  # usually one kind of job: the first job ends the loop
        key = job.spec.key
        if key not in first and remaining.get(key, 0) > 0:
            first[key] = job
            if len(first) == wanted:
                break
    for key, job in first.items():
        _, why_not = place(job)
        count, _ = blocked.get(key, (0, {}))
        blocked[key] = (count + remaining[key], why_not)
        remaining[key] = 0


def _place(
    job: Job,
    room: _Room,
    stats: Mapping[StatsKey, SiteStats],
    now: float,
    policy: Policy,
) -> tuple[Boot | None, dict[str, str]]:
    """Pick the best cloud with room for ``job``, or say why each cloud was refused."""
    spec: VMSpec = job.spec
    on_cloud, starting = room.on_cloud, room.starting
    why_not: dict[str, str] = {}
    if job.target_clouds:
        candidates = []
        for name in job.target_clouds:
            if name in room.by_name:
                candidates.append(room.by_name[name])
            else:
                why_not[name] = "not a configured cloud"
    else:
        candidates = list(room.clouds)
    eligible: list[tuple[RankKey, Cloud]] = []
    for cloud in candidates:
        cap_start = room.starting_cap[cloud.name]
        st = stats.get((spec.image, cloud.name))
        if on_cloud[cloud.name] >= cloud.quota:
            why_not[cloud.name] = f"quota full ({on_cloud[cloud.name]}/{cloud.quota})"
        elif starting[cloud.name] >= cap_start:
            why_not[cloud.name] = f"{starting[cloud.name]} VMs already starting (max {cap_start})"
        elif in_backoff(st, now, policy):
            assert st is not None
            why_not[cloud.name] = (
                f"backoff: {st.boot_failures}/{st.boots} recent boots of {spec.image} failed"
            )
        else:
            free = cloud.quota - on_cloud[cloud.name]
            eligible.append((_rank_key(cloud, st, free), cloud))
    if not eligible:
        return None, why_not
    eligible.sort(key=lambda pair: pair[0])
    best = eligible[0][1]
    st = stats.get((spec.image, best.name))
    free = best.quota - on_cloud[best.name]
    reason = (
        f"{best.name}: priority {best.priority}, {free}/{best.quota} slots free; "
        f"{_throughput_text(st, spec.image)}"
    )
    if len(eligible) > 1:
        other = eligible[1][1]
        reason += f"; next best {other.name} (priority {other.priority}, " + (
            _throughput_text(stats.get((spec.image, other.name)), spec.image) + ")"
        )
    if why_not:
        reason += "; skipped " + ", ".join(f"{c} ({w})" for c, w in sorted(why_not.items()))
    return Boot(job.id, best.name, spec, reason), why_not


def next_decision_at(
    vms: Iterable[VM], site_stats: Iterable[SiteStats], now: float, policy: Policy
) -> float | None:
    """The earliest time after ``now`` at which a timer alone could change :func:`plan`'s
    answer for these VMs and stats (boot timeout, keep-alive, lifetime, backoff end);
    None: no timer runs. A simulator skips the rounds before it when nothing else happens.
    """
    times: list[float] = []
    for vm in vms:
        if vm.state == "starting":
            times += [vm.booted_at + policy.boot_timeout_s, vm.booted_at + policy.missing_grace_s]
        elif vm.state == "running" and not vm.busy:
            times.append(vm.booted_at + policy.max_lifetime_s)
            if vm.idle_since is not None:
                times.append(vm.idle_since + policy.idle_keepalive_s)
    for st in site_stats:
        if st.last_failure_at is not None:
            times += [st.last_failure_at + policy.backoff_s]
            times += [st.last_failure_at + policy.backoff_window_s]
    later = [t for t in times if t > now]
    return min(later) if later else None


def count_by_state(vms: Iterable[VM]) -> dict[str, dict[str, int]]:
    """VMs per cloud and state, for status output and the simulator's figure."""
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for vm in vms:
        out[vm.cloud][vm.state] = out[vm.cloud].get(vm.state, 0) + 1
    return dict(out)
