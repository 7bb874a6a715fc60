"""``mmm-backfill summarize`` as a user runs it: a subprocess with exit codes and one-line errors."""

import json
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "mmm_backfill"]


def run(*args):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120)


def test_summarize_run_dir_writes_json_to_stdout(generated_runs):
    result = run("summarize", "--run-dir", str(generated_runs["standard"]))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["revision"], summary["country"], summary["timestamp"]) == ("gen", "xx", "standard")


def test_summarize_files_with_ids_writes_output_file(generated_runs, tmp_path):
    out = tmp_path / "s.json"
    run_dir = generated_runs["standard"]
    result = run(
        "summarize",
        "--output-collect",
        str(run_dir / "OutputCollect.RDS"),
        "--input-collect",
        str(run_dir / "InputCollect.RDS"),
        "--country",
        "de",
        "--revision",
        "r9",
        "--timestamp",
        "t9",
        "--output",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    summary = json.loads(out.read_text())
    assert summary["country"] == "de" and summary["input_metadata"]["dep_var"] == "revenue"


def test_bad_file_exits_non_zero_with_one_line_naming_the_file(tmp_path):
    bad = tmp_path / "robyn" / "r1" / "de" / "t1"
    bad.mkdir(parents=True)
    (bad / "OutputCollect.RDS").write_bytes(b"not an rds at all")
    result = run("summarize", "--run-dir", str(bad))
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "OutputCollect.RDS" in lines[0] and "not_rds" in lines[0]


def test_run_dir_outside_the_layout_is_refused(tmp_path):
    result = run("summarize", "--run-dir", str(tmp_path))
    assert result.returncode == 1 and "invalid_run_path" in result.stderr


def test_missing_output_collect_is_reported(tmp_path):
    empty = tmp_path / "robyn" / "r1" / "de" / "t1"
    empty.mkdir(parents=True)
    result = run("summarize", "--run-dir", str(empty))
    assert result.returncode == 1 and "OutputCollect.RDS" in result.stderr


@pytest.mark.parametrize("args", [[], ["--output-collect", "x.RDS"]])
def test_incomplete_arguments_are_a_usage_error(args):
    assert run("summarize", *args).returncode == 2


def test_replay_help_says_how_long_a_dead_letter_is_kept_and_what_becomes_of_its_run():
    from mmm_backfill.topology import DEAD_LETTER_RETENTION_SECONDS

    text = " ".join(run("replay", "--help").stdout.split())
    assert f"kept {DEAD_LETTER_RETENTION_SECONDS // 86400} days after it was dead-lettered" in text
    assert "missing in `status`" in text and "the next `enqueue` requests it again" in text
