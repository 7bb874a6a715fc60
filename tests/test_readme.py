"""The README's first lines are the newcomer's two commands; CI must run the second one."""

import subprocess
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


def layout_folders() -> list[str]:
    """The folders the README's "Layout" tree names, as paths (two spaces of indent per level)."""
    text = (REPO / "README.md").read_text().split("\n## Layout\n", 1)[1]
    block = text.split("```text\n", 1)[1].split("```", 1)[0]
    parents: list[str] = []
    found = []
    for line in block.splitlines():
        name = line.split()[0]
        depth = (len(line) - len(line.lstrip())) // 2
        parents = parents[:depth] + [name.rstrip("/")]
        found.append("/".join(parents))
    return found


def tracked_folders() -> set[str]:
    """Top-level folders in git, and every Python subpackage below them (tests excepted: they mirror)."""
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    folders = {f.split("/")[0] for f in files if "/" in f and not f.startswith(".")}
    packages = {str(Path(f).parent) for f in files if f.endswith("/__init__.py") and not f.startswith("tests/")}
    return folders | {p for p in packages if "/" in p}


def test_every_folder_the_layout_names_exists():
    missing = [folder for folder in layout_folders() if not (REPO / folder).is_dir()]
    assert missing == []


def test_the_layout_names_every_top_level_folder_and_subpackage():
    assert tracked_folders() - set(layout_folders()) == set()
