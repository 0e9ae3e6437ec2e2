"""Files written whole or not at all, JSON every parser reads, and one lock per output folder.

Every file histoexpr writes goes through :func:`atomic_path`: the content is written to a
temporary file with a unique name in the same folder (two processes never share one),
flushed and fsynced, then moved over the target with :func:`os.replace`. An interrupted or
failed write leaves the old file (or none), never half a file that a resumed run would
trust. Failures of the file system itself (disk full, read-only folder, no permission) are
turned into one :class:`~histoexpr.errors.OutputError` naming the path and what to do.

JSON is written by :func:`write_json` with ``allow_nan=False``: NaN and infinities become
``null``, so the files are valid JSON for every language's parser, not only Python's.

:class:`FolderLock` keeps two processes from writing one output folder at once.

Examples
--------
>>> import tempfile, json
>>> from pathlib import Path
>>> p = Path(tempfile.mkdtemp()) / "r.json"
>>> _ = write_json(p, {"r": float("nan"), "n": 3})
>>> json.loads(p.read_text())
{'r': None, 'n': 3}
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import InputError, OutputError

__all__ = ["FolderLock", "atomic_path", "dumps", "json_safe", "output_error",
           "sweep_temporaries", "write_bytes", "write_csv", "write_json", "write_text"]

#: the process umask, read once at import (reading it means setting it, which is not
#: thread-safe); outputs get the mode a plain ``open`` would give, not mkstemp's 0600
_UMASK = os.umask(0o022)
os.umask(_UMASK)

#: file-system errors that a user fixes (space, permissions), not bugs
_USER_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
                errno.EROFS: "the file system is read-only",
                errno.EACCES: "permission denied", errno.EPERM: "permission denied"}


def output_error(path: str | Path, err: OSError) -> OutputError | None:
    """An :class:`OutputError` for a file-system error a user can fix, else ``None``."""
    why = _USER_ERRNOS.get(getattr(err, "errno", None) or -1)
    if why is None:
        return None
    todo = ("free some space and rerun the same command (finished outputs are kept)"
            if err.errno in (errno.ENOSPC, errno.EDQUOT)
            else "choose an --out folder you can write to")
    return OutputError(f"{path}: cannot write ({why}); {todo}")


#: what a temporary of :func:`atomic_path` is called: ``.<name>.<random>.tmp[<suffix>]``
_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$")


def sweep_temporaries(folder: str | Path) -> int:
    """Remove the temporaries a killed writer left under ``folder`` (the hidden
    ``.<name>.<random>.tmp*`` files of :func:`atomic_path`); returns how many. Call it only
    while holding the folder (:class:`FolderLock`): no other writer is then at work there.
    """
    n = 0
    for p in Path(folder).rglob(".*.tmp*"):
        if p.is_file() and _TEMPORARY.match(p.name):
            p.unlink(missing_ok=True)
            n += 1
    return n


@contextmanager
def atomic_path(path: str | Path, *, suffix: str = "") -> Iterator[Path]:
    """Yield a unique temporary path beside ``path``; on a clean exit it is fsynced and
    moved over ``path``, on an error it is removed.

    ``suffix`` is kept at the end of the temporary name for writers that insist on an
    extension (``np.savez`` adds ``.npz`` otherwise).

    Raises
    ------
    OutputError
        The disk is full, the folder is read-only or not writable.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}",
                                    dir=path.parent)
        os.fchmod(fd, 0o666 & ~_UMASK)
        os.close(fd)
    except OSError as e:
        raise (output_error(path, e) or e) from e
    tmp = Path(name)
    try:
        yield tmp
        if tmp.exists():
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
    except OSError as e:
        err = output_error(path, e)
        if err is not None:
            raise err from e
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    return write_bytes(path, text.encode("utf-8"))


def write_csv(path: str | Path, df: Any, **kwargs: Any) -> Path:
    """Write a DataFrame as CSV atomically (``kwargs`` go to ``DataFrame.to_csv``)."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, **kwargs)
    return Path(path)


def json_safe(obj: Any) -> Any:
    """``obj`` with numpy scalars and arrays as Python values, paths as strings and
    non-finite floats as ``None`` (what :func:`write_json` writes)."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        return json_safe(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, str | int | bool):
        return obj
    return str(obj)


def dumps(obj: Any, *, indent: int | None = 2) -> str:
    """Strict JSON text of ``obj`` (see :func:`json_safe`)."""
    return json.dumps(json_safe(obj), indent=indent, allow_nan=False)


def write_json(path: str | Path, obj: Any, *, indent: int | None = 2) -> Path:
    """Write ``obj`` as strict JSON (NaN -> null) atomically; returns the path."""
    return write_text(path, dumps(obj, indent=indent) + "\n")


class FolderLock:
    """An exclusive lock on an output folder (``.histoexpr.lock`` inside it), held by one
    process until :meth:`release` or the process ends (the OS drops it even after a kill,
    so a stale lock never blocks a rerun).

    Raises
    ------
    InputError
        Another process holds the lock: it names that process and what to do.

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> with FolderLock(d):
    ...     pass
    """

    NAME = ".histoexpr.lock"

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        import fcntl

        if self._fd is not None:
            return self
        path = self.folder / self.NAME
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise (output_error(self.folder, e) or e) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise InputError(f"{self.folder}: {holder} is writing this folder now; wait for it "
                             "to finish or choose another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"histoexpr pid {os.getpid()} on {socket.gethostname()}".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
