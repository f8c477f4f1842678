"""One clear line per error: how the command line reports what went wrong.

Every ``minigan`` command runs inside :func:`report`'s rules (see ``minigan.cli.PluginGroup``):
an exception becomes ``Error: <what, which file, what to do>`` on stderr and a non-zero exit,
never a raw traceback. ``minigan --debug ...`` or ``MINIGAN_DEBUG=1`` shows the traceback too.

- Files: missing, unreadable, not writable, a full disk, a path through a regular file — the
  line names the path and what to do (:func:`describe_os_error`).
- Bad data and options (``ValueError``, malformed pickles and archives, ...): their message,
  which names the file or option.
- An exception raised inside a third-party plugin's code is reported as that plugin's, with its
  distribution, version, the exception type and message (:func:`plugin_culprit`).
- Anything else is an internal error: its type and message, and how to see the traceback.

>>> describe(FileNotFoundError(2, "No such file or directory", "cat.png"))
'cat.png: no such file or folder'
>>> describe(OSError(28, "No space left on device", "out/grid.png"))
'out/grid.png: no space left on the device: free some space or write somewhere else'
>>> describe(KeyError("unknown model 'x'; available: dcgan"))
"unknown model 'x'; available: dcgan"
"""

from __future__ import annotations

import errno
import os
import pickle
import zipfile
from types import TracebackType
from typing import Any

__all__ = ["debug_enabled", "describe", "describe_os_error", "plugin_culprit", "DEBUG_HINT"]

DEBUG_HINT = "run with --debug (or MINIGAN_DEBUG=1) to see the traceback"


def debug_enabled() -> bool:
    """Whether ``MINIGAN_DEBUG`` asks for tracebacks."""
    return os.environ.get("MINIGAN_DEBUG", "") not in ("", "0")


_OS_HINTS = {
    errno.ENOENT: "no such file or folder",
    errno.ENOSPC: "no space left on the device: free some space or write somewhere else",
    errno.EDQUOT: "disk quota exceeded: free some space or write somewhere else",
    errno.EACCES: "permission denied: choose a location you can read and write (e.g. --out)",
    errno.EPERM: "operation not permitted: choose a location you can write (e.g. --out)",
    errno.EROFS: "read-only file system: choose a writable location (e.g. --out)",
    errno.ENOTDIR: "a part of this path is a file, not a folder: choose another path",
    errno.EISDIR: "this is a folder, where a file is needed",
    errno.EEXIST: "already exists (a file where a folder is needed?): choose another path",
    errno.ENAMETOOLONG: "the file name is too long",
}


def describe_os_error(error: OSError) -> str:
    """``path: what happened, what to do`` for an ``OSError`` (or its own message when it has
    no path, as minigan's own ``FileNotFoundError`` messages do)."""
    if error.filename is None:
        return str(error.args[0]) if len(error.args) == 1 else str(error)
    path = os.fspath(error.filename)
    hint = _OS_HINTS.get(error.errno or -1) or (error.strerror or type(error).__name__)
    return f"{path}: {hint}"


def _frames(tb: TracebackType | None) -> list[str]:
    modules = []
    while tb is not None:
        modules.append(str(tb.tb_frame.f_globals.get("__name__", "")))
        tb = tb.tb_next
    return modules


def plugin_culprit(error: BaseException) -> Any:
    """The :class:`minigan.registry.PluginInfo` of the third-party plugin whose code raised
    ``error`` (the innermost plugin frame of its traceback), or ``None``."""
    from minigan import registry

    current = registry._registry
    if current is None:
        return None
    seen: set[int] = set()
    chain: BaseException | None = error
    while chain is not None and id(chain) not in seen:  # the error, then what caused it
        seen.add(id(chain))
        for module in reversed(_frames(chain.__traceback__)):
            info = current.plugin_for_module(module)
            if info is not None:
                return info
        chain = chain.__cause__ or chain.__context__
    return None


def _message(error: BaseException) -> str:
    if isinstance(error, KeyError) and len(error.args) == 1:
        return str(error.args[0])
    return str(error) or type(error).__name__


_DATA_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    pickle.UnpicklingError,
    zipfile.BadZipFile,
    EOFError,
    KeyError,
    ImportError,  # a missing optional dependency: the message says what to install
)


def describe(error: BaseException, expected: bool = False) -> str:
    """The one line the command line prints for ``error`` (after ``Error: ``).

    ``expected``: the caller knows this is a user-facing error (say, a ``RuntimeError`` for
    ``--device cuda`` without a GPU), so its message is shown as it is, not as an internal
    error."""
    info = plugin_culprit(error)
    if info is not None:
        return f"{info.label()} failed: {type(error).__name__}: {_message(error)} ({DEBUG_HINT})"
    if isinstance(error, OSError):
        return describe_os_error(error)
    if isinstance(error, MemoryError):
        return "out of memory: try smaller inputs, a smaller --batch-size or --max-pixels"
    from minigan.registry import PluginError  # a plugin that cannot be loaded: says which

    user_facing = _DATA_ERRORS + (PluginError,)
    if expected or isinstance(error, user_facing) or type(error).__name__ == "SafetensorError":
        return _message(error)
    return f"internal error: {type(error).__name__}: {_message(error)} ({DEBUG_HINT})"
