"""Every admin list is in an explicit order: a paginated page of an unordered queryset may
repeat or skip rows (pytest turns Django's UnorderedObjectListWarning into an error)."""

from collections.abc import Callable

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import Client, RequestFactory

from connect.admin.scoping import TeamScopedAdmin
from connect.models import Connector, Role, Team

ADMINS = sorted(
    (
        (model, model_admin)
        for model, model_admin in admin.site._registry.items()
        if isinstance(model_admin, TeamScopedAdmin)
    ),
    key=lambda pair: pair[0]._meta.model_name,
)


@pytest.mark.parametrize(
    ("model", "model_admin"), ADMINS, ids=[m._meta.model_name for m, _ in ADMINS]
)
def test_every_admin_queryset_is_explicitly_ordered(
    model: type,
    model_admin: TeamScopedAdmin,
    make_team: Callable[..., Team],
    make_member: Callable[..., User],
) -> None:
    request = RequestFactory().get("/admin/")
    request.user = make_member(make_team(), Role.VIEWER)

    queryset = model_admin.get_queryset(request)

    assert queryset.ordered
    # Explicit, so a GROUP BY (the counts some lists annotate) cannot drop it.
    assert queryset.query.order_by
    assert queryset.query.order_by[-1] in ("-pk", "pk", "id", "-id")


def test_the_connector_autocomplete_pages_in_order(
    make_team: Callable[..., Team],
    make_member: Callable[..., User],
    make_connector: Callable[..., Connector],
) -> None:
    team = make_team()
    user = make_member(team, Role.MEMBER)
    for n in range(3):
        make_connector(team, uid=f"api-key/k{n}", name=f"Key {n}")
    client = Client()
    client.force_login(user)

    # The installations page's connector field: an annotated (GROUP BY) queryset underneath.
    response = client.get(
        "/admin/autocomplete/",
        {"app_label": "connect", "model_name": "installation", "field_name": "connector"},
    )

    assert response.status_code == 200
    assert [r["text"] for r in response.json()["results"]] == [
        "Key 0 (api-key/k0)",
        "Key 1 (api-key/k1)",
        "Key 2 (api-key/k2)",
    ]


def test_the_navigation_is_grouped_by_task_not_alphabetically(
    make_team: Callable[..., Team], make_member: Callable[..., User]
) -> None:
    client = Client()
    client.force_login(make_member(make_team(), Role.OWNER))

    app_list = client.get("/admin/").context["app_list"]

    assert [app["name"] for app in app_list] == [
        "Connectors",
        "Projects & credentials",
        "Activity",
        "Team",
    ]
    names = {app["name"]: [m["object_name"] for m in app["models"]] for app in app_list}
    assert names["Connectors"][:2] == ["Connector", "Installation"]
    assert names["Activity"][0] == "Activity"  # the Activity page leads its group
    assert "LifecycleEvent" in names["Activity"]
