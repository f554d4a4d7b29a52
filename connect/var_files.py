"""Values generated once into ``var/`` and shared by every process that starts there."""

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path


def read_or_create(path: Path, generate: Callable[[], str]) -> str:
    """The value stored at ``path``, written there first if it is missing.

    Web, worker and beat may start at the same moment on a fresh machine: the value is written
    to a private file and linked into place, so a reader never sees a half-written file and the
    first writer wins for everyone.
    """
    if not path.exists():
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(generate())
        try:
            # Another process linked its value first: that one is kept, ours is dropped.
            with contextlib.suppress(FileExistsError):
                os.link(draft, path)
        finally:
            draft.unlink()
    return path.read_text().strip()
