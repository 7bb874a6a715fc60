"""Tiny hostile RDS files that used to read local files, hang, exhaust memory or crash R: each is refused by
``mmm-backfill summarize`` (the worker's path) with its reason, within seconds and a bounded peak memory."""

from __future__ import annotations

import gzip
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xdr_writer as x

#: A refusal must come this quickly (seconds; a process start included) and stay under this peak (MiB):
#: the same files ran for minutes and past 6 GiB before the stream check.
MAX_SECONDS = 15
MAX_PEAK_MIB = 400

#: name -> R expression saved as OutputCollect.RDS, and the reason it must be refused with.
#: ``{secret}`` is a file holding a random token: its bytes must never reach the output.
R_CASES = {
    "mmap_integer column": (
        'list(resultHypParam = {{x <- .Internal(mmap_file("{secret}", "int", TRUE, FALSE, TRUE)); '
        'structure(list(solID = paste0("m", seq_along(x)), nrmse = x), class = "data.frame", '
        "row.names = seq_along(x))}})",
        "altrep_refused",
    ),
    "nrmse as 1:2e9": (
        'list(resultHypParam = structure(list(solID = "a", nrmse = 1:2e9), class = "data.frame", row.names = 1L))',
        "altrep_too_long",
    ),
    "nrmse as 1:1e15": (
        'list(resultHypParam = structure(list(solID = "a", nrmse = 1:1e15), class = "data.frame", row.names = 1L))',
        "altrep_too_long",
    ),
    "solID deferred over 1:2e9": (
        'list(resultHypParam = structure(list(solID = as.character(1:2e9), nrmse = 0.1), class = "data.frame", '
        "row.names = 1L))",
        "altrep_too_long",
    ),
    "solID deferred over 1:1e15": (
        'list(resultHypParam = structure(list(solID = as.character(1:1e15), nrmse = 0.1), class = "data.frame", '
        "row.names = 1L))",
        "altrep_too_long",
    ),
    "factor with 2e9 levels": (
        'list(resultHypParam = structure(list(solID = structure(1L, levels = as.character(1:2e9), class = "factor"), '
        'nrmse = 0.1), class = "data.frame", row.names = 1L))',
        "altrep_too_long",
    ),
    "150,001 models": (
        'list(resultHypParam = data.frame(solID = sprintf("1_%d_1", 1:150001), nrmse = runif(150001)))',
        "rds_value_too_large",
    ),
}

_UTF8 = 9 | (8 << 12)
#: name -> serialization stream written in Python (R's writer refuses these shapes), and the reason.
STREAM_CASES = {
    "names attribute over 1:2e9": (
        x.with_attributes(x.i32(19, 1) + x.NIL, (b"names", x.deferred_string(2_000_000_000))),
        "altrep_too_long",
    ),
    "class attribute over 1:1e15": (
        x.with_attributes(x.i32(19, 1) + x.NIL, (b"class", x.deferred_string(10**15))),
        "altrep_too_long",
    ),
    "list nested 100,000 deep beside a valid table": (x.robyn_like(deep=x.nested_lists(100_000)), "rds_too_deep"),
    "list nested 1,000,000 deep beside a valid table": (
        x.robyn_like(deep=x.nested_lists(1_000_000)),
        "rds_too_deep",
    ),
    "48 bytes declaring a list of 1e9": (x.i32(19, 1_000_000_000) + x.NIL * 3, "rds_truncated"),
    "48 bytes declaring 2e9 strings": (x.i32(16, 2_000_000_000) + x.charsxp(b"ab"), "rds_truncated"),
    "string length -2,000,000": (x.robyn_like(bad=x.i32(16, 1, _UTF8, -2_000_000)), "rds_corrupt"),
    "ALTREP class of another package": (
        x.robyn_like(nrmse=x.altrep(b"gg_lazy", b"ggplot2", 14, x.doubles(1.0))),
        "altrep_refused",
    ),
    "model id with invalid UTF-8": (x.robyn_like(ids=(b"1_1_1", b"bad\xff\xfeid")), "invalid_text"),
    "names longer than the list": (
        x.with_attributes(x.i32(19, 1) + x.NIL, (b"names", x.strings(b"resultHypParam", b"b", b"c"))),
        "wrong_object",
    ),
    "two model ids of 2 MB": (x.robyn_like(ids=(b"a" * (2 << 20), b"b" * (2 << 20))), "rds_value_too_large"),
    "a model id of 300 characters": (x.robyn_like(ids=(b"1_1_1", b"m" * 300)), "rds_value_too_large"),
}


