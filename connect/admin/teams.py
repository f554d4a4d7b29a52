from typing import Any

from django import forms
from django.contrib import admin
from django.forms import BaseInlineFormSet
from django.http import HttpRequest

from connect.admin.scoping import TeamScopedAdmin, TeamScopedInline, may
from connect.models import Membership, Role, Team
from connect.permissions import Action
from connect.services import configuration, teams


class MembershipForm(forms.ModelForm):
    email = forms.EmailField(
        required=False, help_text="New members get an email to set their password."
    )

    class Meta:
        model = Membership
        fields = ["role"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.instance.pk is None and not cleaned.get("email") and self.has_changed():
            self.add_error("email", "An email address is needed to add a member.")
        return cleaned


class MembershipInline(TeamScopedInline, admin.TabularInline):
    model = Membership
    form = MembershipForm
    fields = ["user", "email", "role"]
    readonly_fields = ["user"]
    extra = 0

    def _owner(self, request: HttpRequest, obj: Any) -> bool:
        return may(request, Action.MANAGE_MEMBERS, None if obj is None else obj.pk)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._owner(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._owner(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._owner(request, obj)


@admin.register(Team)
class TeamAdmin(TeamScopedAdmin):
    list_display = ["name", "slug", "public_id", "created_at"]
    search_fields = ["name", "slug"]
    readonly_fields = ["public_id", "created_at"]
    inlines = [MembershipInline]

    def get_prepopulated_fields(self, request: HttpRequest, obj: Any = None) -> dict[str, Any]:
        return {"slug": ("name",)} if obj is None else {}

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # A slug is part of URLs and CLI commands: set once.
        return [*self.readonly_fields, "slug"] if obj is not None else self.readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may(request, Action.MANAGE_TEAM, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    def delete_model(self, request: HttpRequest, obj: Team) -> None:
        # Its audit log goes with it: there is nowhere to record this.
        obj.delete()

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        queryset.delete()

    def save_formset(
        self, request: HttpRequest, form: forms.ModelForm, formset: BaseInlineFormSet, change: bool
    ) -> None:
        if formset.model is not Membership:
            super().save_formset(request, form, formset, change)
            return
        formset.save(commit=False)
        for membership in formset.deleted_objects:
            teams.membership_remove(membership=membership, actor=request.user)
        for membership, fields in formset.changed_objects:
            configuration.configuration_save(
                obj=membership, actor=request.user, changed=fields, update_fields=["role"]
            )
        added = [
            teams.membership_add(
                team=form.instance,
                email=membership_form.cleaned_data["email"],
                role=Role(membership_form.instance.role),
                actor=request.user,
            )
            for membership_form in formset.forms
            if membership_form.instance in formset.new_objects
        ]
        # The admin's change message names the added rows: the saved ones, which have a user.
        formset.new_objects = added
