"""Reading country files back while waiting: through the bounded read (fake-gcs-server)."""

import gzip
import json

import pytest

from mmm_backfill.runpath import RunPath, country_summary_name
from producer import country_check
from producer.country_check import CountryFiles
from producer.tracker import SUMMARISED, RunState

pytestmark = pytest.mark.integration

RUN = RunPath("r1", "de", "t1")


def put_country_file(storage, document: dict, padding: int = 0) -> None:
    """The country file stored gzip-encoded (clients receive it decoded), padded with ``padding`` spaces."""
    blob = storage.bucket.blob(country_summary_name("de"))
    blob.content_encoding = "gzip"
    blob.upload_from_string(gzip.compress(json.dumps(document).encode() + b" " * padding), "application/json")


def test_a_country_file_holding_the_run_is_current(storage):
    put_country_file(storage, {"runs": [{"run_path": RUN.prefix}]})
    (check,) = CountryFiles(storage).check({"de": [RunState(RUN, SUMMARISED)]})
    assert check.current


def test_a_country_file_that_decodes_past_the_limit_counts_as_lagging_unread(storage, monkeypatch):
    monkeypatch.setattr(country_check, "MAX_COUNTRY_FILE_BYTES", 1 << 20)
    put_country_file(storage, {"runs": [{"run_path": RUN.prefix}]}, padding=50_000_000)
    (check,) = CountryFiles(storage).check({"de": [RunState(RUN, SUMMARISED)]})
    assert (check.current, check.missing_examples) == (False, [RUN.prefix])
