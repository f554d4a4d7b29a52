"""The token hot path's one read: connector, link, installation and grant in a single query.

An ORM version takes two queries and several times the CPU (SPEC section 12); this join is
written once, against the models' own table and column names, and turned back into model
instances with ``Model.from_db``.
"""

import functools
from dataclasses import dataclass
from typing import Any

from django.db import connection, models

from connect.kinds import Subject
from connect.models import Connector, Grant, Installation, ProjectLink


@dataclass
class Candidate:
    installation: Installation
    grant: Grant | None


@dataclass
class Resolution:
    connector: Connector
    link: ProjectLink | None
    candidates: list[Candidate]


#: What the token hot path reads of each model; everything else stays deferred.
SLIM_FIELDS: dict[type[models.Model], tuple[str, ...]] = {
    Connector: (
        "id", "public_id", "team_id", "uid", "type", "service", "name", "client_id", "config",
        "default_scopes", "client_secret_sealed", "private_key_sealed", "api_key_sealed",
    ),
    ProjectLink: ("id", "environments"),
    Installation: (
        "id", "public_id", "connector_id", "tenant_id", "display_name", "status", "is_default",
        "metadata",
    ),
    Grant: (
        "id", "public_id", "installation_id", "subject_type", "subject_id", "issuer",
        "access_token_sealed", "refresh_token_sealed", "access_expires_at",
        "access_lifetime_seconds", "scopes", "external_subject", "status", "version",
    ),
}  # fmt: skip


def _fields(model: type[models.Model], complete: bool) -> list[Any]:
    fields = model._meta.concrete_fields
    if complete:
        return list(fields)
    wanted = SLIM_FIELDS[model]
    return [f for f in fields if f.attname in wanted]


def _columns(model: type[models.Model], alias: str, complete: bool) -> tuple[list[str], list[Any]]:
    fields = _fields(model, complete)
    qn = connection.ops.quote_name
    return [f"{alias}.{qn(str(f.column))}" for f in fields], fields


def _table(model: type[models.Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


@dataclass(frozen=True)
class _Shape:
    """How one model's columns come back from the join: its fields, their names, and the
    converters the ORM's compiler would apply to each (worked out once per statement)."""

    model: type[models.Model]
    names: list[str]
    converters: list[list[Any]]
    cols: list[Any]

    @classmethod
    def of(cls, model: type[models.Model], fields: list[Any]) -> "_Shape":
        # The backend's converters first, as the ORM's compiler does: SQLite hands back naive
        # datetimes and 0/1 for booleans, which only these turn into aware datetimes and bools.
        return cls(
            model=model,
            names=[f.attname for f in fields],
            converters=[
                connection.ops.get_db_converters(f.cached_col) + f.get_db_converters(connection)
                for f in fields
            ],
            cols=[f.cached_col for f in fields],
        )

    def build(self, values: tuple[Any, ...]) -> Any:
        if values[0] is None:  # the primary key: the LEFT JOIN found nothing
            return None
        converted = list(values)
        for i, converters in enumerate(self.converters):
            for converter in converters:
                converted[i] = converter(converted[i], self.cols[i], connection)
        return self.model.from_db(connection.alias or "default", self.names, converted)


@functools.lru_cache(maxsize=32)
def _statement(
    vendor: str, *, complete: bool, mode: str, by: str
) -> tuple[str, tuple[_Shape, _Shape, _Shape, _Shape]]:
    """The join for one shape of request, built once per process (``vendor`` keys the quoting)."""
    qn = connection.ops.quote_name
    c_cols, c_fields = _columns(Connector, "c", complete)
    l_cols, l_fields = _columns(ProjectLink, "l", complete)
    i_cols, i_fields = _columns(Installation, "i", complete)
    g_cols, g_fields = _columns(Grant, "g", complete)
    grant_match = (
        f"g.{qn('installation_id')} = i.{qn('id')} AND g.{qn('subject_type')} = %s "
        f"AND g.{qn('subject_id')} = %s AND g.{qn('issuer')} = %s"
    )
    pick_installation = f"AND i.{qn('public_id')} = %s" if mode == "explicit" else ""
    # "*" wants an installation where the subject already has a grant; otherwise the default.
    only_granted = f"AND g.{qn('id')} IS NOT NULL" if mode == "any" else ""
    order = f"(g.{qn('id')} IS NULL), " if mode == "any" else ""
    # Only quoted model metadata is interpolated; every value travels as a parameter.
    sql = f"""
        SELECT {", ".join(c_cols + l_cols + i_cols + g_cols)}
        FROM {_table(Connector)} c
        LEFT JOIN {_table(ProjectLink)} l
            ON l.{qn("connector_id")} = c.{qn("id")} AND l.{qn("project_id")} = %s
        LEFT JOIN {_table(Installation)} i
            ON i.{qn("connector_id")} = c.{qn("id")} AND i.{qn("status")} = %s
            {pick_installation}
        LEFT JOIN {_table(Grant)} g ON {grant_match}
        WHERE c.{qn("team_id")} = %s AND c.{qn(by)} = %s {only_granted}
        ORDER BY {order}i.{qn("is_default")} DESC, i.{qn("id")}
        LIMIT 2
    """  # noqa: S608
    shapes = (
        _Shape.of(Connector, c_fields),
        _Shape.of(ProjectLink, l_fields),
        _Shape.of(Installation, i_fields),
        _Shape.of(Grant, g_fields),
    )
    return sql, shapes


def resolve(
    *,
    team_id: int,
    project_id: int,
    connector_ref: str,
    subject: Subject,
    installation_ref: str | None,
    complete: bool = False,
) -> Resolution | None:
    """None when the team has no such connector; otherwise what exists, for the caller to judge.

    ``installation_ref``: a ``sci_`` id, ``"*"`` (any installation holding the subject's grant)
    or None (the default installation, or the only one). At most two candidates come back.
    ``complete`` loads every column (for pages that show the connector); the token path reads
    only ``SLIM_FIELDS``.
    """
    explicit = installation_ref not in (None, "*")
    params: list[Any] = [project_id, Installation.Status.ACTIVE.value]
    if explicit:
        params.append(installation_ref)
    params += [subject.type, subject.id, subject.issuer, team_id, connector_ref]
    mode = "explicit" if explicit else "any" if installation_ref == "*" else "default"
    by = "public_id" if connector_ref.startswith("scl_") else "uid"
    sql, (c_shape, l_shape, i_shape, g_shape) = _statement(
        connection.vendor, complete=complete, mode=mode, by=by
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows and installation_ref == "*":
        # No grant anywhere: still tell "no such connector" apart from "no grant".
        return resolve(
            team_id=team_id,
            project_id=project_id,
            connector_ref=connector_ref,
            subject=subject,
            installation_ref=None,
            complete=complete,
        )
    if not rows:
        return None
    spans = []
    start = 0
    for shape in (c_shape, l_shape, i_shape, g_shape):
        spans.append((start, start + len(shape.names)))
        start += len(shape.names)
    first = rows[0]
    connector = c_shape.build(first[spans[0][0] : spans[0][1]])
    link = l_shape.build(first[spans[1][0] : spans[1][1]])
    candidates = []
    for row in rows:
        installation = i_shape.build(row[spans[2][0] : spans[2][1]])
        if installation is None:
            continue
        installation.connector = connector
        grant = g_shape.build(row[spans[3][0] : spans[3][1]])
        if grant is not None:
            grant.installation = installation
        candidates.append(Candidate(installation=installation, grant=grant))
    return Resolution(connector=connector, link=link, candidates=candidates)
