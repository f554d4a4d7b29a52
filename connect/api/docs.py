"""``/v1/openapi.json`` and ``/v1/docs``: the document of ``connect/api/schema.py``, shown."""

from csp.decorators import csp_update
from django.urls import path
from django.utils.decorators import method_decorator
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerSplitView


class SchemaView(SpectacularJSONAPIView):
    """``GET /v1/openapi.json``: public, like the API's shapes are (no secrets in it)."""


# Swagger UI's stylesheet draws its icons as data: SVGs; nothing else is relaxed.
@method_decorator(csp_update({"img-src": ["data:"]}), name="dispatch")
class DocsView(SpectacularSwaggerSplitView):
    """``GET /v1/docs``: Swagger UI from drf-spectacular-sidecar, served from our origin. The
    split view delivers its start-up script as a file, and our template carries the CSP nonce
    on its one ``<style>``, so the page runs under the site's policy."""

    template_name = "api/docs.html"
    url_name = "openapi-schema"


urlpatterns = [
    path("v1/openapi.json", SchemaView.as_view(), name="openapi-schema"),
    path("v1/docs", DocsView.as_view(), name="openapi-docs"),
]
