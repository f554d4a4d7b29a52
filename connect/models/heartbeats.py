from django.db import models


class HeartbeatProcess(models.TextChoices):
    WORKER = "worker", "Celery worker"
    BEAT = "beat", "Celery beat"


class Heartbeat(models.Model):
    """When a Celery worker (any of them) and beat last said they were alive: one row each.

    A table rather than the cache: every process reads the same answer whatever the cache
    backend is (the embedded setup's cache is per process), and it costs one upsert per process
    every ``connect.heartbeats.HEARTBEAT_SECONDS``.
    """

    Process = HeartbeatProcess

    process = models.CharField(max_length=20, primary_key=True, choices=HeartbeatProcess.choices)
    seen_at = models.DateTimeField()
    #: The last one to report: a Celery node name, or beat's host and pid.
    seen_by = models.CharField(max_length=255, blank=True)

    def __str__(self) -> str:
        return f"{self.process} seen at {self.seen_at:%Y-%m-%d %H:%M:%S}"
