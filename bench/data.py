"""Benchmark data: a few Robyn-sized template runs made once with R, then linked into preload folders.

fake-gcs-server preloads ``DIR/<bucket>/<object path>``; every bucket of a measurement is laid out
there before its server starts. Big files are hard links to the templates (a copy where linking
fails), so seeding N runs costs no R time and no disk time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from local_stack.fixtures import RunSpec, generate_runs
from mmm_backfill.runpath import (
    BEST_MODEL_ID,
    INPUT_COLLECT,
    OUTPUT_COLLECT,
    RUN_SUMMARY_NAME,
    RUNS_ROOT,
    TIMINGS,
)

#: Bump when the template recipe changes, so cached templates are made again.
TEMPLATE_VERSION = 2
#: Templates made per size; runs cycle through them.
TEMPLATES = 2
#: make_runs.R's output holds a closure whose environment captures the padding matrix, so the
#: matrix is serialised twice: a file is about 2 x pad_mb MB.
PAD_FACTOR = 2
RUN_FILES = (OUTPUT_COLLECT, INPUT_COLLECT, BEST_MODEL_ID, TIMINGS)
REVISIONS = ("r100", "r101")
COUNTRIES = ("de", "fr", "us")


def default_cache_dir() -> Path:
    return Path(os.environ.get("MMM_BENCH_CACHE", Path(tempfile.gettempdir()) / "mmm-backfill-bench-cache"))


def template_runs(cache_dir: Path, size_mb: int) -> list[Path]:
    """Template run folders of about ``size_mb`` MB each, made with one Rscript call when missing.

    Each lies under ``.../robyn/tpl/xx/tN`` so ``mmm-backfill summarize --run-dir`` accepts it.
    """
    root = cache_dir / f"v{TEMPLATE_VERSION}-{size_mb}mb"
    dirs = [root / RUNS_ROOT / "tpl" / "xx" / f"t{i}" for i in range(TEMPLATES)]
    if all((d / OUTPUT_COLLECT).is_file() for d in dirs):
        return dirs
    cache_dir.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix="building-", dir=cache_dir))
    specs = [
        RunSpec(
            dir=str(building / RUNS_ROOT / "tpl" / "xx" / f"t{i}"),
            models=(120, 60)[i % 2],
            fronts=(3, 2)[i % 2],
            paid_media=5,
            pad_mb=max(0, round(size_mb / PAD_FACTOR)),
            seed=100 + i,
        )
        for i in range(TEMPLATES)
    ]
    generate_runs(specs)
    shutil.rmtree(root, ignore_errors=True)
    os.replace(building, root)
    return dirs


def template_summary(cache_dir: Path, template: Path) -> dict:
    """A real ``model_summary.json`` of ``template``, made by ``mmm-backfill summarize`` (cached)."""
    path = template.parent / f"{template.name}.summary.json"
    if not path.is_file():
        subprocess.run(
            [sys.executable, "-m", "mmm_backfill", "summarize", "--run-dir", str(template), "--output", str(path)],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return json.loads(path.read_text())


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def run_prefix(i: int) -> str:
    """Run folder of the i-th benchmark run, spread over revisions and countries."""
    return f"{RUNS_ROOT}/{REVISIONS[i % 2]}/{COUNTRIES[(i // 2) % 3]}/{1101 + i // 1000:04d}_{i:06d}"


def lay_out_runs(bucket_dir: Path, count: int, templates: list[Path]) -> int:
    """``count`` runs whose files are links to ``templates``; returns the bytes of one pass of OutputCollect."""
    total = 0
    for i in range(count):
        template = templates[i % len(templates)]
        folder = bucket_dir / run_prefix(i)
        folder.mkdir(parents=True, exist_ok=True)
        for name in RUN_FILES:
            src = template / name
            if src.is_file():
                _link(src, folder / name)
        total += (template / OUTPUT_COLLECT).stat().st_size
    return total


#: Placeholder content for producer buckets: a valid RDS header is all a listing needs.
PLACEHOLDER = b"X\n"


def producer_run_prefix(i: int) -> str:
    """100,000 runs over 5 revisions x 20 countries (1,000 per folder)."""
    return f"{RUNS_ROOT}/r{100 + i % 5}/c{(i // 5) % 20:02d}/{i // 100:04d}_{i:06d}"


def lay_out_producer(bucket_dir: Path, runs: int, summarised_every: int = 3) -> dict[str, int]:
    """Tiny placeholder runs; every ``summarised_every``-th one already has a summary."""
    objects = summarised = 0
    for i in range(runs):
        folder = bucket_dir / producer_run_prefix(i)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / OUTPUT_COLLECT).write_bytes(PLACEHOLDER)
        objects += 1
        if i % summarised_every == 0:
            (folder / RUN_SUMMARY_NAME).write_bytes(b"{}\n")
            objects += 1
            summarised += 1
    return {"runs": runs, "objects": objects, "summarised": summarised, "missing": runs - summarised}


def lay_out_aggregator(bucket_dir: Path, runs: int, country: str, summary: dict) -> list[str]:
    """``runs`` summarised runs of one country (summaries patched from a real one); returns run paths."""
    paths = []
    for i in range(runs):
        revision, timestamp = REVISIONS[i % 2], f"{1101 + i // 1000:04d}_{i:06d}"
        prefix = f"{RUNS_ROOT}/{revision}/{country}/{timestamp}"
        folder = bucket_dir / prefix
        folder.mkdir(parents=True, exist_ok=True)
        (folder / OUTPUT_COLLECT).write_bytes(PLACEHOLDER)
        doc = {**summary, "country": country, "revision": revision, "timestamp": timestamp}
        (folder / RUN_SUMMARY_NAME).write_text(json.dumps(doc, indent=2))
        paths.append(prefix)
    return paths


#: Summary states of the refresh scan's bucket, cycled through run by run.
REFRESH_STATES = ("missing", "legacy", "outdated", "current")


def metadata_sidecar(bucket_dir: Path) -> Path:
    """Custom metadata of a lite-server bucket's objects: ``DIR/<bucket>.metadata.json`` beside it."""
    return bucket_dir.parent / f"{bucket_dir.name}.metadata.json"