#: Runs the command as its child and prints the child's peak memory: a child forked from this test process
#: itself would report this process's size as its own peak (Linux carries it over the exec).
LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(child.pid, 0)
print(f"\\npeak-kib {usage.ru_maxrss}", flush=True)
sys.exit(os.waitstatus_to_exitcode(status) % 256)
"""


def _summarize(path: Path, env: dict[str, str] | None = None) -> tuple[int, str, float, float]:
    """Run ``mmm-backfill summarize`` on one file: exit code, output, seconds, peak resident MiB."""
    cli = Path(sys.executable).with_name("mmm-backfill")
    args = [str(cli), "summarize", "--output-collect", str(path), "--country", "de", "--revision", "r1"]
    started = time.monotonic()
    done = subprocess.run(
        ["python3", "-c", LAUNCHER, *args, "--timestamp", "1201_000000"],
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=120,  # a hang fails the test instead of stopping the suite
    )
    output, _, peak = done.stdout.decode(errors="replace").rpartition("\npeak-kib ")
    output += done.stderr.decode(errors="replace")
    return done.returncode, output.strip() + "\n", time.monotonic() - started, int(peak) / 1024


@pytest.fixture(scope="module")
def files(tmp_path_factory, run_r) -> tuple[dict[str, Path], bytes]:
    root = tmp_path_factory.mktemp("hostile-streams")
    token = ("MMM-SECRET-" + secrets.token_hex(8)).encode()  # 27 bytes; mmap reads whole ints
    (root / "secret.bin").write_bytes(token + b"\0")
    paths = {name: root / f"{i}.RDS" for i, name in enumerate([*R_CASES, *STREAM_CASES])}
    run_r(
        "\n".join(
            f'saveRDS({expr.format(secret=root / "secret.bin")}, "{paths[name]}")'
            for name, (expr, _) in R_CASES.items()
        )
    )
    for name, (item, _) in STREAM_CASES.items():
        paths[name].write_bytes(gzip.compress(x.stream(item), 1))
    return paths, token


@pytest.mark.parametrize("name", [*R_CASES, *STREAM_CASES])
def test_hostile_file_is_refused_quickly_with_its_reason(files, name):
    paths, token = files
    reason = {**R_CASES, **STREAM_CASES}[name][1]
    code, output, seconds, peak_mib = _summarize(paths[name])
    assert code == 1, output
    assert output.startswith(f"error [{reason}]: OutputCollect.RDS"), output
    assert seconds < MAX_SECONDS and peak_mib < MAX_PEAK_MIB, (name, seconds, peak_mib)
    assert token[:8] not in output.encode() and b"MMM-" not in output.encode()


def test_a_mapped_file_is_refused_although_plain_r_reads_its_bytes(files, run_r, tmp_path):
    paths, token = files
    out = tmp_path / "read.txt"
    run_r(f'x <- readRDS("{paths["mmap_integer column"]}")$resultHypParam$nrmse; writeBin(x, "{out}")')
    assert out.read_bytes().startswith(token), "the control: R itself hands out the mapped file's bytes"
    code, output, _, _ = _summarize(paths["mmap_integer column"])
    assert code == 1 and token not in output.encode()


def test_a_gzip_trailer_claiming_2_gib_reserves_nothing(tmp_path):
    data = bytearray(gzip.compress(x.stream(x.robyn_like())))
    data[-4:] = (2**31 - 1).to_bytes(4, "little")
    path = tmp_path / "OutputCollect.RDS"
    path.write_bytes(bytes(data))
    code, output, _, peak_mib = _summarize(path)
    assert code == 1 and output.startswith("error [rds_corrupt]: "), output
    assert peak_mib < MAX_PEAK_MIB


def test_namespace_references_are_read_without_loading_the_package(tmp_path, run_r):
    """A package installed on the reader's machine, whose load hook would run: the file names its namespace."""
    library, package, canary = tmp_path / "lib", tmp_path / "canarypkg", tmp_path / "LOAD_HOOK_RAN"
    (package / "R").mkdir(parents=True)
    library.mkdir()
    (package / "DESCRIPTION").write_text(
        "Package: canarypkg\nVersion: 0.1\nTitle: Canary\nDescription: Load hook.\nLicense: MIT\n"
        "Author: t\nMaintainer: t <t@example.org>\n"
    )
    (package / "NAMESPACE").write_text("")
    (package / "R" / "zzz.R").write_text('.onLoad <- function(lib, pkg) file.create(Sys.getenv("CANARY"))\n')
    subprocess.run(["R", "CMD", "INSTALL", "-l", str(library), str(package)], check=True, capture_output=True)
    env = {"R_LIBS": str(library), "CANARY": str(canary)}
    path = tmp_path / "OutputCollect.RDS"
    table = 'data.frame(solID = c("1_1_1", "1_2_1"), nrmse = c(0.1, 0.2), robynPareto = c(1, 2))'
    subprocess.run(
        ["Rscript", "--vanilla", "-e", f'saveRDS(list(resultHypParam = {table}, ns = asNamespace("canarypkg")), '
         f'"{path}"); file.remove(Sys.getenv("CANARY"))'],
        check=True, capture_output=True, env={**os.environ, **env},
    )  # fmt: skip
    subprocess.run(["Rscript", "-e", f'invisible(readRDS("{path}"))'], check=True, env={**os.environ, **env})
    assert canary.exists(), "the control: plain readRDS loads the package and runs its hook"
    canary.unlink()
    code, output, _, _ = _summarize(path, env)
    assert code == 0, output
    assert '"pareto_model_count": 2' in output
    assert not canary.exists(), "reading the run loaded a package named in it"
