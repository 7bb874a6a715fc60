"""Claims on disk: a dead process's request is found once, a live one's never; crash counts per request."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from worker.claims import AHEAD, IN_R, WRITING, Claim, Claims, process_identity

CHILD_HOLDS_AND_DIES = """
import os, sys
from worker.claims import Claim, Claims
claims = Claims(sys.argv[1])
with claims.holding(Claim(os.getpid(), b"request", {"run_path": "robyn/r1/de/1"}, "ack-1", "robyn/r1/de/1")):
    os._exit(9)  # like a crash: no cleanup runs
"""


def _dead_child_claim(root) -> None:
    subprocess.run([sys.executable, "-c", CHILD_HOLDS_AND_DIES, str(root)], check=False)


def test_the_claim_of_a_dead_process_is_taken_once(tmp_path):
    _dead_child_claim(tmp_path)
    first, second = Claims(str(tmp_path)).orphans(), Claims(str(tmp_path)).orphans()
    assert [(c.data, c.ack_id, c.run_path) for c in first] == [(b"request", "ack-1", "robyn/r1/de/1")]
    assert second == []


def test_the_claim_of_a_running_process_is_not_an_orphan(tmp_path):
    claims = Claims(str(tmp_path))
    with claims.holding(Claim(os.getpid(), b"mine")):
        assert claims.orphans() == []
    assert list(tmp_path.glob("claim-*")) == []


def test_a_reused_pid_does_not_hide_a_dead_claim(tmp_path):
    claims = Claims(str(tmp_path))
    stale = tmp_path / f"claim-{os.getpid()}-1.json"  # this pid, but a process that started at tick 1
    stale.write_text(Claim(os.getpid(), b"old").to_json())
    assert process_identity(os.getpid()) != f"{os.getpid()}-1"
    assert [c.data for c in claims.orphans()] == [b"old"]


def test_the_claim_of_a_zombie_is_an_orphan(tmp_path):
    """A worker killed with its pool is a zombie until it is reaped; it holds nothing any more."""
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        while (fields := _stat_fields(zombie.pid))[0] != "Z":
            time.sleep(0.01)  # exited, not yet reaped: Popen reaps only in wait() or poll()
        identity = f"{zombie.pid}-{fields[19]}"  # the name its claim had while it ran
        (tmp_path / f"claim-{identity}.json").write_text(Claim(zombie.pid, b"held").to_json())
        assert process_identity(zombie.pid) is None
        assert [c.data for c in Claims(str(tmp_path)).orphans()] == [b"held"]
    finally:
        zombie.wait()


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()


def test_crashes_are_counted_per_request_and_a_replay_starts_afresh(tmp_path):
    claims = Claims(str(tmp_path))
    claim = Claim(1, b"request", {"replay_count": "0"})
    replayed = Claim(1, b"request", {"replay_count": "1"})
    assert [claims.record_crash(claim.key) for _ in range(3)] == [1, 2, 3]
    assert claims.crashes(claim.key) == 3 and claims.crashes(replayed.key) == 0


def test_tidy_removes_empty_folders_and_keeps_crash_counts(tmp_path):
    root = tmp_path / "claims"
    claims = Claims(str(root))
    with claims.holding(Claim(os.getpid(), b"x")):
        pass
    claims.tidy()
    assert not root.exists()
    claims.record_crash("k")
    claims.tidy()
    assert claims.crashes("k") == 1


CHILD_HOLDS_AHEAD_AND_DIES = """
import os, sys
from worker.claims import Claim, Claims
claims = Claims(sys.argv[1])
claims.hold(Claim(os.getpid(), b"in R", {}, "ack-1", "robyn/r1/de/1"))
claims.hold(Claim(os.getpid(), b"ahead", {}, "ack-2", "robyn/r1/de/2", stage="ahead"))
claims.hold(Claim(os.getpid(), b"writing", {}, "ack-3", "robyn/r1/de/3", stage="writing"))
os._exit(9)
"""


def test_a_dead_process_leaves_a_claim_per_stage_each_told_apart(tmp_path):
    subprocess.run([sys.executable, "-c", CHILD_HOLDS_AHEAD_AND_DIES, str(tmp_path)], check=False)
    found = {c.data: c.stage for c in Claims(str(tmp_path)).orphans()}
    assert found == {b"in R": IN_R, b"ahead": AHEAD, b"writing": WRITING}


def test_a_claim_moved_through_its_stages_leaves_one_file_at_a_time(tmp_path):
    claims = Claims(str(tmp_path))
    claim = Claim(os.getpid(), b"next", stage=AHEAD)
    claims.hold(claim)
    files = []
    for stage in (IN_R, WRITING):
        files.append([p.name.split("-")[0] for p in tmp_path.iterdir()])
        claim = claims.move(claim, stage)
    files.append([p.name.split("-")[0] for p in tmp_path.iterdir()])
    claims.release(claim)
    assert files == [["ahead"], ["claim"], ["writing"]] and list(tmp_path.iterdir()) == []
