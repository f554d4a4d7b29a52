"""The allauth seam for people: team admins sign in; nobody signs up, nobody logs in by OAuth."""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialApp
from django.http import HttpRequest

from connect import http

# An in-memory app (never a row, never holding a secret) that allauth's adapters may look up
# while we read a provider's endpoints; outside such a block there are no apps at all.
_bound_app: ContextVar[SocialApp | None] = ContextVar("connect_bound_app", default=None)


@contextmanager
def bound_app(app: SocialApp) -> Iterator[SocialApp]:
    token = _bound_app.set(app)
    try:
        yield app
    finally:
        _bound_app.reset(token)


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        # Accounts are created by a superuser, `create_team`, or a team owner adding a member.
        return False


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest, sociallogin: Any) -> bool:
        return False

    def list_apps(
        self, request: HttpRequest | None, provider: Any = None, client_id: Any = None
    ) -> list[Any]:
        # Connector apps are never SocialApp rows; whatever else is there is not a login option.
        return []

    def get_app(self, request: HttpRequest | None, provider: str, client_id: Any = None) -> Any:
        app = _bound_app.get()
        if app is not None and provider in (app.provider, app.provider_id):
            return app
        return super().get_app(request, provider, client_id=client_id)

    def get_requests_session(self) -> Any:
        # allauth's provider calls get the same timeouts and SSRF guard as ours.
        return http.session()
