"""One atomic write for the whole project: a crash or a kill leaves the old file or the new one.

Lives in ``zoo`` because it is the bottom layer: ``search`` and ``leaderboards`` both import zoo,
and ``zoo.save`` needs it too.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

# A name given on command lines and used in file names (a block's, a space's page): no spaces,
# no separators, nothing a shell or a file system reads specially.
PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def write_atomically(path: str | os.PathLike[str], content: str | bytes | Callable[[Path], object]) -> Path:
    """Write ``content`` (text, bytes, or a function that writes a given path) to ``path``.

    The data goes to a uniquely named temporary file beside ``path`` (so two writers never share
    one), is flushed to disk, renamed over ``path``, and the directory entry is flushed too.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        if callable(content):
            content(temporary)
        else:
            temporary.write_bytes(content.encode() if isinstance(content, str) else content)
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return path


def _fsync_directory(directory: Path) -> None:
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # some filesystems do not open directories; the rename is still atomic
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def check_writable_folder(path: str | os.PathLike[str], option: str) -> None:
    """Refuse, before anything is read or written, an output folder that cannot be one: the path
    (or the nearest part of it that exists) is a file, a link to nothing, or a folder this
    process may not write. Give the path as the user gave it, not resolved.
    ValueError names the option and the path, for the one-line error every command prints."""
    path = Path(path).absolute()
    existing = next(p for p in (path, *path.parents) if os.path.lexists(p))
    if not existing.exists():
        raise ValueError(f"{option} {path}: {existing} is a link to nothing ({os.readlink(existing)})")
    if not existing.is_dir():
        raise ValueError(f"{option} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path}: {existing} is not writable")


def read_json(path: str | os.PathLike[str], what: str) -> Any:
    """A JSON file this project wrote, read back; one that cannot be read or parsed (torn by an
    old crash, edited by hand) is a ValueError naming the file and ``what`` it should be."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"{path} is not {what} ({str(error).splitlines()[0][:100]})") from None