def lay_out_refresh_scan(bucket_dir: Path, runs: int) -> dict[str, Any]:
    """Placeholder runs whose summaries cycle through missing, legacy, outdated and current.

    The state lives in custom metadata, which the lite server reads from ``metadata_sidecar``.
    """
    from mmm_backfill.summary_state import summary_metadata

    metadata: dict[str, dict[str, str]] = {}
    by_state = dict.fromkeys(REFRESH_STATES, 0)
    for i in range(runs):
        prefix = producer_run_prefix(i)
        folder = bucket_dir / prefix
        folder.mkdir(parents=True, exist_ok=True)
        (folder / OUTPUT_COLLECT).write_bytes(PLACEHOLDER)
        state = REFRESH_STATES[i % len(REFRESH_STATES)]
        by_state[state] += 1
        if state == "missing":
            continue
        (folder / RUN_SUMMARY_NAME).write_bytes(b"{}\n")
        if state != "legacy":
            old = summary_metadata(generator_version="0.0.1") if state == "outdated" else summary_metadata()
            metadata[f"{prefix}/{RUN_SUMMARY_NAME}"] = old
    metadata_sidecar(bucket_dir).write_text(json.dumps(metadata))
    objects = runs + runs - by_state["missing"]
    return {"runs": runs, "objects": objects, "states": by_state}


def place_legacy_summaries(bucket_dir: Path, count: int) -> None:
    """A legacy summary (no mmm-backfill metadata) in each of the first ``count`` benchmark runs."""
    from local_stack.seed import legacy_summary

    for i in range(count):
        revision, country, timestamp = run_prefix(i).split("/")[1:]
        text = json.dumps(legacy_summary(revision, country, timestamp), indent=2)
        (bucket_dir / run_prefix(i) / RUN_SUMMARY_NAME).write_text(text)
