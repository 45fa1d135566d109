"""The OpenAPI 3 description of the JSON API, served at `/openapi.json`.

Written by hand beside `protocol_json.py`; a test checks that both accept the
same request fields.
"""

from typing import Any

_SCALAR = {
    "oneOf": [{"type": "number"}, {"type": "string"}],
    "description": "A number or a string.",
}
_NULLABLE_SCALAR = {
    "oneOf": [{"type": "number"}, {"type": "string"}, {"type": "null"}],
}
_FEATURE_VALUE = {
    "description": (
        "A raw feature value: a scalar, null (missing), a list of scalars, a "
        "list of lists of scalars, or an object of scalars (a map feature). "
        "Numbers must be finite; booleans are not accepted."
    ),
    "oneOf": [
        {"$ref": "#/components/schemas/NullableScalar"},
        {"type": "array", "items": {"$ref": "#/components/schemas/NullableScalar"}},
        {
            "type": "array",
            "items": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/NullableScalar"},
            },
        },
        {
            "type": "object",
            "additionalProperties": {"$ref": "#/components/schemas/Scalar"},
        },
    ],
}
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}

_RANK_REQUEST = {
    "type": "object",
    "required": ["item_ids"],
    "additionalProperties": False,
    "properties": {
        "user_features": {
            "type": "object",
            "description": "Feature name to one value for the whole request.",
            "additionalProperties": {"$ref": "#/components/schemas/FeatureValue"},
        },
        "item_ids": {
            "type": "array",
            "minItems": 1,
            "description": "The N candidate items; integers are read as strings.",
            "items": {
                "oneOf": [{"type": "string", "minLength": 1}, {"type": "integer"}]
            },
        },
        "item_features": {
            "type": "object",
            "description": (
                "Feature name to exactly N values, one per item in item_ids "
                "order; they override the item feature store."
            ),
            "additionalProperties": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/FeatureValue"},
            },
        },
        "context_features": {
            "type": "object",
            "description": (
                "Feature name to N values (one per item) or to one value that "
                "holds for every item."
            ),
            "additionalProperties": {
                "type": "array",
                "minItems": 1,
                "items": {"$ref": "#/components/schemas/FeatureValue"},
            },
        },
        "outputs": {
            "type": "array",
            "description": "Model outputs to return; empty or absent means all.",
            "items": {"type": "string"},
        },
        "debug_level": {
            "type": "integer",
            "minimum": 0,
            "maximum": 2,
            "default": 0,
            "description": "0 scores, 1 also generated features, 2 also raw ones.",
        },
        "meta_data": {**_STRING_MAP, "description": "Passed through to logs."},
        "request_id": {
            "type": "string",
            "minLength": 1,
            "description": "Echoed in the response; the server makes one if absent.",
        },
        "fg_mode": {
            "type": "string",
            "enum": ["normal", "bypass"],
            "default": "normal",
            "description": "bypass: the request carries model inputs; FG is "
            "skipped (docs/serving.md).",
        },
        "generated_features": {
            "type": "object",
            "additionalProperties": {"type": "array"},
            "description": "With bypass: model input name (`f.values`, "
            "`f.lengths`) to its FG output over the items.",
        },
    },
}

_RANK_RESPONSE = {
    "type": "object",
    "required": ["request_id", "model_version", "item_ids", "outputs"],
    "properties": {
        "request_id": {"type": "string"},
        "model_version": {"type": "string"},
        "item_ids": {"type": "array", "items": {"type": "string"}},
        "outputs": {
            "type": "object",
            "description": (
                "Output name to one value per item, in item_ids order (nested "
                "lists for outputs of more than one dimension). A non-finite "
                "score is null."
            ),
            "additionalProperties": {"type": "array"},
        },
        "generate_features": {
            "type": "array",
            "description": "With debug_level >= 1: per item, name to value.",
            "items": _STRING_MAP,
        },
        "raw_features": {
            "type": "array",
            "description": "With debug_level >= 2: per item, name to raw value.",
            "items": _STRING_MAP,
        },
    },
}

_ERROR = {
    "type": "object",
    "required": ["error", "request_id"],
    "properties": {
        "error": {"type": "string", "description": "What is wrong, and where."},
        "request_id": {"type": "string"},
    },
}


def build_openapi_schema(service_name: str) -> dict[str, Any]:
    """Builds the OpenAPI 3 document of the JSON API.

    Args:
        service_name: the service name, shown in the title.

    Returns:
        The document, ready for `json.dumps`.
    """
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"recship rank API ({service_name})",
            "version": "1",
            "description": (
                "Ranks N candidate items for one user. The same server also "
                "speaks the TorchEasyRec Processor protobuf protocol at "
                f"POST /api/predict/{service_name}."
            ),
        },
        "paths": {
            "/v1/rank": {
                "post": {
                    "summary": "Score candidate items for one user",
                    "operationId": "rank",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/RankRequest"}
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "Scores, one per item.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "$ref": "#/components/schemas/RankResponse"
                                    }
                                }
                            },
                        },
                        "400": {"description": "Malformed request.", "content": error},
                        "413": {"description": "Body too large.", "content": error},
                        "500": {"description": "Server error.", "content": error},
                        "503": {"description": "Overloaded.", "content": error},
                    },
                }
            },
            "/health": {"get": {"summary": "Liveness", "responses": _ok_only()}},
            "/ready": {
                "get": {
                    "summary": "Readiness: 200 once a model is loaded and warm",
                    "responses": {
                        **_ok_only(),
                        "503": {"description": "Not ready yet."},
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Scalar": _SCALAR,
                "NullableScalar": _NULLABLE_SCALAR,
                "FeatureValue": _FEATURE_VALUE,
                "RankRequest": _RANK_REQUEST,
                "RankResponse": _RANK_RESPONSE,
                "Error": _ERROR,
            }
        },
    }


def _ok_only() -> dict[str, Any]:
    """The 200 response of the probe endpoints."""
    return {"200": {"description": "OK."}}
