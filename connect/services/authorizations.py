from django.utils import timezone

from connect.models import AuthorizationRequest


def authorization_requests_expire() -> int:
    """Mark pending flows past their deadline as expired; returns how many."""
    return AuthorizationRequest.objects.lapsed(timezone.now()).update(
        outcome=AuthorizationRequest.Outcome.EXPIRED
    )
