from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.times import iso_utc


def test_unix_times_and_iso_strings_become_utc_with_milliseconds_and_z():
    assert iso_utc(1796174168.26) == "2026-12-02T01:16:08.260Z"
    assert iso_utc(0) == "1970-01-01T00:00:00.000Z"
    assert iso_utc("2026-11-27T10:00:01+00:00") == "2026-11-27T10:00:01.000Z"
    assert iso_utc("2026-11-27T12:00:01.5+02:00") == "2026-11-27T10:00:01.500Z"
    assert iso_utc("2026-11-27T10:00:01.123Z") == "2026-11-27T10:00:01.123Z"
    assert iso_utc(datetime(2026, 1, 2, 3, 4, 5, 678900, tzinfo=timezone(timedelta(hours=-5)))) == (
        "2026-01-02T08:04:05.678Z"
    )
    assert iso_utc(datetime(2026, 1, 2, tzinfo=UTC)) == "2026-01-02T00:00:00.000Z"
    assert iso_utc(None) is None and iso_utc("") is None


def test_a_string_that_is_not_a_time_is_refused():
    with pytest.raises(ValueError):
        iso_utc("yesterday")
