import logging
import re

from allauth.account.forms import default_token_generator
from allauth.account.utils import user_pk_to_url_str
from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import transaction
from django.urls import reverse

from connect.models import AuditEvent, Membership, Role, Team
from connect.services.audit import Actor, audit_record

logger = logging.getLogger(__name__)


def user_for_email(*, email: str) -> tuple[User, bool]:
    """The user with this email, or a new one without a usable password (created=True)."""
    email = email.strip()
    existing = User.objects.filter(email__iexact=email).order_by("pk").first()
    if existing is not None:
        return existing, False
    base = re.sub(r"[^\w.@+-]", "", email.split("@")[0]) or "user"
    username, n = base, 1
    while User.objects.filter(username__iexact=username).exists():
        n += 1
        username = f"{base}{n}"
    user = User(username=username, email=email)
    user.set_unusable_password()
    user.save()
    return user, True


def user_invite(*, user: User) -> str:
    """Mail a link to choose a password (allauth's reset-from-key page); returns the link."""
    path = reverse(
        "account_reset_password_from_key",
        kwargs={
            "uidb36": user_pk_to_url_str(user),
            "key": default_token_generator.make_token(user),
        },
    )
    link = f"{settings.PUBLIC_URL}{path}"
    send_mail(
        subject="You have been added to Connect",
        message=(
            f"Hello {user.get_username()},\n\nYou can now sign in to Connect at "
            f"{settings.PUBLIC_URL}/admin/. Choose your password here:\n\n{link}\n"
        ),
        from_email=None,
        recipient_list=[user.email],
    )
    return link


@transaction.atomic
def membership_add(*, team: Team, email: str, role: Role, actor: Actor) -> Membership:
    """Give the user with this email (invited if new) ``role`` in ``team``, recorded."""
    user, created = user_for_email(email=email)
    membership, _ = Membership.objects.update_or_create(
        team=team, user=user, defaults={"role": role}
    )
    audit_record(
        team=team,
        type=AuditEvent.Type.MEMBER_ADDED,
        actor=actor,
        targets={"userId": str(user.pk)},
        fields={"role": role.value},
    )
    if created:
        transaction.on_commit(lambda: user_invite(user=user))
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor: Actor) -> None:
    """Remove a member from their team, recorded."""
    audit_record(
        team=membership.team_id,
        type=AuditEvent.Type.MEMBER_REMOVED,
        actor=actor,
        targets={"userId": str(membership.user_id)},
    )
    membership.delete()


@transaction.atomic
def team_create(*, slug: str, name: str, owner_email: str, actor: Actor = None) -> Team:
    """A team and its owner; a new owner is emailed a password link (see membership_add)."""
    # The owner's only way in is the emailed link: an address that cannot receive it is refused.
    validate_email(owner_email.strip())
    team = Team(slug=slug, name=name)
    team.full_clean()
    team.save()
    membership_add(team=team, email=owner_email, role=Role.OWNER, actor=actor)
    audit_record(
        team=team,
        type=AuditEvent.Type.TEAM_CREATED,
        actor=actor,
        targets={"teamId": team.public_id},
    )
    return team
