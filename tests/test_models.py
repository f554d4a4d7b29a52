"""The data model: public ids, named constraints in the database, secret-free ``__str__``, and
team scoping of every model."""

import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import AnonymousUser, User
from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone

from connect import kinds
from connect.models import (
    ActivityCount,
    AuthorizationRequest,
    Connector,
    Delivery,
    DeliveryAttempt,
    DeploymentCredential,
    Environment,
    Grant,
    InboundEvent,
    Installation,
    LifecycleDestination,
    LifecycleEvent,
    Membership,
    MintedToken,
    Project,
    ProjectLink,
    ProxyCall,
    Role,
    Team,
    TeamApiToken,
    TokenIssue,
    TriggerDestination,
    TrustedIssuer,
    TrustedIssuerRule,
)
from connect.models.authorizations import AuthorizationKind
from connect.models.base import SealedSecrets, TeamScopedQuerySet
from connect.models.installations import SubjectType
from connect.services.credentials import deployment_credential_create
from connect.services.destinations import destination_save

pytestmark = pytest.mark.django_db

PUBLIC_ID_PREFIXES = {
    "connect.team": "team",
    "connect.project": "prj",
    "connect.connector": "scl",
    "connect.installation": "sci",
    "connect.grant": "sgr",
    "connect.tokenissue": "stk",
    "connect.authorizationrequest": "sca",
    "connect.inboundevent": "trq",
    "connect.triggerdestination": "dst",
    "connect.deploymentcredential": "dpc",
    "connect.trustedissuer": "tis",
    "connect.trustedissuerrule": "tir",
    "connect.signingkey": "key",
    "connect.mintedtoken": "mtk",
    "connect.environment": "env",
    "connect.teamapitoken": "tok",
    "connect.lifecycleevent": "evt",
    # A proxy of TriggerDestination (the same table, of the lifecycle kind): the same prefix.
    "connect.lifecycledestination": "dst",
    "connect.proxycall": "spx",
}
# Rows that belong to the deployment, not to a team: the app's own OIDC signing keys, and when
# its Celery worker and beat were last seen, and the cache generation counters (keyed by a
# scope string such as ``t:<id>``, bumped by database triggers, holding no team data).
GLOBAL_MODELS = {"connect.signingkey", "connect.heartbeat", "connect.generation"}


def connect_models() -> list[type[models.Model]]:
    return list(apps.get_app_config("connect").get_models())


def label(model: type[models.Model]) -> str:
    return model._meta.label_lower


def team_scoped_models() -> list[type[models.Model]]:
    return [m for m in connect_models() if label(m) not in GLOBAL_MODELS]


# --- public ids -------------------------------------------------------------------------------


def public_id_models() -> list[type[models.Model]]:
    return [m for m in connect_models() if any(f.name == "public_id" for f in m._meta.fields)]


def test_the_spec_prefixes_are_all_there() -> None:
    prefixes = {PUBLIC_ID_PREFIXES[label(m)] for m in public_id_models()}

    assert {"team", "prj", "scl", "sci", "stk", "sca", "trq"} <= prefixes


@pytest.mark.parametrize("model", public_id_models(), ids=label)
def test_public_id_exists_at_instantiation_with_its_prefix(model: type[models.Model]) -> None:
    assert label(model) in PUBLIC_ID_PREFIXES, f"give {label(model)} a prefix in this test"
    prefix = PUBLIC_ID_PREFIXES[label(model)]

    first, second = model(), model()

    assert first.pk is None
    assert re.fullmatch(rf"{prefix}_[A-Za-z0-9]{{24}}", first.public_id)
    assert first.public_id != second.public_id
    public_id = model._meta.get_field("public_id")
    assert public_id.unique
    assert not public_id.editable


@pytest.mark.django_db
def test_public_ids_are_unique_in_the_database(make_team: Callable[..., Team]) -> None:
    team = make_team()

    with pytest.raises(IntegrityError), transaction.atomic():
        Team.objects.create(slug="other", name="Other", public_id=team.public_id)


# --- a team with one row of every model ---------------------------------------------------------


