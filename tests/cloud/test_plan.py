"""Every policy of the pure planner, driven with frozen snapshots."""

import pytest

from hepstream.cloud.decide import in_backoff, plan
from hepstream.cloud.model import VM, Boot, Cloud, Job, Replace, Retire, SiteStats, VMSpec, Wait
from hepstream.cloud.policy import Policy

SPEC = VMSpec("img", 1, 2048, "alice")
POLICY = Policy()
NOW = 10_000.0


def jobs(n, spec=SPEC, targets=()):
    return [Job(f"j{i:03d}", spec, "idle", targets, submitted_at=i) for i in range(n)]


def vm(i, cloud="a", state="running", busy=False, booted=NOW - 100, idle_since=None, spec=SPEC):
    return VM(f"vm{i}", cloud, spec, f"j{i}", state, booted, booted + 10, busy, idle_since)


def of(actions, kind):
    return [a for a in actions if isinstance(a, kind)]


def test_boots_one_vm_per_idle_job_within_quota():
    clouds = [Cloud("a", 3)]
    actions = plan(jobs(5), [], clouds, [], NOW, Policy(max_starting=10))
    boots = of(actions, Boot)
    assert [b.job_id for b in boots] == ["j000", "j001", "j002"]
    assert {b.cloud for b in boots} == {"a"}
    (wait,) = of(actions, Wait)
    assert wait.jobs == 2
    assert "quota full (3/3)" in wait.reason


def test_quota_counts_existing_vms():
    clouds = [Cloud("a", 2)]
    running = [vm(1, busy=True), vm(2, busy=True)]
    queue = [Job("j1", SPEC, "running", vm_id="vm1"), Job("j2", SPEC, "running", vm_id="vm2")]
    actions = plan(queue + jobs(3), running, clouds, [], NOW, POLICY)
    assert of(actions, Boot) == []


def test_max_starting_per_cloud_limits_boots_in_flight():
    clouds = [Cloud("a", 50, max_starting=2), Cloud("b", 50, priority=-1)]
    starting = [vm(1, state="starting", booted=NOW - 5)]
    actions = plan(jobs(5), starting, clouds, [], NOW, Policy(max_starting=3))
    boots = of(actions, Boot)
    # vm1 covers one job; one more may start on a (2 max), then b (policy max 3)
    assert [b.cloud for b in boots] == ["a", "b", "b", "b"]


def test_fills_by_priority_first():
    clouds = [Cloud("low", 10, priority=0), Cloud("high", 2, priority=5)]
    boots = of(plan(jobs(4), [], clouds, [], NOW, POLICY), Boot)
    assert [b.cloud for b in boots] == ["high", "high", "low", "low"]
    assert "priority 5" in boots[0].reason


def test_equal_priority_prefers_measured_throughput_and_explains():
    clouds = [Cloud("slow", 10), Cloud("fast", 10)]
    stats = [
        SiteStats("img", "slow", reports=5, events_per_s=100, kb_per_s=400),
        SiteStats("img", "fast", reports=5, events_per_s=430, kb_per_s=1300),
    ]
    (boot,) = of(plan(jobs(1), [], clouds, stats, NOW, POLICY), Boot)
    assert boot.cloud == "fast"
    assert "430 ev/s" in boot.reason
    assert "1,300 KB/s" in boot.reason
    assert "next best slow" in boot.reason


def test_kb_per_s_breaks_an_events_per_s_tie():
    clouds = [Cloud("a", 10), Cloud("b", 10)]
    stats = [
        SiteStats("img", "a", reports=3, events_per_s=100, kb_per_s=300),
        SiteStats("img", "b", reports=3, events_per_s=100, kb_per_s=500),
    ]
    (boot,) = of(plan(jobs(1), [], clouds, stats, NOW, POLICY), Boot)
    assert boot.cloud == "b"


