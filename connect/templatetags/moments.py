"""Moments on pages as the lists show them: the age, the exact second in a title."""

from datetime import datetime

from django import template
from django.utils.safestring import SafeString

from connect.admin.lists import timestamp

register = template.Library()


@register.filter
def moment(value: datetime | None) -> SafeString | str:
    """``<time>`` with the age ("3 s ago") and the exact time to the second as its title."""
    return timestamp(value)
