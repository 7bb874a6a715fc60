"""The Dockerfile builds one non-root image with R and the installed project (read statically)."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, with line continuations joined and comments dropped."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    found = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), " ".join(rest.split())))
    return found


def stages(parsed: list[tuple[str, str]]) -> list[dict]:
    """Each stage: its base image (global ARG defaults substituted), name and instructions."""
    args: dict[str, str] = {}
    result: list[dict] = []
    for keyword, rest in parsed:
        if keyword == "ARG" and not result and "=" in rest:
            name, _, value = rest.partition("=")
            args[name] = value
        elif keyword == "FROM":
            image, _, name = rest.partition(" AS ")
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
            result.append({"image": image, "name": name.strip() or None, "steps": []})
        elif result:
            result[-1]["steps"].append((keyword, rest))
    return result


STAGES = stages(instructions((REPO / "Dockerfile").read_text()))
FINAL = STAGES[-1]


def steps(stage: dict, keyword: str) -> list[str]:
    return [rest for k, rest in stage["steps"] if k == keyword]


def test_is_multi_stage_and_the_final_stage_copies_from_the_builder():
    assert len(STAGES) >= 2
    builders = {s["name"] for s in STAGES[:-1]}
    assert any(re.search(r"--from=(\S+)", c).group(1) in builders for c in steps(FINAL, "COPY") if "--from=" in c)


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s["name"] or "final")
def test_base_images_are_pinned_python_3_11_on_bookworm(stage):
    name, _, tag = stage["image"].partition(":")
    assert tag and tag != "latest" and "@" not in name, stage["image"]
    assert name == "python" and re.fullmatch(r"3\.11(\.\d+)?-slim-bookworm", tag), stage["image"]


def test_final_stage_installs_base_r_only():
    run = " ".join(steps(FINAL, "RUN"))
    assert "apt-get install" in run and "--no-install-recommends" in run
    assert re.search(r"\br-base-core\b", run)
    assert not re.search(r"\br-base(-dev)?\b(?!-core)", run), "base R only: no r-base / r-base-dev"
    assert "rm -rf /var/lib/apt/lists" in run


def test_runs_as_the_non_root_user_the_manifests_expect():
    users = steps(FINAL, "USER")
    assert users, "no USER in the final stage"
    uid = users[-1].split(":")[0]
    assert uid == "10001"
    assert "--uid 10001" in " ".join(steps(FINAL, "RUN"))


def test_entrypoint_is_the_cli_and_the_default_command_is_help():
    assert json.loads(steps(FINAL, "ENTRYPOINT")[-1]) == ["mmm-backfill"]
    assert json.loads(steps(FINAL, "CMD")[-1]) == ["--help"]


def test_final_environment_logs_json_and_keeps_temp_files_in_tmp():
    env = " ".join(steps(FINAL, "ENV"))
    assert "MMM_BACKFILL_LOG_FORMAT=json" in env
    assert "TMPDIR=/tmp" in env
    assert re.search(r"PATH=/opt/venv/bin:", env)


def test_builder_installs_the_locked_dependencies_by_hash_then_the_project_alone():
    """Nothing is resolved at build time: requirements.lock with --require-hashes, the wheel with --no-deps."""
    builder = STAGES[0]
    copied = {src.rstrip("/") for c in steps(builder, "COPY") for src in c.split()[:-1] if not src.startswith("--")}
    packages = {p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert {"requirements.lock", "pyproject.toml", PYPROJECT["project"]["readme"], *packages} <= copied
    commands = [c.strip() for run in steps(builder, "RUN") for c in run.split("&&")]
    pip = [c for c in commands if re.search(r"pip (install|wheel)\b", c)]
    locked = [c for c in pip if "-r requirements.lock" in c]
    assert len(locked) == 1 and "--require-hashes" in locked[0], locked
    assert all("--no-deps" in c for c in pip if c not in locked), "only the lock may bring dependencies"
    assert any(re.search(r"pip install --no-deps \S*mmm_backfill\S*\.whl$", c) for c in commands)
    assert any(c.endswith("pip check") for c in commands), "the lock must satisfy the project's metadata"
    assert "/opt/venv" in " ".join(steps(FINAL, "COPY"))


def test_final_environment_runs_in_utc():
    assert re.search(r"\bTZ=UTC\b", " ".join(steps(FINAL, "ENV")))


def test_dockerignore_keeps_out_the_virtualenv_and_git_but_not_what_is_copied():
    patterns = [
        line.strip() for line in (REPO / ".dockerignore").read_text().splitlines() if line.strip()[:1] not in ("", "#")
    ]
    assert ".venv" in patterns and ".git" in patterns

    def ignored(path: str) -> bool:
        return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path.split("/")[0], p) for p in patterns)

    for stage in STAGES:
        for copy in steps(stage, "COPY"):
            if "--from=" not in copy:
                for src in copy.split()[:-1]:
                    assert not ignored(src.rstrip("/")), f"{src} is copied but excluded by .dockerignore"
