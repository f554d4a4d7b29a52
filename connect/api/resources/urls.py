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

P = "v1/connect/"

urlpatterns = [
    path(f"{P}projects", projects.ProjectsView.as_view()),
    path(f"{P}projects/<str:project>", projects.ProjectView.as_view()),
    path(f"{P}projects/<str:project>/environments", projects.EnvironmentsView.as_view()),
    path(
        f"{P}projects/<str:project>/environments/<str:environment>",
        projects.EnvironmentView.as_view(),
    ),
    path(f"{P}installations", installations.InstallationsView.as_view()),
    path(f"{P}installations/<str:installation>", installations.InstallationView.as_view()),
    path(f"{P}grants", grants.GrantsView.as_view()),
    path(f"{P}grants/import", grants.GrantsImportView.as_view()),
    path(f"{P}grants/<str:grant>", grants.GrantView.as_view()),
    path(f"{P}destinations", destinations.DestinationsView.as_view()),
    path(f"{P}destinations/<str:destination>", destinations.DestinationView.as_view()),
    path(
        f"{P}destinations/<str:destination>/rotate-secret",
        destinations.DestinationSecretView.as_view(),
    ),
    path(f"{P}destinations/<str:destination>/test", destinations.DestinationTestView.as_view()),
    path(f"{P}credentials", credentials.CredentialsView.as_view()),
    path(f"{P}credentials/<str:credential>", credentials.CredentialView.as_view()),
    path(f"{P}trusted-issuers", trusted_issuers.TrustedIssuersView.as_view()),
    path(f"{P}trusted-issuers/<str:issuer>", trusted_issuers.TrustedIssuerView.as_view()),
    path(f"{P}events", events.EventsView.as_view()),
    path(f"{P}events/<str:event>", events.EventView.as_view()),
    path(f"{P}events/<str:event>/replay", events.EventReplayView.as_view()),
    path(f"{P}deliveries", events.DeliveriesView.as_view()),
    path(f"{P}deliveries/<str:delivery>", events.DeliveryView.as_view()),
    path(f"{P}audit-events", audit_events.AuditEventsView.as_view()),
    path(f"{P}api-tokens", api_tokens.ApiTokensView.as_view()),
    path(f"{P}api-tokens/<str:token>", api_tokens.ApiTokenView.as_view()),
]
