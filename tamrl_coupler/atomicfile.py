"""Every file the product writes is written atomically: under a temporary name in its own directory, renamed into
place when complete, the temporary file removed on every failure path.

Why: a crash, a kill or a full disk never leaves half a file under the final name and never damages the file
written before (restarts, flux files, priors, maps, predictions, scores, checkpoints, weights). A write that fails
for a reason of the file system (full disk, no permission, a directory where a file was meant, a file where a
directory was meant) is an :class:`~tamrl_coupler.errors.OutputError` naming the file. A process killed with
SIGKILL cannot clean up: it may leave its ``.NAME.XXXXXXXX.tmp`` beside the final name, never a damaged final file.

Why ``mkstemp``: the temporary file is created exclusively (``O_CREAT | O_EXCL``) under a name nobody can predict, in
the target's own directory (so the rename stays on one file system). A predictable name (``.NAME.PID.tmp``) let
anyone who can write that directory plant a symbolic link under it beforehand, and the product would then have
written through the link into the file it points to.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

from tamrl_coupler.errors import OutputError, TamrlError


def _file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_MODE = _file_mode()  # what open() would have given a new file: mkstemp's own 0600 would hide outputs from others


def create_temporary(path: Path) -> Path:
    """A new, empty file beside ``path``, created exclusively under an unpredictable hidden name
    (``.NAME.XXXXXXXX.tmp``): never an existing file or a link someone planted."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _MODE)
    finally:
        os.close(fd)
    return Path(name)


def prepare_target(path: str | Path, what: str = "file") -> Path:
    """``path`` as a Path whose directory exists (created when missing); an OutputError when the path is a
    directory or its parent cannot be a directory."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write {what} {path}: it is a directory (expected a file name)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise OutputError(f"cannot write {what} {path}: {path.parent} (or a folder above it) is a file, not a "
                          f"directory") from None
    except OSError as exc:
        raise OutputError(f"cannot write {what} {path}: cannot create its directory ({exc.strerror or exc})") from None
    return path


FULL_DISK = 1 << 20  # bytes: a directory with less free space than this after a failed write was full


def _disk_full(directory: Path) -> bool:
    try:
        st = os.statvfs(directory)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < FULL_DISK


def output_error(exc: BaseException, path: Path, what: str) -> BaseException:
    """``exc`` as the product's error: OS and NetCDF-library failures of a write become an OutputError naming the
    file and saying what happened (no space left, permission denied, file too large, file name too long); a memory
    condition says so; the product's own errors and anything else are returned unchanged. Call it before the
    temporary file is removed: the NetCDF library reports a full disk as "HDF error", so the disk is looked at."""
    if isinstance(exc, TamrlError):
        return exc
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
    elif isinstance(exc, RuntimeError) and str(exc).startswith("NetCDF:"):
        reason = str(exc)  # the NetCDF library's way of saying the write failed (e.g. "NetCDF: HDF error")
        if _disk_full(path.parent):
            reason = f"No space left on device ({reason})"
    elif isinstance(exc, MemoryError):
        reason = "out of memory while writing it (MemoryError)"
    else:
        return exc
    return OutputError(f"could not write {what} {path}: {reason} (nothing was left under that name)")


def raise_as_output_error(exc: BaseException, path: Path, what: str) -> NoReturn:
    """Raise :func:`output_error` of ``exc`` (from ``exc``), or ``exc`` itself when it stays what it is; for use in
    an ``except`` block of a write."""
    converted = output_error(exc, path, what)
    if converted is exc:
        raise exc
    raise converted from exc


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)  # links (symbolic and hard) to one file are the same file
    except OSError:
        return a.resolve() == b.resolve()


def refuse_overwriting(outputs: Iterable[str | Path | None], inputs: Iterable[str | Path | None],
                       command: str = "") -> None:
    """An OutputError when an output would replace one of the inputs (the same file, also through a link, or a
    file inside an input directory): the input would be lost, and with it what the output was computed from."""
    sources: list[Path] = []
    for p in inputs:
        if p is None:
            continue
        p = Path(p)
        if p.is_dir():
            sources.extend(q for q in p.iterdir() if q.is_file())
        elif p.exists():
            sources.append(p)
    for out in outputs:
        if out is None:
            continue
        out = Path(out)
        for src in sources:
            if _same_file(out, src):
                raise OutputError(f"the output {out} is the input {src}{f' of {command}' if command else ''}; writing "
                                  f"it would replace the input (choose another output path)")


def remove_quietly(path: Path) -> None:
    """Remove ``path`` if it exists; a failure to remove is not worth hiding the original error."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


@contextmanager
def atomic_path(path: str | Path, what: str = "file") -> Iterator[Path]:
    """``with atomic_path(p) as tmp: write(tmp)``: ``tmp`` is renamed to ``p`` when the block succeeds and removed
    when it fails (any exception, KeyboardInterrupt included); OS errors become an OutputError naming ``p``."""
    path = prepare_target(path, what)
    try:
        tmp = create_temporary(path)
    except BaseException as exc:
        raise_as_output_error(exc, path, what)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        converted = output_error(exc, path, what)  # before the temporary file frees the disk it filled
        remove_quietly(tmp)
        if converted is exc:
            raise
        raise converted from exc


def write_bytes_atomic(path: str | Path, data: bytes, what: str = "file") -> Path:
    """``data`` into ``path``, atomically."""
    with atomic_path(path, what) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str, what: str = "file") -> Path:
    """``text`` into ``path`` (UTF-8), atomically."""
    return write_bytes_atomic(path, text.encode(), what)
