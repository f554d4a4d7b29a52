"""The OpenAPI 3.1 document (drf-spectacular): what it cannot read off the views.

drf-spectacular reads the DRF views; this module adds what it cannot see: how callers
authenticate, the error envelope on every operation (one rule here instead of a decorator per
view), and the few plain Django endpoints of the API (OIDC discovery, JWKS, the trigger intake).
"""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiExample, OpenApiResponse

from connect.api import shapes

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

#: One example per status: what a client sees, word for word where the message is fixed.
ERROR_EXAMPLES: dict[int, tuple[str, str, str]] = {
    400: ("Bad request", "invalid_request", "subject.type: This field is required."),
    401: ("No or bad bearer", "unauthorized", "Send Authorization: Bearer <credential>."),
    403: (
        "Not allowed",
        "forbidden",
        "Revoking every subject's tokens takes a team member.",
    ),
    404: ("Not found", "not_found", "No such connector."),
    409: ("Name taken", "conflict", "The uid github/acme-bot is taken in this team."),
    422: (
        "Cannot be done as asked",
        "user_authorization_required",
        "This user has not authorized the connector yet.",
    ),
    429: ("Rate limited", "rate_limited", "More than 200 reads a minute for this team."),
    502: (
        "Provider down",
        "provider_unavailable",
        "The provider did not answer in time.",
    ),
    503: ("Unhealthy", "internal_error", "A dependency failed."),
}

#: Every authenticated operation can answer these, whatever it does.
COMMON_ERRORS = (400, 401, 403, 404, 429)

RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer"},
    }
}


def error_example(status: int) -> dict[str, Any]:
    _, code, message = ERROR_EXAMPLES[status]
    return {"error": {"code": code, "message": message}}


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """Declared error responses for ``extend_schema(responses=…)``, beyond the common ones."""
    return {
        status: OpenApiResponse(
            response=shapes.ErrorEnvelope,
            description=ERROR_EXAMPLES[status][0],
            examples=[
                OpenApiExample(
                    ERROR_EXAMPLES[status][1],
                    value=error_example(status),
                    status_codes=[status],
                    response_only=True,
                )
            ],
        )
        for status in statuses
    }


class ConnectAutoSchema(AutoSchema):
    """The runtime API under one tag; the rest by the noun after ``/connect/``."""

    def get_auth(self) -> list[dict[str, list[str]]]:
        """The paths both callers share take either bearer (each scheme is declared by the
        views that take only it)."""
        from connect.api.authentication import TeamTokenOrRuntimeAuthentication

        if TeamTokenOrRuntimeAuthentication in getattr(self.view, "authentication_classes", ()):
            return [{"teamToken": []}, {"deploymentCredential": []}]
        return list(super().get_auth())

    def get_tags(self) -> list[str]:
        from connect.api.authentication import RuntimeCallerAuthentication

        if RuntimeCallerAuthentication in getattr(self.view, "authentication_classes", ()):
            return ["runtime"]
        parts = [p for p in self.path.split("/") if p and not p.startswith("{")]
        if parts[:2] in (["v1", "connect"], ["v2", "connect"]) and len(parts) > 2:
            return [parts[2]]
        return [parts[1] if len(parts) > 1 else parts[0]]


def _bearer(target: str, name: str, description: str) -> None:
    """Describe the authentication class at dotted path ``target`` as the bearer scheme
    ``name``."""
    definition = {"type": "http", "scheme": "bearer", "description": description}

    def get_security_definition(self: Any, auto_schema: AutoSchema) -> dict[str, Any]:
        return definition

    members = {
        "target_class": target,
        "name": name,
        "get_security_definition": get_security_definition,
    }
    type(name + "Scheme", (OpenApiAuthenticationExtension,), members)


_bearer(
    "connect.api.authentication.RuntimeCallerAuthentication",
    "deploymentCredential",
    "A deployment credential (`cdc_…`, from the admin or `manage.py deployment_credential "
    "create`) or an OIDC token from a trusted issuer. Acts for one project and environment.",
)
_bearer(
    "connect.api.authentication.TeamTokenAuthentication",
    "teamToken",
    "A team API token (`cat_…`, from the admin or `manage.py api_token create`). Acts as a "
    "member of one team with its role: viewer reads, member writes, owner also manages tokens.",
)


def _error_response(status: int) -> dict[str, Any]:
    description, code, _ = ERROR_EXAMPLES[status]
    response: dict[str, Any] = {
        "description": description,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/ErrorEnvelope"},
                "examples": {code: {"value": error_example(status)}},
            }
        },
    }
    if status in (429, 502):
        response["headers"] = RETRY_AFTER
    return response


