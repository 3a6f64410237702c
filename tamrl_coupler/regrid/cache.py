"""Weights cached on disk, keyed by both grids (geometry and mask), the method and the backend.

A coupled run builds its regridders at every start; with the cache only the first start pays for weight generation.
Files are ESMF-format weight files written atomically (temp file + rename), so concurrent ranks never read half files.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tamrl_coupler.regrid.grid import Grid

CACHE_VERSION = "1"


def default_cache_dir() -> Path:
    """$TAMRL_REGRID_CACHE, else the user cache directory ($XDG_CACHE_HOME or ~/.cache)/tamrl-coupler/weights."""
    env = os.environ.get("TAMRL_REGRID_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tamrl-coupler" / "weights"


def cache_key(src: Grid, dst: Grid, method: str, backend: str) -> str:
    """A short hash of both grids (geometry and mask), the method and the backend: what makes weights equal."""
    h = hashlib.sha256()
    for part in (CACHE_VERSION, src.fingerprint(), dst.fingerprint(), method, backend):
        h.update(part.encode())
        h.update(b"|")
    return h.hexdigest()[:24]


def cache_path(cache_dir: str | Path, src: Grid, dst: Grid, method: str, backend: str) -> Path:
    """The weight file in ``cache_dir`` for these grids and method (readable names, the key decides)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{src.name}_to_{dst.name}")[:80]
    return Path(cache_dir) / f"{safe}_{method}_{backend}_{cache_key(src, dst, method, backend)}.nc"
