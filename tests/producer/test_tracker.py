"""The per-run bookkeeping of a wait (pure): states, precedence, rates, what a country file lacks."""

from mmm_backfill.runpath import RunPath
from producer.tracker import DEAD_LETTERED, PENDING, SUMMARISED, RunState, Tracker, missing_from, runs_held

A, B, C = (RunPath("r1", "de", "t1"), RunPath("r1", "fr", "t2"), RunPath("r2", "de", "t3"))


def test_runs_start_pending_and_move_once_to_summarised_or_dead_lettered():
    tracker = Tracker([A, B, C], now=0.0)
    assert tracker.summarised(A.prefix, "created", "2026-12-07T10:00:00Z", now=1.0)
    assert tracker.dead_lettered(B.prefix, "not_rds", "bad", now=2.0)
    assert not tracker.summarised(A.prefix, "already_existed", None, now=3.0)
    assert tracker.counts == {PENDING: 1, SUMMARISED: 1, DEAD_LETTERED: 1}
    assert tracker.runs[A.prefix].outcome == "created"


def test_a_summary_outranks_an_earlier_dead_letter_but_not_the_reverse():
    tracker = Tracker([A, B], now=0.0)
    tracker.dead_lettered(A.prefix, "run_timeout", "slow", now=1.0)
    assert tracker.summarised(A.prefix, "created", None, now=2.0)
    tracker.summarised(B.prefix, "created", None, now=3.0)
    assert not tracker.dead_lettered(B.prefix, "not_rds", "bad", now=4.0)
    assert tracker.counts[SUMMARISED] == 2 and tracker.counts[DEAD_LETTERED] == 0


def test_runs_of_other_backfills_are_ignored():
    tracker = Tracker([A], now=0.0)
    assert not tracker.summarised("robyn/r9/de/t9", "created", None, now=1.0)
    assert tracker.pending == 1 and tracker.last_change == 0.0


def test_the_rate_counts_from_the_first_run_settled_not_from_the_start():
    tracker = Tracker([A, B, C], now=0.0)
    assert tracker.runs_per_minute(now=500.0) is None  # workers still starting from zero
    tracker.summarised(A.prefix, "created", None, now=600.0)
    tracker.summarised(B.prefix, "created", None, now=630.0)
    assert tracker.runs_per_minute(now=660.0) == 2.0
    assert tracker.seconds_left(now=660.0) == 30.0


def test_rows_count_each_revision_and_country():
    tracker = Tracker([A, B, C], now=0.0)
    tracker.summarised(A.prefix, "created", None, now=1.0)
    assert tracker.rows() == [
        {"revision": "r1", "country": "de", "runs": 1, SUMMARISED: 1, DEAD_LETTERED: 0, PENDING: 0},
        {"revision": "r1", "country": "fr", "runs": 1, SUMMARISED: 0, DEAD_LETTERED: 0, PENDING: 1},
        {"revision": "r2", "country": "de", "runs": 1, SUMMARISED: 0, DEAD_LETTERED: 0, PENDING: 1},
    ]


def test_a_country_file_must_hold_each_run_and_the_summary_this_backfill_wrote():
    written = RunState(A, SUMMARISED, "replaced", created_at="2026-12-07T10:00:00Z")
    found = RunState(C, SUMMARISED, "already_existed")
    stale = {"runs": [{"run_path": A.prefix, "created_at": "2026-01-01 00:00:00"}, {"run_path": C.prefix}]}
    fresh = {"runs": [{"run_path": A.prefix, "created_at": "2026-12-07 10:00:00"}, {"run_path": C.prefix}]}
    assert missing_from(runs_held(stale), [written, found]) == [A.prefix]
    assert missing_from(runs_held(fresh), [written, found]) == []
    assert missing_from(
        runs_held({"runs": [{"run_path": A.prefix, "created_at": "2026-12-07T10:00:00Z"}]}), [found]
    ) == [C.prefix]


def test_anything_but_a_country_file_holds_no_run():
    for document in (None, [], "x", {"runs": "x"}, {"runs": [1, {"run_path": 5}]}):
        assert runs_held(document) == {}
