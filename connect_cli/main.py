"""The ``connect`` command: verbs mirroring ``vercel connect`` against a Connect server."""

import json
import os
import sys
import webbrowser
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import click

from connect_cli import config, output
from connect_cli.client import Client, segment

F = TypeVar("F", bound=Callable[..., Any])

EPILOG = """\b
Getting started:
  connect login --url https://connect.example.com        # asks for the cat_… token
  connect whoami
\b
Connectors and project links:
  connect create oauth --uid acme/app --name Acme \\
      --data '{"clientId": "id", "clientSecret": "secret",
               "serverConfig": {"issuer": "https://auth.acme.test",
                                "tokenEndpoint": "https://auth.acme.test/token"},
               "clientCredentials": {"enabled": true}}'
  connect attach acme/app web -e production -e preview
  connect list
  connect inspect acme/app
  connect update acme/app --name "Acme (prod)"
  connect detach acme/app web --yes
  connect remove acme/app --yes
\b
Deployment credentials and runtime tokens:
  CRED=$(connect credentials create --project web -e production --format json | jq -r .token)
  connect token acme/app --credential "$CRED"              # an app token
  connect token acme/app --credential "$CRED" --user alice # a user's token
  connect install-link slack/bot --credential "$CRED"
  connect revoke-tokens acme/app --credential "$CRED" --user alice --yes
\b
Webhook events:
  connect events list --connector github/app
  connect events replay trq_…
\b
Configuration: --url/--token, else CONNECT_URL and CONNECT_TOKEN, else the file written by
`connect login` (in the user's config directory, mode 0600). `token`, `install-link` and
`revoke-tokens` use a deployment credential (--credential or CONNECT_CREDENTIAL); every other
verb a team API token. Every verb takes --format json, printing the server's answer for scripts.
Destructive verbs ask first; off a terminal they need --yes.
\b
Exit codes: 0 done, 1 the server refused (its message is shown), 2 wrong usage or nothing
configured, 3 the server could not be reached or failed (5xx).
"""


class State:
    def __init__(self, url: str | None, token: str | None, fmt: str | None) -> None:
        self.url_flag, self.token_flag, self.format = url, token, fmt

    def settings(self) -> config.Settings:
        return config.resolve(self.url_flag, self.token_flag)

    def client(self, *, need_token: bool = True) -> Client:
        settings = self.settings()
        if not settings.url:
            raise click.UsageError(
                "No server: pass --url, set CONNECT_URL, or run `connect login`."
            )
        if need_token and not settings.token:
            raise click.UsageError(
                "No team API token: pass --token, set CONNECT_TOKEN, or run `connect login`."
            )
        return Client(settings.url, settings.token)


def state() -> State:
    return click.get_current_context().find_object(State)  # type: ignore[return-value]


def formatted(func: F) -> F:
    """Adds ``--format table|json``; the group's ``--format`` is the default."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "json"]),
        default=None,
        help="table (for people, the default) or json (the server's answer, for scripts).",
    )(func)


def wants_json(fmt: str | None) -> bool:
    return (fmt or state().format or "table") == "json"


def report(fmt: str | None, answer: object, line: str) -> None:
    """Say what was done: the server's answer as JSON for scripts, one line for people."""
    if wants_json(fmt):
        output.emit_json(answer)
    else:
        click.echo(line)


