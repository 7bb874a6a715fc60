"""The ``mmm-backfill`` command: parses arguments and calls the library; no logic lives here."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import click

from mmm_backfill import __version__
from mmm_backfill.config import ProjectNotFound, Settings
from mmm_backfill.errors import BackfillError
from mmm_backfill.logs import setup_logging
from mmm_backfill.runpath import INPUT_COLLECT, OUTPUT_COLLECT, RunPath, run_path_from_local_dir


def _fail(exc: BackfillError, where: str = "") -> None:
    click.echo(f"error [{exc.reason}]: {where + ': ' if where else ''}{exc}", err=True)
    sys.exit(1)


@click.group()
@click.version_option(__version__, prog_name="mmm-backfill")
@click.option("--log-format", type=click.Choice(["auto", "json", "text"]), default=None, help="Log line format.")
@click.pass_context
def cli(ctx: click.Context, log_format: str | None) -> None:
    """Backfill Robyn model summaries with a queue-based worker pool."""
    settings = Settings.load({"log_format": log_format})
    setup_logging(settings.log_format)
    ctx.obj = settings


def _write_json(document: Any, output: str | None) -> None:
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    if output is None:
        sys.stdout.write(text)
        return
    with open(output, "w", encoding="utf-8") as fh:
        fh.write(text)


@cli.command()
@click.option("--run-dir", type=click.Path(file_okay=False), help="Local run folder ending in robyn/REV/COUNTRY/TS.")
@click.option("--output-collect", type=click.Path(dir_okay=False), help="Path of OutputCollect.RDS.")
@click.option("--input-collect", type=click.Path(dir_okay=False), help="Path of InputCollect.RDS (optional).")
@click.option("--country", help="Country of the run (with --output-collect).")
@click.option("--revision", help="Revision of the run (with --output-collect).")
@click.option("--timestamp", help="Timestamp of the run (with --output-collect).")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write the JSON here instead of stdout.")
@click.pass_obj
def summarize(settings: Settings, run_dir, output_collect, input_collect, country, revision, timestamp, output) -> None:
    """Build one run's model_summary.json from its local files."""
    from worker.summarize.extract import files_in_dir, summarize_files

    try:
        if run_dir:
            if output_collect or input_collect:
                raise click.UsageError("give either --run-dir or --output-collect, not both")
            run = run_path_from_local_dir(run_dir)
            files = files_in_dir(run_dir)
        else:
            if not (output_collect and country and revision and timestamp):
                raise click.UsageError("give --run-dir, or --output-collect with --country, --revision, --timestamp")
            run = RunPath(revision=revision, country=country, timestamp=timestamp)
            files = {OUTPUT_COLLECT: output_collect}
            if input_collect:
                files[INPUT_COLLECT] = input_collect
        _write_json(summarize_files(run, files, limits=settings.rds_limits), output)
    except BackfillError as exc:
        _fail(exc, run_dir or "")
    except OSError as exc:
        click.echo(f"error [io]: {exc.filename or ''}: {exc.strerror or exc}", err=True)
        sys.exit(1)


def _finish(report: Any, as_json: bool, stop: Any) -> None:
    """Print the report; after SIGTERM/SIGINT say so on stderr and exit 128 + the signal."""
    from command_line.render import render

    render(report, as_json)
    if stop.requested:
        click.echo(
            f"interrupted by {stop.name}: stopped after the batch in hand; the report above is what was done", err=True
        )
        sys.exit(stop.exit_code)


def _settings(settings: Settings, **overrides: Any) -> Settings:
    """The group's settings with this command's flags applied and the project resolved."""
    try:
        return settings.replace(**overrides).with_resolved_project()
    except ProjectNotFound as exc:
        raise click.UsageError(str(exc)) from None


def _storage(settings: Settings):  # noqa: ANN202
    from mmm_backfill.storage import Storage

    return Storage(settings.project, settings.bucket)


@contextlib.contextmanager
def _open_bus(settings: Settings, needed: bool = True) -> Iterator[Any]:
    """A Bus for the command (None when not ``needed``), closed whatever happens."""
    if not needed:
        yield None
        return
    from mmm_backfill.bus import Bus

    bus = Bus(settings.project)
    try:
        yield bus
    finally:
        bus.close()


project_option = click.option(
    "--project",
    help="Google Cloud project [env MMM_BACKFILL_PROJECT, then GOOGLE_CLOUD_PROJECT, then the credentials' project].",
)
bucket_option = click.option("--bucket", help="Bucket holding robyn/ runs [env MMM_BACKFILL_BUCKET].")
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
revision_option = click.option("--revision", help="Only this revision.")
country_option = click.option("--country", help="Only this country.")


