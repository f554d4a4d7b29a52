from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from connect import metrics, views
from connect.webhooks import views as webhook_views

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path(".well-known/openid-configuration", views.openid_configuration),
    path(".well-known/jwks.json", views.jwks),
    path("connect/connectors/<str:public_id>/jwks.json", views.connector_jwks),
    path("connect/trigger/<str:connector_id>", webhook_views.trigger),
    path("connect/install/<str:connector_id>", views.install_page, name="connect-install"),
    path("connect/callback", views.callback, name="connect-callback"),
    path("metrics", metrics.metrics_endpoint, name="metrics"),
    path("", include("connect.api.urls")),
]
