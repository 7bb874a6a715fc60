"""Write behind: one job at a time, in order, in the background or inline; a failing job stops nothing."""

import threading

from worker.write_behind import WriteBehind


def test_each_job_starts_only_after_the_one_before_ended():
    behind, events, first_may_end = WriteBehind(True), [], threading.Event()

    def first() -> None:
        events.append("first started")
        first_may_end.wait(10)
        events.append("first ended")

    behind.submit(first)
    threading.Timer(0.2, first_may_end.set).start()
    behind.submit(lambda: events.append("second"))  # waits for the first
    behind.wait()
    assert events == ["first started", "first ended", "second"]


def test_jobs_run_in_the_background_when_behind():
    behind, seen = WriteBehind(True), []
    behind.submit(lambda: seen.append(threading.current_thread().name))
    behind.wait()
    assert seen == ["write-behind"]


def test_jobs_run_inline_when_not_behind():
    behind, seen = WriteBehind(False), []
    behind.submit(lambda: seen.append(threading.current_thread()))
    assert seen == [threading.current_thread()]


def test_a_failing_job_is_logged_and_the_next_one_runs(caplog):
    behind, seen = WriteBehind(True), []
    behind.submit(lambda: 1 / 0)
    behind.submit(lambda: seen.append("next"))
    behind.wait()
    assert seen == ["next"] and "writing a summary behind failed" in caplog.text
