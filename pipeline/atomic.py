"""Replacing a local file so that readers see the old one or the new one, never a part."""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def write_atomically(path: Path, data: bytes) -> None:
    """Make `path` hold `data` in one rename: written to a temporary file beside it and
    fsync'd first, so that a crash leaves the old file or the new one. The mode is what
    `open` gives a new file (0666 less the umask), not `tempfile.mkstemp`'s 0600: whoever
    can read the folder can read the file, as with the snapshot's files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
