"""Weights from the CDO command line tool (Debian ``cdo``): ``gencon``, ``genbil``, ``gennn`` on grid descriptions.

We write CDO grid description files ourselves (lonlat, curvilinear, unstructured), pass the source mask as missing
values of a one-field NetCDF file (CDO takes the source mask from the first field's missing values), and read back
the SCRIP-format weights. A destination mask is applied afterwards by dropping masked rows.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from tamrl_coupler.errors import RegridError
from tamrl_coupler.regrid.grid import Grid
from tamrl_coupler.regrid.weights import Weights

NAME = "cdo"
OPERATORS = {"conservative": "gencon", "bilinear": "genbil", "nearest_s2d": "gennn"}


def available() -> bool:
    return shutil.which("cdo") is not None


def supports(src: Grid, dst: Grid, method: str) -> bool:
    if method not in OPERATORS or not available():
        return False
    if method == "conservative":
        return src.has_bounds and dst.has_bounds and src.kind != "points" and dst.kind != "points"
    if method == "bilinear":
        return src.kind in ("regular", "curvilinear")
    return True


def _vals(key: str, a: np.ndarray) -> str:
    """``key = v v v ...`` with every value exact (17 significant digits), 6 to a line; formatted by numpy's
    ``savetxt`` (``array2string`` took minutes for the corners of a 175 000-cell grid)."""
    import io

    flat = np.asarray(a, np.float64).ravel()
    buf = io.StringIO()
    full = flat.size - flat.size % 6
    if full:
        np.savetxt(buf, flat[:full].reshape(-1, 6), fmt="%.17g", delimiter=" ")
    if flat.size % 6:
        np.savetxt(buf, flat[full:].reshape(1, -1), fmt="%.17g", delimiter=" ")
    return f"{key} = " + buf.getvalue().replace("\n", "\n  ").rstrip() + "\n"


def grid_description(grid: Grid) -> str:
    """CDO grid description text for any of our grids."""
    if grid.kind == "regular":
        text = f"gridtype = lonlat\nxsize = {grid.shape[1]}\nysize = {grid.shape[0]}\n"
        text += _vals("xvals", grid.lon1d) + _vals("yvals", grid.lat1d)
        if grid.lon_bounds is not None and grid.lat_bounds is not None:
            text += _vals("xbounds", grid.lon_bounds) + _vals("ybounds", grid.lat_bounds)
        return text
    if grid.kind == "curvilinear":
        text = f"gridtype = curvilinear\ngridsize = {grid.size}\nxsize = {grid.shape[1]}\nysize = {grid.shape[0]}\n"
    else:
        text = f"gridtype = unstructured\ngridsize = {grid.size}\n"
    text += _vals("xvals", grid.lon) + _vals("yvals", grid.lat)
    if grid.has_bounds:
        text += f"nvertex = {grid.corner_lat.shape[1]}\n"
        text += _vals("xbounds", grid.corner_lon) + _vals("ybounds", grid.corner_lat)
    return text


def _write_mask_field(grid: Grid, path: Path) -> None:
    """One field on ``grid``: 1 on active cells, missing elsewhere (CDO's way of receiving a source mask)."""
    import netCDF4

    with netCDF4.Dataset(path, "w") as ds:
        if len(grid.shape) == 2:
            ds.createDimension("y", grid.shape[0])
            ds.createDimension("x", grid.shape[1])
            dims = ("y", "x")
        else:
            ds.createDimension("ncells", grid.size)
            dims = ("ncells",)
        v = ds.createVariable("srcmask", "f8", dims, fill_value=-9999.0)
        m = grid.mask if grid.mask is not None else np.ones(grid.size, np.int8)
        v[:] = np.where(m != 0, 1.0, -9999.0).reshape(grid.shape)


def run_cdo(args: list[str], what: str) -> None:
    if not available():
        raise RegridError("the cdo backend needs the 'cdo' command (Debian/Ubuntu: apt install cdo)")
    proc = subprocess.run(["cdo", "-s", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RegridError(f"cdo failed while {what}: {' '.join(args)}\n{proc.stderr.strip()[-2000:]}")


def generate(src: Grid, dst: Grid, method: str, workdir: Path | None = None) -> Weights:
    if method not in OPERATORS:
        raise RegridError(f"cdo backend has no method {method!r}; it offers {sorted(OPERATORS)}")
    if method == "conservative":
        src.require_bounds("conservative remapping (cdo gencon)")
        dst.require_bounds("conservative remapping (cdo gencon)")
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        t = Path(tmp)
        (t / "src.txt").write_text(grid_description(src))
        (t / "dst.txt").write_text(grid_description(dst))
        _write_mask_field(src, t / "srcmask.nc")
        out = t / "weights.nc"
        run_cdo([f"{OPERATORS[method]},{t / 'dst.txt'}", f"-setgrid,{t / 'src.txt'}", str(t / "srcmask.nc"),
                 str(out)], f"generating {method} weights {src.name} -> {dst.name}")
        w = Weights.read(out)
    w.source = f"{NAME} backend ({OPERATORS[method]})"
    w.method = method
    w.src_shape, w.dst_shape = src.shape, dst.shape
    if dst.mask is not None:  # CDO ignores destination masks: drop masked destination rows ourselves
        keep = dst.mask.astype(np.float64)
        w.matrix = sp.csr_matrix(sp.diags(keep) @ w.matrix)
        w.matrix.eliminate_zeros()
        w.matrix.sort_indices()
        w.frac_b = w.frac_b * keep
        w.mask_b = dst.mask.astype(np.int32)
    w.check_sizes(src.size, dst.size, f"grids {src.name!r} -> {dst.name!r}")
    return w
