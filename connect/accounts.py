"""The allauth seam for people: team admins sign in; nobody signs up, nobody logs in by OAuth."""

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.http import HttpRequest

from connect import http


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

    def get_requests_session(self) -> Any:
        # allauth's provider calls get the same timeouts and SSRF guard as ours.
        return http.session()
