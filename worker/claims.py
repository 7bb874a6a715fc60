"""What each worker process is handling, written to disk before it starts, so a run that kills its process is known.

A worker that dies inside R (a crash, the kernel's OOM killer) takes no last action: the request it held
would come back after its lease and kill the next worker the same way, five times, and end as a dead
letter that says only ``max_delivery_attempts``. Instead the process writes a claim (the message and its
ack id) before handling it and removes it after; whoever finds the claim of a dead process (the pool
that restarts it, or the next worker started in the same pod, whose ``/tmp`` survives a restart) counts a
crash for that request and returns it or, once it has killed ``max_worker_crashes`` processes,
dead-letters it as ``worker_crashed``.

A claim has a stage. Only a request in R (``IN_R``) counts a crash. A process also holds, at most, one
request fetched ahead of R (``AHEAD``, worker/prefetch.py) and one whose summary is being written after
R (``WRITING``, worker/write_behind.py): R is not on them, so if the process dies they go back at once
and no crash is counted against them. Each stage has its own file, so the three never collide.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace

#: Folder of claims and crash counts under the temp folder (an emptyDir in Kubernetes).
FOLDER = "mmm-backfill-claims"
#: Stages of a claim: fetched ahead of R, in R, written after R. Only IN_R counts a crash.
AHEAD, IN_R, WRITING = "ahead", "in_r", "writing"
#: File name prefix of each stage's claim; the process identity follows.
PREFIXES = {AHEAD: "ahead-", IN_R: "claim-", WRITING: "writing-"}


@dataclass(frozen=True)
class Claim:
    """One request a worker process holds: enough to dead-letter or return it without that process."""

    pid: int
    data: bytes
    attributes: dict[str, str] = field(default_factory=dict)
    ack_id: str = ""
    run_path: str | None = None
    timed_out: bool = False
    stage: str = IN_R

    @property
    def key(self) -> str:
        """The same request delivered again has the same key; a replayed one (new replay_count) a new one."""
        digest = hashlib.sha256(self.data)
        digest.update(self.attributes.get("replay_count", "0").encode())
        return digest.hexdigest()[:32]

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "data": base64.b64encode(self.data).decode()})

    @classmethod
    def from_json(cls, text: str) -> Claim:
        fields = json.loads(text)
        return cls(**{**fields, "data": base64.b64decode(fields["data"])})


class Claims:
    """Claims and crash counts of the worker processes sharing one temp folder (one pod)."""

    def __init__(self, root: str | None = None) -> None:
        self.root = root or os.path.join(tempfile.gettempdir(), FOLDER)

    def _path(self, claim: Claim) -> str:
        prefix = PREFIXES[claim.stage]
        return os.path.join(self.root, f"{prefix}{process_identity(claim.pid)}.json")

    def _write(self, path: str, text: str) -> None:
        partial = f"{path}.{os.getpid()}.partial"
        for attempt in (1, 2):  # a neighbour's ``tidy`` may remove the empty folder in between
            os.makedirs(os.path.dirname(path), exist_ok=True)
            try:
                with open(partial, "w") as fh:
                    fh.write(text)
                break
            except FileNotFoundError:
                if attempt == 2:
                    raise
        os.replace(partial, path)  # a reader never sees half a claim

    def tidy(self) -> None:
        """Remove the folders when nothing is left in them (no claim, no crash count)."""
        for folder in (os.path.join(self.root, "crashes"), self.root):
            with contextlib.suppress(OSError):
                os.rmdir(folder)

    @contextlib.contextmanager
    def holding(self, claim: Claim) -> Iterator[Claim]:
        """Keep ``claim`` on disk while the body runs; gone after it returns or raises."""
        self.hold(claim)
        try:
            yield claim
        finally:
            self.release(claim)

    def hold(self, claim: Claim) -> None:
        self._write(self._path(claim), claim.to_json())

    def release(self, claim: Claim) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._path(claim))

    def move(self, claim: Claim, stage: str) -> Claim:
        """The claim of the request at its next ``stage``. The new one is written before the old goes:
        a death in between finds both, and counts a crash only if one of them is in R."""
        moved = replace(claim, stage=stage)
        self.hold(moved)
        self.release(claim)
        return moved

    def mark_timed_out(self, claim: Claim) -> Claim:
        timed_out = replace(claim, timed_out=True)
        self._write(self._path(timed_out), timed_out.to_json())
        return timed_out

    def orphans(self) -> list[Claim]:
        """Claims of processes that are gone, each taken over by this process (no one else gets it)."""
        taken = []
        names = os.listdir(self.root) if os.path.isdir(self.root) else []
        for name in sorted(names):
            prefix = next((p for p in PREFIXES.values() if name.startswith(p)), None)
            identity = name.removeprefix(prefix or "").removesuffix(".json")
            pid = identity.split("-", 1)[0]
            if not (prefix and name.endswith(".json") and pid.isdigit()):
                continue
            if process_identity(int(pid)) == identity:
                continue  # its process still runs
            mine = os.path.join(self.root, f"taken-{os.getpid()}-{prefix}{identity}.json")
            try:
                os.rename(os.path.join(self.root, name), mine)  # atomic: one taker wins
            except FileNotFoundError:
                continue
            with open(mine) as fh:
                taken.append(Claim.from_json(fh.read()))
            os.remove(mine)
        return taken

    def crashes(self, key: str) -> int:
        try:
            with open(os.path.join(self.root, "crashes", key)) as fh:
                return int(fh.read() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def record_crash(self, key: str) -> int:
        """Count one more process killed by the request ``key``; return the count."""
        count = self.crashes(key) + 1
        self._write(os.path.join(self.root, "crashes", key), str(count))
        return count


def process_identity(pid: int) -> str | None:
    """``pid-starttime`` of a running process, None when there is none: a pid alone is reused (a
    restarted container's worker is pid 1 again), its start time since boot is not. A zombie has
    ended too: a worker whose pool was killed with it waits, dead, until an init that may be slow
    to reap reaps it, and its request must not wait with it."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    if fields[0] in ("Z", "X"):  # field 3 of proc(5): zombie, or dead
        return None
    return f"{pid}-{fields[19]}"  # field 22 of proc(5): start time in clock ticks
