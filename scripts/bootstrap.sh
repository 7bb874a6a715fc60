#!/usr/bin/env bash
# Install what mmm-backfill needs on a fresh Debian 12 machine (run as root): R from Debian,
# podman (runc) and debootstrap for the image smoke test, a virtualenv in .venv with the package
# and its test tools at the versions of requirements.lock (the image's). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

# R for the workers; jsonlite and dplyr only for the benchmark's reproduction of the old method.
if ! command -v Rscript >/dev/null 2>&1 \
    || ! Rscript --vanilla -e 'suppressMessages({library(jsonlite); library(dplyr)})' >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    r-base-core r-cran-jsonlite r-cran-dplyr >/dev/null
fi
# The image smoke test (scripts/smoke_image.py) builds and runs the image with podman on runc.
if ! command -v podman >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman runc debootstrap >/dev/null
fi
if ! command -v java >/dev/null 2>&1 || ! command -v gcloud >/dev/null 2>&1; then
  echo "note: the Pub/Sub emulator needs gcloud (with the beta and pubsub-emulator components) and Java" >&2
fi
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# The image's versions as constraints (hashes dropped: pip cannot hash an editable install).
grep -v -- '--hash' requirements.lock | sed 's/ \\$//' > .venv/lock-constraints.txt
.venv/bin/python -m pip install -q -c .venv/lock-constraints.txt -e '.[test]'
