"""Reader of the CRU CL 1.0 monthly climate normals (1961-90, 0.5 degree, land; New, Hulme & Jones 1999) as the
IPCC Data Distribution Centre distributes them: zip archives of fixed-width ASCII grids, read directly.

Why a reader of its own: the grids are integers in 5-character fields with no separators (``-9999-9999`` is two
values), so they are read by column position; the file's header is checked rather than assumed, and the units of
each variable (0.1 degC, 0.1 mm d-1, 0.1 hPa, W m-2) are applied here, once.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tamrl_coupler.errors import InputError

MISSING = -9999
N_ROWS, N_COLS, N_MONTHS, FIELD = 360, 720, 12, 5
HEADER = (0.5, 0.25, -89.75, 359.75, 89.75, N_COLS, N_ROWS, N_MONTHS)

# variable -> (archive, member, factor to the unit after it, that unit)
VARIABLES: dict[str, tuple[str, str, float, str]] = {
    "tmp": ("ctmp6190.zip", "ctmp6190.dat", 0.1, "degC"),  # mean air temperature
    "tmn": ("ctmn6190.zip", "ctmn6190.dat", 0.1, "degC"),  # mean daily minimum
    "tmx": ("ctmx6190.zip", "ctmx6190.dat", 0.1, "degC"),  # mean daily maximum
    "pre": ("cpre6190.zip", "cpre6190.dat", 0.1, "mm d-1"),  # precipitation rate
    "vap": ("cvap6190.zip", "cvap6190.dat", 0.1, "hPa"),  # vapour pressure
    # two versions of the radiation field are in the archive: the 1999 file ``crad6190`` is used (the later one)
    "rad": ("crad6190.zip", "crad6190", 1.0, "W m-2"),  # surface downwelling shortwave
}
RADIATION_1998 = "crad6190.dat"

CITATION = ("New, M., Hulme, M. and Jones, P.D. (1999) Representing twentieth century space-time climate "
            "variability. Part 1: development of a 1961-90 mean monthly terrestrial climatology. J. Climate 12, "
            "829-856. CRU CL 1.0, distributed by the IPCC Data Distribution Centre, free for research with "
            "citation.")


@dataclass
class CruGrid:
    """One variable's 12 monthly grids: ``values`` (12, 360, 720) float64 in ``units``, NaN where missing; rows
    run south to north (``lat`` ascending, -89.75 .. 89.75), columns 0.25 .. 359.75 degrees east."""

    name: str
    values: np.ndarray
    units: str
    source: str

    @property
    def lat(self) -> np.ndarray:
        return -89.75 + 0.5 * np.arange(N_ROWS)

    @property
    def lon(self) -> np.ndarray:
        return 0.25 + 0.5 * np.arange(N_COLS)


def parse_grid(text: bytes, where: str) -> np.ndarray:
    """The IPCC-DDC text of one file -> (12, 360, 720) int32 in file order (northernmost row first)."""
    lines = text.split(b"\n", 2)
    if len(lines) < 3:
        raise InputError(f"{where}: expected two header lines and {N_MONTHS * N_ROWS} grid rows")
    try:
        header = tuple(float(v) for v in lines[1].split())
    except ValueError:
        raise InputError(f"{where}: second header line {lines[1][:80]!r} is not numbers") from None
    if len(header) != len(HEADER) or not np.allclose(header, HEADER):
        raise InputError(f"{where}: grid header {header}, expected {HEADER} (grd_sz xmin ymin xmax ymax n_cols "
                         f"n_rows n_months)")
    rows = lines[2].replace(b"\r", b"").split(b"\n")
    rows = [r for r in rows if r.strip()]
    if len(rows) != N_MONTHS * N_ROWS:
        raise InputError(f"{where}: {len(rows)} grid rows, expected {N_MONTHS * N_ROWS} (12 months x 360 rows)")
    width = N_COLS * FIELD
    short = [i for i, r in enumerate(rows) if len(r) != width]
    if short:
        raise InputError(f"{where}: row {short[0]} has {len(rows[short[0]])} characters, expected {width} "
                         f"({N_COLS} fields of {FIELD})")
    buf = np.frombuffer(b"".join(rows), dtype=f"S{FIELD}")
    try:
        values = buf.astype(np.int32)
    except ValueError:
        raise InputError(f"{where}: a field is not an integer") from None
    return values.reshape(N_MONTHS, N_ROWS, N_COLS)


def read_variable(directory: str | Path, name: str, member: str | None = None) -> CruGrid:
    """Variable ``name`` (tmp, tmn, tmx, pre, vap, rad) from its zip archive in ``directory``."""
    if name not in VARIABLES:
        raise InputError(f"CRU CL variable {name!r}: expected one of {sorted(VARIABLES)}")
    archive, default_member, factor, units = VARIABLES[name]
    path = Path(directory) / archive
    member = member or default_member
    where = f"CRU CL archive {path}, member {member}"
    if not path.exists():
        raise InputError(f"{where}: the archive does not exist (the CRU CL 1.0 normals: ../shared/data/cru_cl)")
    try:
        with zipfile.ZipFile(path) as z:
            text = z.read(member)
    except KeyError:
        raise InputError(f"{where}: no such member in the archive") from None
    except zipfile.BadZipFile as exc:
        raise InputError(f"{where}: not a readable zip archive ({exc})") from None
    raw = parse_grid(text, where)[:, ::-1, :]  # rows south to north
    values = np.where(raw == MISSING, np.nan, raw * factor)
    return CruGrid(name, values, units, f"{path.name}:{member}")


def read_normals(directory: str | Path, names: tuple[str, ...] = tuple(VARIABLES)) -> dict[str, CruGrid]:
    """The variables ``names`` from ``directory`` (each archive read once)."""
    return {n: read_variable(directory, n) for n in names}


__all__ = ["CITATION", "CruGrid", "RADIATION_1998", "VARIABLES", "parse_grid", "read_normals", "read_variable"]
