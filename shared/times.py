"""The one time format of every API answer and operator report: ISO-8601 UTC with milliseconds.

Pressroom stores Unix times (floats) in Redis; they become `2026-12-02T05:08:23.123Z`
only where a person or another program reads them.
"""

from __future__ import annotations

from datetime import UTC, datetime


def iso_utc(value: float | int | str | datetime | None) -> str | None:
    """`2026-12-02T05:08:23.123Z` for a Unix time, an aware datetime or an ISO-8601 string; None stays None.

    Raises ValueError for a string that is not ISO-8601.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        when = value if value.tzinfo else value.replace(tzinfo=UTC)
    elif isinstance(value, str):
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
    else:
        when = datetime.fromtimestamp(float(value), UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