def confirm(yes: bool, what: str) -> None:
    """Ask before destroying; off a terminal (a script, a pipe) insist on --yes instead."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise click.UsageError(f"{what}: pass --yes to confirm (stdin is not a terminal).")
    click.confirm(f"{what}?", abort=True)


def json_data(raw: str | None) -> Any:
    """``--data`` as JSON text, ``@file``, or ``@-`` for stdin."""
    if raw is None:
        return None
    if raw.startswith("@"):
        source = raw[1:]
        raw = sys.stdin.read() if source == "-" else Path(source).read_text()
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--data") from exc


def credential_option(func: F) -> F:
    return click.option(
        "--credential",
        envvar="CONNECT_CREDENTIAL",
        required=True,
        help="A deployment credential (cdc_…); defaults to CONNECT_CREDENTIAL.",
    )(func)


def subject_options(func: F) -> F:
    func = click.option("--issuer", help="The user's issuer (with --user).")(func)
    return click.option(
        "--user", "user_id", help="A user's id: the subject is that user instead of the app."
    )(func)


def subject_of(user_id: str | None, issuer: str | None) -> dict[str, str]:
    if not user_id:
        if issuer:
            raise click.UsageError("--issuer needs --user.")
        return {"type": "app"}
    subject = {"type": "user", "id": user_id}
    if issuer:
        subject["issuer"] = issuer
    return subject


CONNECTOR_COLUMNS: list[output.Column] = [
    ("id", lambda c: c.get("id")),
    ("uid", lambda c: c.get("uid")),
    ("type", lambda c: c.get("type")),
    ("name", lambda c: c.get("name")),
    ("triggers", lambda c: (c.get("triggers") or {}).get("enabled", False)),
    ("updated", lambda c: output.when(c.get("updatedAt"))),
]
LINK_COLUMNS: list[output.Column] = [
    ("project", lambda p: (p.get("project") or {}).get("name")),
    ("project id", lambda p: (p.get("project") or {}).get("id")),
    ("environments", lambda p: p.get("enabledEnvironments")),
    ("updated", lambda p: output.when(p.get("updatedAt"))),
]


@click.group(
    epilog=EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option("--url", help="The Connect server, e.g. https://connect.example.com (CONNECT_URL).")
@click.option("--token", help="A team API token, cat_… (CONNECT_TOKEN).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default=None,
    help="Output for every verb: table (default) or json.",
)
@click.version_option("0.1.0", prog_name="connect")
@click.pass_context
def cli(ctx: click.Context, url: str | None, token: str | None, fmt: str | None) -> None:
    """Manage a Connect server from the shell: connectors, project links, deployment
    credentials, runtime tokens and webhook events.

    Connect is a self-hosted credential broker and webhook relay, wire-compatible with Vercel
    Connect; these verbs mirror `vercel connect`.
    """
    ctx.obj = State(url, token, fmt)


# --- session ------------------------------------------------------------------------------


@cli.command()
@click.option("--url", "url_opt", help="The server (asked for when missing).")
@click.option("--token", "token_opt", help="A team API token (asked for, hidden, when missing).")
@formatted
def login(url_opt: str | None, token_opt: str | None, fmt: str | None) -> None:
    """Check a server and team API token, then remember both (file mode 0600)."""
    s = state()
    url = url_opt or s.url_flag or os.environ.get("CONNECT_URL")
    token = token_opt or s.token_flag or os.environ.get("CONNECT_TOKEN")
    if not url:
        url = click.prompt("Connect server URL")
    if not token:
        token = click.prompt("Team API token (cat_…)", hide_input=True)
    assert url
    assert token
    me = Client(url, token).call("GET", "/v1/connect/whoami")
    path = config.save(url.rstrip("/"), token)
    if wants_json(fmt):
        output.emit_json({**me, "configFile": str(path)})
        return
    click.echo(
        f"Logged in to {url} as token {me['token']['name']!r} ({me['token']['role']}) "
        f"of team {me['team']['slug']}. Saved to {path}."
    )


@cli.command()
@formatted
def logout(fmt: str | None) -> None:
    """Forget the server and token saved by `connect login`."""
    removed = config.forget()
    report(
        fmt,
        {"removed": removed, "configFile": str(config.config_path())},
        "Logged out." if removed else "Not logged in.",
    )


@cli.command()
@formatted
def whoami(fmt: str | None) -> None:
    """The team and role the token acts with."""
    me = state().client().call("GET", "/v1/connect/whoami")
    if wants_json(fmt):
        output.emit_json(me)
        return
    output.fields(
        [
            ("Server", state().settings().url),
            ("Team", f"{me['team']['slug']} ({me['team']['id']}, {me['team']['name']})"),
            ("Token", f"{me['token']['name']} ({me['token']['id']})"),
            ("Role", me["token"]["role"]),
        ]
    )


# --- connectors ---------------------------------------------------------------------------


@cli.command("list")
@click.option("--project", help="Only connectors linked to this project (prj_… or slug).")
@click.option("--search", help="Match name, uid or service.")
@click.option("--type", "type_", help="Only these types (comma-separated).")
@click.option("--sort", type=click.Choice(["name", "createdAt", "updatedAt"]))
@click.option("--limit", type=click.IntRange(1), help="At most this many (default: all).")
@formatted
def list_(
    project: str | None,
    search: str | None,
    type_: str | None,
    sort: str | None,
    limit: int | None,
    fmt: str | None,
) -> None:
    """The team's connectors."""
    params = {"projectId": project, "search": search, "type": type_, "sort": sort}
    items = state().client().pages("/v2/connect/connectors", "connectors", params, limit)
    if wants_json(fmt):
        output.emit_json({"connectors": items})
    else:
        output.table(items, CONNECTOR_COLUMNS, "No connectors yet: `connect create --help`.")


