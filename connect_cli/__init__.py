"""``connect``: the command-line tool for a Connect server.

It speaks only HTTP (the management API with a team API token, the runtime API with a
deployment credential) and imports nothing of Django, so it runs anywhere Python and ``click``
do. ``connect --help`` is the manual.
"""
