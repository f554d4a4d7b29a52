"""Public, unauthenticated pages and documents."""

from django.http import Http404, HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

from connect.models import Connector
from connect.services import oidc


@require_GET
def openid_configuration(request: HttpRequest) -> JsonResponse:
    return JsonResponse(oidc.openid_configuration())


@require_GET
def connector_jwks(request: HttpRequest, public_id: str) -> JsonResponse:
    """The public key an OAuth server uses to check this connector's client assertions."""
    connector = get_object_or_404(Connector, public_id=public_id)
    jwk = connector.config.get("clientAssertionJwk")
    if not jwk:
        raise Http404("This connector does not authenticate with private_key_jwt.")
    return JsonResponse({"keys": [jwk]})


@require_GET
def jwks(request: HttpRequest) -> JsonResponse:
    response = JsonResponse(oidc.jwks())
    response["Cache-Control"] = "public, max-age=300"
    return response
