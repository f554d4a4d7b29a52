"""Public, unauthenticated pages and documents."""

from collections.abc import Callable
from functools import wraps

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_GET

from connect import oidc
from connect.models import AuthorizationRequest, Connector
from connect.services import authorizations


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


def flow_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A page whose URL carries ``code``, ``state`` or a request id: no Referer leaves it,
    not even through a redirect it answers with (browsers apply a redirect's policy)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response["Referrer-Policy"] = "no-referrer"
        return response

    return wrapper


def _flow_error(request: HttpRequest, error: authorizations.FlowError) -> HttpResponse:
    flow = error.flow
    # The app learns what happened in OAuth's own words, not always "access_denied".
    codes: dict[str, str] = {
        AuthorizationRequest.Outcome.DENIED: "access_denied",
        AuthorizationRequest.Outcome.EXPIRED: "expired_token",
    }
    code = codes.get(flow.outcome if flow else "", "server_error")
    back = authorizations.return_redirect(flow, error=code) if flow else ""
    context = {
        "connector": flow.connector if flow else None,
        "title": error.title,
        "detail": error.detail,
        "back_url": back,
    }
    return render(request, "connect/flow_error.html", context, status=400)


@sensitive_variables("provider_url")  # it carries the flow's state
@flow_page
@require_GET
def install_page(request: HttpRequest, connector_id: str) -> HttpResponse:
    """The public page behind an install or consent link: the connector's branding and a link
    to the provider. Plain HTML, no JavaScript needed."""
    try:
        flow, provider_url = authorizations.authorization_page(
            connector_id=connector_id, request_id=request.GET.get("request", "")
        )
    except authorizations.FlowError as error:
        return _flow_error(request, error)
    context = {"connector": flow.connector, "flow": flow, "provider_url": provider_url}
    response = render(request, "connect/flow_start.html", context)
    response["Cache-Control"] = "no-store"
    return response


@sensitive_variables()  # the provider's code and our state, and what they are exchanged for
@flow_page
@require_GET
def callback(request: HttpRequest) -> HttpResponse:
    """Where every provider sends the tenant back (``{PUBLIC_URL}/connect/callback``)."""
    params = {name: request.GET.get(name, "") for name in request.GET}
    try:
        done = authorizations.authorization_complete(params=params)
    except authorizations.FlowError as error:
        return _flow_error(request, error)
    if isinstance(done, authorizations.FlowNotice):
        notice: dict[str, object] = {
            "connector": done.connector,
            "title": done.title,
            "detail": done.detail,
            "back_url": done.back_url,
        }
        return render(request, "connect/flow_notice.html", notice)
    if done.redirect_to:
        return HttpResponseRedirect(done.redirect_to)
    context = {
        "connector": done.flow.connector,
        "flow": done.flow,
        "installation": done.installation,
    }
    return render(request, "connect/flow_done.html", context)
