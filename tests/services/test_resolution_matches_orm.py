"""The token path's hand-written join against the ORM, on randomized data.

``resolve()`` reads connector, link, installation and grant in one SQL statement written against
the models' table and column names, and rebuilds model instances from its rows. The ORM query
below says the same thing the slow, obvious way. On random teams, connectors, links,
installations (statuses, defaults) and grants (subjects, issuers, statuses), for every shape of
request (connector by uid or ``scl_`` id; installation by ``sci_`` id, ``"*"`` or None; slim or
complete columns) both must find the same rows with the same values, of the same Python types.
A new column, a changed ``SLIM_FIELDS`` or a backend converter the join forgets shows up here
instead of in a tenant's token. It runs on whatever database the suite runs on (PostgreSQL in
CI, SQLite on a laptop without ``DATABASE_URL``).
"""

import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from django.db import models, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connect.kinds import Subject
from connect.models import Connector, Grant, Installation, Project, ProjectLink, Team
from connect.services.resolution import SLIM_FIELDS, resolve

pytestmark = pytest.mark.django_db

T = TypeVar("T")
Draw = Callable[[st.SearchStrategy[T]], T]

#: A few subjects, so that grants and requests meet often: the same user id under two issuers,
#: an app grant, a jwt-bearer user.
SUBJECTS = (
    Subject(type="app"),
    Subject(type="user", id="u-1"),
    Subject(type="user", id="u-1", issuer="prj_other"),
    Subject(type="user", id="u-2"),
    Subject(type="jwt-bearer", id="u-1", issuer="https://idp.example"),
)
#: Shared between teams, so a uid alone never finds the connector.
UIDS = ("slack/acme", "github/acme", "oauth/acme")
TYPES = tuple(Connector.Type.values)
WORD = st.text(alphabet=string.ascii_letters + string.digits + "é-_ ", max_size=8)
JSON_VALUE = st.one_of(st.none(), st.booleans(), st.integers(-(2**31), 2**31), WORD)
MOMENT = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
)
SEALED = st.one_of(st.just(""), st.text(alphabet=string.ascii_letters + ".:_-", max_size=40))


@dataclass
class World:
    teams: list[Team] = field(default_factory=list)
    projects: list[Project] = field(default_factory=list)
    connectors: list[Connector] = field(default_factory=list)
    installations: list[Installation] = field(default_factory=list)


def build_world(draw: Draw[Any]) -> World:
    """Random rows, written with one ``bulk_create`` per model."""
    world = World()
    world.teams = Team.objects.bulk_create(
        Team(slug=f"team-{t}", name=f"Team {t}") for t in range(draw(st.integers(1, 2)))
    )
    connectors, links = [], []
    for team in world.teams:
        projects = [
            Project(team=team, slug=f"p{p}", name=f"P{p}") for p in range(draw(st.integers(1, 2)))
        ]
        world.projects += projects
        for uid in draw(st.lists(st.sampled_from(UIDS), min_size=1, max_size=3, unique=True)):
            connector = Connector(
                team=team,
                uid=uid,
                type=draw(st.sampled_from(TYPES)),
                service=uid.split("/")[0],
                name=draw(WORD) or uid,
                client_id=draw(WORD),
                config=draw(st.dictionaries(WORD, JSON_VALUE, max_size=3)),
                default_scopes=draw(
                    st.dictionaries(st.sampled_from(["app", "user"]), st.lists(WORD, max_size=2))
                ),
                allowed_return_origins=draw(st.lists(WORD, max_size=2)),
                triggers_enabled=draw(st.booleans()),
                client_secret_sealed=draw(SEALED),
                private_key_sealed=draw(SEALED),
                api_key_sealed=draw(SEALED),
                trigger_signing_secret_sealed=draw(SEALED),
            )
            connectors.append(connector)
            links += [
                ProjectLink(
                    connector=connector,
                    project=project,
                    environments=draw(
                        st.lists(st.sampled_from(["production", "preview"]), unique=True)
                    ),
                )
                for project in projects
                if draw(st.booleans())
            ]
    Project.objects.bulk_create(world.projects)
    world.connectors = Connector.objects.bulk_create(connectors)
    ProjectLink.objects.bulk_create(links)
    world.installations = Installation.objects.bulk_create(
        installation for c in world.connectors for installation in installations(draw, c)
    )
    Grant.objects.bulk_create(g for i in world.installations for g in grants(draw, i))
    return world


def installations(draw: Draw[Any], connector: Connector) -> list[Installation]:
    count = draw(st.integers(0, 4))  # up to two more than a resolution hands back
    default = draw(st.one_of(st.none(), st.integers(0, max(count - 1, 0))))
    return [
        Installation(
            connector=connector,
            tenant_id=f"T{i}",
            display_name=draw(WORD),
            status=draw(st.sampled_from([*Installation.Status.values, Installation.Status.ACTIVE])),
            is_default=default == i,
            metadata=draw(st.dictionaries(WORD, JSON_VALUE, max_size=3)),
            created_at=draw(MOMENT),
        )
        for i in range(count)
    ]


def grants(draw: Draw[Any], installation: Installation) -> list[Grant]:
    return [
        Grant(
            installation=installation,
            subject_type=subject.type,
            subject_id=subject.id,
            issuer=subject.issuer,
            access_token_sealed=draw(SEALED),
            refresh_token_sealed=draw(SEALED),
            access_expires_at=draw(st.one_of(st.none(), MOMENT)),
            access_lifetime_seconds=draw(st.one_of(st.none(), st.integers(0, 10**6))),
            refresh_expires_at=draw(st.one_of(st.none(), MOMENT)),
            scopes=draw(st.lists(WORD, max_size=3)),
            external_subject=draw(WORD),
            status=draw(st.sampled_from(Grant.Status.values)),
            version=draw(st.integers(0, 50)),
        )
        for subject in draw(st.lists(st.sampled_from(SUBJECTS), max_size=3, unique=True))
    ]


