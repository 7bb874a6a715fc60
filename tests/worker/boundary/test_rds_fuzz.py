"""Mutated real Robyn files: every one is refused cleanly or summarised, never a crash, a hang or a traceback.

The mutations (truncations, flipped type bytes, huge or negative lengths, random bytes) are made from a
fixed seed, so a failure names a case that can be replayed. They run in a child process: if R or the
stream check crashed on one, the child would die, and the last case it announced is the culprit.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from local_stack.samples import sample_run_dirs

RUNS = sample_run_dirs()
pytestmark = pytest.mark.skipif(not RUNS, reason="real Robyn samples not present")
#: Mutations tried per run file, and the seed they are drawn from.
CASES = 150
SEED = 20261201

#: The child: reads the decompressed stream of one sample, mutates it case by case, and reads each
#: mutant exactly as the worker does (stream check, then R). It prints one JSON line per case, and
#: announces each case before it starts. It also runs the Python reference walk, which must agree.
CHILD = r"""
import json, random, struct, sys, tempfile, os
from worker.boundary.rds_file import read_serialized
from worker.boundary.rds_stream import check_stream, check_stream_python
from worker.summarize.extract import read_run
from mmm_backfill.errors import BackfillError

path, name, cases, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
original = bytes(read_serialized(path))
rng = random.Random(seed)
words = [i for i in range(14, len(original) - 4, 4)]

def mutate(data):
    kind = rng.choice(["truncate", "type", "length", "bytes"])
    data = bytearray(data)
    if kind == "truncate":
        return kind, bytes(data[: rng.randrange(14, len(data))])
    at = rng.choice(words)
    if kind == "type":
        data[at + 3] = rng.choice([0, 1, 2, 3, 4, 6, 9, 13, 14, 16, 19, 21, 22, 23, 25, 99, 238, 241, 247, 255])
    elif kind == "length":
        data[at : at + 4] = struct.pack(">i", rng.choice([-2_000_000, -2, 2**31 - 1, 10**9, 2 * 10**6, 65536]))
    else:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(14, len(data))] = rng.randrange(256)
    return kind, bytes(data)

files = {"OutputCollect.RDS": sys.argv[5]}
print(json.dumps({"original": len(read_run({**files, name: path}).models)}), flush=True)
with tempfile.TemporaryDirectory() as tmp:
    target = os.path.join(tmp, name)
    for case in range(cases):
        kind, data = mutate(original)
        print(json.dumps({"case": case, "kind": kind, "starting": True}), flush=True)
        verdicts = []
        for check in (check_stream, check_stream_python):
            try:
                check(data)
                verdicts.append("ok")
            except BackfillError as exc:
                verdicts.append(exc.reason)
        with open(target, "wb") as fh:
            fh.write(data)
        try:
            run = read_run({**files, name: target})
            outcome = {"summary": len(run.models)}
        except BackfillError as exc:
            outcome = {"refused": exc.reason}
        except Exception as exc:
            outcome = {"traceback": f"{type(exc).__name__}: {exc}"}
        print(json.dumps({"case": case, "kind": kind, "check": verdicts, **outcome}), flush=True)
"""


@pytest.mark.parametrize("name", ["OutputCollect.RDS", "InputCollect.RDS"])
def test_mutated_real_files_are_refused_or_summarised_never_crash(name):
    run = RUNS[-1]  # the smallest run
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(run / name), name, str(CASES), str(SEED), str(run / "OutputCollect.RDS")],
        capture_output=True,
        timeout=600,
        cwd=Path(__file__).resolve().parents[3],
    )
    lines = [json.loads(line) for line in done.stdout.decode().splitlines() if line.startswith("{")]
    original = lines[0]["original"] if lines and "original" in lines[0] else None
    results = [line for line in lines if "case" in line and "starting" not in line]
    last = lines[-1] if lines else None
    assert done.returncode == 0, f"the reader died (code {done.returncode}) on {last}\n{done.stderr.decode()[-2000:]}"
    assert len(results) == CASES
    assert [r for r in results if "traceback" in r] == []
    assert [r for r in results if r["check"][0] != r["check"][1]] == [], "the C and Python walks disagree"
    summarised = [r for r in results if "summary" in r]
    assert all(r["summary"] == original for r in summarised), "a mutant read as a different table"
    assert any("refused" in r for r in results)
