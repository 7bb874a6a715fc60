"""The ``mmm-backfill`` command: parses arguments and calls the library; no logic lives here."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from mmm_backfill import __version__
from mmm_backfill.config import Settings
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
    from worker.extract import files_in_dir, summarize_files

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


def main() -> None:
    cli(prog_name="mmm-backfill")
