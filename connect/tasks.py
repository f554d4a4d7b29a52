"""Celery tasks: thin wrappers that call one service with ids."""

from celery import shared_task

from connect.services import authorizations


@shared_task(acks_late=True)
def authorization_requests_expire() -> int:
    return authorizations.authorization_requests_expire()
