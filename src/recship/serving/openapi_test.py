"""Tests of the hand-written OpenAPI document."""

import json

from recship.serving.openapi import build_openapi_schema
from recship.serving.protocol_json import REQUEST_FIELDS


def test_schema_names_the_fields_the_decoder_accepts() -> None:
    schema = build_openapi_schema("svc")
    request = schema["components"]["schemas"]["RankRequest"]
    assert set(request["properties"]) == set(REQUEST_FIELDS)
    assert request["required"] == ["item_ids"]


def test_schema_references_resolve_and_serialize() -> None:
    schema = build_openapi_schema("svc")
    text = json.dumps(schema)
    names = schema["components"]["schemas"]
    refs = {part.split('"')[0] for part in text.split("#/components/schemas/")[1:]}
    assert refs <= set(names)
    assert "/api/predict/svc" in schema["info"]["description"]
