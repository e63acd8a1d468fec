"""Schemas of the messages services send each other through the broker."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

ARTICLE_EVENTS = ("article.published", "article.updated", "article.withdrawn")


class ArticleEvent(Schema):
    """Sent by render to notify (task `notify.article_event`) when a page goes live, changes or goes away.

    Carries the notification's `data` as SPEC defines it, so notify never reads render's state.
    """

    type = fields.Str(required=True, validate=validate.OneOf(ARTICLE_EVENTS))
    timestamp = fields.Str(required=True, metadata={"description": "ISO 8601, when the event happened"})
    id = fields.Str(required=True)
    uri = fields.Str(required=True)
    version = fields.Int(required=True)
    headline = fields.Str(required=True)
    summary = fields.Str(load_default="")
    url = fields.Str(required=True)
    topics = fields.List(fields.Str(), required=True)
    language = fields.Str(load_default="en")
