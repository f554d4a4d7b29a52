"""The allauth seam: its OAuth 2 provider catalogue as presets for ``oauth`` connectors.

allauth knows each provider's endpoints, default scopes and client-authentication style; a
preset reads them from allauth's own adapter classes (bound in memory to an unsaved SocialApp —
never a database row with secrets, never a login) and fills a custom OAuth connector with them.
"""

import functools
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import allauth.socialaccount.providers as allauth_providers
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
    #: The provider's own OAuth documentation; allauth's page for it when not given.
    docs: str = ""

    @property
    def needs_instance_url(self) -> bool:
        return bool(self.instance_setting)

    @property
    def docs_url(self) -> str:
        if self.docs:
            return self.docs
        page = DOC_ALIASES.get(self.id, self.id)
        return f"{ALLAUTH_DOCS}/{page if page in ALLAUTH_DOC_PAGES else 'index'}.html"


ALLAUTH_DOCS = "https://docs.allauth.org/en/latest/socialaccount/providers"
#: The providers allauth's documentation has a page for (docs/socialaccount/providers/*.rst).
_DOC_PAGES = (
    "23andme agave amazon apple atlassian auth0 authentiq bitbucket box dataporten "
    "digitalocean discord doximity drip dwolla edmodo eventbrite eveonline exist facebook "
    "frontier github gitlab globus google hubspot instagram lemonldap lichess linkedin "
    "mailchimp mailcow mediawiki microsoft miro naver netiq nextcloud odnoklassniki okta orcid "
    "paypal pinterest quickbooks sharefile slack snapchat soundcloud stackexchange stocktwits "
    "strava stripe tiktok trainingpeaks tumblr_oauth2 twitch twitter_oauth2 untappd "
    "vimeo_oauth2 vk wahoo weibo weixin windowslive yandex ynab zoho zoom"
)
ALLAUTH_DOC_PAGES = frozenset(_DOC_PAGES.split())
DOC_ALIASES = {
    "bitbucket_oauth2": "bitbucket",
    "linkedin_oauth2": "linkedin",
    "twentythreeandme": "23andme",
}

#: The presets that need more than allauth says: an instance URL, parameters a refresh token
#: needs, a better name, the provider's own docs. Every other OAuth 2 provider in allauth's
#: catalogue whose endpoints can be read from it is a preset too (``all_presets``).
PRESETS: dict[str, Preset] = {
    p.id: p
    for p in (
        Preset(
            "github",
            "GitHub (OAuth App)",
            docs="https://docs.github.com/en/apps/oauth-apps/building-oauth-apps",
        ),
        Preset(
            "gitlab",
            "GitLab",
            instance_setting="gitlab_url",
            docs="https://docs.gitlab.com/ee/api/oauth2.html",
        ),
        Preset(
            "google",
            "Google",
            authorization_params={"access_type": "offline", "prompt": "consent"},
            docs="https://developers.google.com/identity/protocols/oauth2/web-server",
        ),
        Preset("notion", "Notion", docs="https://developers.notion.com/docs/authorization"),
        Preset(
            "atlassian",
            "Atlassian",
            authorization_params={"audience": "api.atlassian.com", "prompt": "consent"},
            extra_scopes=("offline_access",),
            docs="https://developer.atlassian.com/cloud/jira/platform/oauth-2-3lo-apps/",
        ),
        Preset(
            "hubspot",
            "HubSpot",
            docs="https://developers.hubspot.com/docs/api/oauth-quickstart-guide",
        ),
        Preset("zoom", "Zoom", docs="https://developers.zoom.us/docs/integrations/oauth/"),
        Preset("box", "Box", docs="https://developer.box.com/guides/authentication/oauth2/"),
        Preset("asana", "Asana", docs="https://developers.asana.com/docs/oauth"),
        Preset(
            "linkedin_oauth2",
            "LinkedIn",
            docs="https://learn.microsoft.com/en-us/linkedin/shared/authentication/authorization-code-flow",
        ),
        Preset(
            "bitbucket_oauth2",
            "Bitbucket",
            docs="https://developer.atlassian.com/cloud/bitbucket/oauth-2/",
        ),
    )
}


def _readable(url: str) -> bool:
    """An endpoint allauth states outright: absolute https on a named host, with no gap where
    a setting (a tenant, a store, a domain) would go."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return (
        parts.scheme == "https"
        and host not in ("", "none", "example.org")
        and not host.endswith(".example.org")
        and "//" not in parts.path
        and "None" not in url
    )


@functools.cache
def all_presets() -> dict[str, Preset]:
    """Every OAuth 2 provider in allauth's catalogue whose endpoints can be read from it, by
    id: the curated ``PRESETS`` as they are, the others as allauth describes them."""
    found: dict[str, Preset] = dict(PRESETS)
    for module in pkgutil.iter_modules(allauth_providers.__path__):
        if not module.ispkg or module.name in found:
            continue
        try:
            provider_module = importlib.import_module(
                f"{allauth_providers.__name__}.{module.name}.provider"
            )
        except ImportError:  # a provider whose optional dependency is absent (OpenID)
            continue
        for cls in getattr(provider_module, "provider_classes", []):
            if not issubclass(cls, OAuth2Provider):
                continue
            preset = Preset(module.name, str(cls.name))
            try:
                built = preset_connector(preset.id, preset=preset)
            except Exception:  # noqa: S112 — it needs a setting allauth has no default for
                continue
            config = built.config
            if _readable(config["authorizationEndpoint"]) and _readable(config["tokenEndpoint"]):
                found[preset.id] = preset
            break
    return dict(sorted(found.items(), key=lambda item: item[1].name.lower()))


def search(query: str) -> list[Preset]:
    """The presets whose name or id contains ``query`` (case-insensitive), by name."""
    words = query.lower().split()
    return [
        p
        for p in all_presets().values()
        if all(w in p.name.lower() or w in p.id.lower() for w in words)
    ]


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


def preset_connector(
    preset_id: str, *, instance_url: str = "", preset: Preset | None = None
) -> PresetConnector:
    """A custom OAuth connector's settings from allauth's description of the provider."""
    preset = preset or all_presets().get(preset_id)
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
