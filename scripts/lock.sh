#!/usr/bin/env bash
# Write requirements.lock: every Python package of the image, pinned with hashes, resolved from
# [project].dependencies and [build-system].requires of pyproject.toml for CPython 3.11 on Linux.
# Run it after changing either list; tests/deploy/test_lock.py fails until the lock agrees again.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/uv ] || .venv/bin/python -m pip install -q 'uv>=0.9,<1'
.venv/bin/python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))' \
  | .venv/bin/uv pip compile pyproject.toml - --quiet --generate-hashes --python-version 3.11 \
      --python-platform x86_64-manylinux_2_28 --custom-compile-command 'bash scripts/lock.sh' \
      -o requirements.lock
