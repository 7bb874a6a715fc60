"""``python -m bench``: measure the backfill against the sequential method, the floor and the targets.

Everything runs on local emulators the benchmark starts on free loopback ports, and every
measurement gets its own project (topics) and bucket. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

from rich.console import Console

from bench import report
from bench.data import default_cache_dir, lay_out_runs, template_runs, template_summary
from bench.env import ensure_r_packages, machine, make_workdir, rscript, start_gcs, start_pubsub

SECTIONS = ("baseline", "floor", "pool", "producer", "aggregator", "refresh", "check", "wait", "latency", "drain")
QUICK = {
    "repeats": 1,
    "runs": 4,
    "size_mb": 4,
    "producer_runs": 2000,
    "producer_fake_gcs_runs": 2000,
    "producer_repeats": 1,
    "publish": 2000,
    "events": 100,
    "refresh_scan_runs": 2000,
    "refresh_runs": 2,
    "wait_runs": 1000,
    "latency_runs": 4,
}
DEFAULTS = {
    "repeats": 2,
    "runs": 24,
    "size_mb": 40,
    "producer_runs": 100_000,
    "producer_fake_gcs_runs": 5000,
    "producer_repeats": 2,
    "publish": 100_000,
    "events": 1000,
    "refresh_scan_runs": 100_000,
    "refresh_runs": 8,
    "wait_runs": 10_000,
    "latency_runs": 24,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, help=f"runs for baseline, floor and pool (default {DEFAULTS['runs']})")
    p.add_argument("--size-mb", type=int, help=f"size of OutputCollect.RDS in MB (default {DEFAULTS['size_mb']})")
    p.add_argument("--workers", default="1,2", help="pool sizes to measure, comma-separated (default 1,2)")
    p.add_argument("--repeats", type=int, help="rounds of baseline/floor/pool; the best counts (default 2)")
    p.add_argument("--producer-runs", type=int, help="runs in the producer's bucket (default 100000)")
    p.add_argument(
        "--producer-fake-gcs-runs",
        type=int,
        help="runs for the producer comparison on fake-gcs-server too (0: skip; default 5000)",
    )
    p.add_argument("--producer-repeats", type=int, help="bare/dry-run pairs; the fastest of each counts")
    p.add_argument("--publish", type=int, help="publish at most this many requests (0: skip; default 100000)")
    p.add_argument("--events", type=int, help="completion events for the aggregator and its restart (default 1000)")
    p.add_argument("--refresh-scan-runs", type=int, help="mixed-state runs for the refresh scan (default 100000)")
    p.add_argument("--refresh-runs", type=int, help="runs created and refreshed for the per-run cost (default 8)")
    p.add_argument("--wait-runs", type=int, help="runs whose completion `enqueue --wait` follows (default 10000)")
    p.add_argument("--latency-runs", type=int, help="runs per latency measurement (default 24)")
    p.add_argument("--shaper-delay-ms", type=float, default=30.0, help="latency: delay of each storage request")
    p.add_argument("--shaper-rate-mbps", type=float, default=100.0, help="latency: MB/s per storage connection")
    p.add_argument(
        "--latency-paths",
        default="sequential,prefetch",
        help="latency: worker code paths to compare, of sequential, concurrent, unsliced, prefetch (bench/latency.py)",
    )
    p.add_argument(
        "--no-latency-spread", dest="latency_spread", action="store_false", help="latency: skip the 2-process spread"
    )
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"subset of {','.join(SECTIONS)}")
    p.add_argument("--quick", action="store_true", help="few small runs, 2,000-run producer bucket, 100 events")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
    p.add_argument("--work-dir", help="keep data and logs here (default: a temp folder, removed)")
    p.add_argument("--cache-dir", help="where generated template runs are kept between runs")
    args = p.parse_args(argv)
    preset = QUICK if args.quick else DEFAULTS
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.workers = sorted({int(w) for w in args.workers.split(",") if w.strip()})
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    args.latency_paths = [s.strip() for s in args.latency_paths.split(",") if s.strip()]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections {sorted(unknown)}")
    return args


class Bench:
    def __init__(self, args: argparse.Namespace, console: Console) -> None:
        self.args, self.console = args, console
        self.results: dict[str, Any] = {"errors": {}}
        self.uid = uuid.uuid4().hex[:6]

    def step(self, name: str, fn, *fn_args):  # noqa: ANN001, ANN202
        """Run one section; a failure is recorded and the others still run."""
        self.console.log(f"[bold]{name}[/bold] ...")
        t = time.perf_counter()
        try:
            value = fn(*fn_args)
        except Exception as exc:  # noqa: BLE001 - reported in the results
            self.results["errors"][name] = f"{type(exc).__name__}: {exc}"
            self.console.log(f"[red]{name} failed[/red]: {exc}\n{traceback.format_exc()}")
            return None
        self.console.log(f"{name} done in {time.perf_counter() - t:.1f}s")
        return value

    def bucket(self, role: str) -> str:
        return f"bench-{role}-{self.uid}"

    def run(self) -> dict[str, Any]:
        a, r = self.args, self.results
        r["meta"] = machine()
        r["config"] = {k: getattr(a, k) for k in ("runs", "size_mb", "workers", "sections", "quick")} | {
            k: getattr(a, k) for k in DEFAULTS if k not in ("runs", "size_mb")
        }
        if "baseline" in a.sections:
            ensure_r_packages()
        cache = Path(a.cache_dir) if a.cache_dir else default_cache_dir()
        workdir = make_workdir(a.work_dir)
        r["meta"]["work_dir"] = str(workdir)
        t = time.perf_counter()
        templates = template_runs(cache, a.size_mb)
        r["data"] = {
            "template_seconds": round(time.perf_counter() - t, 2),
            "output_collect_mb": [round((d / "OutputCollect.RDS").stat().st_size / 1e6, 1) for d in templates],
            "runs": a.runs,
        }
        pubsub = start_pubsub(workdir)
        try:
            if {"baseline", "floor", "pool"} & set(a.sections):
                self.run_files_sections(workdir, templates)
            if "producer" in a.sections:
                r["producer"] = self.step("producer", self.producer, workdir)
            if "aggregator" in a.sections:
                from bench import aggregator

                summary = template_summary(cache, templates[0])
                r["aggregator"] = self.step("aggregator", aggregator.measure, workdir, a.events, summary)
            if "refresh" in a.sections:
                r["refresh"] = self.step("refresh", self.refresh, workdir, templates)
            if "check" in a.sections:
                from bench import check

                r["check"] = self.step("check", check.measure, templates)
            if "wait" in a.sections:
                from bench import wait

                r["wait"] = self.step("wait", wait.measure, workdir, a.wait_runs)
            if "drain" in a.sections:
                from bench import drain

                r["drain"] = self.step("drain", drain.measure, workdir, a.events)
            if "latency" in a.sections:
                from bench.latency import Latency

                r["latency"] = self.step("latency", Latency(a, workdir, templates, self.step).measure)
        finally:
            pubsub.stop()
            if not a.work_dir:
                import shutil

                shutil.rmtree(workdir, ignore_errors=True)
        r["targets"] = report.targets(r)
        return r

    def run_files_sections(self, workdir: Path, templates: list[Path]) -> None:
        """Baseline, floor and pools, ``--repeats`` rounds interleaved; the best round of each counts."""
        a, r = self.args, self.results
        data = workdir / "runs-data"
        kinds = (["baseline"] if {"baseline", "floor"} & set(a.sections) else []) + (
            [f"w{w}" for w in a.workers] if "pool" in a.sections else []
        )
        roles = [f"{kind}-r{rep}" for rep in range(a.repeats) for kind in kinds]
        t = time.perf_counter()
        for role in roles:
            lay_out_runs(data / self.bucket(role), a.runs, templates)
        r["data"]["layout_seconds"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        gcs = start_gcs(workdir, "gcs", data)
        r["data"]["preload_seconds"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        os.sync()  # the preload's writes are flushed now, not during the measurements
        r["data"]["sync_seconds"] = round(time.perf_counter() - t, 2)
        r["data"]["preloaded_buckets"] = len(roles)
        os.environ["STORAGE_EMULATOR_HOST"] = gcs.url
        rounds: dict[str, list[dict]] = {}
        try:
            for rep in range(a.repeats):
                for name, value in self.one_round(rep, workdir).items():
                    if value:
                        rounds.setdefault(name, []).append(value)
        finally:
            gcs.stop()
        if "baseline" in rounds:
            r["baseline"] = best(rounds["baseline"], "runs_per_second", max)
        if "floor" in rounds:
            r["floor"] = best(rounds["floor"], "seconds_per_run", min)
        found = {k.split(":")[1]: v for k, v in rounds.items() if k.startswith("pool:")}
        if found:
            r["pool"] = {w: best(v, "runs_per_second", max) for w, v in sorted(found.items())}

    def one_round(self, rep: int, workdir: Path) -> dict[str, dict | None]:
        from mmm_backfill.config import Settings
        from mmm_backfill.storage import Storage

        a = self.args
        out: dict[str, dict | None] = {}
        tag = f" (round {rep + 1}/{a.repeats})"
        if "baseline" in a.sections:
            from bench.baseline import run_baseline

            storage = Storage("bench", self.bucket(f"baseline-r{rep}"))
            out["baseline"] = self.step("baseline" + tag, run_baseline, storage, rscript(), workdir)
        if "floor" in a.sections:
            out["floor"] = self.step("floor" + tag, self.floor, self.bucket(f"baseline-r{rep}"))
        if "pool" not in a.sections:
            return out
        from bench.pool import measure_pool

        for w in a.workers:
            settings = Settings(
                project=f"bench-pool-w{w}-r{rep}-{self.uid}",
                bucket=self.bucket(f"w{w}-r{rep}"),
                retry_min_backoff_seconds=1,
                retry_max_backoff_seconds=5,
            )
            label = f"pool with {w} worker(s){tag}"
            out[f"pool:{w}"] = self.step(label, measure_pool, settings, w, a.runs, workdir, f"pool-w{w}-r{rep}")
        return out

    def floor(self, bucket: str) -> dict:
        out = subprocess.run(
            [sys.executable, "-m", "bench.floor", "--project", "bench", "--bucket", bucket],
            capture_output=True,
            text=True,
            timeout=1800,
            cwd=Path(__file__).resolve().parent.parent,
        )
        if out.returncode != 0:
            raise RuntimeError(f"floor exited {out.returncode}: {out.stderr[-2000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    def producer(self, workdir: Path) -> dict:
        from bench import producer

        a = self.args
        lite = producer.measure_lite(workdir, a.producer_runs, a.producer_repeats, a.publish)
        result = {"lite": lite}
        if a.producer_fake_gcs_runs:
            result["fake_gcs"] = producer.measure_fake_gcs(workdir, a.producer_fake_gcs_runs)
        return result

    def refresh(self, workdir: Path, templates: list[Path]) -> dict:
        from bench import refresh

        a = self.args
        scan = refresh.measure_scan(workdir, a.refresh_scan_runs, a.producer_repeats)
        return {"scan": scan, "per_run": refresh.measure_per_run(workdir, templates, a.refresh_runs)}


def best(rounds: list[dict], key: str, pick) -> dict:  # noqa: ANN001 - min or max
    """The round with the best ``key``, with every round's value beside it (noisy machine)."""
    scored = [x for x in rounds if x.get(key) is not None]
    chosen = dict(pick(scored, key=lambda x: x[key]) if scored else rounds[0])
    chosen["rounds"] = [x.get(key) for x in rounds]
    return chosen


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    console = Console(stderr=True)
    started = time.perf_counter()
    results = Bench(args, console).run()
    results["meta"]["bench_seconds"] = round(time.perf_counter() - started, 1)
    if args.json:
        sys.stdout.write(json.dumps(results, indent=2, default=str) + "\n")
    else:
        report.render(results, Console(width=None if sys.stdout.isatty() else 150))
    sys.exit(1 if results["errors"] else 0)