@dataclass
class World:
    team: Team
    owner: User
    member: User
    viewer: User
    inactive: User
    rows: dict[str, set[int]] = field(default_factory=dict)  # model label → pks made for it
    plaintexts: list[str] = field(default_factory=list)  # every secret stored in clear form


def snapshot() -> dict[str, set[int]]:
    return {
        label(m): set(m._default_manager.values_list("pk", flat=True)) for m in connect_models()
    }


@pytest.fixture
def make_world(
    make_team: Callable[..., Team],
    make_member: Callable[..., User],
    make_project: Callable[..., Project],
    make_connector: Callable[..., Connector],
    make_link: Callable[..., ProjectLink],
    make_grant: Callable[..., Grant],
    make_destination: Callable[..., TriggerDestination],
    make_authorization_request: Callable[..., AuthorizationRequest],
) -> Callable[[], World]:
    """A team holding one row (at least) of every team-scoped model, with secrets everywhere."""

    def make() -> World:
        before = snapshot()
        tag = uuid.uuid4().hex[:8]

        def secret(name: str) -> str:
            value = f"SECRET-{name}-{tag}"
            plaintexts.append(value)
            return value

        plaintexts: list[str] = []
        team = make_team()
        owner = make_member(team, Role.OWNER)
        member = make_member(team, Role.MEMBER)
        viewer = make_member(team, Role.VIEWER)
        inactive = make_member(team, Role.OWNER, is_active=False)
        project = make_project(team, environments=("production", "preview"))
        production = project.environments.get(slug="production")
        connector = make_connector(
            team,
            secrets={name: secret(name) for name in Connector.SEALED_FIELDS},
        )
        installation = connector.installations.get()
        grant = make_grant(
            installation,
            secrets={name: secret(name) for name in Grant.SEALED_FIELDS},
        )
        make_link(connector, project, ["production"])
        destination = make_destination(connector, project, "production")
        destination.seal("previous_signing_secret", secret("previous_signing_secret"))
        destination.save()
        plaintexts.append(destination.reveal("signing_secret"))
        make_authorization_request(connector, pkce_verifier=secret("pkce_verifier"))
        token = deployment_credential_create(
            credential=DeploymentCredential(project=project, environment=production, name="ci"),
            actor="test",
        )
        plaintexts.append(token)
        issuer = TrustedIssuer.objects.create(
            team=team,
            issuer="https://token.actions.githubusercontent.com",
            jwks_url="https://token.actions.githubusercontent.com/.well-known/jwks",
            audience=team.workload_audience,
        )
        TrustedIssuerRule.objects.create(
            trusted_issuer=issuer,
            required_claims={"repository": f"acme/{tag}"},
            project=project,
            environment=production,
        )
        TokenIssue.objects.create(grant=grant, project=project, environment="production")
        MintedToken.objects.keep(
            grant=grant,
            request_digest=uuid.uuid4().hex * 2,
            token=secret("minted_token"),
            expires_at=timezone.now() + timedelta(hours=1),
            now=timezone.now(),
        )
        event = InboundEvent.objects.create(
            connector=connector,
            installation=installation,
            provider_event_id=f"evt-{tag}",
            body=b"{}",
            headers={},
        )
        delivery = Delivery.objects.create(event=event, destination=destination)
        DeliveryAttempt.objects.create(delivery=delivery, status_code=200, latency_ms=12)
        lifecycle_destination = destination_save(
            destination=LifecycleDestination(
                connector=connector, project=project, environment=production, path="/lifecycle"
            ),
            actor="test",
        )
        plaintexts.append(lifecycle_destination.reveal("signing_secret"))
        lifecycle_event = LifecycleEvent.objects.create(
            connector=connector, type=LifecycleEvent.Type.values[0], body=b"{}"
        )
        Delivery.objects.create(lifecycle_event=lifecycle_event, destination=lifecycle_destination)
        api_token = TeamApiToken(team=team, name="ci", role=Role.MEMBER, created_by=owner)
        plaintexts.append(api_token.issue_token())
        api_token.save()
        ProxyCall.objects.create(
            team=team,
            connector=connector,
            grant=grant,
            project=project,
            environment="production",
            method="GET",
            path="/v1/me",
            outcome=ProxyCall.Outcome.ANSWERED,
            status=200,
            latency_ms=5,
        )
        ActivityCount.objects.create(
            team=team,
            connector=connector,
            hour=timezone.now().replace(minute=0, second=0, microsecond=0),
            kind=ActivityCount.Kind.TOKEN,
            label="ok",
            count=1,
        )

        after = snapshot()
        rows = {name: after[name] - before[name] for name in after}
        return World(team, owner, member, viewer, inactive, rows, plaintexts)

    return make


