"""Marshmallow fields of the API's answers that are not plain types."""

from __future__ import annotations

from marshmallow import fields

from shared.times import iso_utc


class Timestamp(fields.Field):
    """A time in an answer: stored as Unix seconds (or an older ISO-8601 string), always
    written `2026-12-02T05:08:23.123Z` (ISO-8601, UTC, milliseconds) so every client
    parses one format. Output only: requests carry no times."""

    def __init__(self, **kwargs) -> None:
        metadata = {"type": "string", "format": "date-time", "example": "2026-12-02T05:08:23.123Z",
                    **kwargs.pop("metadata", {})}
        super().__init__(dump_only=True, metadata=metadata, **kwargs)

    def _serialize(self, value, attr, obj, **kwargs):
        return iso_utc(value)
