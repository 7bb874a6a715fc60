"""requirements.lock pins with hashes what pyproject.toml asks for the image, and the tests run those versions."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
LOCK_TEXT = (REPO / "requirements.lock").read_text()
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def locked() -> dict[str, tuple[str, list[str], list[str]]]:
    """name -> (version, hashes, the packages it is there for: "mmm-backfill (pyproject.toml)", ...)."""
    pins: dict[str, tuple[str, list[str], list[str]]] = {}
    current = None
    for line in LOCK_TEXT.splitlines():
        stripped = line.strip()
        if found := PIN.match(line):
            current = canonicalize_name(found.group(1))
            pins[current] = (found.group(2), [], [])
        elif current and stripped.startswith("--hash="):
            pins[current][1].append(stripped.removeprefix("--hash=").rstrip(" \\"))
        elif current and stripped.startswith("#"):
            pins[current][2].append(stripped.lstrip("# ").removeprefix("via ").strip())
    return pins


LOCKED = locked()
WANTED = [Requirement(r) for r in PYPROJECT["project"]["dependencies"] + PYPROJECT["build-system"]["requires"]]


def test_every_dependency_and_build_requirement_is_pinned_within_its_range():
    for requirement in WANTED:
        name = canonicalize_name(requirement.name)
        assert name in LOCKED, f"{requirement} is not in requirements.lock: run bash scripts/lock.sh"
        version = LOCKED[name][0]
        assert requirement.specifier.contains(version, prereleases=True), f"{name}=={version} is outside {requirement}"


def test_the_lock_holds_no_direct_dependency_that_pyproject_dropped():
    direct = {name for name, (_, _, via) in LOCKED.items() if "mmm-backfill (pyproject.toml)" in via}
    assert direct == {canonicalize_name(Requirement(r).name) for r in PYPROJECT["project"]["dependencies"]}


def test_every_pin_carries_a_sha256_hash():
    for name, (_, hashes, _) in LOCKED.items():
        assert hashes and all(h.startswith("sha256:") for h in hashes), name


def test_rpy2_stays_on_the_series_that_debian_r_4_2_supports():
    assert LOCKED["rpy2"][0].startswith("3.5.")


def test_the_tests_run_the_versions_the_image_installs():
    """scripts/bootstrap.sh installs with the lock as constraints; a drift here means the venv is stale."""
    for requirement in PYPROJECT["project"]["dependencies"]:
        name = canonicalize_name(Requirement(requirement).name)
        assert importlib.metadata.version(name) == LOCKED[name][0], f"{name}: run bash scripts/bootstrap.sh"