@pytest.fixture
def two_worlds(make_world: Callable[[], World]) -> tuple[World, World]:
    return make_world(), make_world()


def test_the_world_has_every_team_scoped_model(two_worlds: tuple[World, World]) -> None:
    for world in two_worlds:
        empty = sorted(label(m) for m in team_scoped_models() if not world.rows[label(m)])
        assert empty == [], "extend make_world with these models"


# --- team scoping -----------------------------------------------------------------------------


def scoped(model: type[models.Model]) -> TeamScopedQuerySet:
    queryset = model._default_manager.all()
    assert isinstance(queryset, TeamScopedQuerySet), f"{label(model)} is not team-scoped"
    return queryset


def pks(queryset: models.QuerySet) -> list[int]:
    return list(queryset.values_list("pk", flat=True))


def mismatches(
    expected: Callable[[type[models.Model]], set[int]],
    actual: Callable[[TeamScopedQuerySet], models.QuerySet],
) -> dict[str, tuple[list[int], list[int]]]:
    """Per model, (expected, actual) where they differ; actual keeps duplicates to catch them."""
    found = {}
    for model in team_scoped_models():
        want = sorted(expected(model))
        got = sorted(pks(actual(scoped(model))))
        if want != got:
            found[label(model)] = (want, got)
    return found


def test_every_model_but_the_global_ones_is_team_scoped() -> None:
    for model in team_scoped_models():
        scoped(model)


def test_for_team_returns_only_that_teams_rows(two_worlds: tuple[World, World]) -> None:
    a, b = two_worlds

    assert mismatches(lambda m: a.rows[label(m)], lambda qs: qs.for_team(a.team)) == {}
    assert mismatches(lambda m: b.rows[label(m)], lambda qs: qs.for_team(b.team.pk)) == {}


def test_team_id_of_walks_to_the_rows_team(two_worlds: tuple[World, World]) -> None:
    for world in two_worlds:
        for model in team_scoped_models():
            queryset = scoped(model)
            for obj in model._default_manager.filter(pk__in=world.rows[label(model)]):
                assert queryset.team_id_of(obj) == world.team.pk, label(model)


@pytest.mark.parametrize("who", ["owner", "member", "viewer"])
def test_for_user_returns_only_their_teams_rows(two_worlds: tuple[World, World], who: str) -> None:
    a, b = two_worlds

    assert mismatches(lambda m: a.rows[label(m)], lambda qs: qs.for_user(getattr(a, who))) == {}
    assert mismatches(lambda m: b.rows[label(m)], lambda qs: qs.for_user(getattr(b, who))) == {}


def test_a_user_in_two_teams_sees_both_without_duplicates(
    two_worlds: tuple[World, World],
) -> None:
    a, b = two_worlds
    Membership.objects.create(team=b.team, user=a.viewer, role=Role.MEMBER)
    both = {name: a.rows[name] | b.rows[name] for name in a.rows}
    # The new membership row itself belongs to team b.
    both["connect.membership"] |= set(
        Membership.objects.filter(team=b.team, user=a.viewer).values_list("pk", flat=True)
    )

    assert mismatches(lambda m: both[label(m)], lambda qs: qs.for_user(a.viewer)) == {}
    # Changing needs member rights: team b only.
    b_rows = {
        **b.rows,
        "connect.membership": both["connect.membership"] - a.rows["connect.membership"],
    }
    assert (
        mismatches(lambda m: b_rows[label(m)], lambda qs: qs.for_user(a.viewer, Role.MEMBER)) == {}
    )


