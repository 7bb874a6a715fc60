"""A summary's state from its listed custom metadata alone: missing, legacy, outdated, current."""

import pytest

from mmm_backfill import __version__
from mmm_backfill.summary_schema import SCHEMA_VERSION
from mmm_backfill.summary_state import (
    GENERATOR_VERSION_KEY,
    REFRESHABLE,
    SCHEMA_VERSION_KEY,
    WRITER_KEY,
    SummaryState,
    release,
    summary_metadata,
    summary_state,
)


def written(schema="1", generator="0.1.0", writer="mmm-backfill"):
    return {WRITER_KEY: writer, SCHEMA_VERSION_KEY: schema, GENERATOR_VERSION_KEY: generator}


def state(metadata, **running):
    return summary_state(
        metadata, schema_version=running.get("schema", 1), generator_version=running.get("gen", "0.1.0")
    )


def test_no_object_is_missing():
    assert summary_state(None, exists=False) is SummaryState.MISSING


@pytest.mark.parametrize("metadata", [None, {}, {"mmm-write-id": "abc"}, written(writer="extract_model_summary.R")])
def test_a_summary_without_our_writer_mark_is_legacy(metadata):
    assert state(metadata) is SummaryState.LEGACY


def test_what_this_version_writes_is_current():
    assert summary_state(summary_metadata()) is SummaryState.CURRENT
    assert summary_metadata()[SCHEMA_VERSION_KEY] == str(SCHEMA_VERSION)
    assert summary_metadata()[GENERATOR_VERSION_KEY] == __version__


@pytest.mark.parametrize(
    "metadata,running,expected",
    [
        (written(generator="0.1.0"), {"gen": "0.2.0"}, SummaryState.OUTDATED),
        (written(generator="0.1.9"), {"gen": "0.1.10"}, SummaryState.OUTDATED),  # numeric, not text, order
        (written(schema="1"), {"schema": 2}, SummaryState.OUTDATED),
        (written(schema="1", generator="9.0.0"), {"schema": 2}, SummaryState.OUTDATED),  # schema decides first
        (written(generator="0.2.0"), {"gen": "0.1.0"}, SummaryState.CURRENT),  # newer: never downgraded
        (written(schema="3"), {"schema": 2, "gen": "9.9.9"}, SummaryState.CURRENT),
        (written(generator="0.1.0+local"), {"gen": "0.1.0"}, SummaryState.CURRENT),
    ],
)
def test_older_schema_or_generator_is_outdated_and_newer_is_left_alone(metadata, running, expected):
    assert state(metadata, **running) is expected


@pytest.mark.parametrize("metadata", [written(schema="one"), written(generator="dev"), written(schema="")])
def test_our_mark_with_unreadable_versions_is_outdated(metadata):
    assert state(metadata) is SummaryState.OUTDATED


def test_refresh_rewrites_every_state_but_current():
    assert set(SummaryState) - REFRESHABLE == {SummaryState.CURRENT}


@pytest.mark.parametrize("text,parts", [("1.2.3", (1, 2, 3)), ("2", (2, 0, 0)), ("0.1.0rc1", (0, 1, 0)), ("x", None)])
def test_release_reads_the_numeric_part_of_a_version(text, parts):
    assert release(text) == parts