def test_throughput_is_per_image():
    other = VMSpec("other", 1, 2048, "alice")
    clouds = [Cloud("a", 10), Cloud("b", 10)]
    stats = [
        SiteStats("img", "a", reports=3, events_per_s=500),
        SiteStats("img", "b", reports=3, events_per_s=100),
        SiteStats("other", "a", reports=3, events_per_s=10),
        SiteStats("other", "b", reports=3, events_per_s=90),
    ]
    boots = of(plan(jobs(1) + jobs(1, other), [], clouds, stats, NOW, POLICY), Boot)
    assert {b.spec.image: b.cloud for b in boots} == {"img": "a", "other": "b"}


def test_unmeasured_cloud_is_explored_before_measured_ones():
    clouds = [Cloud("known", 10), Cloud("new", 10)]
    stats = [SiteStats("img", "known", reports=4, events_per_s=400)]
    (boot,) = of(plan(jobs(1), [], clouds, stats, NOW, POLICY), Boot)
    assert boot.cloud == "new"
    assert "no job reports yet" in boot.reason


def test_target_clouds_restrict_placement():
    clouds = [Cloud("a", 10, priority=9), Cloud("b", 10)]
    (boot,) = of(plan(jobs(1, targets=("b",)), [], clouds, [], NOW, POLICY), Boot)
    assert boot.cloud == "b"
    (wait,) = of(plan(jobs(1, targets=("zz",)), [], clouds, [], NOW, POLICY), Wait)
    assert "zz: not a configured cloud" in wait.reason


def test_idle_vm_covers_a_matching_job_but_not_another_owner():
    clouds = [Cloud("a", 10)]
    idle = [vm(1, idle_since=NOW - 1000)]
    assert of(plan(jobs(1), idle, clouds, [], NOW, POLICY), Boot) == []
    bob = VMSpec("img", 1, 2048, "bob")
    actions = plan(jobs(1, bob), idle, clouds, [], NOW, POLICY)
    assert [b.spec.owner for b in of(actions, Boot)] == ["bob"]
    (retire,) = of(actions, Retire)
    assert retire.vm_id == "vm1"
    assert "keep-alive" in retire.reason


def test_idle_keepalive_retires_only_after_the_wait():
    clouds = [Cloud("a", 10)]
    policy = Policy(idle_keepalive_s=300)
    fresh = [vm(1, idle_since=NOW - 299)]
    stale = [vm(1, idle_since=NOW - 301)]
    assert plan([], fresh, clouds, [], NOW, policy) == []
    assert [type(a) for a in plan([], stale, clouds, [], NOW, policy)] == [Retire]


def test_max_lifetime_retires_idle_vm_even_with_demand_but_not_busy_one():
    clouds = [Cloud("a", 1)]
    policy = Policy(max_lifetime_s=3600)
    old_idle = [vm(1, booted=NOW - 4000, idle_since=NOW - 5)]
    actions = plan(jobs(1), old_idle, clouds, [], NOW, policy)
    assert isinstance(actions[0], Retire)
    assert "max lifetime" in actions[0].reason
    assert of(actions, Boot)[0].cloud == "a"  # the slot is reused at once
    old_busy = [vm(1, booted=NOW - 4000, busy=True)]
    assert of(plan([], old_busy, clouds, [], NOW, policy), Retire) == []


def test_error_vm_is_replaced_and_its_job_booted_again():
    clouds = [Cloud("a", 1)]
    broken = [vm(1, state="error", busy=True)]
    queue = [Job("j1", SPEC, "running", vm_id="vm1")]
    actions = plan(queue, broken, clouds, [], NOW, POLICY)
    assert isinstance(actions[0], Replace)
    assert "error" in actions[0].reason
    (boot,) = of(actions, Boot)
    assert boot.job_id == "j1"


def test_vm_never_registering_is_replaced_after_boot_timeout():
    clouds = [Cloud("a", 5)]
    policy = Policy(boot_timeout_s=600)
    young = [vm(1, state="starting", booted=NOW - 599)]
    old = [vm(1, state="starting", booted=NOW - 601)]
    assert of(plan(jobs(1), young, clouds, [], NOW, policy), Replace) == []
    actions = plan(jobs(1), old, clouds, [], NOW, policy)
    (replace,) = of(actions, Replace)
    assert "not registered" in replace.reason
    assert len(of(actions, Boot)) == 1