def test_a_superuser_sees_everything(
    two_worlds: tuple[World, World], make_user: Callable[..., User]
) -> None:
    a, b = two_worlds
    root = make_user(is_superuser=True, is_staff=True)

    assert (
        mismatches(lambda m: a.rows[label(m)] | b.rows[label(m)], lambda qs: qs.for_user(root))
        == {}
    )
    assert (
        mismatches(
            lambda m: a.rows[label(m)] | b.rows[label(m)],
            lambda qs: qs.for_user(root, Role.OWNER),
        )
        == {}
    )


def test_an_inactive_or_anonymous_user_sees_nothing(two_worlds: tuple[World, World]) -> None:
    a, _ = two_worlds
    inactive_superuser = User.objects.create_user("fallen", is_superuser=True, is_active=False)

    for user in (a.inactive, AnonymousUser(), inactive_superuser):
        assert mismatches(lambda m: set(), lambda qs, user=user: qs.for_user(user)) == {}


@pytest.mark.parametrize(
    ("who", "min_role", "sees"),
    [
        ("viewer", Role.VIEWER, True),
        ("viewer", Role.MEMBER, False),
        ("viewer", Role.OWNER, False),
        ("member", Role.MEMBER, True),
        ("member", Role.OWNER, False),
        ("owner", Role.OWNER, True),
    ],
)
def test_min_role_filters_by_role(
    two_worlds: tuple[World, World], who: str, min_role: Role, sees: bool
) -> None:
    a, _ = two_worlds
    user = getattr(a, who)

    assert (
        mismatches(
            lambda m: a.rows[label(m)] if sees else set(),
            lambda qs: qs.for_user(user, min_role),
        )
        == {}
    )


# --- __str__ ------------------------------------------------------------------------------------


def sealed_model_classes() -> list[type[SealedSecrets]]:
    return [m for m in connect_models() if issubclass(m, SealedSecrets) and m.SEALED_FIELDS]


@pytest.mark.parametrize("model", sealed_model_classes(), ids=label)
def test_str_of_an_unsaved_instance_shows_no_secret(model: type[SealedSecrets]) -> None:
    obj = model()
    for name in model.SEALED_FIELDS:
        obj.seal(name, f"SECRET-{name}")
        assert obj.reveal(name) == f"SECRET-{name}"
    text = str(obj)

    for name in model.SEALED_FIELDS:
        assert f"SECRET-{name}" not in text
        assert getattr(obj, obj.sealed_column(name)) not in text


def test_str_of_every_row_shows_no_secret(two_worlds: tuple[World, World]) -> None:
    a, _ = two_worlds
    assert a.plaintexts
    seen_models = set()
    for model in connect_models():
        assert model.__str__ is not models.Model.__str__, f"{label(model)} needs a __str__"
        for obj in model._default_manager.filter(pk__in=a.rows[label(model)]):
            seen_models.add(label(model))
            text = str(obj)
            assert text
            hidden = list(a.plaintexts)
            if isinstance(obj, SealedSecrets):
                hidden += [getattr(obj, obj.sealed_column(n)) for n in obj.SEALED_FIELDS]
            hidden += [
                getattr(obj, attr)
                for attr in ("secret_sha256", "verifier_sha256", "state")
                if hasattr(obj, attr)
            ]
            for value in filter(None, hidden):
                assert value not in text, (label(model), text)
    # Global rows made on the way (generation counters bumped by triggers) are checked too.
    assert seen_models - GLOBAL_MODELS == {label(m) for m in team_scoped_models()}


# --- sealed secrets on a model --------------------------------------------------------------


@pytest.mark.django_db
def test_secrets_are_sealed_before_the_first_save_and_open_after_it(
    make_team: Callable[..., Team],
) -> None:
    connector = Connector(team=make_team(), uid="api-key/x", type="api-key", service="api-key")
    assert not connector.has_secret("api_key")
    assert connector.reveal("api_key") == ""

    connector.seal("api_key", "sk-live-123")
    connector.save()

    stored = Connector.objects.get(pk=connector.pk)
    assert stored.has_secret("api_key")
    assert "sk-live-123" not in stored.api_key_sealed
    assert stored.reveal("api_key") == "sk-live-123"
    assert not stored.has_secret("client_secret")

    stored.seal("api_key", "")
    assert not stored.has_secret("api_key")
    assert stored.api_key_sealed == ""
    with pytest.raises(KeyError, match="no secret named 'name'"):
        stored.seal("name", "x")


