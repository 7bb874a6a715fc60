import pytest

from command_line.durations import parse_duration


@pytest.mark.parametrize(
    "text,seconds",
    [
        ("90", 90.0),
        ("20s", 20.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("5h45m", 20700.0),
        ("1m0.5s", 60.5),
        (" 2H ", 7200.0),
    ],
)
def test_durations_read_as_seconds(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "m5", "30m1h", "1h1h", "5 m", "-5s", "forever"])
def test_anything_else_is_refused_with_the_accepted_forms(text):
    with pytest.raises(ValueError, match="1h30m"):
        parse_duration(text)
