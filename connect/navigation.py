"""The admin's navigation grouped by task rather than Django's alphabetical list of models.

Outside the ``connect.admin`` package: the admin site reads it, and importing that package
registers every model admin on the site, which would import the site itself.
"""

from typing import Any

from django.urls import NoReverseMatch, reverse

#: The navigation, by task: (group, the models in it, in this order). Models of other apps
#: (users, allauth's) follow under their own names.
NAV_GROUPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "Connectors",
        "connectors",
        ("connector", "installation", "grant", "triggerdestination"),
    ),
    (
        "Projects & credentials",
        "projects",
        ("project", "deploymentcredential", "trustedissuer", "teamapitoken"),
    ),
    (
        "Activity",
        "activity",
        (
            "tokenissue",
            "proxycall",
            "inboundevent",
            "lifecycleevent",
            "delivery",
            "deliveryattempt",
            "authorizationrequest",
            "auditevent",
        ),
    ),
    ("Team", "team", ("team",)),
)


def grouped(app_list: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Django's app list (Connect's models under "Connect") regrouped by task."""
    connect = next((app for app in app_list if app["app_label"] == "connect"), None)
    if connect is None:
        return app_list
    by_name = {m["object_name"].lower(): m for m in connect["models"]}
    groups: list[dict[str, Any]] = []
    placed: set[str] = set()
    for label, slug, names in NAV_GROUPS:
        models_in = [by_name[n] for n in names if n in by_name]
        placed.update(names)
        if models_in:
            groups.append({**connect, "name": label, "app_label": slug, "models": models_in})
    activity = next((g for g in groups if g["app_label"] == "activity"), None)
    if activity is not None:
        try:
            url = reverse("admin:connect_activity")
        except NoReverseMatch:
            pass
        else:
            # The Activity page (every event with its correlation ids) leads the group.
            page = {"name": "Activity page", "object_name": "Activity", "admin_url": url}
            activity["models"] = [{**page, "view_only": True, "perms": {}}, *activity["models"]]
    rest = [m for name, m in by_name.items() if name not in placed]
    if rest:
        groups.append({**connect, "name": "Other", "app_label": "other", "models": rest})
    others = [app for app in app_list if app["app_label"] != "connect"]
    team = next((g for g in groups if g["app_label"] == "team"), None)
    auth = next((app for app in others if app["app_label"] == "auth"), None)
    if team is not None and auth is not None:
        # Users and groups are the team's people: under Team, not an app of their own.
        team["models"] = [*team["models"], *auth["models"]]
        others.remove(auth)
    for group in groups:
        # A group's heading leads to its first page: Django's app page for "Connect" would list
        # every model alphabetically again (the site sends it to this index instead).
        group["app_url"] = group["models"][0].get("admin_url") or group["app_url"]
    return [*groups, *others]
