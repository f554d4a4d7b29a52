from typing import Any

from django.contrib import admin
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode

from connect import charts
from connect.models import Connector, Membership
from connect.navigation import grouped
from connect.services import health


class ConnectAdminSite(admin.AdminSite):
    """The admin for team members, not only staff: every page is scoped to the user's teams."""

    site_header = "Connect"
    site_title = "Connect"
    index_title = "Your connectors"
    index_template = "admin/connect_index.html"
    # Django's left navigation took 300 px from every list (filters took 270 more), so the
    # right-hand columns hid behind a scroll; the grouped index already navigates.
    enable_nav_sidebar = False

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        if not (user.is_authenticated and user.is_active):
            return False
        if user.is_superuser:
            return True
        cached = getattr(request, "_connect_is_member", None)
        if cached is None:
            cached = Membership.objects.filter(user=user).exists()
            request._connect_is_member = cached  # type: ignore[attr-defined]
        return cached

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[Any]:
        """The navigation by task (Connectors · Projects & credentials · Activity · Team), not
        Django's alphabetical list of models; an app's own page keeps Django's."""
        app_list = super().get_app_list(request, app_label)
        return app_list if app_label else grouped(app_list)

    def get_urls(self) -> list[Any]:
        from connect.admin.activity import activity_view

        return [
            # Connect's own app page is the index, grouped by task (Django's would list every
            # model alphabetically); other apps keep theirs.
            path(
                "connect/",
                self.admin_view(
                    lambda request: HttpResponseRedirect(
                        reverse("admin:index", current_app=self.name)
                    )
                ),
            ),
            path(
                "activity/",
                self.admin_view(lambda request: activity_view(self, request)),
                name="connect_activity",
            ),
            *super().get_urls(),
        ]

    def login(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        """Sign-in is allauth's (username or email); the admin's own form only hands over."""
        next_url = request.GET.get(REDIRECT_FIELD_NAME, "")
        if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
            next_url = reverse("admin:index", current_app=self.name)
        if request.user.is_authenticated:
            if self.has_permission(request):
                return HttpResponseRedirect(next_url)
            # Signed in but in no team: the sign-in page would send them straight back here.
            context = {**self.each_context(request), "title": "No team", **(extra_context or {})}
            return TemplateResponse(request, "admin/connect_no_team.html", context, status=403)
        query = urlencode({REDIRECT_FIELD_NAME: next_url})
        return HttpResponseRedirect(f"{reverse('account_login')}?{query}")

    def index(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> TemplateResponse:
        connectors = list(
            Connector.objects.for_user(request.user)
            .select_related("team")
            .with_installation_counts()
            .order_by("team__name", "uid")[:200]
        )
        found = health.connectors_health(connectors=connectors)
        for connector in connectors:
            connector.health = found[connector.pk]
        team_ids = (
            sorted({c.team_id for c in connectors})
            if request.user.is_superuser
            else sorted(Membership.objects.roles_of(request.user))
        )
        context = {
            "connectors": connectors,
            "activity_panels": charts.activity_panels(team_ids=team_ids),
            **(extra_context or {}),
        }
        return super().index(request, extra_context=context)