@cli.command()
@click.argument("connector")
@formatted
def inspect(connector: str, fmt: str | None) -> None:
    """One connector (uid like acme/app, or its scl_ id) and the projects it is attached to."""
    client = state().client()
    found = client.call("GET", f"/v1/connect/connectors/{segment(connector)}")
    links = client.pages(
        f"/v2/connect/connectors/{segment(connector)}/projects", "projects", {}, None
    )
    if wants_json(fmt):
        output.emit_json({**found, "projects": links})
        return
    output.fields(
        [
            ("Id", found.get("id")),
            ("Uid", found.get("uid")),
            ("Name", found.get("name")),
            ("Type", f"{found.get('type')} ({found.get('typeName')})"),
            ("Service", found.get("service")),
            ("Subjects", found.get("supportedSubjectTypes")),
            ("Triggers", (found.get("triggers") or {}).get("enabled", False)),
            ("Events", found.get("events") or "all"),
            ("Return origins", found.get("returnOrigins") or "none"),
            ("Redirect URI", found.get("redirectUri")),
            ("Created", output.when(found.get("createdAt"))),
            ("Updated", output.when(found.get("updatedAt"))),
        ]
    )
    click.echo("")
    output.table(links, LINK_COLUMNS, "Not attached to any project: `connect attach --help`.")


@cli.command()
@click.argument("type_", metavar="TYPE")
@click.option("--uid", help="service/name, e.g. acme/app (generated when omitted).")
@click.option("--name", help="A display name.")
@click.option(
    "--data",
    "data_raw",
    help="The type's configuration and secrets: JSON, @file or @- (stdin).",
)
@click.option("--project", help="Attach to this project at once (prj_… or slug).")
@click.option(
    "-e", "--environment", "environments", multiple=True, help="With --project; repeatable."
)
@click.option("--triggers/--no-triggers", default=None, help="Forward provider webhooks.")
@click.option("--event", "events", multiple=True, help="Forward only these events; repeatable.")
@formatted
def create(
    type_: str,
    uid: str | None,
    name: str | None,
    data_raw: str | None,
    project: str | None,
    environments: tuple[str, ...],
    triggers: bool | None,
    events: tuple[str, ...],
    fmt: str | None,
) -> None:
    """Create a connector of TYPE (oauth, api-key, slack, github, linear, salesforce,
    microsoft-entra, …)."""
    if environments and not project:
        raise click.UsageError("--environment needs --project.")
    body: dict[str, Any] = {"type": type_, "data": json_data(data_raw) or {}}
    for key, value in (("uid", uid), ("name", name), ("projectId", project)):
        if value:
            body[key] = value
    if environments:
        body["environments"] = list(environments)
    if triggers is not None:
        body["triggers"] = triggers
    if events:
        body["events"] = list(events)
    made = state().client().call("POST", "/v1/connect/connectors", body=body)
    report(fmt, made, f"Created {made['uid']} ({made['id']}, {made['type']}).")


