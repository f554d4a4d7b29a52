"""Where the CLI finds its server and token: flags, then ``CONNECT_URL``/``CONNECT_TOKEN``, then
the file ``connect login`` wrote in the user's config directory (0600: it holds a secret)."""

import json
import os
from dataclasses import dataclass
from pathlib import Path

import click

APP_NAME = "connect"
FILE_NAME = "config.json"


def config_path() -> Path:
    """The login file: ``$XDG_CONFIG_HOME/connect/config.json`` on Linux, the platform's
    equivalent elsewhere (click.get_app_dir). An empty or relative ``XDG_CONFIG_HOME`` is
    ignored, as the XDG spec says: the secret must not land in whatever folder the shell is in
    (a checkout, say)."""
    app_dir = Path(click.get_app_dir(APP_NAME))
    if not app_dir.is_absolute():
        app_dir = Path.home() / ".config" / APP_NAME
    return app_dir / FILE_NAME


@dataclass(frozen=True)
class Settings:
    url: str | None
    token: str | None


def load_saved() -> dict[str, str]:
    """What ``connect login`` stored, or nothing."""
    path = config_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"Cannot read {path}: {exc}") from exc
    return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}


def save(url: str, token: str) -> Path:
    """Write the login file with mode 0600 (created so, never world-readable in between)."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"url": url, "token": token}, handle)
        handle.write("\n")
    os.chmod(path, 0o600)  # an older file may have had looser bits
    return path


def forget() -> bool:
    """Remove the login file; True if there was one."""
    try:
        config_path().unlink()
    except FileNotFoundError:
        return False
    return True


def resolve(url: str | None, token: str | None) -> Settings:
    """Flags win over the environment, which wins over the login file."""
    saved = load_saved()
    return Settings(
        url=(url or os.environ.get("CONNECT_URL") or saved.get("url") or None),
        token=(token or os.environ.get("CONNECT_TOKEN") or saved.get("token") or None),
    )
