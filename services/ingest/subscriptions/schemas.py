"""Request and response schemas of the subscription resources (the OpenAPI contract)."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from services.ingest.fields import Timestamp
from shared.messages import ARTICLE_EVENTS
from shared.subscriptions import CHANNELS


def _topic(value: str) -> None:
    """A topic must survive normalisation: blank or punctuation-only names would match nothing."""
    if value.strip() != "*" and not any(c.isalnum() for c in value):
        raise ValidationError("A topic needs a letter or digit, or is '*'.")


TOPIC = fields.Str(validate=[validate.Length(min=1, max=200), _topic])
TOPICS_HELP = (
    "Topic names as in NINJS subject/place/person/organisation or a section, matched case- and "
    "accent-insensitively; '*' follows everything"
)


class SubscriptionCreateSchema(Schema):
    channel = fields.Str(required=True, validate=validate.OneOf(CHANNELS))
    url = fields.Str(
        validate=validate.URL(schemes={"http", "https"}, require_tld=False),
        metadata={"description": "webhook channel: where to POST (public address; refused if it resolves privately)"},
    )
    email = fields.Email(metadata={"description": "email channel: the reader's address (double opt-in)"})
    topics = fields.List(TOPIC, required=True, validate=validate.Length(min=1, max=100),
                         metadata={"description": TOPICS_HELP})
    events = fields.List(fields.Str(validate=validate.OneOf(ARTICLE_EVENTS)), validate=validate.Length(min=1),
                         load_default=lambda: list(ARTICLE_EVENTS))
    description = fields.Str(load_default="", validate=validate.Length(max=500))

    @validates_schema
    def target_matches_channel(self, data, **kwargs):
        if data.get("channel") == "webhook" and not data.get("url"):
            raise ValidationError("A webhook subscription needs a url.", field_name="url")
        if data.get("channel") == "email" and not data.get("email"):
            raise ValidationError("An email subscription needs an email address.", field_name="email")
        if data.get("channel") == "webhook" and data.get("email"):
            raise ValidationError("A webhook subscription takes a url, not an email.", field_name="email")
        if data.get("channel") == "email" and data.get("url"):
            raise ValidationError("An email subscription takes an email, not a url.", field_name="url")


class SubscriptionPatchSchema(Schema):
    status = fields.Str(validate=validate.OneOf(["active", "paused"]),
                        metadata={"description": "paused stops deliveries; active resumes (and re-enables)"})
    topics = fields.List(TOPIC, validate=validate.Length(min=1, max=100), metadata={"description": TOPICS_HELP})
    events = fields.List(fields.Str(validate=validate.OneOf(ARTICLE_EVENTS)), validate=validate.Length(min=1))
    url = fields.Str(validate=validate.URL(schemes={"http", "https"}, require_tld=False))
    description = fields.Str(validate=validate.Length(max=500))

    @validates_schema
    def not_empty(self, data, **kwargs):
        if not data:
            raise ValidationError("Give at least one of status, topics, events, url, description.")


class SubscriptionSchema(Schema):
    id = fields.Str(required=True)
    channel = fields.Str(required=True)
    url = fields.Str()
    email = fields.Str()
    topics = fields.List(fields.Str(), required=True)
    events = fields.List(fields.Str(), required=True)
    status = fields.Str(
        required=True, metadata={"description": "pending (email not confirmed), active, paused, disabled"}
    )
    description = fields.Str()
    disabled_reason = fields.Str(allow_none=True)
    failing_since = Timestamp(allow_none=True, metadata={"description": "first failure of the current streak"})
    previous_secret_valid_until = Timestamp(allow_none=True)
    created_at = Timestamp()
    updated_at = Timestamp()
    message = fields.Str()


class SubscriptionPageSchema(Schema):
    items = fields.List(fields.Nested(SubscriptionSchema), required=True)
    page = fields.Int(required=True)
    per_page = fields.Int(required=True)
    total = fields.Int(required=True)


class SubscriptionCreatedSchema(SubscriptionSchema):
    secret = fields.Str(metadata={"description": "webhook only: the whsec_ signing secret, shown this once"})


class SecretSchema(Schema):
    id = fields.Str(required=True)
    secret = fields.Str(required=True, metadata={"description": "the new whsec_ secret, shown this once"})
    previous_secret_valid_until = Timestamp(
        allow_none=True, metadata={"description": "the old secret also signs until then"}
    )


class PageArgsSchema(Schema):
    page = fields.Int(load_default=1, validate=validate.Range(min=1, max=1000))
    per_page = fields.Int(load_default=20, validate=validate.Range(min=1, max=100))


class DeliveryAttemptSchema(Schema):
    at = Timestamp(metadata={"description": "time of the attempt"})
    delivery_id = fields.Str()
    event = fields.Str()
    article_id = fields.Str()
    version = fields.Int()
    attempt = fields.Int()
    status = fields.Str(metadata={"description": "delivered, retrying, failed, cancelled"})
    http_status = fields.Int(allow_none=True)
    latency_ms = fields.Int()
    response = fields.Str(metadata={"description": "first 200 bytes of the answer"})
    error = fields.Str()
    next_attempt_at = Timestamp(allow_none=True)


class DeliveryPageSchema(Schema):
    items = fields.List(fields.Nested(DeliveryAttemptSchema), required=True)
    page = fields.Int(required=True)
    per_page = fields.Int(required=True)
    total = fields.Int(required=True)


class DeliverySchema(Schema):
    id = fields.Str(required=True)
    subscription_id = fields.Str()
    event = fields.Str()
    article_id = fields.Str()
    version = fields.Int()
    state = fields.Str(metadata={"description": "pending, delivering, delivered, failed, cancelled"})
    attempts = fields.Int()
    next_attempt_at = Timestamp(allow_none=True)
    last_http_status = fields.Int(allow_none=True)
    last_error = fields.Str()
    webhook_id = fields.Str()


class TokenArgsSchema(Schema):
    token = fields.Str(required=True, validate=validate.Length(min=10, max=200))