# --- public ids never change ----------------------------------------------------------------


def test_public_ids_never_change_on_save(two_worlds: tuple[World, World]) -> None:
    a, _ = two_worlds
    for model in public_id_models():
        for obj in model._default_manager.filter(pk__in=a.rows.get(label(model), set())):
            public_id = obj.public_id
            obj.save()
            reloaded = model._default_manager.get(pk=obj.pk)
            assert reloaded.public_id == public_id
            reloaded.save()
            assert model._default_manager.get(pk=obj.pk).public_id == public_id


# --- named constraints ------------------------------------------------------------------------


def constraint_names() -> dict[str, tuple[type[models.Model], models.BaseConstraint]]:
    return {
        constraint.name: (model, constraint)
        for model in connect_models()
        for constraint in model._meta.constraints
    }


def copy_of(obj: models.Model, **changes: Any) -> models.Model:
    """An unsaved copy with a fresh pk and public_id, so only ``changes`` can collide."""
    values = {
        f.attname: getattr(obj, f.attname)
        for f in obj._meta.concrete_fields
        if not f.primary_key and f.name != "public_id" and f.name != "webhook_id"
    }
    values.update(changes)
    return type(obj)(**values)


def one(model: type[models.Model], world: World) -> Any:
    return model._default_manager.filter(pk__in=world.rows[label(model)]).order_by("pk").first()


def replay_slotted(event: InboundEvent) -> InboundEvent:
    """The event as the intake stores it: its body's hash in two replay slots (4 and 5)."""
    InboundEvent.objects.filter(pk=event.pk).update(
        body_sha256="ab" * 32, replay_slot_even=4, replay_slot_odd=5
    )
    event.refresh_from_db()
    return event


