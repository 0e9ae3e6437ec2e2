"""Checks every reader runs before it trusts a file: the path leads to a readable file, and
the file is complete (a truncated download or copy is caught here, with one message whichever
reader would have met it). Also :func:`library_noise`, which keeps what tifffile, tiffslide,
OpenSlide and PIL log or warn while a file is opened out of the user's terminal, so the
caller can summarise it in one line.

The completeness checks read only structure, never pixels: for TIFF-based slides (.svs,
.tif, .ndpi, ...) the image directories (IFDs) and every tile or strip they point to must
lie inside the file; a JPEG must end in its end-of-image marker, a PNG in its ``IEND`` chunk.

Examples
--------
>>> import tempfile, os
>>> from pathlib import Path
>>> p = Path(tempfile.mkdtemp()) / "cut.jpg"
>>> _ = p.write_bytes(b"\\xff\\xd8\\xff\\xe0" + bytes(100))
>>> try:
...     check_complete(p)
... except SlideError as e:
...     print(str(e).split(": ", 1)[1][:62])
the file is incomplete (truncated: no JPEG end-of-image marker
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import struct
import warnings
from collections.abc import Iterator
from pathlib import Path

from ..errors import SlideError

logger = logging.getLogger(__name__)

__all__ = [
    "LIBRARY_LOGGERS",
    "check_complete",
    "check_path",
    "file_kind",
    "incomplete_error",
    "library_noise",
    "summarise_noise",
]

#: loggers of the reading libraries whose records :func:`library_noise` captures
LIBRARY_LOGGERS = ("tifffile", "tiffslide", "openslide", "PIL")

#: the first bytes of the formats whose completeness is checked
_MAGIC = {"tiff": (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"), "jpeg": (b"\xff\xd8\xff",),
          "png": (b"\x89PNG\r\n\x1a\n",)}

#: bytes read from a file's end to find its end marker before reading the whole file
_TAIL = 1 << 20

#: what tifffile logs when SubIFDs, or the data of a directory entry, lie past the end
_SUBIFD_PAST_END = re.compile(r"invalid (?:page offset|offset to first page) (\d+)")
_VALUE_PAST_END = re.compile(r"TiffTag (\d+) @\d+> invalid value offset (\d+)")
#: the directory entries a reader needs (others past the end are only logged)
_NEEDED_TAGS = {270: "ImageDescription", 273: "StripOffsets", 279: "StripByteCounts",
                322: "TileWidth", 323: "TileLength", 324: "TileOffsets",
                325: "TileByteCounts", 330: "SubIFDs", 347: "JPEGTables"}


class _ListHandler(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.sink.append(f"{record.name}: {record.getMessage()}")
        except Exception:  # a library's malformed record must not break the open
            self.sink.append(f"{record.name}: {record.msg!r}")


@contextlib.contextmanager
def library_noise() -> Iterator[list[str]]:
    """Capture the log records of :data:`LIBRARY_LOGGERS` and every warning raised inside
    the block (e.g. PIL's "Corrupt EXIF data"), instead of printing them.

    Yields the list the messages are appended to (warnings are added when the block ends).
    The caller decides what to say: a reader that opens the file logs them at debug level;
    a file that fails carries one clear error. Python's warning filters are global, so two
    threads should not open files inside this block at the same time (histoexpr opens each
    slide in one thread; batch runs use one process per worker).

    Examples
    --------
    >>> import logging
    >>> with library_noise() as noise:
    ...     logging.getLogger("tifffile").warning("invalid page offset 123")
    >>> noise
    ['tifffile: invalid page offset 123']
    """
    msgs: list[str] = []
    handler = _ListHandler(msgs)
    saved = []
    for name in LIBRARY_LOGGERS:
        lg = logging.getLogger(name)
        saved.append((lg, lg.propagate))
        lg.addHandler(handler)
        lg.propagate = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                yield msgs
            finally:
                msgs.extend(f"{w.category.__name__}: {w.message}" for w in caught)
    finally:
        for lg, propagate in saved:
            lg.removeHandler(handler)
            lg.propagate = propagate


def summarise_noise(msgs: list[str], *, limit: int = 3) -> str:
    """The distinct messages of :func:`library_noise`, the first ``limit`` of them, on one
    line (``""`` when there are none)."""
    seen = list(dict.fromkeys(m.strip().replace("\n", " ") for m in msgs if m.strip()))
    if not seen:
        return ""
    more = f" (+{len(seen) - limit} more)" if len(seen) > limit else ""
    return "; ".join(seen[:limit]) + more


def check_path(path: Path) -> None:
    """Raise :class:`SlideError` unless ``path`` exists and can be read.

    A broken symbolic link names its target; a link loop, a missing path and a file
    without read permission each get their own message.
    """
    if path.is_symlink() and not path.exists():
        try:
            target = path.resolve(strict=False)
        except (RuntimeError, OSError):  # a loop (RuntimeError before Python 3.13)
            raise SlideError(
                f"{path}: a symbolic link that loops back on itself; point it at the real file"
            ) from None
        raise SlideError(
            f"{path}: a broken symbolic link: its target {target} does not exist; "
            "fix the link or give the real file's path"
        )
    if not path.exists():
        raise SlideError(f"{path}: no such file or folder; check the path")
    if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
        raise SlideError(f"{path}: permission denied; make it readable (chmod +r) or copy it")


def file_kind(path: Path) -> str | None:
    """``"tiff"``, ``"jpeg"`` or ``"png"`` from the file's first bytes; ``None`` otherwise."""
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return None
    for kind, magics in _MAGIC.items():
        for magic in magics:
            # a file cut inside its magic number (2 bytes or more of it) is that kind, cut
            if head.startswith(magic) or (2 <= len(head) < len(magic) and magic.startswith(head)):
                return kind
    return None


def incomplete_error(path: Path, what: str, size: int) -> SlideError:
    """The one message for a truncated file, whichever check or reader found it."""
    return SlideError(
        f"{path}: the file is incomplete (truncated: {what}, the file ends at byte "
        f"{size:,}); copy or download it again"
    )


def check_complete(path: str | Path) -> None:
    """Raise :class:`SlideError` when a TIFF, JPEG or PNG file is cut short.

    Other files (and folders) pass: their readers judge them. The result for a file that
    passes is cached on its path, size and modification time, so the readers that
    :func:`~histoexpr.slide.open_slide` tries in turn pay for the check once.
    """
    path = Path(path)
    if not path.is_file():
        return
    st = path.stat()
    if st.st_size == 0:
        raise SlideError(f"{path}: the file is empty (0 bytes); copy or download it again")
    kind = file_kind(path)
    if kind is None:
        return
    _check_cached(str(path), kind, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _check_cached(path: str, kind: str, size: int, mtime_ns: int) -> None:
    # failures raise and are not cached; successes are
    {"tiff": _check_tiff, "jpeg": _check_jpeg, "png": _check_png}[kind](Path(path), size)


def _check_jpeg(path: Path, size: int) -> None:
    """Complete when an end-of-image marker (FF D9) follows the last start-of-scan (FF DA);
    neither can occur inside entropy-coded data, so the test is exact."""
    with open(path, "rb") as f:
        f.seek(max(0, size - _TAIL))
        tail = f.read()
        if not _jpeg_ends(tail) and size > _TAIL:
            f.seek(0)
            tail = f.read()  # the end marker is followed by a long trailer: look everywhere
    if not _jpeg_ends(tail):
        raise incomplete_error(path, "no JPEG end-of-image marker", size)


def _jpeg_ends(data: bytes) -> bool:
    eoi = data.rfind(b"\xff\xd9")
    return eoi >= 0 and eoi > data.rfind(b"\xff\xda")


def _check_png(path: Path, size: int) -> None:
    with open(path, "rb") as f:
        f.seek(max(0, size - 4096))
        tail = f.read()
    if b"IEND" not in tail:
        raise incomplete_error(path, "no PNG end chunk (IEND)", size)


def _check_tiff(path: Path, size: int) -> None:
    """The IFD chain (with SubIFDs) and every tile/strip must lie inside the file."""
    _walk_ifd_chain(path, size)

    import tifffile

    with library_noise() as noise:
        try:
            with tifffile.TiffFile(path) as tf:
                _, end = _walk_pages(tf.pages)
        except tifffile.TiffFileError as e:
            raise SlideError(
                f"{path}: the TIFF structure is damaged ({e}); copy or download it again"
            ) from e
        except (OSError, ValueError, IndexError, KeyError, struct.error) as e:
            raise SlideError(
                f"{path}: the TIFF structure is damaged ({type(e).__name__}: {e}); copy or "
                "download it again"
            ) from e
    # SubIFDs (OME-TIFF pyramids) and the data of directory entries (offset arrays, XML)
    past = [int(m[1]) for msg in noise if (m := _SUBIFD_PAST_END.search(msg))]
    if any(o >= size for o in past):
        raise incomplete_error(
            path, f"a sub-image directory starts at byte {min(o for o in past if o >= size):,}",
            size)
    past = sorted((int(m[2]), int(m[1])) for msg in noise if (m := _VALUE_PAST_END.search(msg)))
    past = [(o, tag) for o, tag in past if o >= 8 and tag in _NEEDED_TAGS]
    if past:
        o, tag = past[0]
        raise incomplete_error(
            path, f"the {_NEEDED_TAGS[tag]} table at byte {o:,} runs past the end", size
        )
    if end > size:
        raise incomplete_error(path, f"tile data runs to byte {end:,}", size)
    if noise:
        logger.debug("%s: the TIFF reader reported: %s", path, summarise_noise(noise))


def _walk_ifd_chain(path: Path, size: int) -> None:
    """Follow the chain of image directories (IFDs) from the header, checking that each one,
    with its entries and its pointer to the next, lies inside the file. Damage that is not a
    cut (a loop, an absurd entry count) ends the walk quietly: tifffile and the readers
    judge it."""
    with open(path, "rb") as f:
        head = f.read(16)
        order = "<" if head[:2] == b"II" else ">"
        if head[2:4] in (b"+\0", b"\0+"):  # BigTIFF
            first_at, off_fmt, n_fmt, entry = 8, "Q", "Q", 20
        elif order == "<" and path.suffix.lower() == ".ndpi":  # 64-bit IFD offsets
            first_at, off_fmt, n_fmt, entry = 4, "Q", "H", 12
        else:
            first_at, off_fmt, n_fmt, entry = 4, "I", "H", 12
        off_size, n_size = struct.calcsize(off_fmt), struct.calcsize(n_fmt)
        if size < first_at + off_size:
            raise incomplete_error(path, "the TIFF header is cut short", size)
        (offset,) = struct.unpack(order + off_fmt, head[first_at:first_at + off_size])
        n, seen = 0, set()
        while offset and offset not in seen and n < 100_000:
            seen.add(offset)
            n += 1
            which = "the first image directory" if n == 1 else f"image directory {n}"
            if offset >= size:
                raise incomplete_error(path, f"{which} starts at byte {offset:,}", size)
            f.seek(offset)
            raw = f.read(n_size)
            if len(raw) < n_size:
                raise incomplete_error(path, f"{which} (at byte {offset:,}) is cut short", size)
            (count,) = struct.unpack(order + n_fmt, raw)
            if not 0 < count <= 4096:
                break  # not a cut: damaged, or not a TIFF directory at all
            end = offset + n_size + count * entry + off_size
            if end > size:
                raise incomplete_error(
                    path, f"{which} (at byte {offset:,}) runs to byte {end:,}", size
                )
            f.seek(end - off_size)
            (offset,) = struct.unpack(order + off_fmt, f.read(off_size))


def _walk_pages(pages) -> tuple[int, int]:
    """``(number of pages, end of the furthest tile or strip)`` over a chain and its SubIFDs."""
    import numpy as np

    n, end = 0, 0
    for page in pages:
        n += 1
        offs = getattr(page, "dataoffsets", ()) or ()
        counts = getattr(page, "databytecounts", ()) or ()
        if len(offs) and len(counts) == len(offs):
            o = np.asarray(offs, np.int64)
            c = np.asarray(counts, np.int64)
            used = c > 0  # 0/0 marks a sparse (absent) tile
            if used.any():
                end = max(end, int((o[used] + c[used]).max()))
        sub = page.pages if getattr(page, "subifds", None) else None
        if sub is not None:
            _, e = _walk_pages(sub)
            end = max(end, e)
    return n, end
