# One image for every role of mmm-backfill (setup, enqueue, worker, aggregator, replay, ...):
# the role is the first argument, e.g. `docker run IMAGE worker --processes 1 --metrics-port 9100`.
# Bookworm's r-base-core is R 4.2, the version rpy2 >=3.5,<3.6 is tested with here.
# Python packages come from requirements.lock only, each checked against its hash (scripts/lock.sh).
# PYTHON_IMAGE may name any Debian bookworm image with python3 3.11 (scripts/image_base.sh builds one
# from Debian's archive where no registry is reachable; scripts/smoke_image.sh uses it).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
# checkov:skip=CKV_DOCKER_7: FROM takes ${PYTHON_IMAGE}, whose default above is a pinned version tag
# checkov:skip=CKV_DOCKER_2: health is served by the roles on --metrics-port (/healthz), probed by k8s; jobs have none

# --- builder: a wheel of the project and a virtualenv with it and its dependencies -------------
FROM ${PYTHON_IMAGE} AS builder

# rpy2's ABI mode needs neither R nor a compiler at build time; R is found at run time. The
# project's one C extension (the RDS stream check, worker/boundary/_rdscheck.c) needs gcc and Python's
# headers here only: the public python image ships the headers, Debian's python3 needs python3-dev.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RPY2_CFFI_MODE=ABI
RUN headers=$(python3 -c 'import os, sysconfig; print(os.path.exists(sysconfig.get_paths()["include"] + "/Python.h"))') \
    && apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev \
       $([ "$headers" = True ] || echo python3-dev) \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# The locked dependencies first (their own layer, rebuilt only when the lock changes), then the
# project on top without resolving anything; `pip check` proves the lock satisfies its metadata.
COPY requirements.lock ./
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --require-hashes --no-deps -r requirements.lock

COPY pyproject.toml setup.py README.md ./
COPY mmm_backfill/ mmm_backfill/
COPY producer/ producer/
COPY worker/ worker/
COPY aggregator/ aggregator/
COPY command_line/ command_line/
COPY local_stack/ local_stack/

RUN /opt/venv/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
    && /opt/venv/bin/pip install --no-deps /wheels/mmm_backfill-*.whl \
    && /opt/venv/bin/pip check \
    && /opt/venv/bin/mmm-backfill --version

# --- runtime: base R, the virtualenv, a non-root user ------------------------------------------
FROM ${PYTHON_IMAGE}

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends r-base-core \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 mmm \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin mmm

COPY --from=builder /opt/venv /opt/venv

# HOME and TMPDIR point at /tmp: in Kubernetes the root filesystem is read-only and /tmp an emptyDir.
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    TMPDIR=/tmp \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RPY2_CFFI_MODE=ABI \
    TZ=UTC \
    MMM_BACKFILL_LOG_FORMAT=json

USER 10001:10001
WORKDIR /tmp
EXPOSE 9100 9101

ENTRYPOINT ["mmm-backfill"]
CMD ["--help"]
