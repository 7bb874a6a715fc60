"""checkov finds nothing left unexplained in the Dockerfile, the rendered k8s overlays and terraform/.

A finding that does not apply is skipped in the file it applies to, with its reason: a
``checkov:skip=ID: reason`` comment in terraform, a ``checkov.io/skipN: ID=reason`` annotation in k8s.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_manifests import RENDERED

REPO = Path(__file__).resolve().parents[2]
CHECKOV = [sys.executable, "-m", "checkov.main", "--quiet", "--compact", "--skip-download", "-o", "json"]


def run_checkov(*args: str) -> list[dict]:
    done = subprocess.run([*CHECKOV, *args], capture_output=True, text=True, timeout=300, check=False)
    decoder, text, at, reports = json.JSONDecoder(), done.stdout, 0, []
    while at < len(text.rstrip()):
        report, at = decoder.raw_decode(text, at + len(text[at:]) - len(text[at:].lstrip()))
        reports += report if isinstance(report, list) else [report]
    assert reports, f"checkov printed no report: {done.stderr[-2000:]}"
    return reports


@pytest.fixture(scope="module")
def rendered_overlays(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("rendered")
    for name, docs in RENDERED.items():
        (folder / f"{name.replace('/', '-')}.yaml").write_text(yaml.safe_dump_all(docs))
    return folder


def failures(reports: list[dict]) -> list[str]:
    return sorted(
        {f"{f['check_id']} {f['resource']} ({f['check_name']})" for r in reports for f in r["results"]["failed_checks"]}
    )


def test_dockerfile_passes():
    reports = run_checkov("--framework", "dockerfile", "-f", str(REPO / "Dockerfile"))
    assert failures(reports) == []
    assert sum(r["summary"]["passed"] for r in reports) > 0


def test_rendered_k8s_overlays_pass(rendered_overlays):
    reports = run_checkov("--framework", "kubernetes", "-d", str(rendered_overlays))
    assert failures(reports) == []
    assert sum(r["summary"]["passed"] for r in reports) > 0


def test_terraform_passes():
    reports = run_checkov("--framework", "terraform", "-d", str(REPO / "terraform"))
    assert failures(reports) == []
    assert sum(r["summary"]["passed"] for r in reports) > 0