@cli.command()
@click.argument("connector")
@click.option("--name", help="A new display name.")
@click.option("--uid", "new_uid", help="A new uid.")
@click.option("--data", "data_raw", help="Configuration to change: JSON, @file or @-.")
@click.option("--triggers/--no-triggers", default=None, help="Forward provider webhooks.")
@click.option("--event", "events", multiple=True, help="Forward only these events; repeatable.")
@click.option(
    "--return-origin",
    "return_origins",
    multiple=True,
    help="An origin a consent's returnUrl may go to (https://app.example.com); repeatable, "
    "replaces the list.",
)
@click.option("--no-return-origins", is_flag=True, help="Clear the allowed return origins.")
@formatted
def update(
    connector: str,
    name: str | None,
    new_uid: str | None,
    data_raw: str | None,
    triggers: bool | None,
    events: tuple[str, ...],
    return_origins: tuple[str, ...],
    no_return_origins: bool,
    fmt: str | None,
) -> None:
    """Change a connector's name, uid, configuration, triggers or allowed return origins."""
    body: dict[str, Any] = {}
    if name is not None:
        body["name"] = name
    if new_uid is not None:
        body["uid"] = new_uid
    data = json_data(data_raw)
    if data is not None:
        body["data"] = data
    if triggers is not None:
        body["triggers"] = triggers
    if events:
        body["events"] = list(events)
    if return_origins and no_return_origins:
        raise click.UsageError("Give --return-origin or --no-return-origins, not both.")
    if return_origins or no_return_origins:
        body["returnOrigins"] = list(return_origins)
    if not body:
        raise click.UsageError(
            "Nothing to change: give --name, --uid, --data, --triggers, --event or --return-origin."
        )
    answer = (
        state().client().call("PATCH", f"/v2/connect/connectors/{segment(connector)}", body=body)
    )
    if wants_json(fmt):
        output.emit_json(answer)
    else:
        updated = answer["connector"]
        click.echo(f"Updated {updated['uid']} ({updated['id']}).")
        if answer.get("reinstallNeeded"):
            click.echo("Installations must be reinstalled for the change to apply.")


@cli.command()
@click.argument("connector")
@click.option("--yes", "-y", is_flag=True, help="Do not ask (needed off a terminal).")
@formatted
def remove(connector: str, yes: bool, fmt: str | None) -> None:
    """Delete a connector, uninstalling its installations and revoking their grants."""
    confirm(yes, f"Delete connector {connector} and uninstall its installations")
    state().client().call("DELETE", f"/v1/connect/connectors/{segment(connector)}")
    report(fmt, {"removed": connector}, f"Removed {connector}.")


# --- project links ------------------------------------------------------------------------


@cli.command()
@click.argument("connector")
@click.argument("project")
@click.option(
    "-e",
    "--environment",
    "environments",
    multiple=True,
    help="production, preview, development, a custom slug or env_ id; repeatable "
    "(default: production). Replaces the link's set.",
)
@formatted
def attach(connector: str, project: str, environments: tuple[str, ...], fmt: str | None) -> None:
    """Let PROJECT's deployments use CONNECTOR in some environments."""
    body = {"environments": list(environments or ("production",))}
    link = (
        state()
        .client()
        .call(
            "POST",
            f"/v1/connect/connectors/{segment(connector)}/projects/{segment(project)}",
            body=body,
        )
    )
    if wants_json(fmt):
        output.emit_json(link)
    else:
        envs = ", ".join(link.get("enabledEnvironments", []))
        click.echo(f"Attached {connector} to {link['project']['name']} ({envs}).")


@cli.command()
@click.argument("connector")
@click.argument("project")
@click.option("-e", "--environment", help="Detach from this environment only.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask (needed off a terminal).")
@formatted
def detach(
    connector: str, project: str, environment: str | None, yes: bool, fmt: str | None
) -> None:
    """Stop PROJECT's deployments from using CONNECTOR (in one environment, or all)."""
    where = f" ({environment})" if environment else ""
    confirm(yes, f"Detach {connector} from {project}{where}")
    path = f"/v1/connect/connectors/{segment(connector)}/projects/{segment(project)}"
    if environment:
        path += f"/environments/{segment(environment)}"
    state().client().call("DELETE", path)
    report(
        fmt,
        {"detached": connector, "project": project, "environment": environment},
        f"Detached {connector} from {project}{where}.",
    )


# --- runtime (deployment credential) ------------------------------------------------------


