"""Team scoping for every admin page: querysets, object permissions, choices, and 404s."""

import functools
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db import models
from django.db.models import QuerySet
from django.forms import BaseInlineFormSet, ModelChoiceField, ModelForm, ModelMultipleChoiceField
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.urls import reverse

from connect.admin import lists
from connect.admin.filters import CappedPaginator
from connect.models import Membership, Role, Team
from connect.models.base import ROLE_RANK, TeamScopedQuerySet
from connect.models.teams import role_allows
from connect.permissions import Action
from connect.permissions import role_allows as role_allows_action
from connect.services import configuration


def roles_of(request: HttpRequest) -> dict[int, Role]:
    """The user's role per team id, read once per request."""
    cached = getattr(request, "_connect_roles", None)
    if cached is None:
        cached = Membership.objects.roles_of(request.user)
        request._connect_roles = cached  # type: ignore[attr-defined]
    return cached


def has_role(request: HttpRequest, role: Role, team_id: int | None = None) -> bool:
    """Whether the user holds ``role`` (or better) in that team, or in any team when None.

    "Any team" only decides whether to offer a page or an action at all; whatever touches a
    row asks with that row's team (``role_allows``, the rule the API shares).
    """
    if team_id is not None:
        return role_allows(request.user, team_id, role, roles=roles_of(request))
    if request.user.is_superuser:
        return True
    return any(ROLE_RANK[r] >= ROLE_RANK[role] for r in roles_of(request).values())


def may(request: HttpRequest, action: Action, team_id: int | None = None) -> bool:
    """Whether the user may do ``action`` in that team (or in some team, when None), by the
    table the management API asks too (``connect.permissions``)."""
    user = request.user
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    roles = roles_of(request)
    if team_id is not None:
        return role_allows_action(roles.get(team_id), action)
    return any(role_allows_action(role, action) for role in roles.values())


def scoped_choices(request: HttpRequest, model: type[models.Model]) -> models.QuerySet | None:
    """Objects of ``model`` the user may attach things to (member role at least)."""
    queryset = model._default_manager.all()
    if isinstance(queryset, TeamScopedQuerySet):
        return queryset.for_user(request.user, min_role=Role.MEMBER)
    return None


def _choices_in_teams(
    request: HttpRequest, model: type[models.Model], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """A relation field's arguments, offering only the ``model`` rows the user may attach
    things to."""
    choices = scoped_choices(request, model)
    return kwargs if choices is None else {**kwargs, "queryset": choices}


def team_hops(queryset: QuerySet[Any]) -> list[str]:
    """What to ``select_related`` so that walking to each row's team costs no query."""
    path = getattr(queryset, "team_path", "")
    hops = path.split("__")[:-1] if path else []
    return ["__".join(hops)] if hops else []


class TeamScopedMixin:
    """Shared by model admins and inlines: what the user may see and pick."""

    model: type[models.Model]
    # A URL typed without a scheme is taken as https:// (Django 6's default, chosen now).
    formfield_overrides: "ClassVar[Mapping[type[models.Field[Any, Any]], Mapping[str, Any]]]" = {
        models.URLField: {"assume_scheme": "https"}
    }

    def team_id_for(self, obj: models.Model) -> int:
        queryset = type(obj)._default_manager.all()
        assert isinstance(queryset, TeamScopedQuerySet)
        return queryset.team_id_of(obj)

    def formfield_for_foreignkey(
        self, db_field: models.ForeignKey, request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField | None:
        kwargs = _choices_in_teams(request, db_field.remote_field.model, kwargs)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]

    def formfield_for_manytomany(
        self, db_field: models.ManyToManyField, request: HttpRequest, **kwargs: Any
    ) -> ModelMultipleChoiceField | None:
        kwargs = _choices_in_teams(request, db_field.remote_field.model, kwargs)
        return super().formfield_for_manytomany(db_field, request, **kwargs)  # type: ignore[misc]


AdminAction = Callable[[Any, HttpRequest, QuerySet[Any]], HttpResponseBase | None]


def crumbs_of(obj: models.Model) -> tuple[str, str, str, str]:
    """A parent level of a breadcrumb trail: its list's name and URL, its own and its page's."""
    opts = obj._meta
    return (
        str(opts.verbose_name_plural).capitalize(),
        reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
        str(obj),
        reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]),
    )