@cli.command()
@project_option
@bucket_option
@json_option
@click.pass_obj
def setup(settings: Settings, project, bucket, as_json) -> None:
    """Create topics, subscriptions (and the bucket on the emulator). Idempotent."""
    from mmm_backfill.stopping import StopRequest
    from mmm_backfill.topology import SetupReport, setup_topology

    settings = _settings(settings, project=project, bucket=bucket)
    with StopRequest() as stop, _open_bus(settings) as bus:
        done = setup_topology(settings, bus, _storage(settings), stop)
    _finish(SetupReport(done, stop.name if stop.requested else None), as_json, stop)


class DurationType(click.ParamType):
    """``--timeout 5h45m``: a duration in seconds (``command_line.durations``)."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        from command_line.durations import parse_duration

        if isinstance(value, int | float):
            return float(value)
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@cli.command()
@project_option
@bucket_option
@revision_option
@country_option
@click.option("--dry-run", is_flag=True, help="Count and list, publish nothing (reports a missing subscription).")
@click.option("--limit", type=click.IntRange(min=1), help="Enqueue at most N runs.")
@click.option(
    "--refresh", is_flag=True, help="Also enqueue runs whose summary is legacy or outdated (replaced, old one kept)."
)
@click.option("--allow-empty", is_flag=True, help="Exit 0 when no run matches (by default that is an error).")
@click.option(
    "--wait",
    is_flag=True,
    help="Follow the backfill until every run is summarised or dead-lettered and every country file holds it.",
)
@click.option(
    "--timeout",
    type=DurationType(),
    help="With --wait: give up after this long from the start, e.g. 20s, 45m, 5h45m "
    "[env MMM_BACKFILL_WAIT_TIMEOUT_SECONDS; default: no limit].",
)
@json_option
@click.pass_obj
def enqueue(
    settings: Settings,
    project,
    bucket,
    revision,
    country,
    dry_run,
    limit,
    refresh,
    allow_empty,
    wait,
    timeout,
    as_json,
) -> None:
    """Publish one summary request per run that lacks a model_summary.json (--refresh: or has a wrong one).

    Refuses (exit 1) before publishing when the workers' subscription is not attached to the
    request topic (with --wait: also the aggregator's, and the dead-letter topic), since Pub/Sub
    would drop every request.

    \b
    Exit codes:
      0    published (with --wait: every run summarised, every country file holds it)
      1    error: nothing to receive the requests (a dry run reports it too), no run
           found, a publish not confirmed
      3    with --wait: some runs were dead-lettered (the report names each run and reason)
      4    with --wait: timed out (the report names what is still pending)
      130  stopped by SIGINT, 143 by SIGTERM (the report says what was done)
    """
    from mmm_backfill.stopping import StopRequest
    from producer.enqueue import enqueue as run_enqueue
    from producer.wait import enqueue_and_wait

    started = time.monotonic()
    if wait and dry_run:
        raise click.UsageError("--wait follows what enqueue publishes; a dry run publishes nothing")
    if timeout is not None and not wait:
        raise click.UsageError("--timeout limits --wait; give both")
    settings = _settings(settings, project=project, bucket=bucket, wait_timeout_seconds=timeout)
    filters = {"revision": revision, "country": country, "limit": limit, "refresh": refresh, "allow_empty": allow_empty}
    try:
        with StopRequest() as stop, _open_bus(settings) as bus:
            if wait:
                report = enqueue_and_wait(
                    settings, _storage(settings), bus, stop=stop, show_progress=not as_json, started=started, **filters
                )
            else:
                report = run_enqueue(
                    settings, _storage(settings), bus, dry_run=dry_run, show_progress=not as_json, stop=stop, **filters
                )
    except BackfillError as exc:
        _fail(exc)
    _finish(report, as_json, stop)
    if wait:
        sys.exit(report.wait.exit_code)
    if report.delivery_problems:
        from producer.preflight import NotDelivered

        _fail(NotDelivered("; ".join(report.delivery_problems) + " (dry run: a real run would publish nothing)"))


@cli.command()
@project_option
@bucket_option
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes, each with its own embedded R and one run at a time.",
)
@click.option("--metrics-port", type=click.IntRange(min=0), help="Serve /healthz, /readyz, /metrics here (0: off).")
@click.pass_obj
def worker(settings: Settings, project, bucket, processes, metrics_port) -> None:
    """Consume summary requests until SIGTERM/SIGINT."""
    from worker.pool import run_pool

    sys.exit(run_pool(_settings(settings, project=project, bucket=bucket, metrics_port=metrics_port), processes))


@cli.command()
@project_option
@bucket_option
@click.option("--metrics-port", type=click.IntRange(min=0), help="Serve /healthz, /readyz, /metrics here (0: off).")
@click.pass_obj
def aggregator(settings: Settings, project, bucket, metrics_port) -> None:
    """Consume completion events and rebuild country files until SIGTERM/SIGINT."""
    from aggregator.service import run_aggregator

    sys.exit(run_aggregator(_settings(settings, project=project, bucket=bucket, metrics_port=metrics_port)))


@cli.command()
@project_option
@bucket_option
@country_option
@json_option
@click.pass_obj
def aggregate(settings: Settings, project, bucket, country, as_json) -> None:
    """Rebuild country files once (all countries, or --country), then exit."""
    from aggregator.rebuild import aggregate as run_aggregate
    from mmm_backfill.stopping import StopRequest

    settings = _settings(settings, project=project, bucket=bucket)
    try:
        with StopRequest() as stop:
            report = run_aggregate(settings, _storage(settings), country=country, stop=stop)
    except BackfillError as exc:
        _fail(exc)
    _finish(report, as_json, stop)


@cli.command()
@project_option
@bucket_option
@click.option("--limit", type=click.IntRange(min=1), help="Replay at most N dead letters.")
@country_option
@revision_option
@click.option("--dry-run", is_flag=True, help="Show the dead letters and their reasons; replay nothing.")
@json_option
@click.pass_obj
def replay(settings: Settings, project, bucket, limit, country, revision, dry_run, as_json) -> None:
    """Republish the dead letters present at the start (each acked only once its republish is confirmed).

    A run already replayed max_replays times [env MMM_BACKFILL_MAX_REPLAYS, default 3] is left in
    the dead letters and reported as exhausted.

    A dead letter is kept 31 days after it was dead-lettered (the replay subscription's retention,
    the longest Pub/Sub allows; the emulator keeps 7). Then Pub/Sub drops it: its run shows as
    missing in `status`, and the next `enqueue` requests it again.
    """
    from mmm_backfill.stopping import StopRequest
    from producer.replay import replay as run_replay

    settings = _settings(settings, project=project, bucket=bucket)
    with StopRequest() as stop, _open_bus(settings) as bus:
        report = run_replay(settings, bus, limit=limit, country=country, revision=revision, dry_run=dry_run, stop=stop)
    _finish(report, as_json, stop)


@cli.command()
@project_option
@bucket_option
@revision_option
@country_option
@json_option
@click.pass_obj
def status(settings: Settings, project, bucket, revision, country, as_json) -> None:
    """Coverage and summary states per revision and country, and the freshness of country files."""
    from command_line.render import render
    from producer.status import coverage

    settings = _settings(settings, project=project, bucket=bucket)
    try:
        render(coverage(settings, _storage(settings), revision=revision, country=country), as_json)
    except BackfillError as exc:
        _fail(exc)


@cli.command()
@project_option
@bucket_option
@click.option("--runs", type=click.IntRange(min=0), default=0, help="Generate N Robyn-shaped runs with R.")
@click.option(
    "--from",
    "from_dir",
    type=click.Path(file_okay=False, exists=True),
    help="Upload a local folder laid out like the bucket (robyn/REV/COUNTRY/TS/...).",
)
@click.pass_obj
def seed(settings: Settings, project, bucket, runs, from_dir) -> None:
    """Put Robyn runs into the bucket (for local stacks and demos)."""
    from local_stack.seed import seed_generated, upload_tree

    settings = _settings(settings, project=project, bucket=bucket)
    storage = _storage(settings)
    written = upload_tree(storage, from_dir) if from_dir else 0
    written += seed_generated(storage, runs) if runs else 0
    click.echo(f"seeded {written} objects into gs://{settings.bucket}/")


@cli.command()
@click.option(
    "--runs",
    type=click.IntRange(min=0),
    default=24,
    show_default=True,
    help="Generated Robyn-shaped runs over 2 revisions x 3 countries.",
)
@click.option(
    "--seed-from",
    type=click.Path(file_okay=False, exists=True),
    help="Also load a local folder laid out like the bucket (robyn/REV/COUNTRY/TS/...).",
)
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True, help="Worker processes.")
@click.option("--keep", is_flag=True, help="Leave the stack running and print its environment.")
@click.option(
    "--refresh", is_flag=True, help="Seed every run with a legacy summary, then refresh them all (enqueue --refresh)."
)
@json_option
@click.pass_obj
def demo(settings: Settings, runs, seed_from, workers, keep, refresh, as_json) -> None:
    """Run a whole backfill on local emulators and print coverage (the README's first command)."""
    from command_line.render import render
    from local_stack.demo import run_demo

    settings = settings.replace(
        project="mmm-demo",
        bucket="mmm-demo-runs",
        retry_min_backoff_seconds=1,
        retry_max_backoff_seconds=5,
        coalesce_seconds=1.0,
    )
    result = run_demo(settings, runs=runs, workers=workers, seed_from=seed_from, keep=keep, refresh=refresh)
    render(result, as_json)
    sys.exit(0 if result.complete else 1)


def main() -> None:
    cli(prog_name="mmm-backfill")
