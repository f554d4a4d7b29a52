"""The resources of the management API, each below ``v1/connect/`` (``connect.api.urls``)."""

from django.urls import path

from connect.api.resources import (
    api_tokens,
    audit_events,
    credentials,
    destinations,
    events,
    grants,
    installations,
    projects,
    trusted_issuers,
)

urlpatterns = [
    path("projects", projects.ProjectsView.as_view()),
    path("projects/<str:project>", projects.ProjectView.as_view()),
    path("projects/<str:project>/environments", projects.EnvironmentsView.as_view()),
    path(
        "projects/<str:project>/environments/<str:environment>",
        projects.EnvironmentView.as_view(),
    ),
    path("installations", installations.InstallationsView.as_view()),
    path("installations/<str:installation>", installations.InstallationView.as_view()),
    path("grants", grants.GrantsView.as_view()),
    path("grants/import", grants.GrantsImportView.as_view()),
    path("grants/<str:grant>", grants.GrantView.as_view()),
    path("destinations", destinations.DestinationsView.as_view()),
    path("destinations/<str:destination>", destinations.DestinationView.as_view()),
    path(
        "destinations/<str:destination>/rotate-secret",
        destinations.DestinationSecretView.as_view(),
    ),
    path("destinations/<str:destination>/test", destinations.DestinationTestView.as_view()),
    path("credentials", credentials.CredentialsView.as_view()),
    path("credentials/<str:credential>", credentials.CredentialView.as_view()),
    path("trusted-issuers", trusted_issuers.TrustedIssuersView.as_view()),
    path("trusted-issuers/<str:issuer>", trusted_issuers.TrustedIssuerView.as_view()),
    path("events", events.EventsView.as_view()),
    path("events/<str:event>", events.EventView.as_view()),
    path("events/<str:event>/replay", events.EventReplayView.as_view()),
    path("deliveries", events.DeliveriesView.as_view()),
    path("deliveries/<str:delivery>", events.DeliveryView.as_view()),
    path("audit-events", audit_events.AuditEventsView.as_view()),
    path("api-tokens", api_tokens.ApiTokensView.as_view()),
    path("api-tokens/<str:token>", api_tokens.ApiTokenView.as_view()),
]
