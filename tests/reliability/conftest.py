"""Fixtures of the reliability suite, and the table of figures it prints at the end of the session."""

from __future__ import annotations

from pathlib import Path

import pytest
from backfill_kit import EventTap, Figure, Roles, environment
from faulty_proxy import FaultyProxy

from local_stack.fixtures import RunSpec, generate_runs

#: Where the scenarios' figures are gathered during the session.
FIGURES = pytest.StashKey[list[Figure]]()
#: Size of the padding of slow runs: a 24 MB OutputCollect.RDS, about a second per run here.
PAD_MB = 12


class FigureBook:
    """Collects one Figure per scenario; the session prints them all."""

    def __init__(self, config: pytest.Config) -> None:
        self.rows = config.stash.setdefault(FIGURES, [])

    def add(self, figure: Figure) -> Figure:
        self.rows.append(figure)
        return figure


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> FigureBook:
    return FigureBook(request.config)


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:  # noqa: ANN001
    rows = config.stash.get(FIGURES, [])
    if not rows:
        return
    header = ["scenario", "runs", "lost", "duplicated", "corrupt", "dead-lettered", "retries", "seconds"]
    table = [
        [f.scenario, f.runs, f.lost, f.duplicated, f.corrupt, sum(f.dead_lettered.values()), f.retries, f.seconds]
        for f in rows
    ]
    cells = [header] + [[str(v) if not isinstance(v, float) else f"{v:.1f}" for v in row] for row in table]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    terminalreporter.section("reliability figures")
    for i, row in enumerate(cells):
        terminalreporter.write_line(
            "  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths, strict=True)))
        )
        if i == 0:
            continue
        figure = rows[i - 1]
        if figure.dead_lettered:
            reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(figure.dead_lettered.items()))
            terminalreporter.write_line(f"    dead-letter reasons: {reasons}")
        if figure.note:
            terminalreporter.write_line(f"    {figure.note}")


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Template runs copied into the bucket under many names: ``small`` (instant) and ``slow`` (padded)."""
    root = tmp_path_factory.mktemp("templates")
    dirs = {"small": root / "small", "slow": root / "slow"}
    generate_runs([RunSpec(dir=str(dirs["small"]), seed=7), RunSpec(dir=str(dirs["slow"]), seed=8, pad_mb=PAD_MB)])
    return dirs


@pytest.fixture
def rel_settings(settings):
    """The test's settings with the shortest lease Pub/Sub allows, so a dead worker's run returns soon."""
    return settings.replace(ack_deadline_seconds=10, coalesce_seconds=0.3)


@pytest.fixture
def rel_topology(rel_settings, bus, storage):
    from mmm_backfill.topology import setup_topology

    return setup_topology(rel_settings, bus, storage)


@pytest.fixture
def proxy(gcs_emulator):
    """A relay with no faults between the role processes and fake-gcs-server: a journal of every write."""
    with FaultyProxy(gcs_emulator.url) as relay:
        yield relay


@pytest.fixture
def run_tmp(tmp_path) -> Path:
    """The TMPDIR of the test's role processes, to find their run folders."""
    path = tmp_path / "tmpdir"
    path.mkdir()
    return path


@pytest.fixture
def roles(emulator_env, rel_settings, proxy, run_tmp, tmp_path):
    """Role processes on the test's topics and bucket, storage through ``proxy``; all stopped at the end."""
    started = Roles(environment(emulator_env, rel_settings, proxy.url, run_tmp), tmp_path / "logs")
    yield started
    started.stop_all()


@pytest.fixture
def tap(bus, rel_settings, rel_topology) -> EventTap:
    return EventTap(bus, rel_settings)
