"""What a path really is, in words, for the sentence about a path that is not the file or folder expected.

A FIFO, a socket or a directory where a file belongs is not "missing": the sentence says what it is. Only the
standard library loads here.
"""

from __future__ import annotations

import errno
import stat
from pathlib import Path
from typing import Optional

KINDS = ((stat.S_ISREG, "a file"), (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
         (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
FILE, FOLDER = "a file", "a directory"


def kind_of(path: Path) -> Optional[str]:
    """"a file", "a directory", "a FIFO (named pipe)", ...; None when nothing is there (a dangling link included).
    A path that cannot be looked at (permission denied) raises its OSError, which errors.explain words."""
    try:
        mode = Path(path).stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop"
        raise
    return next((word for test, word in KINDS if test(mode)), "not a regular file")


def not_a(path: Path, wanted: str) -> Optional[str]:
    """None when `path` is `wanted` (FILE or FOLDER); else what it is: "does not exist" or "is a FIFO (named pipe)"."""
    kind = kind_of(path)
    if kind == wanted:
        return None
    return "does not exist" if kind is None else f"is {kind}, not {wanted}"
