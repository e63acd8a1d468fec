"""Response schemas of the article resources (the OpenAPI contract)."""

from marshmallow import Schema, fields

from services.ingest.fields import Timestamp


class AcceptedSchema(Schema):
    id = fields.Str(required=True, metadata={"description": "Stable, URL-safe id of the article's uri"})
    uri = fields.Str()
    version = fields.Int(required=True, metadata={"description": "The version now stored"})
    status = fields.Str(required=True, metadata={"description": "queued, scheduled, published, failed, withdrawn"})
    outcome = fields.Str(
        metadata={"description": "accepted: new work queued; stale: an equal or newer version is stored"}
    )
    message = fields.Str()
    status_url = fields.Str()


class TimelineEventSchema(Schema):
    at = Timestamp()
    event = fields.Str()
    version = fields.Int()
    reason = fields.Str()
    url = fields.Str()


class ArticleStatusSchema(Schema):
    id = fields.Str(required=True)
    uri = fields.Str()
    status = fields.Str(required=True)
    version = fields.Int(required=True)
    published_version = fields.Int(allow_none=True)
    url = fields.Str(allow_none=True)
    key = fields.Str(allow_none=True)
    embargoed_until = Timestamp(allow_none=True)
    reason = fields.Str(allow_none=True)
    timeline = fields.List(fields.Nested(TimelineEventSchema))