@cli.command()
@click.argument("connector")
@credential_option
@subject_options
@click.option("--installation", help="An installation id (sci_…), or * for any.")
@click.option("--scope", "scopes", multiple=True, help="Ask for these scopes; repeatable.")
@formatted
def token(
    connector: str,
    credential: str,
    user_id: str | None,
    issuer: str | None,
    installation: str | None,
    scopes: tuple[str, ...],
    fmt: str | None,
) -> None:
    """A provider token for CONNECTOR, as a deployment gets it (prints just the token)."""
    body: dict[str, Any] = {"subject": subject_of(user_id, issuer)}
    if installation:
        body["installationId"] = installation
    if scopes:
        body["scopes"] = list(scopes)
    client = state().client(need_token=False)
    answer = client.call(
        "POST", f"/v1/connect/token/{segment(connector)}", body=body, token=credential
    )
    if wants_json(fmt):
        output.emit_json(answer)
    else:
        click.echo(answer["token"])
        click.echo(f"expires {output.when(answer.get('expiresAt'))}", err=True)


@cli.command("revoke-tokens")
@click.argument("connector")
@credential_option
@subject_options
@click.option("--installation", help="Only this installation's grants (sci_…).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask (needed off a terminal).")
@formatted
def revoke_tokens(
    connector: str,
    credential: str,
    user_id: str | None,
    issuer: str | None,
    installation: str | None,
    yes: bool,
    fmt: str | None,
) -> None:
    """Revoke a subject's tokens for CONNECTOR (the app's, or --user's), at the provider too."""
    subject = subject_of(user_id, issuer)
    confirm(yes, f"Revoke the {user_id or 'app'} tokens of {connector}")
    body: dict[str, Any] = {"subject": subject}
    if installation:
        body["installationId"] = installation
    answer = (
        state()
        .client(need_token=False)
        .call(
            "DELETE",
            f"/v1/connect/connectors/{segment(connector)}/tokens",
            body=body,
            token=credential,
        )
    )
    if wants_json(fmt):
        output.emit_json(answer)
    else:
        click.echo(
            f"Revoked {answer.get('deleted', 0)} of {answer.get('tokensFound', 0)} grants "
            f"({answer.get('providerRevoked', 0)} at the provider)."
        )


@cli.command("install-link")
@click.argument("connector")
@credential_option
@click.option("--return-url", help="Where the person lands afterwards.")
@click.option("--installation", help="Reconnect this installation (sci_…) in place.")
@formatted
def install_link(
    connector: str,
    credential: str,
    return_url: str | None,
    installation: str | None,
    fmt: str | None,
) -> None:
    """A link that installs CONNECTOR into a tenant (a workspace, an org); send a person to it."""
    body: dict[str, Any] = {}
    if return_url:
        body["returnUrl"] = return_url
    if installation:
        body["installationId"] = installation
    answer = (
        state()
        .client(need_token=False)
        .call("POST", f"/v1/connect/install/{segment(connector)}", body=body, token=credential)
    )
    if wants_json(fmt):
        output.emit_json(answer)
    else:
        click.echo(answer["url"])
        click.echo(f"verifier {answer.get('verifier')} (poll /v1/connect/result/…)", err=True)


# --- the admin ----------------------------------------------------------------------------


@cli.command("open")
@click.argument("connector", required=False)
@click.option("--print", "print_only", is_flag=True, help="Print the URL, do not open it.")
@formatted
def open_(connector: str | None, print_only: bool, fmt: str | None) -> None:
    """Open the admin page (of CONNECTOR, when given) in a browser; print it when there is none."""
    s = state()
    base = s.settings().url
    if not base:
        raise click.UsageError("No server: pass --url, set CONNECT_URL, or run `connect login`.")
    url = base.rstrip("/") + "/admin/"
    if connector:
        found = s.client().call("GET", f"/v1/connect/connectors/{segment(connector)}")
        url += "connect/connector/?" + urlencode({"q": found["id"]})
    opened = False
    if not print_only and not wants_json(fmt) and sys.stdout.isatty():
        opened = webbrowser.open(url)
    report(fmt, {"url": url, "opened": opened}, url)


# --- deployment credentials ---------------------------------------------------------------