VIOLATIONS: dict[str, Callable[[World], models.Model]] = {
    "connect_activitycount_unique": lambda w: copy_of(one(ActivityCount, w), count=5),
    "connect_connector_unique_uid": lambda w: copy_of(one(Connector, w)),
    "connect_connector_uid_format": lambda w: copy_of(one(Connector, w), uid="no-slash"),
    "connect_connector_type_valid": lambda w: copy_of(
        one(Connector, w), uid="api-key/other", type="carrier-pigeon"
    ),
    "connect_connector_colors_hex": lambda w: copy_of(
        one(Connector, w), uid="api-key/other", accent_color="red"
    ),
    "connect_installation_unique_tenant": lambda w: copy_of(one(Installation, w), is_default=False),
    "connect_installation_one_default": lambda w: copy_of(
        one(Installation, w), tenant_id="another-tenant", is_default=True
    ),
    "connect_installation_status_valid": lambda w: copy_of(
        one(Installation, w), tenant_id="another-tenant", is_default=False, status="gone"
    ),
    "connect_grant_unique_subject": lambda w: copy_of(one(Grant, w)),
    "connect_grant_subject_type_valid": lambda w: copy_of(one(Grant, w), subject_type="robot"),
    "connect_grant_status_valid": lambda w: copy_of(
        one(Grant, w), subject_id="other", status="fine"
    ),
    "connect_projectlink_unique_project": lambda w: copy_of(one(ProjectLink, w)),
    "connect_project_unique_slug": lambda w: copy_of(one(Project, w), name="Same slug"),
    "connect_environment_unique_slug": lambda w: copy_of(one(Environment, w)),
    "connect_membership_unique_user": lambda w: copy_of(one(Membership, w), role=Role.VIEWER),
    "connect_membership_role_valid": lambda w: Membership(
        team=w.team, user=User.objects.create_user(f"u-{uuid.uuid4().hex[:6]}"), role="king"
    ),
    "connect_delivery_unique_destination": lambda w: copy_of(one(Delivery, w)),
    "connect_delivery_unique_lifecycle_destination": lambda w: copy_of(
        Delivery.objects.filter(
            pk__in=w.rows["connect.delivery"], lifecycle_event__isnull=False
        ).get()
    ),
    # Another event to the same destination under the same webhook-id.
    "connect_delivery_unique_webhook_id": lambda w: copy_of(
        one(Delivery, w),
        event_id=InboundEvent.objects.create(connector=one(Connector, w), body=b"").pk,
        webhook_id=one(Delivery, w).webhook_id,
    ),
    "connect_delivery_one_event": lambda w: Delivery(destination=one(TriggerDestination, w)),
    "connect_teamapitoken_role_valid": lambda w: copy_of(
        one(TeamApiToken, w), prefix="other", role="king"
    ),
    "connect_proxycall_outcome_valid": lambda w: copy_of(one(ProxyCall, w), outcome="lost"),
    "connect_triggerdestination_one_lifecycle": lambda w: copy_of(
        one(LifecycleDestination, w),
        path="/another",
    ),
    "connect_triggerdestination_kind_valid": lambda w: copy_of(
        one(TriggerDestination, w), path="/other", kind="pigeon"
    ),
    "connect_delivery_status_valid": lambda w: Delivery(
        event=InboundEvent.objects.create(connector=one(Connector, w), body=b""),
        destination=one(TriggerDestination, w),
        status="lost",
    ),
    "connect_inboundevent_unique_provider_event": lambda w: copy_of(one(InboundEvent, w)),
    # The same body one slot later: it shares the odd slot only, or the even one only.
    "connect_inboundevent_unique_body_even_slot": lambda w: copy_of(
        replay_slotted(one(InboundEvent, w)), provider_event_id="again", replay_slot_odd=7
    ),
    "connect_inboundevent_unique_body_odd_slot": lambda w: copy_of(
        replay_slotted(one(InboundEvent, w)), provider_event_id="again", replay_slot_even=6
    ),
    "connect_authorizationrequest_kind_valid": lambda w: copy_of(
        one(AuthorizationRequest, w), kind="hijack", state="s2", verifier_sha256="v2"
    ),
    "connect_authorizationrequest_outcome_valid": lambda w: copy_of(
        one(AuthorizationRequest, w), outcome="maybe", state="s2", verifier_sha256="v2"
    ),
    "connect_triggerdestination_unique_target": lambda w: copy_of(one(TriggerDestination, w)),
    "connect_trustedissuer_one_team_per_audience": lambda w: copy_of(one(TrustedIssuer, w)),
    "connect_triggerdestination_path_absolute": lambda w: copy_of(
        one(TriggerDestination, w), path="relative"
    ),
    "connect_triggerdestination_disabled_reason_valid": lambda w: copy_of(
        one(TriggerDestination, w), path="/other", disabled_at=timezone.now(), disabled_reason=""
    ),
}


def test_every_named_constraint_has_a_violation_here() -> None:
    names = constraint_names()

    assert sorted(names) == sorted(VIOLATIONS)
    for name, (model, _) in names.items():
        assert name.startswith(f"connect_{model._meta.model_name}_"), name


def test_every_named_constraint_exists_in_the_database() -> None:
    by_table: dict[str, set[str]] = {}
    with connection.cursor() as cursor:
        for name, (model, _constraint) in constraint_names().items():
            table = model._meta.db_table
            if table not in by_table:
                by_table[table] = set(connection.introspection.get_constraints(cursor, table))
            assert name in by_table[table], f"{name} is missing from {table}: run migrations"


def assert_violates(name: str, obj: models.Model) -> None:
    model, constraint = constraint_names()[name]
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        obj.save()
    message = str(caught.value)
    if connection.vendor == "sqlite" and isinstance(constraint, models.UniqueConstraint):
        # SQLite names the columns, not the index.
        table = model._meta.db_table
        columns = [model._meta.get_field(f).column for f in constraint.fields]
        assert ", ".join(f"{table}.{c}" for c in columns) in message
    else:
        assert name in message


@pytest.mark.parametrize("name", sorted(VIOLATIONS))
def test_named_constraints_are_enforced(make_world: Callable[[], World], name: str) -> None:
    world = make_world()

    assert_violates(name, VIOLATIONS[name](world))


