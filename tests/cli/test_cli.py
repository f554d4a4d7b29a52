"""The ``connect`` CLI against gunicorn serving the test database: a round trip through the
management and runtime APIs with ``--format json`` parsed, the error paths (exit codes and the
server's message), confirmation off a terminal, and the login file's permissions."""

import json
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from connect.models import Connector, ProjectLink
from tests.cli.conftest import Live

ROOT = Path(__file__).resolve().parents[2]
live_db = pytest.mark.django_db(transaction=True)


def parsed(result: Result) -> object:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@live_db
def test_round_trip_create_attach_token_remove(live: Live) -> None:
    made = parsed(
        live.run(
            "create", "api-key", "--uid", "acme/key", "--name", "Acme",
            "--data", '{"values": [{"value": "k-123"}]}', "--format", "json",
        )
    )  # fmt: skip
    assert isinstance(made, dict)
    assert made["uid"] == "acme/key"
    assert made["id"].startswith("scl_")
    assert "k-123" not in json.dumps(made)  # secrets never come back

    link = parsed(live.run("attach", "acme/key", "web", "-e", "production", "--format", "json"))
    assert link == {**link, "connectorId": made["id"], "enabledEnvironments": ["production"]}

    listed = parsed(live.run("--format", "json", "list"))
    assert [c["uid"] for c in listed["connectors"]] == ["acme/key"]  # type: ignore[index]

    shown = parsed(live.run("inspect", made["id"], "--format", "json"))
    assert shown["uid"] == "acme/key"  # type: ignore[index]
    assert [p["project"]["id"] for p in shown["projects"]] == [live.project.public_id]  # type: ignore[index]

    got = parsed(live.run("token", "acme/key", "--credential", live.credential, "--format", "json"))
    assert got["token"] == "k-123"  # type: ignore[index]
    plain = live.run("token", "acme/key", env={"CONNECT_CREDENTIAL": live.credential})
    assert plain.exit_code == 0
    assert plain.stdout == "k-123\n"

    updated = parsed(live.run("update", "acme/key", "--name", "Acme 2", "--format", "json"))
    assert updated["connector"]["name"] == "Acme 2"  # type: ignore[index]

    revoked = parsed(
        live.run("revoke-tokens", "acme/key", "--credential", live.credential, "--yes",
                 "--format", "json")
    )  # fmt: skip
    assert set(revoked) >= {"tokensFound", "deleted"}  # type: ignore[arg-type]

    admin = parsed(live.run("open", "acme/key", "--format", "json"))
    assert admin["url"] == f"{live.url}/admin/connect/connector/?q={made['id']}"  # type: ignore[index]

    # Off a terminal a destructive verb wants --yes, and changes nothing without it.
    refused = live.run("remove", "acme/key")
    assert refused.exit_code == 2
    assert "--yes" in refused.output
    assert Connector.objects.filter(uid="acme/key").exists()

    assert parsed(live.run("detach", "acme/key", "web", "--yes", "--format", "json"))
    assert not ProjectLink.objects.filter(connector__uid="acme/key").exists()
    assert parsed(live.run("remove", "acme/key", "--yes", "--format", "json")) == {
        "removed": "acme/key"
    }

    gone = live.run("inspect", "acme/key")
    assert gone.exit_code == 1
    assert "not_found" in gone.output
    assert "HTTP 404" in gone.output


@live_db
def test_tables_for_people(live: Live) -> None:
    empty = live.run("list")
    assert empty.exit_code == 0
    assert "No connectors yet" in empty.output
    made = live.run(
        "create",
        "api-key",
        "--uid",
        "acme/key",
        "--name",
        "Acme",
        "--data",
        '{"values": [{"value": "k"}]}',
    )
    assert made.exit_code == 0, made.output
    assert made.output.startswith("Created acme/key (scl_")
    table = live.run("list")
    assert table.exit_code == 0
    head, row = table.output.splitlines()
    assert head.split()[:3] == ["ID", "UID", "TYPE"]
    assert "acme/key" in row
    me = live.run("whoami")
    assert me.exit_code == 0
    assert "Team:" in me.output
    assert "owner" in me.output


@live_db
def test_errors_carry_the_servers_message_and_exit_codes(live: Live) -> None:
    bad = live.run("list", token="cat_not_a_real_token")
    assert bad.exit_code == 1
    assert "HTTP 401" in bad.output
    assert "Traceback" not in bad.output

    viewer = live.run(
        "create", "api-key", "--uid", "x/y", "--data", '{"values": [{"value": "k"}]}',
        token=live.viewer_token,
    )  # fmt: skip
    assert viewer.exit_code == 1
    assert "HTTP 403" in viewer.output
    assert "member" in viewer.output

    invalid = live.run("create", "api-key", "--uid", "x/y", "--data", "{}")
    assert invalid.exit_code == 1
    assert "values" in invalid.output
    assert "HTTP 400" in invalid.output

    # A team token is not a deployment credential: the runtime API says so.
    wrong = live.run("token", "x/y", "--credential", live.token)
    assert wrong.exit_code == 1
    assert "HTTP 40" in wrong.output

    unreachable = live.run("list", env={"CONNECT_URL": "http://127.0.0.1:9"})
    assert unreachable.exit_code == 3
    assert "Cannot reach" in unreachable.output


