"""The allauth seam: its OAuth 2 provider catalogue as presets for ``oauth`` connectors.

allauth knows each provider's endpoints, default scopes and client-authentication style; a
preset reads them from allauth's own adapter classes (bound in memory to an unsaved SocialApp —
never a database row with secrets, never a login) and fills a custom OAuth connector with them.
"""

import importlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from allauth.socialaccount.models import SocialApp
from allauth.socialaccount.providers.oauth2.provider import OAuth2Provider

from connect.accounts import bound_app
from connect.kinds import SubjectType


@dataclass(frozen=True)
class Preset:
    id: str
    name: str
    #: The key in the SocialApp settings that takes the instance URL (GitLab's gitlab_url).
    instance_setting: str = ""
    #: Extra authorization URL parameters a refresh token needs (Google's offline access).
    authorization_params: dict[str, str] = field(default_factory=dict)
    extra_scopes: tuple[str, ...] = ()

    @property
    def needs_instance_url(self) -> bool:
        return bool(self.instance_setting)


PRESETS: dict[str, Preset] = {
    p.id: p
    for p in (
        Preset("github", "GitHub (OAuth App)"),
        Preset("gitlab", "GitLab", instance_setting="gitlab_url"),
        Preset(
            "google",
            "Google",
            authorization_params={"access_type": "offline", "prompt": "consent"},
        ),
        Preset("notion", "Notion"),
        Preset(
            "atlassian",
            "Atlassian",
            authorization_params={"audience": "api.atlassian.com", "prompt": "consent"},
            extra_scopes=("offline_access",),
        ),
        Preset("hubspot", "HubSpot"),
        Preset("zoom", "Zoom"),
        Preset("box", "Box"),
        Preset("asana", "Asana"),
        Preset("linkedin_oauth2", "LinkedIn"),
        Preset("bitbucket_oauth2", "Bitbucket"),
    )
}


class PresetError(ValueError):
    pass


@dataclass(frozen=True)
class PresetConnector:
    service: str
    name: str
    config: dict[str, Any]
    default_scopes: dict[str, list[str]]


def _provider_class(preset: Preset) -> type[OAuth2Provider]:
    module = importlib.import_module(f"allauth.socialaccount.providers.{preset.id}.provider")
    for cls in getattr(module, "provider_classes", []):
        if issubclass(cls, OAuth2Provider):
            return cls
    raise PresetError(f"allauth has no OAuth 2 provider {preset.id!r}")


def preset_connector(preset_id: str, *, instance_url: str = "") -> PresetConnector:
    preset = PRESETS.get(preset_id)
    if preset is None:
        raise PresetError(f"no preset {preset_id!r}")
    settings: dict[str, Any] = {}
    if preset.needs_instance_url:
        parts = urlsplit(instance_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise PresetError(
                f"{preset.name} needs its instance URL, e.g. https://gitlab.example.com"
            )
        settings[preset.instance_setting] = f"{parts.scheme}://{parts.netloc}"
    cls = _provider_class(preset)
    app = SocialApp(provider=cls.id, provider_id=f"connect-{cls.id}", settings=settings)
    provider = cls(request=None, app=app)
    adapter = provider.get_oauth2_adapter(None)
    # Bind the adapter to this provider instance: allauth must not look an app up globally.
    adapter.get_provider = lambda: provider
    with bound_app(app):
        authorize, token = str(adapter.authorize_url), str(adapter.access_token_url)
    scopes = list(dict.fromkeys([*provider.get_default_scope(), *preset.extra_scopes]))
    return PresetConnector(
        service=cls.id,
        name=preset.name,
        config={
            "preset": preset.id,
            "authorizationEndpoint": authorize,
            "tokenEndpoint": token,
            "tokenEndpointAuthMethod": "client_secret_basic"
            if getattr(adapter, "basic_auth", False)
            else "client_secret_post",
            "authorizationUrlParams": dict(preset.authorization_params),
            **({"instanceUrl": settings[preset.instance_setting]} if settings else {}),
        },
        default_scopes={SubjectType.USER.value: scopes},
    )