@pytest.mark.parametrize("uid", ["slack/acme-bot", "a/b", "github/acme.app_2", "0x/9"])
def test_valid_connector_uids_are_accepted(make_team: Callable[..., Team], uid: str) -> None:
    Connector.objects.create(team=make_team(), uid=uid, type="api-key", service="x", name="x")


@pytest.mark.parametrize(
    "uid", ["noslash", "Slack/acme", "slack/Acme", "a/b/c", "/x", "x/", "-a/b", "a/ b", ""]
)
def test_invalid_connector_uids_are_refused(make_team: Callable[..., Team], uid: str) -> None:
    connector = Connector(team=make_team(), uid=uid, type="api-key", service="x", name="x")

    assert_violates("connect_connector_uid_format", connector)


def test_the_same_uid_in_two_teams_is_fine(make_team: Callable[..., Team]) -> None:
    for team in (make_team(), make_team()):
        Connector.objects.create(team=team, uid="slack/bot", type="slack", service="s", name="n")


def test_several_installations_but_one_default_per_connector(
    make_team: Callable[..., Team], make_connector: Callable[..., Connector]
) -> None:
    team = make_team()
    slack = make_connector(team, uid="slack/bot", type=Connector.Type.SLACK)
    other = make_connector(team, uid="slack/other", type=Connector.Type.SLACK)
    for tenant in ("T1", "T2", "T3"):
        Installation.objects.create(connector=slack, tenant_id=tenant)
    Installation.objects.create(connector=slack, tenant_id="T4", is_default=True)
    Installation.objects.create(connector=other, tenant_id="T1", is_default=True)

    assert_violates(
        "connect_installation_one_default",
        Installation(connector=slack, tenant_id="T5", is_default=True),
    )
    assert_violates(
        "connect_installation_unique_tenant", Installation(connector=slack, tenant_id="T1")
    )


def test_provider_event_ids_are_unique_only_when_given(
    make_team: Callable[..., Team], make_connector: Callable[..., Connector]
) -> None:
    team = make_team()
    first = make_connector(team, uid="slack/one", type=Connector.Type.SLACK)
    second = make_connector(team, uid="slack/two", type=Connector.Type.SLACK)
    for _ in range(3):
        InboundEvent.objects.create(connector=first, provider_event_id="", body=b"")
    InboundEvent.objects.create(connector=first, provider_event_id="Ev1", body=b"")
    InboundEvent.objects.create(connector=second, provider_event_id="Ev1", body=b"")

    assert_violates(
        "connect_inboundevent_unique_provider_event",
        InboundEvent(connector=first, provider_event_id="Ev1", body=b""),
    )
    assert InboundEvent.objects.filter(connector=first).count() == 4


def test_grants_differ_by_issuer_and_subject(
    make_team: Callable[..., Team],
    make_connector: Callable[..., Connector],
    make_grant: Callable[..., Grant],
) -> None:
    installation = make_connector(make_team()).installations.get()
    make_grant(installation, Grant.SubjectType.USER, "42", issuer="prj_one")
    make_grant(installation, Grant.SubjectType.USER, "42", issuer="prj_two")
    make_grant(installation, Grant.SubjectType.USER, "43", issuer="prj_one")
    make_grant(installation, Grant.SubjectType.APP)

    assert_violates(
        "connect_grant_unique_subject",
        Grant(installation=installation, subject_type="user", subject_id="42", issuer="prj_one"),
    )


def test_team_slugs_are_unique(make_team: Callable[..., Team]) -> None:
    make_team("acme")

    with pytest.raises(IntegrityError), transaction.atomic():
        Team.objects.create(slug="acme", name="Another Acme")


def test_the_models_kinds_take_their_values_from_the_django_free_module() -> None:
    assert SubjectType.values == [k.value for k in kinds.SubjectType]
    assert AuthorizationKind.values == [k.value for k in kinds.AuthorizationKind]


def test_the_kinds_module_imports_no_django() -> None:
    """Drivers import it; they never touch the ORM, so it must not pull Django in."""
    code = "import sys, connect.kinds; print(any(m.startswith('django') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
