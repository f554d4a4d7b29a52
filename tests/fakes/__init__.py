"""One strict loopback fake per provider, shared by unit, API, security and browser tests.

``base.py`` holds what they share (the server, the route table, consent pages, the code and
token bookkeeping); each provider has its own module (``slack.py``, ``github.py``, ``oauth.py``
for any OAuth 2.0 server, ``workload_issuer.py`` for a CI system's OIDC tokens …) and answers
with the documented response payloads recorded under ``payloads/<provider>/``. Inbound webhook
bodies are recorded separately, under ``tests/fixtures/webhooks/``.
"""
