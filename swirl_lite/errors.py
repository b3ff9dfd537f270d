"""Failures from outside the program, told in one line: which file, line or endpoint, and what to do.

The CLI's one error boundary (`cli.SafeGroup`) turns every exception into `explain(exc)`: a line and
an exit code, 2 for a usage problem (the recipe, an option, an unsafe run path) and 1 for a runtime
one (a file, the disk, the network, an endpoint, user code). `--debug` or `SWIRL_LITE_DEBUG=1`
shows the traceback instead. Readers of user files go through `read_utf8`, so a stray byte is
named by file and line rather than by Python's codec.
"""

from __future__ import annotations

import errno
import os
import traceback
from pathlib import Path

DEBUG_ENV = "SWIRL_LITE_DEBUG"
PACKAGE_DIR = str(Path(__file__).resolve().parent)
_ERRNO_TODO = {  # what to do about an OSError, by errno
    errno.ENOSPC: "free space or set output.dir to another disk",
    errno.EDQUOT: "free space or set output.dir to another disk",
    errno.EROFS: "set output.dir to a writable folder",
    errno.EACCES: "fix the permissions or set output.dir to a folder you own",
    errno.EPERM: "fix the permissions or set output.dir to a folder you own",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a file is in the way of a folder; check output.dir and the data paths",
    errno.EISDIR: "point at a file, not a folder",
    errno.EEXIST: "a file is in the way of a folder; check output.dir",
}


class UsageError(ValueError):
    """A problem the user fixes in the recipe or the command line (exit code 2)."""


def debug_requested() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def read_utf8(path: str | Path) -> str:
    """The text of `path`; a byte that is not UTF-8 raises ValueError naming the file and line."""
    data = Path(path).expanduser().read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ValueError(
            f"{path}:{line}: byte 0x{data[exc.start]:02x} at column {column} is not UTF-8; save the file as UTF-8"
        ) from None


def _where(exc: BaseException) -> str:
    """' (raised in FILE:LINE)' for the deepest frame outside swirl-lite, i.e. user code or a library."""
    frames = traceback.extract_tb(exc.__traceback__)
    outside = [f for f in frames if not f.filename.startswith(PACKAGE_DIR)]
    if not frames or not outside or outside[-1] is not frames[-1]:
        return ""
    return f" (raised in {outside[-1].filename}:{outside[-1].lineno})"


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split("\n")[0].split())
    return text or type(exc).__name__


def _os_error(exc: OSError) -> str:
    what = exc.strerror or _first_line(exc)
    todo = _ERRNO_TODO.get(exc.errno or -1)
    if exc.filename is not None:
        return f"{exc.filename}: {what}; {todo or 'check the path and the disk'}"
    if todo:
        return f"{what}{_where(exc)}; {todo}"
    return f"{type(exc).__name__}: {what}{_where(exc)}; check the network, or work offline with local files"


def explain(exc: BaseException) -> tuple[str, int]:
    """(one line saying what failed, where, and what to do; exit code)."""
    try:
        import httpx
    except ImportError:  # pragma: no cover - httpx is a dependency
        httpx = None
    if isinstance(exc, UsageError):
        return _first_line(exc), 2
    if httpx is not None and isinstance(exc, httpx.HTTPError):
        url = getattr(getattr(exc, "_request", None), "url", None)
        return f"{url or 'endpoint'}: {type(exc).__name__}: {_first_line(exc)}; is the server up and the URL right?", 1
    if isinstance(exc, UnicodeDecodeError):
        return f"a file is not UTF-8 text ({exc.reason} at byte {exc.start}){_where(exc)}; save it as UTF-8", 1
    if isinstance(exc, OSError):
        return _os_error(exc), 1
    if isinstance(exc, ImportError):
        return f"cannot import {exc.name or ''}: {_first_line(exc)}{_where(exc)}; install it or fix the import path", 1
    if isinstance(exc, (ValueError, RuntimeError)) and type(exc).__module__.startswith("swirl_lite"):
        return _first_line(exc), 1
    if type(exc) in (ValueError, RuntimeError) and not _where(exc):
        return _first_line(exc), 1
    return (
        f"{type(exc).__name__}: {_first_line(exc)}{_where(exc)}; "
        f"rerun with --debug (or {DEBUG_ENV}=1) for the traceback", 1,
    )
