"""Finding runs in a listing: layout, summarised detection, skipped names, filters, listing prefixes."""

import pytest

from mmm_backfill.errors import InvalidRunPath
from mmm_backfill.runpath import RunPath
from mmm_backfill.storage import ObjectInfo
from mmm_backfill.summary_state import SummaryState, summary_metadata
from producer.scan import MAX_SKIPPED_EXAMPLES, listing_prefixes, needs_revisions, revision_names, scan


def run_files(path, *files):
    return [f"{path}/{f}" for f in files]


def test_a_folder_with_output_collect_is_a_run_and_summary_marks_it_summarised():
    names = [
        *run_files("robyn/r1/de/t1", "OutputCollect.RDS", "InputCollect.RDS", "model_summary.json"),
        *run_files("robyn/r1/de/t2", "OutputCollect.RDS", "timings.csv"),
    ]
    result = scan(names)
    assert [(str(r.path), r.summarised) for r in result.runs] == [("robyn/r1/de/t1", True), ("robyn/r1/de/t2", False)]
    assert result.missing == [RunPath("r1", "de", "t2")]
    assert result.summarised == 1 and result.skipped == 0


def test_a_folder_without_output_collect_is_not_a_run_even_with_a_summary():
    result = scan(run_files("robyn/r1/de/t1", "InputCollect.RDS", "model_summary.json"))
    assert result.runs == [] and result.skipped == 0


def test_runs_come_out_sorted_whatever_the_listing_order():
    names = ["robyn/r2/de/a/OutputCollect.RDS", "robyn/r1/fr/b/OutputCollect.RDS", "robyn/r1/de/c/OutputCollect.RDS"]
    assert [str(r.path) for r in scan(names).runs] == [
        "robyn/r1/de/c",
        "robyn/r1/fr/b",
        "robyn/r2/de/a",
    ]


@pytest.mark.parametrize(
    "name",
    [
        "robyn/OutputCollect.RDS",  # file directly under robyn/
        "robyn/notes.txt",
        "robyn/r1/OutputCollect.RDS",  # too shallow
        "robyn/r1/de/OutputCollect.RDS",
        "robyn/r1/de/t1/extra/OutputCollect.RDS",  # extra segment
        "robyn/../de/t1/OutputCollect.RDS",  # dot-dot segment
        "robyn/r1/../t1/OutputCollect.RDS",
        "robyn/r1/de/.hidden/OutputCollect.RDS",
        "robyn/r 1/de/t1/OutputCollect.RDS",  # space
        "robyn//de/t1/OutputCollect.RDS",  # empty segment
        "other/r1/de/t1/OutputCollect.RDS",  # not under robyn/
    ],
)
def test_names_outside_the_layout_are_skipped_and_counted(name):
    result = scan([name, "robyn/r1/de/ok/OutputCollect.RDS"])
    assert [str(r.path) for r in result.runs] == ["robyn/r1/de/ok"]
    assert result.skipped == 1 and result.skipped_examples == [name]


def test_skipped_examples_are_capped_but_every_skip_is_counted():
    result = scan([f"robyn/r1/de/t1/deep/{i}.png" for i in range(20)])
    assert result.skipped == 20 and len(result.skipped_examples) == MAX_SKIPPED_EXAMPLES


def test_folder_placeholders_are_ignored_not_skipped():
    result = scan(["robyn/", "robyn/r1/", "robyn/r1/de/t1/", "robyn/r1/de/t1/OutputCollect.RDS"])
    assert len(result.runs) == 1 and result.skipped == 0


NAMES = [
    "robyn/r1/de/t1/OutputCollect.RDS",
    "robyn/r1/fr/t1/OutputCollect.RDS",
    "robyn/r2/de/t1/OutputCollect.RDS",
    "robyn/r2/de/t1/model_summary.json",
    "robyn/r2/fr/t1/OutputCollect.RDS",
    "robyn/r2/de/bad seg/OutputCollect.RDS",
    "robyn/stray.txt",
]


