"""The README's first lines are the newcomer's two commands; CI must run the second one."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    lines = (REPO / "README.md").read_text().splitlines()
    start = lines.index("```bash") + 1
    return lines[start : start + 2]


def test_readme_opens_with_the_main_job_and_the_test_command():
    main_job, tests = readme_commands()
    assert "mmm-backfill" in main_job
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command():
    _, tests = readme_commands()
    assert tests in (REPO / ".ci" / "run").read_text().splitlines()
