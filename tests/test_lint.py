"""The code base stays formatted and lint-clean (ruff, configured in pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=REPO, capture_output=True, text=True)


def test_ruff_finds_no_lint_errors():
    result = ruff("check", ".")
    assert result.returncode == 0, result.stdout


def test_code_is_ruff_formatted():
    result = ruff("format", "--check", ".")
    assert result.returncode == 0, result.stdout