@pytest.mark.parametrize(
    ("revision", "country", "expected", "skipped"),
    [
        (None, None, ["robyn/r1/de/t1", "robyn/r1/fr/t1", "robyn/r2/de/t1", "robyn/r2/fr/t1"], 2),
        ("r2", None, ["robyn/r2/de/t1", "robyn/r2/fr/t1"], 1),
        (None, "de", ["robyn/r1/de/t1", "robyn/r2/de/t1"], 1),
        ("r1", "fr", ["robyn/r1/fr/t1"], 0),
        ("r9", None, [], 0),
    ],
)
def test_filters_keep_matching_runs_and_ignore_names_outside_them(revision, country, expected, skipped):
    result = scan(NAMES, revision=revision, country=country)
    assert [str(r.path) for r in result.runs] == expected
    assert result.skipped == skipped


@pytest.mark.parametrize(("revision", "country"), [("..", None), (None, "a/b"), ("", None), (None, ".x")])
def test_filters_that_are_not_path_segments_are_refused(revision, country):
    with pytest.raises(InvalidRunPath):
        scan([], revision=revision, country=country)
    with pytest.raises(InvalidRunPath):
        listing_prefixes(revision, country, ["r1"])


@pytest.mark.parametrize(
    ("revision", "country", "expected"),
    [
        (None, None, ["robyn/"]),
        ("r1", None, ["robyn/r1/"]),
        ("r1", "de", ["robyn/r1/de/"]),
        (None, "de", ["robyn/r1/de/", "robyn/r2/de/"]),
    ],
)
def test_listing_prefix_is_the_narrowest_for_the_filters(revision, country, expected):
    assert listing_prefixes(revision, country, ["r2", "r1"]) == expected


def test_only_a_country_filter_without_revision_needs_the_revision_folders():
    assert needs_revisions(None, "de")
    assert not needs_revisions("r1", "de") and not needs_revisions("r1", None) and not needs_revisions(None, None)


def test_revision_names_come_from_delimiter_listing_folders():
    assert revision_names(["robyn/r2/", "robyn/r1/", "robyn/", "other/x/"]) == ["r1", "r2"]


# -- summary states (from listed metadata) -------------------------------------------------------


def listed(name, generation=1, metadata=None):
    return ObjectInfo(name, generation, 1, None, metadata)


def test_each_run_gets_its_summary_state_and_generation_from_the_listing():
    objects = [
        listed("robyn/r1/de/a/OutputCollect.RDS"),
        listed("robyn/r1/de/b/OutputCollect.RDS"),
        listed("robyn/r1/de/b/model_summary.json", 11),
        listed("robyn/r1/de/c/OutputCollect.RDS"),
        listed("robyn/r1/de/c/model_summary.json", 12, summary_metadata(generator_version="0.0.1")),
        listed("robyn/r1/de/d/OutputCollect.RDS"),
        listed("robyn/r1/de/d/model_summary.json", 13, summary_metadata()),
        listed("robyn/r1/de/d/model_summary.previous.json", 14),
    ]
    result = scan(objects)
    assert [(r.path.timestamp, r.state.value, r.generation) for r in result.runs] == [
        ("a", "missing", None),
        ("b", "legacy", 11),
        ("c", "outdated", 12),
        ("d", "current", 13),
    ]
    assert result.state_counts() == {"missing": 1, "legacy": 1, "outdated": 1, "current": 1}
    assert [r.path.timestamp for r in result.to_refresh] == ["a", "b", "c"]
    assert [str(p) for p in result.missing] == ["robyn/r1/de/a"] and result.summarised == 3


def test_a_bare_name_summary_counts_as_legacy():
    result = scan(["robyn/r1/de/a/OutputCollect.RDS", "robyn/r1/de/a/model_summary.json"])
    assert result.runs[0].state is SummaryState.LEGACY and result.runs[0].summarised
