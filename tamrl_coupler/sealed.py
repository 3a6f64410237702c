"""Whole-file seals: a SHA-256 of every byte of a file, carried in the file's last bytes and checked before use.

Why every byte: a digest over the *decoded* content (arrays, attributes) misses bytes the decoder skips or
normalises -- an ``.npy`` header's padding, a zip entry's metadata, an HDF5 structure it does not read -- and each
decoder has its own idea of which bytes matter. A seal over the file as stored leaves nothing to argue about: one
flipped bit anywhere is a refused file, and a damaged file never reaches the NetCDF or zip parser at all.

Layout: the file ends with ``MAGIC`` and 64 hexadecimal digits, the SHA-256 of everything before those digits
(``MAGIC`` included). NetCDF-4/HDF5 files ignore bytes after their end, so the seal is appended to them; a zip
(``.npz``) carries it as its archive comment, which is where a zip keeps its last bytes.
"""

from __future__ import annotations

import hashlib
import os
from enum import Enum
from pathlib import Path

MAGIC = b"\n#tamrl-sha256:"
_HEX = 64
_CHUNK = 1 << 20


class Seal(str, Enum):
    """What :func:`check` found at the end of a file."""

    GOOD = "good"  # sealed, every byte as written
    NONE = "none"  # no seal (a file from before sealing, or one whose seal was cut off)


class SealError(ValueError):
    """A sealed file whose bytes do not match its seal (damaged or edited)."""


def placeholder() -> bytes:
    """The bytes a zip comment holds before :func:`seal_in_place` writes the digest over the zeros."""
    return MAGIC + b"0" * _HEX


def _digest(fh, size: int) -> str:
    h = hashlib.sha256()
    fh.seek(0)
    left = size
    while left > 0:
        chunk = fh.read(min(_CHUNK, left))
        if not chunk:
            raise SealError("the file ended before its declared size while it was being read")
        h.update(chunk)
        left -= len(chunk)
    return h.hexdigest()


def append_seal(path: str | Path) -> None:
    """Seal ``path`` (a complete file, e.g. a NetCDF file just written) by appending MAGIC and the digest."""
    with open(path, "r+b") as fh:
        fh.seek(0, os.SEEK_END)
        fh.write(MAGIC)
        fh.flush()
        size = fh.tell()
        digest = _digest(fh, size)
        fh.seek(0, os.SEEK_END)
        fh.write(digest.encode())
        fh.flush()
        os.fsync(fh.fileno())


def seal_in_place(path: str | Path) -> None:
    """Seal a file that already ends with :func:`placeholder` (a zip whose comment it is): the digest replaces
    the zeros."""
    with open(path, "r+b") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(size - len(placeholder()))
        if fh.read() != placeholder():
            raise SealError(f"{path} does not end with the seal's placeholder")
        digest = _digest(fh, size - _HEX)
        fh.seek(size - _HEX)
        fh.write(digest.encode())
        fh.flush()
        os.fsync(fh.fileno())


def check(path: str | Path) -> Seal:
    """:attr:`Seal.GOOD` when ``path`` ends with a seal that matches every byte before it, :attr:`Seal.NONE` when
    it has no seal; :class:`SealError` (saying where it differs) when the seal does not match. Reads the file in
    chunks: nothing of its size is allocated."""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        tail_len = len(MAGIC) + _HEX
        if size < tail_len:
            return Seal.NONE
        fh.seek(size - tail_len)
        tail = fh.read(tail_len)
        if not tail.startswith(MAGIC):
            return Seal.NONE
        stored = tail[len(MAGIC):]
        try:
            stored_text = stored.decode("ascii")
            int(stored_text, 16)
        except (UnicodeDecodeError, ValueError):
            raise SealError("its SHA-256 seal is damaged (not 64 hexadecimal digits)") from None
        if _digest(fh, size - _HEX) != stored_text:
            raise SealError("its bytes do not match its SHA-256 seal: the file was damaged or edited after it was "
                            "written")
    return Seal.GOOD


MEMORY_SHARE = 0.5  # a file may not declare arrays larger than this share of the machine's memory


def memory_limit() -> float:
    """Bytes of arrays a file may declare: MEMORY_SHARE of this machine's memory (0: unknown, no limit)."""
    try:
        return MEMORY_SHARE * int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0.0


# ------------------------------------------------------------------------------------------------ sealed .npz files
_EPOCH = (1980, 1, 1, 0, 0, 0)  # zip entries carry no clock time: the same arrays give the same bytes


def save_npz(path: str | Path, arrays: dict[str, object]) -> None:
    """``arrays`` as a compressed ``.npz`` (readable by ``numpy.load``, ``allow_pickle=False``) whose archive comment
    is its seal: every byte of the file, zip structure and ``.npy`` headers included, is covered."""
    import zipfile

    import numpy as np

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, value in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(value), allow_pickle=False)
        zf.comment = placeholder()
    seal_in_place(path)


def npz_declared_bytes(path: str | Path) -> dict[str, int]:
    """Bytes each array of an ``.npz`` declares in its ``.npy`` header, read without loading any array; a header
    that declares more data than its entry holds (an edited shape) is a :class:`SealError`."""
    import zipfile

    import numpy as np

    out = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            with zf.open(info) as fh:
                fmt = np.lib.format
                version = fmt.read_magic(fh)
                read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                shape, _, dtype = read_header(fh)
                declared = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
                header = fh.tell()
            if declared != info.file_size - header:
                raise SealError(f"array '{info.filename}' declares shape {shape} of {dtype} ({declared} bytes) but "
                                f"its entry holds {info.file_size - header} bytes")
            out[info.filename.removesuffix(".npy")] = declared
    return out
