import re

from django.urls import include, path, re_path, register_converter

from connect.api import connectors, docs, management, proxy, views


class ConnectorRefConverter:
    """A ``scl_`` id, or a ``service/name`` uid (clients send ``%2F``; Django decodes it).

    A segment starting ``scl_`` is always an id: without the lookahead an all-lowercase id
    followed by ``/tokens`` would read as a uid and route to the wrong view.
    """

    regex = r"scl_[A-Za-z0-9]+|(?!scl_)[a-z0-9][a-z0-9._-]*(?:/|%2[Ff])[a-z0-9][a-z0-9._-]*"

    def to_python(self, value: str) -> str:
        # A uid sent encoded twice (``slack%252Fbot``, as Vercel's docs suggest passing it to
        # a client that encodes again) arrives here as ``slack%2Fbot``.
        return re.sub("%2[Ff]", "/", value)

    def to_url(self, value: str) -> str:
        return value


register_converter(ConnectorRefConverter, "connector")

urlpatterns = [
    # The hot path first: Django tries patterns in order, the resources' dozens included.
    path("v1/connect/token/<connector:connector>", views.token),
    *docs.urlpatterns,
    path("v1/connect/", include("connect.api.resources.urls")),
    path("v1/health", views.HealthView.as_view(), name="health"),
    path("v1/floor", views.FloorView.as_view()),
    path("v1/connect/whoami", management.WhoamiView.as_view()),
    # Vercel's management API for team API tokens (connect/api/connectors.py).
    path("v1/connect/connectors", connectors.ConnectorsView.as_view()),
    path("v2/connect/connectors", connectors.ConnectorListView.as_view()),
    path("v2/connect/connectors/<connector:connector>", connectors.ConnectorUpdateView.as_view()),
    path(
        "v2/connect/connectors/<connector:connector>/projects",
        connectors.ConnectorLinksView.as_view(),
    ),
    path("v2/connect/projects/<str:project_id>/connectors", connectors.ProjectLinksView.as_view()),
    path(
        "v1/connect/connectors/<connector:connector>/projects/<str:project_id>",
        connectors.ConnectorLinkView.as_view(),
    ),
    path(
        "v1/connect/connectors/<connector:connector>/projects/<str:project_id>"
        "/environments/<str:environment>",
        connectors.ConnectorLinkEnvironmentView.as_view(),
    ),
    # Everything under the prefix, newlines included: the view reads the raw target itself.
    re_path(r"^v1/connect/proxy/(?P<rest>(?s:.*))$", proxy.proxy_view),
    path("v1/connect/authorize/<connector:connector>", views.AuthorizeView.as_view()),
    path("v1/connect/install/<connector:connector>", views.InstallView.as_view()),
    path("v1/connect/result/<str:verifier>", views.ResultView.as_view()),
    path("v1/connect/token/<connector:connector>/import", views.TokenImportView.as_view()),
    path("v1/connect/connectors/<connector:connector>", views.ConnectorView.as_view()),
    path(
        "v1/connect/connectors/<connector:connector>/tokens",
        views.ConnectorTokensView.as_view(),
    ),
    path(
        "v1/connect/connectors/<connector:connector>/trigger-destinations",
        views.TriggerDestinationsView.as_view(),
    ),
    path(
        "v1/connect/connectors/<connector:connector>/trigger-destinations/<str:destination_id>/replay",
        views.DestinationReplayView.as_view(),
    ),
    path(
        "v1/connect/connectors/<connector:connector>/triggers/<str:trigger_id>/replay",
        views.TriggerReplayView.as_view(),
    ),
]
