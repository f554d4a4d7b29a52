"""What makes the admin's lists readable: timestamps to the second with their age, long values
cut to fit 1280 px (the whole value in a title), and empty states that say what to do next."""

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.contrib import admin
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

#: Characters of a text column shown before it is cut (the rest is in the cell's title).
CUT_AT = 22


def age(value: datetime, now: datetime) -> str:
    """How long ago (or in how long) ``value`` is, in one unit: "3 s ago", "in 5 min"."""
    seconds = int((now - value).total_seconds())
    ahead, seconds = seconds < 0, abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            amount = f"{seconds // size} {unit}"
            break
    else:
        amount = f"{seconds} s"
    return f"in {amount}" if ahead else f"{amount} ago"


def timestamp(value: datetime | None, *, now: datetime | None = None) -> SafeString | str:
    """A list cell for a moment: its age, with the exact time (to the second) as a title."""
    if value is None:
        return "—"
    local = timezone.localtime(value)
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        value.isoformat(),
        local.strftime("%Y-%m-%d %H:%M:%S %Z"),
        age(value, now or timezone.now()),
    )


def cut(value: object) -> SafeString | str:
    """A list cell for text that may be long: cut to fit, the whole value in its title."""
    text = "" if value is None else str(value)
    if len(text) <= CUT_AT:
        return text
    return format_html('<span title="{}">{}…</span>', text, text[: CUT_AT - 1])


def readable_column(model: type[models.Model], name: Any) -> Any:
    """``name`` as a list column: moments with their age, long text cut; others unchanged."""
    if not isinstance(name, str):
        return name
    if name == "__str__":  # an object's name may be long too (it is the link to the object)

        def named(obj: models.Model) -> Any:
            return cut(obj)

        named.__name__ = "__str__"
        return admin.display(description=str(model._meta.verbose_name).capitalize())(named)
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:  # a method or an admin attribute
        return name
    if isinstance(field, models.DateTimeField):
        render: Callable[[Any], Any] = timestamp
    elif (
        isinstance(field, models.CharField | models.TextField) and not field.choices
    ) or isinstance(field, models.ForeignKey):  # a related object's name may be long too
        render = cut
    else:
        return name

    def column(obj: models.Model) -> Any:
        return render(getattr(obj, name))

    column.__name__ = name
    return admin.display(description=field.verbose_name.capitalize(), ordering=name)(column)


#: What an empty list says, per model: what the rows are and how the first one comes to be.
EMPTY_STATES: dict[str, tuple[str, str, str]] = {
    # model name: (what happens, the link's text, the admin URL name it goes to)
    "connector": (
        "No connectors yet: a connector holds one provider app's settings.",
        "Add a connector",
        "admin:connect_connector_add",
    ),
    "project": (
        "No projects yet: a project's deployments get tokens for the connectors linked to it.",
        "Add a project",
        "admin:connect_project_add",
    ),
    "installation": (
        "No installations yet: open a connector and send its install link to a workspace or "
        "organization. Client-credentials connectors install themselves when saved.",
        "Go to connectors",
        "admin:connect_connector_changelist",
    ),
    "grant": (
        "No grants yet: they are made when an installation completes or a user consents.",
        "Go to connectors",
        "admin:connect_connector_changelist",
    ),
    "deploymentcredential": (
        "No deployment credentials yet: create one per project environment and give it to "
        "the deployment as CONNECT_CREDENTIAL.",
        "Add a deployment credential",
        "admin:connect_deploymentcredential_add",
    ),
    "trustedissuer": (
        "No trusted issuers yet: trust a CI system's OIDC tokens instead of storing a credential.",
        "Add a trusted issuer",
        "admin:connect_trustedissuer_add",
    ),
    "triggerdestination": (
        "No trigger destinations yet: enable triggers on a connector and add where its "
        "webhooks go.",
        "Go to connectors",
        "admin:connect_connector_changelist",
    ),
    "inboundevent": (
        "No webhooks received yet: register the connector's trigger URL (on its page) with "
        "the provider.",
        "Go to connectors",
        "admin:connect_connector_changelist",
    ),
    "delivery": (
        "No deliveries yet: each received webhook is delivered to the connector's trigger "
        "destinations.",
        "Go to trigger destinations",
        "admin:connect_triggerdestination_changelist",
    ),
    "deliveryattempt": (
        "No delivery attempts yet.",
        "Go to deliveries",
        "admin:connect_delivery_changelist",
    ),
    "tokenissue": (
        "No tokens issued yet: a linked deployment asks with its credential "
        "(POST /v1/connect/token/…).",
        "Go to deployment credentials",
        "admin:connect_deploymentcredential_changelist",
    ),
    "auditevent": ("No configuration changes recorded yet.", "Go to connectors", "admin:index"),
    "authorizationrequest": (
        "No install or consent flows started yet: an install link or the SDK's "
        "startAuthorization starts one.",
        "Go to connectors",
        "admin:connect_connector_changelist",
    ),
}


def empty_state(model: type[models.Model]) -> dict[str, str] | None:
    """The empty list's message and its next step, for the change list template."""
    known = EMPTY_STATES.get(model._meta.model_name or "")
    if known is None:
        return None
    text, link_text, url_name = known
    try:
        url = reverse(url_name)
    except NoReverseMatch:
        url = reverse("admin:index")
    return {"text": text, "link_text": link_text, "url": url}
