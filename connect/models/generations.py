from django.db import models


class Generation(models.Model):
    """A counter per team (``t:<id>``), per connector (``c:<id>``) and one for the whole
    server (``g``, signing keys), bumped by database triggers on every change that can narrow
    access (see ``connect/generations.py``). Process-local caches keep an entry only while the
    counters it was filled under stand still."""

    scope = models.CharField(max_length=40, primary_key=True)
    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.scope}={self.value}"
