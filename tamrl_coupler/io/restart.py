"""Restart files: NetCDF, written atomically (a temporary file in the same directory, then renamed).

A crash while writing leaves the previous restart intact; a reader never sees half a file. Arrays are stored in
the component's global cell order, so a run may restart on a different number of ranks.

Why a seal: a restart decides the fluxes of the rest of a run. From format 5 the file ends with a SHA-256 of every
byte before it (``sealed.py``), checked before the NetCDF library reads anything: one flipped bit anywhere -- data,
attributes, the file's own structure -- is a refused file. (Format 4 carried a digest of the decoded content only.)
Files of earlier formats, and a file whose seal was cut off, are refused unless the caller allows unverified
restarts explicitly (``--allow-unverified``); relabelling a sealed file as an older format therefore gains nothing.
The arrays a restart holds are covered generically: whatever a stage adds is inside the seal. The reader checks the
declared sizes of all arrays against the machine's memory and the file's dimensions against what the run expects
*before* reading any array (an edited dimension must not make it allocate hundreds of GB), and names any array that
is missing. Every error says "restart" and names the file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from tamrl_coupler import sealed
from tamrl_coupler.errors import InputError
from tamrl_coupler.ncfiles import open_netcdf, read_array, write_atomic_netcdf

# 2: the period estimate between model evaluations (model.update_interval); 3: driver state named by driver;
# 4: the content's SHA-256 and the ensemble's fingerprint; 5: a whole-file SHA-256 seal
FORMAT_VERSION = 5
READABLE_VERSIONS = (1, 2, 3, 4, 5)
SEALED_FROM = 5
TITLE = "tamrl-coupler restart"
DIGEST_ATTR = "content_sha256"


def content_digest(scalars: dict[str, float], arrays: dict[str, np.ndarray], attrs: dict[str, Any]) -> str:
    """SHA-256 of a restart's content as written and as read back: scalars (float64), arrays (name, dtype, shape,
    bytes) and attributes (as text), each in name order; the digest attribute itself left out."""
    h = hashlib.sha256()
    for name in sorted(scalars):
        h.update(f"scalar {name}=".encode() + np.float64(scalars[name]).tobytes())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"array {name} {a.dtype.str} {a.shape}".encode())
        h.update(a.tobytes())
    for name in sorted(k for k in attrs if k != DIGEST_ATTR):
        h.update(f"attr {name}={attrs[name]}".encode())
    return h.hexdigest()


def write_restart(path: str | Path, scalars: dict[str, float], arrays: dict[str, tuple[tuple[str, ...], np.ndarray]],
                  attrs: dict[str, str]) -> Path:
    """``arrays``: name -> (dimension names, values); dimension sizes are taken from the arrays."""
    values = {name: np.asarray(a) for name, (_, a) in arrays.items()}
    header = {"title": TITLE, "restart_format_version": str(FORMAT_VERSION), **{k: str(v) for k, v in attrs.items()}}
    digest = content_digest(scalars, values, header)

    def fill(ds):
        for k, v in header.items():
            ds.setncattr(k, v)
        ds.setncattr(DIGEST_ATTR, digest)
        dims: dict[str, int] = {}
        for name, (dnames, a) in arrays.items():
            if len(dnames) != np.ndim(a):
                raise ValueError(f"restart array {name}: {len(dnames)} dimension names for a {np.ndim(a)}-D array")
            for d, n in zip(dnames, np.shape(a), strict=True):
                if dims.setdefault(d, n) != n:
                    raise ValueError(f"restart array {name}: dimension {d} is {n}, elsewhere {dims[d]}")
        for d, n in dims.items():
            ds.createDimension(d, n)
        for name, value in scalars.items():
            v = ds.createVariable(f"scalar_{name}", "f8", ())
            v[...] = float(value)
        for name, (dnames, _) in arrays.items():
            a = values[name]
            v = ds.createVariable(name, a.dtype, dnames, zlib=True, complevel=1)
            v[...] = a

    return write_atomic_netcdf(path, fill, "restart file", seal=True)


class RestartFile:
    """An open restart file: its seal verified and its declared sizes checked first, its attributes and dimensions
    (cheap), its arrays when asked, after the caller has checked the dimensions. Use as a context manager.

    ``allow_unverified``: also read a file without a seal (formats 1-4, written before restarts were sealed), at
    the caller's explicit request."""

    def __init__(self, path: str | Path, allow_unverified: bool = False):
        self.path = Path(path)
        if not self.path.exists() or self.path.is_dir():
            open_netcdf(self.path, "restart file")  # its error says what the path is instead
        try:
            self.seal = sealed.check(self.path)
        except sealed.SealError as exc:
            raise InputError(f"restart {self.path}: {exc}; continue from another restart") from None
        except OSError as exc:
            raise InputError(f"restart {self.path} cannot be read: {exc.strerror or exc}") from None
        self.ds = open_netcdf(self.path, "restart file")
        try:
            self.ds.set_auto_mask(False)
            if getattr(self.ds, "title", "") != TITLE:
                raise InputError(f"{self.path} is not a tamrl-coupler restart file (title attribute missing)")
            try:
                self.version = int(str(getattr(self.ds, "restart_format_version", -1)))
            except ValueError:
                self.version = -1
            if self.version not in READABLE_VERSIONS:
                raise InputError(f"restart file {self.path} has format version {self.version}; this build reads "
                                 f"{', '.join(map(str, READABLE_VERSIONS))}")
            if self.seal is sealed.Seal.NONE:
                if self.version >= SEALED_FROM:
                    raise InputError(f"restart {self.path}: format {self.version} ends with a SHA-256 seal, but this "
                                     f"file has none (cut off or edited); continue from another restart")
                if not allow_unverified:
                    raise InputError(f"restart {self.path} has format version {self.version}, written before "
                                     f"restarts were sealed: nothing shows that its bytes are as written, so it is "
                                     f"refused; continue from a newer restart, or allow it explicitly "
                                     f"(--allow-unverified, allow_unverified=True) if you trust the file")
            self.attrs: dict[str, Any] = {k: self.ds.getncattr(k) for k in self.ds.ncattrs()}
            self.dims: dict[str, int] = {k: len(d) for k, d in self.ds.dimensions.items()}
        except BaseException:
            self.ds.close()
            raise

    def __enter__(self) -> RestartFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.ds.close()

    def _check_declared_size(self) -> None:
        """The arrays the file declares must fit in memory: refused before anything is allocated."""
        total, largest = 0, ("", 0)
        for name, var in self.ds.variables.items():
            n = int(np.prod(var.shape, dtype=np.float64)) * int(getattr(var.dtype, "itemsize", 8) or 8)
            total += n
            largest = max(largest, (name, n), key=lambda x: x[1])
        limit = sealed.memory_limit()
        if limit and total > limit:
            raise InputError(f"restart {self.path} declares {total / 2**30:.3g} GiB of arrays (largest "
                             f"'{largest[0]}': {largest[1] / 2**30:.3g} GiB), more than this machine's memory allows "
                             f"({limit / 2**30:.3g} GiB): refused before reading; the file's dimensions are damaged "
                             f"or it belongs to a far larger run")

    def check_dims(self, expected: dict[str, int]) -> None:
        """Every dimension named in ``expected`` that the file has must have that size (before anything is read)."""
        for name, n in expected.items():
            if name in self.dims and self.dims[name] != n:
                raise InputError(f"restart {self.path}: dimension '{name}' is {self.dims[name]}, this run needs {n}")

    def require(self, names: Iterable[str]) -> None:
        """An error naming the first of ``names`` the file does not hold."""
        for name in names:
            if name not in self.ds.variables:
                raise InputError(f"restart {self.path}: array '{name}' is missing (file truncated or written by "
                                 f"another version)")

    def read(self) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """(scalars, arrays); their declared sizes are checked first, the content digest verified when the file has
        one (format 4 on)."""
        self._check_declared_size()
        scalars: dict[str, float] = {}
        arrays: dict[str, np.ndarray] = {}
        for name, var in self.ds.variables.items():
            where = f"restart file {self.path}, variable '{name}'"
            value = np.asarray(read_array(var, ..., where))
            if name.startswith("scalar_"):
                if value.size != 1:
                    raise InputError(f"{where}: expected one value, found {value.size}")
                scalars[name[len("scalar_"):]] = float(value.reshape(-1)[0])
            else:
                arrays[name] = value
        if self.version >= 4:  # the seal covers format 5; the content digest is checked as well
            stored = self.attrs.get(DIGEST_ATTR)
            if stored is None or content_digest(scalars, arrays, self.attrs) != stored:
                raise InputError(f"restart {self.path}: its content does not match its {DIGEST_ATTR} (the file is "
                                 f"damaged or was edited); continue from another restart")
        return scalars, arrays


def read_restart(path: str | Path, allow_unverified: bool = False
                 ) -> tuple[dict[str, float], dict[str, np.ndarray], dict[str, Any]]:
    """(scalars, arrays, global attributes) of a restart file this build can read; errors name the file."""
    with RestartFile(path, allow_unverified) as f:
        scalars, arrays = f.read()
        return scalars, arrays, dict(f.attrs)
