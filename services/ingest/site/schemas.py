from marshmallow import Schema, fields, validate


class PageviewSchema(Schema):
    id = fields.Str(required=True, validate=validate.Regexp(r"^a[0-9a-f]{20}$", error="Not an article id."))


class CollectionSchema(Schema):
    items = fields.List(
        fields.Str(validate=validate.Length(min=1, max=1000)),
        required=True,
        validate=validate.Length(max=50),
        metadata={"description": "Article ids or uris, in the order editors want them shown"},
    )


class CollectionOutSchema(Schema):
    name = fields.Str()
    items = fields.List(fields.Str(), metadata={"description": "Article ids"})
