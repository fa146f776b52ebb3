"""Per-site numbers from reports and boot outcomes."""

from hepstream.cloud.policy import Policy
from hepstream.cloud.sitestats import BootOutcome, per_site, site_stats


def rep(site, eps, status="ok"):
    return {"status": status, "site": site, "events_per_s": eps, "kb_per_s": eps * 3}


def test_averages_newest_ok_reports_per_image_and_site():
    reports = [
        ("img", rep("a", 300)),
        ("img", rep("a", 100)),
        ("img", rep("a", 999, "failed")),
        ("img", rep("a", 5)),
        ("other", rep("a", 7)),
    ]
    stats = {(s.image, s.cloud): s for s in site_stats(reports, [], 0.0, Policy(report_window=2))}
    assert stats[("img", "a")].reports == 2
    assert stats[("img", "a")].events_per_s == 200.0  # newest two ok reports only
    assert stats[("img", "a")].kb_per_s == 600.0
    assert stats[("other", "a")].events_per_s == 7.0


def test_counts_boot_outcomes_inside_the_window():
    policy = Policy(backoff_window_s=100)
    outcomes = [
        BootOutcome("img", "a", 0.0, False),
        BootOutcome("img", "a", 150.0, False),
        BootOutcome("img", "a", 160.0, True),
    ]
    (s,) = site_stats([], outcomes, 200.0, policy)
    assert (s.boots, s.boot_failures, s.last_failure_at) == (2, 1, 150.0)


def test_per_site_sums_and_means():
    out = per_site([rep("a", 100), rep("a", 200), rep("b", 50, "failed")])
    assert out == {
        "a": {
            "jobs": 2,
            "events_per_s_mean": 150.0,
            "kb_per_s_mean": 450.0,
            "events_per_s_sum": 300.0,
            "kb_per_s_sum": 900.0,
        }
    }
