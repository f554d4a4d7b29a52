"""Public identifiers: a short prefix naming the kind, then 24 random base62 characters."""

import secrets
import string

from django.utils.deconstruct import deconstructible

ALPHABET = string.ascii_letters + string.digits
RANDOM_LENGTH = 24


def generate(prefix: str) -> str:
    # One read of the OS's randomness (160 bits) spelled in base 62: 24 characters carry
    # 142.9 bits, and the 2**-17 skew of the fold is far below anything guessable.
    number = int.from_bytes(secrets.token_bytes(20), "big")
    chars = []
    for _ in range(RANDOM_LENGTH):
        number, digit = divmod(number, 62)
        chars.append(ALPHABET[digit])
    return f"{prefix}_" + "".join(chars)


@deconstructible
class PublicIdFactory:
    """A field default: the id exists from instantiation, so secrets can be sealed before save."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self) -> str:
        return generate(self.prefix)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicIdFactory) and other.prefix == self.prefix

    def __hash__(self) -> int:
        return hash(self.prefix)
