"""A lost create-only race answered with 403 naming storage.objects.delete (not 412) is still a lost race.

Real Cloud Storage may answer so to a writer that may create but not delete; fake-gcs-server
answers 412, so a relay turns that 412 into Cloud Storage's 403.
"""

from __future__ import annotations

import json

import pytest
from backfill_kit import storage_through
from faulty_proxy import FaultyProxy
from google.api_core import exceptions as gexc

from mmm_backfill.messages import SummaryRequest
from mmm_backfill.runpath import RunPath
from mmm_backfill.storage import PreconditionFailed
from worker.boundary.rbridge import RSession
from worker.handler import Handler

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

RUN = RunPath("r1", "de", "1101_000001")


@pytest.fixture
def forbidding(gcs_emulator):
    with FaultyProxy(gcs_emulator.url, forbid_lost_creates=True) as relay:
        yield relay


def test_a_403_naming_delete_over_an_existing_object_is_a_lost_race(settings, storage, forbidding):
    storage.write(RUN.summary_name, b"{}", 0)
    through = storage_through(forbidding.url, settings)
    with pytest.raises(PreconditionFailed):
        through.write(RUN.summary_name, b'{"other": 1}', 0)
    assert forbidding.faults["forbidden_delete"] == 1
    assert storage.read(RUN.summary_name)[0] == b"{}"


def test_a_403_without_an_object_is_a_real_permission_error(settings, storage, forbidding, gcs_emulator):
    through = storage_through(forbidding.url, settings.replace(bucket="no-such-bucket-for-403"))
    with pytest.raises(gexc.NotFound):  # the relay only rewrites 412s; other answers pass unchanged
        through.write(RUN.summary_name, b"{}", 0)


class SlowToSee:
    """The worker's storage when another worker's summary lands between its existence check and its write."""

    def __init__(self, storage, name):
        self.storage, self.name, self.checked = storage, name, False

    def __getattr__(self, attr):
        return getattr(self.storage, attr)

    def generation(self, name):
        if name == self.name and not self.checked:
            self.checked = True
            return None
        return self.storage.generation(name)


def test_the_worker_reports_already_existed_when_its_lost_race_is_answered_403(
    settings, storage, bus, topology, forbidding, generated_runs
):
    for name in ("OutputCollect.RDS", "InputCollect.RDS"):
        storage.upload_file(f"{RUN.prefix}/{name}", str(generated_runs["standard"] / name))
    theirs = json.dumps({"written_by": "the other worker"}).encode()
    generation = storage.write(RUN.summary_name, theirs, 0)
    through = SlowToSee(storage_through(forbidding.url, settings), RUN.summary_name)
    message = SummaryRequest.for_run(settings.bucket, RUN, "bf-403")
    outcome = Handler(settings, through, bus, RSession.shared(), "test-worker").handle(
        message.encode(), message.attributes()
    )
    assert (outcome.outcome, outcome.reason) == ("already_existed", None)
    assert forbidding.faults["forbidden_delete"] == 1
    assert storage.read(RUN.summary_name) == (theirs, generation)
