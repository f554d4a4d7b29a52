"""Fixtures of the runtime API and the trigger tests, for the performance tests too."""

from tests.api.conftest import make_oauth_connector, make_tenant  # noqa: F401
from tests.triggers.conftest import discord_key, triggers  # noqa: F401
from tests.triggers.test_intake import memory_broker  # noqa: F401