def _plain_endpoints() -> dict[str, Any]:
    """The API's plain Django views, which drf-spectacular does not read."""
    json_object = {"type": "object", "additionalProperties": True}
    not_found = _error_response(404)
    return {
        "/.well-known/openid-configuration": {
            "get": {
                "operationId": "openid_configuration",
                "summary": "This app's OIDC discovery document",
                "description": "For services that verify the tokens `manage.py oidc_token` "
                "mints (this app is itself a trusted issuer).",
                "tags": ["oidc"],
                "security": [],
                "responses": {
                    "200": {
                        "description": "The discovery document.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    **json_object,
                                    "required": ["issuer", "jwks_uri"],
                                    "properties": {
                                        "issuer": {"type": "string"},
                                        "jwks_uri": {"type": "string"},
                                    },
                                },
                                "examples": {
                                    "discovery": {
                                        "value": {
                                            "issuer": "https://connect.example.com",
                                            "jwks_uri": "https://connect.example.com"
                                            "/.well-known/jwks.json",
                                            "id_token_signing_alg_values_supported": ["RS256"],
                                        }
                                    }
                                },
                            }
                        },
                    }
                },
            }
        },
        "/.well-known/jwks.json": {
            "get": {
                "operationId": "jwks",
                "summary": "This app's public signing keys",
                "tags": ["oidc"],
                "security": [],
                "responses": {
                    "200": {
                        "description": "A JSON Web Key Set (current and retiring keys).",
                        "content": {"application/json": {"schema": _jwks_schema()}},
                    }
                },
            }
        },
        "/connect/connectors/{public_id}/jwks.json": {
            "get": {
                "operationId": "connector_jwks",
                "summary": "A connector's client-assertion key",
                "description": "The public key an OAuth server uses to check this connector's "
                "`private_key_jwt` client assertions.",
                "tags": ["oidc"],
                "security": [],
                "parameters": [_path_parameter("public_id", "The connector's `scl_` id.")],
                "responses": {
                    "200": {
                        "description": "A JSON Web Key Set of one key.",
                        "content": {"application/json": {"schema": _jwks_schema()}},
                    },
                    "404": not_found,
                },
            }
        },
        "/v1/connect/proxy/{rest}": _proxy(),
        "/connect/trigger/{connector_id}": {
            "post": {
                "operationId": "trigger_receive",
                "summary": "Webhook intake (called by the provider)",
                "description": "The URL given to the provider's webhook settings. The body is "
                "verified on its raw bytes with the connector's signing secret, recorded, and "
                "forwarded to the connector's trigger destinations by workers. The answer is "
                "what the provider expects (a URL-verification challenge, or an empty 200).",
                "tags": ["triggers"],
                "security": [],
                "parameters": [_path_parameter("connector_id", "The connector's `scl_` id.")],
                "requestBody": {
                    "required": False,
                    "content": {"*/*": {"schema": {}}},
                },
                "responses": {
                    "200": {
                        "description": "Received (the body is the provider's expected reply).",
                        "content": {"*/*": {"schema": {}}},
                    },
                    "400": _error_response(400),
                    "401": _error_response(401),
                    "404": not_found,
                    "413": {
                        "description": "The body is larger than the limit.",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ErrorEnvelope"}
                            }
                        },
                    },
                },
            }
        },
    }


def _proxy() -> dict[str, Any]:
    """The proxy forwards any of these methods; the answer is the provider's, untouched."""
    operation = {
        "tags": ["runtime"],
        "security": [{"deploymentCredential": []}],
        "parameters": [
            {
                "name": "rest",
                "in": "path",
                "required": True,
                "description": "`{connector}/{provider path}`: the connector's `scl_` id or "
                "uid, then the path on the provider's API, sent as is.",
                "schema": {"type": "string"},
            }
        ],
        "responses": {
            "default": {
                "description": "The provider's answer, status, headers and body as it sent "
                "them; Connect's own errors are in the envelope with `Connect-Error: 1`.",
                "content": {"*/*": {"schema": {}}},
            }
        },
    }
    described = {
        "get": "Call the provider's API with the connector's token (GET)",
        "post": "Call the provider's API (POST; the body is forwarded as is)",
        "put": "Call the provider's API (PUT)",
        "patch": "Call the provider's API (PATCH)",
        "delete": "Call the provider's API (DELETE)",
    }
    return {
        method: {
            **operation,
            "operationId": f"proxy_{method}",
            "summary": summary,
            **(
                {"requestBody": {"required": False, "content": {"*/*": {"schema": {}}}}}
                if method in ("post", "put", "patch")
                else {}
            ),
        }
        for method, summary in described.items()
    }


def _path_parameter(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_]{1,40}$"},
    }


def _jwks_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["keys"],
        "properties": {"keys": {"type": "array", "items": {"type": "object"}}},
    }


def token_fast_path(endpoints: list[Any]) -> list[Any]:
    """Preprocessing hook: ``POST /v1/connect/token/{connector}`` is routed to a plain function
    (``views.token``, the hot path without DRF's machinery) that hands everything unusual to
    ``TokenView``; the view describes the operation, so it stands in for the function here."""
    from connect.api.views import TokenView

    path = "/v1/connect/token/{connector}"
    if any(p == path for p, *_ in endpoints):
        return endpoints
    regex = r"^v1/connect/token/(?P<connector>[^/]+)$"
    return [*endpoints, (path, regex, "POST", TokenView.as_view())]


def error_responses_everywhere(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """Postprocessing hook: the plain endpoints, and 400/401/403/404/429 in the envelope on
    every authenticated operation that does not declare its own."""
    result["paths"].update(_plain_endpoints())
    for item in result["paths"].values():
        for method, operation in item.items():
            if method not in HTTP_METHODS or not operation.get("security"):
                continue
            responses = operation.setdefault("responses", {})
            for status in COMMON_ERRORS:
                responses.setdefault(str(status), _error_response(status))
            for status, response in responses.items():
                if status in ("429", "502"):
                    response.setdefault("headers", RETRY_AFTER)
    result["paths"] = dict(sorted(result["paths"].items()))
    return result


# The Vercel-shaped endpoints' descriptions register themselves as view extensions on import.
from connect.api import connector_docs  # noqa: E402, F401
