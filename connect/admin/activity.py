"""The Activity page: events of the user's teams with their correlation ids, filterable by
connector, installation, subject and outcome (fixed choices), a page at a time by a cursor."""

from datetime import datetime
from typing import Any

from django import forms
from django.contrib.admin import AdminSite
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.http import urlencode

from connect.models import Connector, Membership
from connect.services import events

PAGE = 50


class ActivityFilterForm(forms.Form):
    connector = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    installation = forms.RegexField(
        regex=r"^sci_[A-Za-z0-9]+$",
        required=False,
        help_text="An installation id (sci_…)",
        widget=forms.TextInput(attrs={"placeholder": "sci_…", "size": 20}),
    )
    subject = forms.CharField(
        max_length=255,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "user:42", "size": 16}),
    )
    outcome = forms.ChoiceField(
        required=False, choices=[("", "any"), *((o, o) for o in events.OUTCOMES)]
    )
    before = forms.DateTimeField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, connectors: list[Connector], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["connector"].choices = [  # type: ignore[attr-defined]
            ("", "any"),
            *((c.pk, f"{c.name} ({c.uid})") for c in connectors),
        ]


def team_ids_of(request: HttpRequest) -> list[int]:
    if request.user.is_superuser:
        return list(Connector.objects.values_list("team_id", flat=True).distinct().order_by())
    return sorted(Membership.objects.roles_of(request.user))


def activity_view(site: AdminSite, request: HttpRequest) -> TemplateResponse:
    """GET only: filters in the query string, ``before`` the cursor of the next page."""
    team_ids = team_ids_of(request)
    connectors = list(Connector.objects.filter(team_id__in=team_ids).order_by("name", "uid")[:200])
    form = ActivityFilterForm(request.GET or None, connectors=connectors)
    chosen: dict[str, Any] = form.cleaned_data if form.is_valid() else {}
    by_id = {c.pk: c for c in connectors}
    connector = by_id.get(chosen.get("connector") or 0)
    event_filter = events.EventFilter(
        connector_id=connector.pk if connector else None,
        installation_public_id=chosen.get("installation") or "",
        subject=(chosen.get("subject") or "").strip(),
        outcome=chosen.get("outcome") or "",
    )
    before: datetime = chosen.get("before") or timezone.now()
    found = events.events_list(
        team_ids=team_ids,
        event_filter=event_filter,
        before=before,
        limit=PAGE,
        connector_public_id=connector.public_id if connector else "",
    )
    older = ""
    if len(found) == PAGE:
        query: dict[str, str] = {k: str(request.GET[k]) for k in request.GET if k != "before"}
        query["before"] = found[-1].at.isoformat()
        older = "?" + urlencode(query)
    context = {
        **site.each_context(request),
        "title": "Activity",
        "form": form,
        "events": found,
        "older": older,
        "filtered": any(
            [
                event_filter.connector_id,
                event_filter.installation_public_id,
                event_filter.subject,
                event_filter.outcome,
            ]
        ),
    }
    return TemplateResponse(request, "admin/connect/activity.html", context)