class TeamScopedAdmin(TeamScopedMixin, admin.ModelAdmin):
    """A model admin whose rows belong to teams.

    Viewers read, members write, owners delete. Another team's object is a 404 — Django's own
    "doesn't exist" redirect would confirm that the id is real.

    Every action declares its permissions (``@admin.action(permissions=[...])``, each answered
    by a ``has_<permission>_permission(request, obj)``). Django asks those without a row, which
    only says the user holds the role in *some* team; here each selected row is asked with its
    own team, and unless every row is allowed the whole action is refused, with a message.
    """

    paginator = CappedPaginator
    # The unfiltered total is a second count of the whole (team-scoped) table: not shown.
    show_full_result_count = False

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions: dict[str, Any] = dict(super().get_actions(request))
        return {
            name: (self._checked_per_row(func, description), name, description)
            for name, (func, _, description) in actions.items()
        }

    def _checked_per_row(self, func: AdminAction, description: str) -> AdminAction:
        permissions = tuple(getattr(func, "allowed_permissions", ()))

        @functools.wraps(func)
        def checked(
            modeladmin: "TeamScopedAdmin", request: HttpRequest, queryset: QuerySet[Any]
        ) -> HttpResponseBase | None:
            refused = modeladmin.rows_refused(request, queryset, permissions)
            if refused:
                modeladmin.message_user(
                    request,
                    f"Nothing was done: your role does not allow “{description}” on {refused} "
                    "of the selected rows (roles count in each row's own team).",
                    messages.ERROR,
                )
                return None
            return func(modeladmin, request, queryset)

        return checked

    def rows_refused(
        self, request: HttpRequest, queryset: QuerySet[Any], permissions: tuple[str, ...]
    ) -> int:
        """How many selected rows the user may not act on with ``permissions`` (all if none
        are declared: an action that names no permission runs nowhere)."""
        selected = set(request.POST.getlist(helpers.ACTION_CHECKBOX_NAME))
        rows = list(queryset.select_related(*team_hops(queryset)))
        # A selected row missing from the user's queryset is another team's, or gone.
        refused = 0 if request.POST.get("select_across") == "1" else len(selected) - len(rows)
        checks = [getattr(self, f"has_{permission}_permission") for permission in permissions]
        for obj in rows:
            if not checks or not all(check(request, obj) for check in checks):
                refused += 1
        return max(refused, 0)

    def breadcrumb_parents(self, obj: Any) -> list[models.Model]:
        """The objects above ``obj`` (its connector, its installation…), outermost first: its
        page's breadcrumbs name each with its list, so every level is one click away."""
        return []

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> HttpResponse:
        if obj is not None and obj.pk is not None:
            context["parents"] = [crumbs_of(parent) for parent in self.breadcrumb_parents(obj)]
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_queryset(self, request: HttpRequest) -> models.QuerySet:
        queryset = super().get_queryset(request)
        assert isinstance(queryset, TeamScopedQuerySet)
        # Ordered explicitly, not by Meta.ordering, which an aggregate's GROUP BY drops: the
        # autocomplete and the change list paginate it, and an unordered page is unstable.
        return queryset.for_user(request.user).order_by(*self.explicit_ordering(request))

    def explicit_ordering(self, request: HttpRequest) -> list[Any]:
        """The admin's ``ordering`` (or the model's), with the primary key as tiebreaker."""
        ordering = list(self.get_ordering(request) or self.model._meta.ordering or ())
        if not {"pk", "-pk", "id", "-id"} & set(ordering):
            ordering.append("-pk")
        return ordering

    def get_list_display(self, request: HttpRequest) -> Any:
        # Moments with their age and the exact second; long text cut to fit 1280 px.
        return [lists.readable_column(self.model, n) for n in super().get_list_display(request)]

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        extra_context = {**(extra_context or {}), "empty_state": lists.empty_state(self.model)}
        return super().changelist_view(request, extra_context)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        """A user who can add to exactly one team finds it chosen already."""
        initial = super().get_changeform_initial_data(request)
        if "team" in initial or not any(f.name == "team" for f in self.model._meta.fields):
            return initial
        teams = scoped_choices(request, Team)
        only = list(teams.values_list("pk", flat=True)[:2]) if teams is not None else []
        if len(only) == 1:
            initial["team"] = only[0]
        return initial

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> Any:
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404("No such object in your teams.")
        return obj

    def _role_allows(self, request: HttpRequest, role: Role, obj: models.Model | None) -> bool:
        team_id = None if obj is None else self.team_id_for(obj)
        return has_role(request, role, team_id)

    def _may(self, request: HttpRequest, action: Action, obj: models.Model | None) -> bool:
        return may(request, action, None if obj is None else self.team_id_for(obj))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return may(request, Action.VIEW)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may(request, Action.VIEW, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return may(request, Action.ADD)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may(request, Action.CHANGE, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may(request, Action.DELETE, obj)

    # Every change a page makes is audited (``services.configuration``); admins whose rows
    # have services of their own override these.

    def save_model(self, request: HttpRequest, obj: Any, form: ModelForm, change: bool) -> None:
        configuration.configuration_save(
            obj=obj, actor=request.user, changed=form.changed_data if change else ()
        )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        configuration.configuration_delete(obj=obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for obj in queryset:
            configuration.configuration_delete(obj=obj, actor=request.user)

    def save_formset(
        self, request: HttpRequest, form: ModelForm, formset: BaseInlineFormSet, change: bool
    ) -> None:
        formset.save(commit=False)
        for obj in formset.deleted_objects:
            self.delete_inline(request, obj)
        for obj, fields in formset.changed_objects:
            configuration.configuration_save(obj=obj, actor=request.user, changed=fields)
        for obj in formset.new_objects:
            configuration.configuration_save(obj=obj, actor=request.user)
        formset.save_m2m()

    def delete_inline(self, request: HttpRequest, obj: Any) -> None:
        """Delete a row an inline of this page marked for deletion."""
        configuration.configuration_delete(obj=obj, actor=request.user)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        """Records the system writes (events, deliveries, token issues…) go with the row they
        belong to: nobody deletes them by hand, but an owner deleting an installation takes
        its history along instead of being refused for want of rights nobody has."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        records = {
            str(model._meta.verbose_name)
            for model, model_admin in self.admin_site._registry.items()
            if isinstance(model_admin, ReadOnlyTeamScopedAdmin) and model is not self.model
        }
        return deleted, counts, perms_needed - records, protected


class ReadOnlyTeamScopedAdmin(TeamScopedAdmin):
    """Logs and records the system writes: members read them, nobody edits or deletes them by
    hand (an audit log an owner could prune would prove nothing)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TeamScopedInline(TeamScopedMixin):
    """Inline permissions follow the parent object's team."""

    def _parent_allows(
        self, request: HttpRequest, action: Action, obj: models.Model | None
    ) -> bool:
        if obj is None:
            return may(request, action)
        team_id = obj.pk if isinstance(obj, Team) else self.team_id_for(obj)
        return may(request, action, team_id)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._parent_allows(request, Action.VIEW, obj)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._parent_allows(request, Action.ADD, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._parent_allows(request, Action.CHANGE, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Removing a link or a destination changes the connector it hangs off.
        return self._parent_allows(request, Action.CHANGE, obj)


class ReadOnlyInline(TeamScopedInline):
    """Rows the parent's page lists for reading: it adds and edits none of them (whether one
    may be deleted there is each inline's own)."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