def test_backoff_keeps_black_hole_cloud_out_then_lets_it_back():
    clouds = [Cloud("hole", 10, priority=5), Cloud("ok", 10)]
    policy = Policy(backoff_min_boots=3, backoff_failure_rate=0.5, backoff_s=900)
    bad = SiteStats("img", "hole", boots=4, boot_failures=3, last_failure_at=NOW - 100)
    (boot,) = of(plan(jobs(1), [], clouds, [bad], NOW, policy), Boot)
    assert boot.cloud == "ok"
    assert "backoff: 3/4" in boot.reason
    (later,) = of(plan(jobs(1), [], clouds, [bad], NOW + 900, policy), Boot)
    assert later.cloud == "hole"


@pytest.mark.parametrize(
    ("boots", "failures", "expected"),
    [(2, 2, False), (3, 1, False), (3, 2, True), (10, 5, True)],
)
def test_backoff_threshold(boots, failures, expected):
    stats = SiteStats("img", "a", boots=boots, boot_failures=failures, last_failure_at=NOW)
    assert in_backoff(stats, NOW, POLICY) is expected


def test_unknown_vms_are_kept_and_count_toward_quota():
    clouds = [Cloud("a", 2)]
    lost = [vm(1, state="unknown", booted=NOW - 10**6), vm(2, state="unknown", busy=True)]
    actions = plan(jobs(3), lost, clouds, [], NOW, POLICY)
    assert of(actions, Retire) == []
    assert of(actions, Replace) == []
    assert any("last poll failed" in w.reason for w in of(actions, Wait))
    assert of(actions, Boot) == []  # the two unknown VMs fill the quota


def test_missing_and_stopped_vms_are_retired():
    clouds = [Cloud("a", 5)]
    gone = [vm(1, state="missing"), vm(2, state="stopped", busy=True)]
    retired = of(plan([], gone, clouds, [], NOW, POLICY), Retire)
    assert {r.vm_id for r in retired} == {"vm1", "vm2"}


def test_plan_is_deterministic_and_pure():
    clouds = [Cloud("a", 3), Cloud("b", 3)]
    args = (jobs(8), [vm(1, state="starting")], clouds, [], NOW, POLICY)
    assert plan(*args) == plan(*args)


def test_full_clouds_count_every_waiting_job_per_kind_without_placing_each():
    """Once every cloud is full, the rest of a long queue is counted per kind (the bulk path
    the simulation's 5,000-job queue takes each round): counts and reasons as one by one."""
    other = VMSpec("img", 1, 2048, "bob")
    clouds = [Cloud("a", 2), Cloud("b", 1)]
    queue = jobs(300) + [Job(f"k{i:03d}", other, "idle", submitted_at=i + 0.5) for i in range(40)]
    idle_bob = [vm(1, cloud="a", spec=other), vm(2, cloud="a", spec=other)]  # cover 2 of bob's
    actions = plan(queue, idle_bob, clouds, [], NOW, POLICY)
    (boot,) = of(actions, Boot)  # the one free slot, on b, to the oldest job
    assert (boot.job_id, boot.cloud) == ("j000", "b")
    waits = {w.reason.split(" for image")[0]: w for w in of(actions, Wait)}
    assert waits["299 job(s) of alice"].jobs == 299
    assert waits["38 job(s) of bob"].jobs == 38
    for wait in waits.values():
        assert "a: quota full (2/2)" in wait.reason
        assert "b: quota full (1/1)" in wait.reason
    # a second cloud with room takes jobs again: the bulk path only starts when all are full
    roomy = plan(queue, idle_bob, [*clouds, Cloud("c", 5)], [], NOW, Policy(max_starting=10))
    assert sorted(b.cloud for b in of(roomy, Boot)) == ["b"] + ["c"] * 5
    assert sum(w.jobs for w in of(roomy, Wait)) == 300 + 38 - 6
