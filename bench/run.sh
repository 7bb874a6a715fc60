#!/usr/bin/env bash
# Run the benchmark: install the baseline's R packages (Debian's r-cran-jsonlite, r-cran-dplyr)
# when missing, then `python -m bench` with the given arguments (e.g. --quick, --json, --runs 32).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! Rscript --vanilla -e 'quit(status = !all(c("jsonlite", "dplyr") %in% rownames(installed.packages())))' \
    >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends r-cran-jsonlite r-cran-dplyr >/dev/null
fi
exec .venv/bin/python -m bench "$@"
