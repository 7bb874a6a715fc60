"""The verdict of a wait (pure): exit codes, and a report that names what failed or is late."""

from mmm_backfill.runpath import RunPath
from producer.tracker import Tracker
from producer.wait_report import EXIT_DEAD_LETTERED, EXIT_TIMED_OUT, CountryFileCheck, WaitReport

A, B = RunPath("r1", "de", "t1"), RunPath("r1", "de", "t2")


def report(**changes) -> WaitReport:
    tracker = Tracker([A, B], now=0.0)
    tracker.summarised(A.prefix, "created", None, now=1.0)
    tracker.summarised(B.prefix, "created", None, now=1.0)
    return WaitReport("bf", tracker, **{"country_files": [CountryFileCheck("de", 2, 7, 0)], **changes})


def test_every_run_summarised_and_aggregated_is_0():
    assert (report().exit_code, report().verdict) == (0, "complete")


def test_a_dead_lettered_run_is_its_own_exit_code_and_is_named_with_its_reason():
    tracker = Tracker([A, B], now=0.0)
    tracker.summarised(A.prefix, "created", None, now=1.0)
    tracker.dead_lettered(B.prefix, "not_rds", "not an RDS file", now=1.0)
    done = WaitReport("bf", tracker, [CountryFileCheck("de", 1, 7, 0)])
    assert done.exit_code == EXIT_DEAD_LETTERED
    assert done.to_dict()["dead_letters"] == [{"run_path": B.prefix, "reason": "not_rds", "message": "not an RDS file"}]
    assert any(title.startswith("dead-lettered runs") for title, _, _ in done.tables())


def test_pending_runs_or_a_lagging_country_file_at_the_timeout_are_the_timeout_code():
    tracker = Tracker([A, B], now=0.0)
    tracker.summarised(A.prefix, "created", None, now=1.0)
    pending = WaitReport("bf", tracker, timed_out=True)
    assert pending.exit_code == EXIT_TIMED_OUT and pending.to_dict()["pending_runs"] == [B.prefix]
    lagging = report(country_files=[CountryFileCheck("de", 2, 7, 1, [B.prefix])], timed_out=True)
    assert lagging.exit_code == EXIT_TIMED_OUT
    assert ["de", 7, 2, "no: 1 missing", B.prefix] in lagging.tables()[-1][2]


def test_a_timeout_outranks_dead_letters():
    tracker = Tracker([A, B], now=0.0)
    tracker.dead_lettered(A.prefix, "not_rds", "bad", now=1.0)
    assert WaitReport("bf", tracker, timed_out=True).exit_code == EXIT_TIMED_OUT
