"""The NINJS 1.x document schema (IPTC ninjs, plus Superdesk's `guid`) and the article model.

The schema is the API contract for `POST /v1/articles`: it validates what Pressroom
relies on and lets everything else through untouched (unknown fields are kept in the
stored document). `Article` is the normalised view the workers render from.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from marshmallow import (
    INCLUDE,
    Schema,
    ValidationError,
    fields,
    missing,
    pre_load,
    validate,
    validates_schema,
)

from shared import keys

PUBSTATUS = ("usable", "withheld", "canceled")
TEXT_TYPES = ("text", "composite")
PHOTO_TYPES = ("picture", "graphic")
MEDIA_TYPES = (*PHOTO_TYPES, "video", "audio")
LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")


class AwareDateTime(fields.DateTime):
    """ISO 8601 date-time; a value without offset is taken as UTC."""

    def _deserialize(self, value, attr, data, **kwargs):
        parsed = super()._deserialize(value, attr, data, **kwargs)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Version(fields.Field):
    """NINJS `version` is a string; Pressroom orders versions, so it must be a whole number."""

    default_error_messages = {"invalid": "Must be a whole number (e.g. \"3\") so versions can be ordered."}

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, int) and value >= 0:
            return value
        if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 15:
            return int(value.strip())
        raise self.make_error("invalid")

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else str(value)


_QCODE_LENGTHS = {"name": (1, 500), "code": (1, 500), "scheme": (None, 200)}  # (min, max) of Qcode's and Qcodes'


class Qcode(Schema):
    class Meta:
        unknown = INCLUDE

    name = fields.Str(validate=validate.Length(*_QCODE_LENGTHS["name"]))
    code = fields.Str(validate=validate.Length(*_QCODE_LENGTHS["code"]))
    scheme = fields.Str(validate=validate.Length(*_QCODE_LENGTHS["scheme"]))

    @validates_schema
    def name_or_code(self, data, **kwargs):
        if not data.get("name") and not data.get("code"):
            raise ValidationError("Give a name or a code.", field_name="name")


def _plain_qcode(item: Any) -> bool:
    """Whether Qcode would load `item` unchanged: an object whose name, code and scheme, where
    present, are strings within their lengths, with a name or a code (other keys are kept)."""
    if type(item) is not dict or ("name" not in item and "code" not in item):
        return False
    for name, (shortest, longest) in _QCODE_LENGTHS.items():
        if name in item:
            value = item[name]
            if type(value) is not str or not (shortest or 0) <= len(value) <= longest:
                return False
    return True


class Qcodes(fields.List):
    """A list of Qcode objects. A schema load costs ~17 µs an item and articles carry dozens of
    subjects, places and people, nearly always plain ones: those are taken as they are, and
    any other list is loaded item by item, so what a client gets back is Qcode's own errors."""

    def __init__(self, **kwargs) -> None:
        super().__init__(fields.Nested(Qcode), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if type(value) is list and all(map(_plain_qcode, value)):
            return [dict(item) for item in value]
        return super()._deserialize(value, attr, data, **kwargs)


_URL = validate.URL(schemes={"http", "https"}, require_tld=False, error="Must be an http(s) URL or a data: URI.")


def _href(value: str) -> None:
    if value.startswith("data:"):
        if not re.match(r"^data:image/(jpeg|png|webp|gif);base64,", value):
            raise ValidationError("A data: URI must be a base64 JPEG, PNG, WebP or GIF image.")
        return
    _URL(value)


class Rendition(Schema):
    class Meta:
        unknown = INCLUDE

    href = fields.Str(required=True, validate=_href)
    mimetype = fields.Str(validate=validate.Length(max=100))
    width = fields.Int(strict=True, validate=validate.Range(min=1, max=100_000))
    height = fields.Int(strict=True, validate=validate.Range(min=1, max=100_000))


class Picture(Schema):
    class Meta:
        unknown = INCLUDE

    type = fields.Str(validate=validate.OneOf(PHOTO_TYPES))
    uri = fields.Str()
    mimetype = fields.Str()
    headline = fields.Str()
    description_text = fields.Str(validate=validate.Length(max=5000))
    byline = fields.Str(validate=validate.Length(max=1000))
    copyrightholder = fields.Str(validate=validate.Length(max=1000))
    renditions = fields.Dict(keys=fields.Str(), values=fields.Nested(Rendition), required=True)

    @validates_schema
    def has_rendition(self, data, **kwargs):
        if not data.get("renditions"):
            raise ValidationError("A picture needs at least one rendition.", field_name="renditions")


class Associations(Schema):
    class Meta:
        unknown = INCLUDE

    featuremedia = fields.Nested(Picture, allow_none=True)

    @pre_load
    def photo_only(self, data, **kwargs):
        """A video or audio featuremedia (valid NINJS, sent by Superdesk) is kept but not a photo."""
        media = data.get("featuremedia") if isinstance(data, dict) else None
        if isinstance(media, dict) and media.get("type") in MEDIA_TYPES and media["type"] not in PHOTO_TYPES:
            data = {k: v for k, v in data.items() if k != "featuremedia"}
        return data


class NinjsArticle(Schema):
    """An article as a newsroom system posts it (NINJS 1.x)."""

    class Meta:
        unknown = INCLUDE

    uri = fields.Str(validate=validate.Length(min=1, max=1000))
    guid = fields.Str(validate=validate.Length(min=1, max=1000))
    type = fields.Str(load_default="text", validate=validate.OneOf(TEXT_TYPES))
    version = Version(required=True)
    versioncreated = AwareDateTime()
    firstcreated = AwareDateTime()
    firstpublished = AwareDateTime()
    embargoed = AwareDateTime(allow_none=True)
    pubstatus = fields.Str(load_default="usable", validate=validate.OneOf(PUBSTATUS))
    urgency = fields.Int(strict=True, validate=validate.Range(min=1, max=9))
    language = fields.Str(validate=validate.Regexp(LANGUAGE, error="Not a language tag (e.g. 'en', 'pt-BR')."))
    headline = fields.Str(validate=validate.Length(min=1, max=1000))
    slugline = fields.Str(validate=validate.Length(max=1000))
    byline = fields.Str(validate=validate.Length(max=1000))
    located = fields.Str(validate=validate.Length(max=500))
    description_text = fields.Str(validate=validate.Length(max=10_000))
    description_html = fields.Str(validate=validate.Length(max=20_000))
    body_html = fields.Str()
    body_text = fields.Str()
    subject = Qcodes()
    place = Qcodes()
    person = Qcodes()
    organisation = Qcodes()
    associations = fields.Nested(Associations)

    @pre_load
    def must_be_object(self, data, **kwargs):
        if not isinstance(data, dict):
            raise ValidationError("The document must be a JSON object.", field_name="_schema")
        return data

    @validates_schema
    def publishable(self, data, **kwargs):
        if not data.get("uri") and not data.get("guid"):
            raise ValidationError("Give the article's uri (or Superdesk's guid).", field_name="uri")
        if data.get("pubstatus") == "canceled":
            return
        if not data.get("headline"):
            raise ValidationError("A published article needs a headline.", field_name="headline")
        if not (data.get("body_html") or data.get("body_text")):
            raise ValidationError("A published article needs body_html or body_text.", field_name="body_html")


def error_list(messages: Any, prefix: str = "") -> list[dict[str, str]]:
    """Flatten marshmallow's nested error dict into [{'field': 'a.b.0.c', 'message': ...}]."""
    out: list[dict[str, str]] = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            # marshmallow nests Dict errors as {key: {"value": ...}}; the path is just the key
            name = prefix if key in ("_schema", "value") else (f"{prefix}.{key}" if prefix else str(key))
            out.extend(error_list(value, name))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        out.extend({"field": prefix or "$", "message": m} for m in messages)
    elif isinstance(messages, list):
        for item in messages:
            out.extend(error_list(item, prefix))
    else:
        out.append({"field": prefix or "$", "message": str(messages)})
    return out


@dataclass(frozen=True)
class Topic:
    name: str
    kind: str  # subject, place, person, organisation
    scheme: str = ""
    code: str = ""


@dataclass(frozen=True)
class Photo:
    href: str
    caption: str
    credit: str
    width: int | None = None
    height: int | None = None
    mimetype: str = ""


@dataclass(frozen=True)
class Article:
    """What the renderer needs of a NINJS document, normalised."""

    id: str
    uri: str
    version: int
    headline: str
    language: str = "en"
    slugline: str = ""
    byline: str = ""
    located: str = ""
    summary: str = ""
    body_html: str = ""
    body_text: str = ""
    pubstatus: str = "usable"
    urgency: int | None = None
    firstcreated: datetime | None = None
    firstpublished: datetime | None = None
    versioncreated: datetime | None = None
    embargoed: datetime | None = None
    topics: tuple[Topic, ...] = ()
    photo: Photo | None = None

    @property
    def section(self) -> str:
        for topic in self.topics:
            if topic.scheme == "section":
                return topic.name
        return "News"

    @property
    def published_at(self) -> datetime | None:
        return self.firstpublished or self.firstcreated or self.versioncreated

    @property
    def withdrawn(self) -> bool:
        return self.pubstatus in ("canceled", "withheld")


# One schema for every load: making one (its fields copied, each nested schema made anew)
# cost twice the validation itself, and a loaded schema keeps no state between loads.
_SCHEMA = NinjsArticle()

# The schemas' own hooks, which the plain load below runs where marshmallow would (before the
# fields, after them); tests hold this table to the hooks the schemas declare.
_HOOKS: dict[type, tuple[str | None, str | None]] = {
    NinjsArticle: ("must_be_object", "publishable"),
    Associations: ("photo_only", None),
    Picture: (None, "has_rendition"),
    Rendition: (None, None),
}


class _NotPlain(Exception):
    """Something the plain load leaves to the schema (which words the client's error)."""


def _plain_schema(schema: Schema, data: Any) -> dict:
    """`data` loaded the way `schema` loads it, field by field with the fields' own
    deserialisers and validators and the schema's own hooks, but without marshmallow's
    per-field machinery (error collection, getters, processors), which cost the API more
    than the checks themselves. Any failure raises _NotPlain."""
    before, after = _HOOKS[type(schema)]
    try:
        if before:
            data = getattr(schema, before)(data)
        if type(data) is not dict:
            raise _NotPlain
        out = dict(data)  # unknown fields are kept (every schema here INCLUDEs them)
        for name, field in schema.fields.items():
            if name not in data:
                if field.required:
                    raise _NotPlain
                default = field.load_default
                if default is not missing:
                    out[name] = default() if callable(default) else default
                continue
            value = data[name]
            if value is None:
                if not field.allow_none:
                    raise _NotPlain
            elif type(field) is fields.String:
                if type(value) is not str:
                    raise _NotPlain
                for check in field.validators:
                    check(value)
            elif type(field) is fields.Nested:
                out[name] = _plain_schema(field.schema, value)
            elif type(field) is fields.Dict and type(field.value_field) is fields.Nested:
                if type(value) is not dict or not all(type(key) is str for key in value):
                    raise _NotPlain
                nested = field.value_field.schema
                out[name] = {key: _plain_schema(nested, item) for key, item in value.items()}
            else:
                out[name] = field.deserialize(value, name, data)
        if after:
            getattr(schema, after)(out)
    except ValidationError as exc:
        raise _NotPlain from exc
    return out


def load_ninjs(doc: Any) -> dict:
    """What NinjsArticle().load(doc) returns, and its ValidationError for an invalid document.

    A document whose every known field passes its checks is loaded by `_plain_schema` (a
    third of the schema's time); any other goes through the schema, so the errors a client
    gets are marshmallow's own.
    """
    try:
        return _plain_schema(_SCHEMA, doc)
    except _NotPlain:
        return _SCHEMA.load(doc)


def load_article(doc: dict) -> Article:
    """Validate a raw NINJS document and return the article; raises ValidationError."""
    return article_from_loaded(load_ninjs(doc))


def article_from_loaded(data: dict) -> Article:
    uri = data.get("uri") or data["guid"]
    topics = tuple(
        Topic(name=q.get("name") or q.get("code"), kind=kind, scheme=q.get("scheme", ""), code=q.get("code", ""))
        for kind in ("subject", "place", "person", "organisation")
        for q in data.get(kind, [])
    )
    photo = None
    media = (data.get("associations") or {}).get("featuremedia")
    if media:
        best = choose_rendition(media["renditions"])
        photo = Photo(
            href=best["href"],
            caption=media.get("description_text") or media.get("headline") or "",
            credit=photo_credit(media),
            width=best.get("width"),
            height=best.get("height"),
            mimetype=best.get("mimetype") or media.get("mimetype", ""),
        )
    return Article(
        id=keys.article_id(uri),
        uri=uri,
        version=data["version"],
        headline=data.get("headline", ""),
        language=data.get("language", "en"),
        slugline=data.get("slugline", ""),
        byline=data.get("byline", ""),
        located=data.get("located", ""),
        summary=data.get("description_text", ""),
        body_html=data.get("body_html", ""),
        body_text=data.get("body_text", ""),
        pubstatus=data.get("pubstatus", "usable"),
        urgency=data.get("urgency"),
        firstcreated=data.get("firstcreated"),
        firstpublished=data.get("firstpublished"),
        versioncreated=data.get("versioncreated"),
        embargoed=data.get("embargoed"),
        topics=topics,
        photo=photo,
    )


_TIMES = tuple(f.name for f in dataclasses.fields(Article) if "datetime" in str(f.type))


def article_to_json(article: Article) -> dict:
    """The article as JSON-ready data for `article_from_json`: a rebuild keeps it between its two
    phases, so a stored document is validated (`load_article`) once, not once per phase."""
    data = asdict(article)
    for name in _TIMES:
        data[name] = data[name].isoformat() if data[name] else None
    return data


def article_from_json(data: dict) -> Article:
    """The article `article_to_json` wrote (already validated: nothing is checked again)."""
    return Article(**{
        **data,
        **{name: datetime.fromisoformat(data[name]) if data[name] else None for name in _TIMES},
        "topics": tuple(Topic(**topic) for topic in data["topics"]),
        "photo": Photo(**data["photo"]) if data["photo"] else None,
    })


def choose_rendition(renditions: dict[str, dict]) -> dict:
    """The rendition the photo is made from: `original` (the full frame), else the largest.

    Superdesk sends `original` beside its own sizes (`baseImage` ~1400 px, `viewImage`
    ~640, `thumbnail` ~120) and editors' crops (`16-9`, ...); Pressroom makes its own
    sizes and crops, so it wants the full frame. Without `original`, the largest by area
    (a rendition without dimensions counts as smallest: its size is unknown).
    """
    if "original" in renditions:
        return renditions["original"]
    return max(renditions.values(), key=lambda r: (r.get("width") or 0) * (r.get("height") or 0))


def photo_credit(media: dict) -> str:
    """The photographer (`byline`) and the rights holder (`copyrightholder`), as Superdesk sends both."""
    byline = (media.get("byline") or "").strip()
    holder = (media.get("copyrightholder") or "").strip()
    if holder and holder.lower() not in byline.lower():
        return f"{byline} / {holder}" if byline else holder
    return byline