def draw_query(draw: Draw[Any], world: World) -> dict[str, Any]:
    connector = draw(st.sampled_from(world.connectors))
    connector_ref = draw(
        st.sampled_from([connector.uid, connector.public_id, "slack/nobody", "scl_nobody"])
    )
    installation_ref = draw(
        st.one_of(
            st.none(),
            st.just("*"),
            st.sampled_from([i.public_id for i in world.installations] or ["sci_nobody"]),
            st.just("sci_nobody"),
        )
    )
    return {
        # Mostly the connector's own team; sometimes another, which must find nothing of it.
        "team_id": draw(st.sampled_from([connector.team_id] * 3 + [t.pk for t in world.teams])),
        "project_id": draw(st.sampled_from(world.projects)).pk,
        "connector_ref": connector_ref,
        "subject": draw(st.sampled_from(SUBJECTS)),
        "installation_ref": installation_ref,
        "complete": draw(st.booleans()),
    }


# The same question, asked of the ORM -------------------------------------------------------------


def orm_resolve(
    *,
    team_id: int,
    project_id: int,
    connector_ref: str,
    subject: Subject,
    installation_ref: str | None,
    complete: bool,
) -> tuple[Connector, ProjectLink | None, list[tuple[Installation, Grant | None]]] | None:
    by = "public_id" if connector_ref.startswith("scl_") else "uid"
    connector = Connector.objects.filter(team_id=team_id, **{by: connector_ref}).first()
    if connector is None:
        return None
    link = ProjectLink.objects.filter(connector=connector, project_id=project_id).first()
    installations = Installation.objects.filter(
        connector=connector, status=Installation.Status.ACTIVE
    )
    if installation_ref not in (None, "*"):
        installations = installations.filter(public_id=installation_ref)
    grants = {
        grant.installation_id: grant
        for grant in Grant.objects.filter(
            installation__in=installations,
            subject_type=subject.type,
            subject_id=subject.id,
            issuer=subject.issuer,
        )
    }
    pairs = [(i, grants.get(i.pk)) for i in installations.order_by("-is_default", "pk")]
    if installation_ref == "*":
        # Any installation where the subject holds a grant; with none, as if none was named.
        pairs = [(i, g) for i, g in pairs if g is not None]
        if not pairs:
            return orm_resolve(
                team_id=team_id,
                project_id=project_id,
                connector_ref=connector_ref,
                subject=subject,
                installation_ref=None,
                complete=complete,
            )
    return connector, link, pairs[:2]


# Comparing ---------------------------------------------------------------------------------------


def loaded(instance: models.Model, *, complete: bool) -> dict[str, tuple[type, Any]]:
    """The values the instance holds, with their types; exactly the columns it should hold."""
    model = type(instance)
    every = [f.attname for f in model._meta.concrete_fields]
    expected = every if complete else list(SLIM_FIELDS[model])
    held = [name for name in every if name in instance.__dict__]
    # A name in SLIM_FIELDS that is no column (renamed, misspelt) would otherwise just be left
    # out of the join, and read later with one query per row.
    assert sorted(held) == sorted(expected), (model.__name__, set(held) ^ set(expected))
    assert instance.get_deferred_fields() == set(every) - set(expected)
    return {name: (type(instance.__dict__[name]), instance.__dict__[name]) for name in held}


def expected(instance: models.Model, names: list[str]) -> dict[str, tuple[type, Any]]:
    return {name: (type(getattr(instance, name)), getattr(instance, name)) for name in names}


def assert_same(query: dict[str, Any]) -> None:
    complete = query["complete"]
    joined = resolve(**query)
    orm = orm_resolve(**query)
    if orm is None:
        assert joined is None, query
        return
    assert joined is not None, query
    connector, link, pairs = orm

    found = loaded(joined.connector, complete=complete)
    assert found == expected(connector, list(found)), query
    if link is None:
        assert joined.link is None, query
    else:
        assert joined.link is not None, query
        found = loaded(joined.link, complete=complete)
        assert found == expected(link, list(found)), query

    assert [c.installation.pk for c in joined.candidates] == [i.pk for i, _ in pairs], query
    for candidate, (installation, grant) in zip(joined.candidates, pairs, strict=True):
        assert candidate.installation.connector is joined.connector
        found = loaded(candidate.installation, complete=complete)
        assert found == expected(installation, list(found)), query
        if grant is None:
            assert candidate.grant is None, query
            continue
        assert candidate.grant is not None, query
        assert candidate.grant.installation is candidate.installation
        found = loaded(candidate.grant, complete=complete)
        assert found == expected(grant, list(found)), query


class _RollBack(Exception):
    """Each example's rows go away with it."""


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_resolve_finds_what_the_orm_finds(data: st.DataObject) -> None:
    try:
        with transaction.atomic():
            world = build_world(data.draw)
            for _ in range(10):
                assert_same(draw_query(data.draw, world))
            raise _RollBack
    except _RollBack:
        pass


def test_every_slim_field_is_a_column() -> None:
    """The join silently leaves out a name that is no column; say so here instead."""
    for model, names in SLIM_FIELDS.items():
        columns = {f.attname for f in model._meta.concrete_fields}
        assert set(names) <= columns, (model.__name__, set(names) - columns)
        assert len(set(names)) == len(names), model.__name__
