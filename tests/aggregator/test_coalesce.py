"""Coalescing events per country over a window (pure: a fake clock, no threads)."""

from aggregator.coalesce import Coalescer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(window=2.0):
    clock = Clock()
    return Coalescer(window, clock), clock


def test_nothing_is_due_before_the_window_has_passed():
    coalescer, clock = make()
    coalescer.add("de", 1)
    clock.now += 1.9
    assert coalescer.pop_due() is None


def test_a_country_comes_out_as_one_batch_of_all_its_events_once_due():
    coalescer, clock = make()
    for item in range(5):
        coalescer.add("de", item)
    clock.now += 2.0
    batch = coalescer.pop_due()
    assert (batch.country, batch.items) == ("de", [0, 1, 2, 3, 4])
    assert coalescer.pop_due() is None
    assert len(coalescer) == 0


def test_countries_are_batched_apart_oldest_first():
    coalescer, clock = make()
    coalescer.add("fr", "a")
    clock.now += 0.5
    coalescer.add("de", "b")
    coalescer.add("fr", "c")
    clock.now += 5
    assert [(b.country, b.items) for b in (coalescer.pop_due(), coalescer.pop_due())] == [
        ("fr", ["a", "c"]),
        ("de", ["b"]),
    ]


def test_window_opens_at_the_first_event_so_a_steady_stream_still_flushes():
    coalescer, clock = make(window=1.0)
    coalescer.add("de", 0)
    for item in range(1, 10):
        clock.now += 0.25
        coalescer.add("de", item)
        if (batch := coalescer.pop_due()) is not None:
            break
    assert batch is not None and batch.items == [0, 1, 2, 3, 4]


def test_events_after_a_batch_was_taken_start_a_new_window():
    coalescer, clock = make()
    coalescer.add("de", 1)
    clock.now += 2
    coalescer.pop_due()
    coalescer.add("de", 2)
    assert coalescer.pop_due() is None
    clock.now += 2
    assert coalescer.pop_due().items == [2]


def test_wait_seconds_says_when_the_next_batch_is_due():
    coalescer, clock = make()
    assert coalescer.wait_seconds() is None
    coalescer.add("de", 1)
    clock.now += 0.5
    assert coalescer.wait_seconds() == 1.5
    clock.now += 3
    assert coalescer.wait_seconds() == 0.0


def test_pop_any_ignores_the_window_for_a_stopping_service():
    coalescer, _ = make()
    coalescer.add("de", 1)
    coalescer.add("fr", 2)
    assert {coalescer.pop_any().country, coalescer.pop_any().country} == {"de", "fr"}
    assert coalescer.pop_any() is None


def test_zero_window_hands_out_each_country_at_once():
    coalescer, _ = make(window=0)
    coalescer.add("de", 1)
    assert coalescer.pop_due().items == [1]


def test_a_burst_of_300_events_over_a_second_gives_a_few_batches():
    coalescer, clock = make(window=0.5)
    batches = []
    for item in range(300):
        clock.now += 1 / 300
        coalescer.add("de", item)
        if (batch := coalescer.pop_due()) is not None:
            batches.append(batch)
    clock.now += 1
    batches.append(coalescer.pop_due())
    assert len(batches) <= 3
    assert [i for b in batches for i in b.items] == list(range(300))