CREDENTIAL_COLUMNS: list[output.Column] = [
    ("id", lambda c: c.get("id")),
    ("name", lambda c: c.get("name")),
    ("project", lambda c: c.get("projectId")),
    ("environment", lambda c: c.get("environment")),
    ("prefix", lambda c: c.get("prefix")),
    ("created", lambda c: output.when(c.get("createdAt"))),
    ("last used", lambda c: output.when(c.get("lastUsedAt"))),
    ("revoked", lambda c: output.when(c.get("revokedAt"))),
]


@cli.group()
def credentials() -> None:
    """Deployment credentials: what a project's deployments use to ask for tokens."""


@credentials.command("create")
@click.option("--project", required=True, help="prj_… or slug.")
@click.option("-e", "--environment", default="production", show_default=True)
@click.option("--name", help="A label, e.g. the deployment platform.")
@formatted
def credentials_create(project: str, environment: str, name: str | None, fmt: str | None) -> None:
    """Make a credential; its secret is shown this once."""
    body = {"projectId": project, "environment": environment}
    if name:
        body["name"] = name
    made = state().client().call("POST", "/v1/connect/credentials", body=body)
    if wants_json(fmt):
        output.emit_json(made)
    else:
        click.echo(
            f"Created {made['id']} for {project}/{environment}; the secret, shown once:", err=True
        )
        click.echo(made["token"])


@credentials.command("list")
@click.option("--project", help="Only this project's (prj_… or slug).")
@click.option("--status", type=click.Choice(["active", "revoked"]))
@click.option("--limit", type=click.IntRange(1), help="At most this many (default: all).")
@formatted
def credentials_list(
    project: str | None, status: str | None, limit: int | None, fmt: str | None
) -> None:
    """The team's deployment credentials (never their secrets)."""
    params = {"projectId": project, "status": status}
    items = state().client().pages("/v1/connect/credentials", "credentials", params, limit)
    if wants_json(fmt):
        output.emit_json({"credentials": items})
    else:
        output.table(items, CREDENTIAL_COLUMNS, "No deployment credentials.")


@credentials.command("revoke")
@click.argument("credential_id")
@click.option("--yes", "-y", is_flag=True, help="Do not ask (needed off a terminal).")
@formatted
def credentials_revoke(credential_id: str, yes: bool, fmt: str | None) -> None:
    """Revoke a credential: deployments using it are refused from now on."""
    confirm(yes, f"Revoke deployment credential {credential_id}")
    state().client().call("DELETE", f"/v1/connect/credentials/{segment(credential_id)}")
    report(fmt, {"revoked": credential_id}, f"Revoked {credential_id}.")


# --- webhook events -----------------------------------------------------------------------

EVENT_COLUMNS: list[output.Column] = [
    ("id", lambda e: e.get("id")),
    ("connector", lambda e: e.get("connectorId")),
    ("event", lambda e: e.get("eventType")),
    ("tenant", lambda e: e.get("tenantId")),
    ("verified", lambda e: e.get("verified")),
    ("received", lambda e: output.when(e.get("receivedAt"))),
]


@cli.group()
def events() -> None:
    """Provider webhooks Connect received, and their forwarding."""


@events.command("list")
@click.option("--connector", help="Only this connector's (uid or scl_ id).")
@click.option("--type", "event_type", help="Only this event type, e.g. push.")
@click.option("--tenant", help="Only this tenant's (a workspace, an org).")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@formatted
def events_list(
    connector: str | None, event_type: str | None, tenant: str | None, limit: int, fmt: str | None
) -> None:
    """The newest received webhook events."""
    params = {"connector": connector, "eventType": event_type, "tenantId": tenant}
    items = state().client().pages("/v1/connect/events", "events", params, limit)
    if wants_json(fmt):
        output.emit_json({"events": items})
    else:
        output.table(items, EVENT_COLUMNS, "No events received.")


@events.command("replay")
@click.argument("event_id")
@formatted
def events_replay(event_id: str, fmt: str | None) -> None:
    """Forward an event again to its destinations (they see the same webhook id)."""
    answer = state().client().call("POST", f"/v1/connect/events/{segment(event_id)}/replay")
    if wants_json(fmt):
        output.emit_json(answer)
    else:
        count = answer.get("replayed", 0)
        noun = "destination" if count == 1 else "destinations"
        click.echo(f"Replayed {event_id} to {count} {noun}.")


def main() -> None:
    cli()
