"""The in-memory queue answers like the SQLite queue; the shim's round helpers are exact."""

from __future__ import annotations

import pytest

from hepstream.cloud.decide import next_decision_at, plan
from hepstream.cloud.model import VM, Cloud, Job, SiteStats, VMSpec, Wait
from hepstream.cloud.policy import Policy
from hepstream.cloud.queues.local import LocalQueue
from hepstream.cloud.queues.memory import MemoryQueue
from hepstream.cloud.state import StateStore
from hepstream.errors import InputError

A = VMSpec("img-a", owner="ann")
B = VMSpec("img-b", owner="bob")


def _ok(site: str, eps: float) -> dict:
    return {"status": "ok", "site": site, "events_per_s": eps, "kb_per_s": eps * 4}


def _script(queue, clock) -> list:
    """One sequence of queue calls; returns everything the queue answered."""
    out: list = []
    ids = [queue.add(A, {"inputs": []}, job_id=f"a{i}") for i in range(4)]
    ids += [queue.add(B, None, ("c1",), job_id="b0")]
    with pytest.raises(InputError, match="already queued"):
        queue.add(A, None, job_id="a0")
    clock.advance(1)
    out.append([j.id for j in queue.pending()])
    out.append(queue.claim("vm1", A).job.id)
    out.append(queue.claim("vm2", A).job.id)
    out.append(queue.assign("b0", "vm3"))
    out.append(queue.assign("b0", "vm4"))  # no longer idle
    queue.register_worker("vm1")
    clock.advance(1)
    queue.register_worker("vm1")  # keeps the first registration time
    out.append(queue.workers())
    out.append(queue.requeue("a0", "VM broke", max_retries=1))
    out.append(queue.claim("vm5", A).job.id)  # the requeued, oldest job first
    out.append(queue.requeue("a0", "VM broke again", max_retries=1))
    out.append(queue.requeue("zz", "no such job", max_retries=1))
    out.append(queue.requeue("a2", "refused", max_retries=0, count=False))
    clock.advance(1)
    out.append(queue.finish("a1", _ok("c1", 100.0)))
    clock.advance(1)
    out.append(queue.finish("b0", {"status": "error", "site": "c1", "error": "bad input"}))
    clock.advance(1)
    queue.claim("vm6", A)
    out.append(queue.finish("a2", _ok("c2", 50.0)))
    out.append(queue.finish("a3", None))
    queue.forget_worker("vm1")
    out.append(queue.workers())
    out.append(queue.counts())
    out.append([(q.job.id, q.job.status, q.job.vm_id, q.attempts, q.error) for q in queue.list()])
    out.append([q.job.id for q in queue.list("failed")])
    out.append([j.id for j in queue.pending()])
    out.append(queue.reports())
    out.append(queue.recent_reports(1))
    out.append(queue.get("a0").job.target_clouds)
    out.append(queue.get("b0").job.target_clouds)
    out.append(queue.get("a0").spec)
    return out


def test_memory_queue_answers_like_the_local_queue(tmp_path, clock):
    local = LocalQueue(tmp_path / "q.sqlite", clock=clock)
    expected = _script(local, clock)
    local.close()
    clock.now = 1_000_000.0
    assert _script(MemoryQueue(clock), clock) == expected


def test_recent_reports_keep_the_newest_ok_reports_per_site(tmp_path, clock):
    for queue in (LocalQueue(tmp_path / "q.sqlite", clock=clock), MemoryQueue(clock)):
        for i in range(6):
            job = queue.add(A, job_id=f"j{i}-{id(queue)}")
            clock.advance(1)
            site = "c1" if i % 2 else "c2"
            queue.finish(job, _ok(site, float(i)) if i != 5 else {"status": "error", "site": "c1"})
        recent = queue.recent_reports(2)
        assert [rep["events_per_s"] for _, rep in recent] == [4.0, 3.0, 2.0, 1.0]
        assert {img for img, _ in recent} == {"img-a"}


def test_state_store_live_cache_matches_the_database(tmp_path):
    cached = StateStore(tmp_path / "s.sqlite", cache_live=True)
    for i in range(4):
        cached.add(f"vm{i}", "c1", A, f"j{i}", 10.0 - i)
    cached.add("vm0", "c2", B, "other", 0.0)  # idempotent on name
    cached.update("vm1", registered_at=12.0, idle_since=13.0, last_state="running")
    cached.gone("vm2", 14.0)
    cached.add("vm2", "c1", A, "j2", 1.0)  # a destroyed VM does not come back
    plain = StateStore(tmp_path / "s.sqlite")
    assert cached.live() == plain.live()
    assert [r.name for r in cached.live()] == ["vm3", "vm1", "vm0"]
    assert cached.has_live()
    assert plain.has_live()
    for name in ("vm0", "vm1", "vm3"):
        cached.gone(name, 20.0)
    assert not cached.has_live()
    assert not plain.has_live()


def test_plan_counts_every_blocked_job_once_with_the_reason_of_its_kind():
    clouds = [Cloud("c1", 2), Cloud("c2", 1)]
    queue = [Job(f"a{i:04d}", A, submitted_at=i) for i in range(1500)]
    queue += [Job(f"b{i}", B, target_clouds=("c2",), submitted_at=0.5 + i) for i in range(3)]
    actions = plan(queue, [], clouds, [], 0.0, Policy())
    boots = [a for a in actions if not isinstance(a, Wait)]
    assert [(b.job_id, b.cloud) for b in boots] == [("a0000", "c1"), ("b0", "c2"), ("a0001", "c1")]
    waits = {w.jobs: w.reason for w in actions if isinstance(w, Wait)}
    assert set(waits) == {1498, 2}
    assert "c1: quota full (2/2); c2: quota full (1/1)" in waits[1498]
    assert "c2: quota full (1/1)" in waits[2]


def test_next_decision_at_names_the_first_timer():
    policy = Policy(boot_timeout_s=600, missing_grace_s=120, idle_keepalive_s=300)
    starting = VM("v1", "c1", A, "j1", "starting", booted_at=100.0)
    idle = VM("v2", "c1", A, "j2", "running", 0.0, 10.0, busy=False, idle_since=150.0)
    busy = VM("v3", "c1", A, "j3", "running", 0.0, 10.0, busy=True)
    assert next_decision_at([starting], [], 150.0, policy) == 220.0  # missing grace
    assert next_decision_at([starting], [], 230.0, policy) == 700.0  # boot timeout
    assert next_decision_at([idle, busy], [], 200.0, policy) == 450.0  # keep-alive
    assert next_decision_at([busy], [], 200.0, policy) is None
    hole = SiteStats("img-a", "c1", boots=3, boot_failures=3, last_failure_at=1000.0)
    assert next_decision_at([busy], [hole], 1000.0, policy) == 1000.0 + policy.backoff_s