@live_db
def test_login_saves_a_0600_file_that_later_calls_use(live: Live) -> None:
    result = live.run("login", "--url", live.url, token="", env={"CONNECT_URL": None},
                      input=live.token + "\n")  # fmt: skip
    assert result.exit_code == 0, result.output
    path = live.config_home / "connect" / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"url": live.url, "token": live.token}
    # With nothing in the environment, the saved login is used.
    me = live.run("whoami", "--format", "json", env={"CONNECT_URL": None, "CONNECT_TOKEN": None})
    assert json.loads(me.stdout)["team"]["id"] == live.team.public_id
    # A bad token is refused before anything is saved.
    refused = live.run("login", "--url", live.url, "--token", "cat_wrong")
    assert refused.exit_code == 1
    assert json.loads(path.read_text())["token"] == live.token


def test_login_file_is_0600_even_over_an_older_looser_file(offline: Callable[..., Result],
                                                           tmp_path: Path) -> None:  # fmt: skip
    from connect_cli import config

    path = tmp_path / "config" / "connect" / "config.json"
    path.parent.mkdir(parents=True)
    path.write_text("{}")
    path.chmod(0o644)
    import os

    os.environ["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    try:
        assert config.save("http://x", "cat_secret") == path
    finally:
        del os.environ["XDG_CONFIG_HOME"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_without_a_server_it_says_how_to_configure(offline: Callable[..., Result]) -> None:
    result = offline("list")
    assert result.exit_code == 2
    assert "connect login" in result.output


def test_destructive_verbs_need_yes_off_a_terminal(offline: Callable[..., Result]) -> None:
    env = {"CONNECT_URL": "http://127.0.0.1:9", "CONNECT_TOKEN": "cat_x"}
    for args in (
        ("remove", "acme/app"),
        ("detach", "acme/app", "web"),
        ("credentials", "revoke", "dpc_x"),
        ("revoke-tokens", "acme/app", "--credential", "cdc_x"),
    ):
        result = offline(*args, env=env)
        # Exit 2 and no attempt to reach the (absent) server: 3 would mean it tried.
        assert result.exit_code == 2, (args, result.output)
        assert "--yes" in result.output, args


def test_help_reads_like_a_manual(offline: Callable[..., Result]) -> None:
    result = offline("--help")
    assert result.exit_code == 0
    verbs = "create list inspect update remove attach detach token revoke-tokens open"
    for verb in (*verbs.split(), "install-link", "credentials", "events", "whoami"):
        assert f"  {verb} " in result.output, verb
    assert "Exit codes" in result.output
    assert "connect attach acme/app web" in result.output


def test_open_prints_the_admin_url_without_a_browser(offline: Callable[..., Result]) -> None:
    result = offline("open", env={"CONNECT_URL": "http://127.0.0.1:8000/"})
    assert result.exit_code == 0
    assert result.output == "http://127.0.0.1:8000/admin/\n"


def test_the_cli_imports_nothing_of_django() -> None:
    code = (
        "import sys; import connect_cli.main; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'rest_framework',"
        " 'connect', 'config')); print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "connect"
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("connect, version ")


@live_db
def test_update_sets_and_clears_allowed_return_origins(live: Live) -> None:
    """`connect update --return-origin` reaches the same field (and validation) as the admin's
    Allowed return origins, so a scripted setup can use a consent's returnUrl."""
    made = parsed(
        live.run(
            "create", "oauth", "--uid", "acme/app", "--name", "Acme", "--data",
            json.dumps({"clientId": "c", "clientSecret": "s", "serverConfig": {
                "issuer": "https://auth.example.com",
                "authorizationEndpoint": "https://auth.example.com/authorize",
                "tokenEndpoint": "https://auth.example.com/token"}}),
            "--format", "json",
        )
    )  # fmt: skip
    assert isinstance(made, dict)
    updated = parsed(
        live.run("update", "acme/app", "--return-origin", "https://app.example.com",
                 "--return-origin", "https://admin.example.com", "--format", "json")
    )  # fmt: skip
    assert updated["connector"]["returnOrigins"] == [  # type: ignore[index]
        "https://app.example.com",
        "https://admin.example.com",
    ]
    assert Connector.objects.get(uid="acme/app").allowed_return_origins == [
        "https://app.example.com",
        "https://admin.example.com",
    ]
    refused = live.run("update", "acme/app", "--return-origin", "https://app.example.com/done")
    assert refused.exit_code == 1
    assert "returnOrigins" in refused.output
    assert parsed(live.run("update", "acme/app", "--no-return-origins", "--format", "json"))
    assert Connector.objects.get(uid="acme/app").allowed_return_origins == []


def test_an_empty_or_relative_config_home_never_puts_the_secret_in_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connect_cli import config

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for value in ("", "relative/folder"):
        monkeypatch.setenv("XDG_CONFIG_HOME", value)
        saved = config.save("http://x", "cat_secret")
        assert saved == tmp_path / "home" / ".config" / "connect" / "config.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]
