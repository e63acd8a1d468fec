"""Redis replies as text. Pressroom's clients return bytes (no `decode_responses`: documents
and photos are bytes), while its state (records, subscriptions, ids) is text."""

from __future__ import annotations


def text(value) -> str:
    """A reply value as text: bytes decoded as UTF-8, nil as ''."""
    if type(value) is str:
        return value
    return value.decode() if isinstance(value, bytes) else ("" if value is None else str(value))


def texts(values) -> list[str]:
    """`text` of each value, in one pass (the delivery path decodes many)."""
    return [v.decode() if type(v) is bytes else ("" if v is None else str(v)) for v in values]
