"""Every file the product writes is written atomically: under a temporary name in its own directory, renamed into
place when complete, the temporary file removed on every failure path.

Why: a crash, a kill or a full disk never leaves half a file under the final name and never damages the file
written before (restarts, flux files, priors, maps, predictions, scores, checkpoints, weights). A write that fails
for a reason of the file system (full disk, no permission, a directory where a file was meant, a file where a
directory was meant) is an :class:`~tamrl_coupler.errors.OutputError` naming the file. A process killed with
SIGKILL cannot clean up: it may leave its ``.NAME.PID.tmp`` beside the final name, never a damaged final file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

from tamrl_coupler.errors import OutputError, TamrlError


def temporary_name(path: Path) -> Path:
    """The temporary file beside ``path`` this process writes (hidden, with the process id: two processes writing
    the same name never share a temporary file)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


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


def output_error(exc: BaseException, path: Path, what: str) -> BaseException:
    """``exc`` as the product's error: OS and NetCDF-library failures of a write become an OutputError naming the
    file; the product's own errors and anything else are returned unchanged."""
    if isinstance(exc, TamrlError):
        return exc
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
    elif isinstance(exc, RuntimeError) and str(exc).startswith("NetCDF:"):
        reason = str(exc)  # the NetCDF library's way of saying the write failed (e.g. "NetCDF: HDF error")
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
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        remove_quietly(tmp)
        raise_as_output_error(exc, path, what)


def write_bytes_atomic(path: str | Path, data: bytes, what: str = "file") -> Path:
    """``data`` into ``path``, atomically."""
    with atomic_path(path, what) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str, what: str = "file") -> Path:
    """``text`` into ``path`` (UTF-8), atomically."""
    return write_bytes_atomic(path, text.encode(), what)
