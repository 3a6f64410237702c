"""The run configuration (``tamrl-coupler run CONFIG``, the coupling component, the Fortran bridge).

One YAML file; every section is a dataclass and every error names its key path. Relative paths are taken from the
config file's directory; ``package://sample_data/x.nc`` names a file shipped inside the installed package. Grids are
typed (:class:`GridSpec`): a name, a file or a keyword, told apart once, when the config is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import ClassVar

import numpy as np

from tamrl_coupler.constants import SECONDS_PER_DAY
from tamrl_coupler.errors import ConfigError
from tamrl_coupler.physics.carbon import SignConvention
from tamrl_coupler.physics.units import flux_unit
from tamrl_coupler.settings.budget import BudgetSection
from tamrl_coupler.settings.paths import resolve_path
from tamrl_coupler.settings.schema import from_dict, load_yaml


class GridKind(str, Enum):
    """What a grid entry of a run config names."""

    NAME = "name"  # a CDO-style global grid name such as r360x180
    FILE = "file"  # a grid file (CF lat/lon with bounds, SCRIP, ESMF mesh, UGRID), relative to the config
    HOST = "host"  # model.grid / prior.grid: the host's own cells
    FORCING = "forcing"  # host.grid, offline driver only: the forcing file's own grid or point set
    POINTS = "points"  # host.grid: host cells without a grid (a point set; model.grid must then be host)


_GRID_NAME = re.compile(r"r\d+x\d+")
MAX_GRID_CELLS = 1 << 28  # a named global grid of more cells (r23170x11585 ~ 0.016 degrees) is a typo, not a grid
MAX_STEPS = 10_000_000  # coupling steps in one run (570 years of hourly steps): more is split into restarts
MAX_BLOCK = 1 << 24
MAX_THREADS = 1024
MAX_PREFIX = 200
_KEYWORDS = {"host": GridKind.HOST, "forcing": GridKind.FORCING, "points": GridKind.POINTS}


@dataclass(frozen=True)
class GridSpec:
    """A grid as a run config names it: a CDO-style name, a grid file or a keyword (see :class:`GridKind`)."""

    kind: GridKind
    text: str  # as written in the config

    @classmethod
    def parse(cls, text: str) -> GridSpec:
        """A keyword, else a CDO-style name (``r<nx>x<ny>``), else a file."""
        t = str(text).strip()
        if t in _KEYWORDS:
            return cls(_KEYWORDS[t], t)
        if _GRID_NAME.fullmatch(t):
            nx, ny = (int(v) for v in t[1:].split("x"))
            if not (0 < nx and 0 < ny and nx * ny <= MAX_GRID_CELLS):
                raise ConfigError(f"grid {t!r}: {nx} x {ny} = {nx * ny:,} cells; a named global grid has 1 to "
                                  f"{MAX_GRID_CELLS:,} cells (larger ones are given as grid files)")
            return cls(GridKind.NAME, t)
        return cls(GridKind.FILE, t)

    @classmethod
    def from_config(cls, value: object, path: str) -> GridSpec:
        """From a YAML value (the schema layer calls this); ``path`` is the key, for errors."""
        if isinstance(value, GridSpec):
            return value
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{path}: expected {cls.describe_config()}, got {value!r}")
        try:
            return cls.parse(value)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    @staticmethod
    def describe_config() -> str:
        return "a grid: a CDO-style name (r360x180), a grid file, or a keyword (host, forcing, points)"

    def to_config(self) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text

    def require(self, key: str, *kinds: GridKind) -> None:
        """A ConfigError naming ``key`` unless this grid is one of ``kinds`` (what the key can mean)."""
        if self.kind not in kinds:
            raise ConfigError(f"{key}: {self.text!r} is a {self.kind.value} grid here; expected "
                              f"{' or '.join(k.value for k in kinds)}")


@dataclass
class ModelSection:
    """``model:``: the checkpoint, the grid the model runs on, its evaluation blocks and how often it runs."""

    # daily | monthly (the checkpoints shipped in the package), or a path (relative to this config's directory);
    # None: the shipped monthly one
    checkpoint: str | None = None
    grid: GridSpec = field(default_factory=lambda: GridSpec.parse("host"))  # host: model cells = host cells
    # cells evaluated together; fixed blocks make results independent of the rank count. "auto": 256 (in cache)
    # when any rank runs on a CPU, 65536 (enough to fill a device) when they all run on GPUs
    block_size: int | str = "auto"
    # Seconds between ensemble evaluations inside a model period, dividing a day (so it divides every period). The
    # period's first interval and its last step always evaluate; between evaluations the period estimate is reused
    # and only the step downscaling changes (component/schedule.py).
    update_interval: int = SECONDS_PER_DAY

    def __post_init__(self) -> None:
        self.grid = GridSpec.from_config(self.grid, "model.grid")

    def validate(self) -> None:
        self.grid.require("model.grid", GridKind.HOST, GridKind.NAME, GridKind.FILE)
        if isinstance(self.block_size, str):
            if self.block_size != "auto":
                raise ConfigError(f"model.block_size: expected a positive integer or 'auto', got {self.block_size!r}")
        elif not 1 <= self.block_size <= MAX_BLOCK:
            raise ConfigError(f"model.block_size: expected a positive integer up to {MAX_BLOCK}, got "
                              f"{self.block_size}")
        if self.update_interval <= 0 or SECONDS_PER_DAY % self.update_interval:
            raise ConfigError(f"model.update_interval: {self.update_interval} s must be a positive number of "
                              f"seconds dividing a day ({SECONDS_PER_DAY} s), so that it divides every model period")


@dataclass
class HostSection:
    """``host:``: the host grid and, for the offline driver, the names of its land fraction and cell areas."""

    grid: GridSpec  # a grid file (CF lat/lon with bounds), a CDO-style name, "forcing" or "points"
    # in the forcing/grid file, for the offline driver. Not given: 'landfrac' and 'cell_area' where the file has
    # them (areas from the grid's bounds otherwise); a name given must be in the file (never replaced silently)
    landfrac_variable: str = "landfrac"
    area_variable: str = "cell_area"
    track_given_keys: ClassVar[bool] = True  # a variable named explicitly must exist; a default only if present

    def given(self, key: str) -> bool:
        """Whether ``key`` was written in the config (not left at its default)."""
        return key in getattr(self, "_given_keys", ())

    def __post_init__(self) -> None:
        self.grid = GridSpec.from_config(self.grid, "host.grid")

    def validate(self) -> None:
        if self.grid.text == "host":  # an old spelling of "points": host cells without a grid
            self.grid = GridSpec(GridKind.POINTS, "points")
        self.grid.require("host.grid", GridKind.NAME, GridKind.FILE, GridKind.FORCING, GridKind.POINTS)


@dataclass
class ForcingSection:
    """``forcing:``: the offline driver's forcing files, their variable names, and the component's fill policy."""

    files: list[str] = field(default_factory=list)  # paths or globs, read in time order (offline driver)
    variables: dict[str, str] = field(default_factory=dict)  # import name -> name in the files (ERA5, GSWP3 ...)
    fill_policy: str = "error"  # error | persist (repeat the cell's last valid value) | missing (NaN to the model)
    check_range: bool = True
    # shortwave against the top-of-atmosphere insolation, the daily range of air temperature (per cell and step:
    # component/plausibility.py); off only for forcing known to break them (e.g. synthetic tests)
    check_plausibility: bool = True
    format: str = "cf"  # cf | fluxval (the FluxVal site file, converted to CF forcing at run start)
    sites: list[str] | None = None  # fluxval: run only these sites (default all)
    # the files' layout: cf | era5 | era5_land | cmip6 | crujra (variable names, accumulations: io/forcing_layouts.py)
    layout: str = "cf"
    leap_day: str = "error"  # a no-leap calendar (CMIP6, CRU-JRA): error | hold (Feb 28 held over Feb 29, stated)

    def validate(self) -> None:
        if self.fill_policy not in ("error", "persist", "missing"):
            raise ConfigError(f"forcing.fill_policy: expected 'error', 'persist' or 'missing', got "
                              f"{self.fill_policy!r}")
        if self.format not in ("cf", "fluxval"):
            raise ConfigError(f"forcing.format: expected 'cf' or 'fluxval', got {self.format!r}")
        if self.leap_day not in ("error", "hold"):
            raise ConfigError(f"forcing.leap_day: expected 'error' or 'hold', got {self.leap_day!r}")
        if self.sites is not None and self.format != "fluxval":
            raise ConfigError(f"forcing.sites: selects sites of a FluxVal file (format: fluxval); a '{self.format}' "
                              f"forcing file runs every cell it has, so the list would be ignored: remove it")


@dataclass
class ExportSection:
    """``exports:``: the unit and NEE sign convention of the fluxes handed to the host."""

    unit: str = "kgC m-2 s-1"
    sign_convention: str = "uptake_positive"

    def validate(self) -> None:
        try:
            flux_unit(self.unit)
        except ValueError as exc:
            raise ConfigError(f"exports.unit: {exc}") from None
        try:
            SignConvention.parse(self.sign_convention)
        except ValueError as exc:
            raise ConfigError(f"exports.sign_convention: {exc}") from None


@dataclass
class RegridSection:
    """``regrid:``: the weight generator, the weight cache and the host -> model methods."""

    backend: str = "auto"
    cache_dir: str | None = None  # None: no on-disk cache; a path: weights are written/read there
    host_to_model_states: str = "bilinear"
    host_to_model_fluxes: str = "conservative"

    def validate(self) -> None:
        from tamrl_coupler.regrid.backends import BACKENDS, METHODS

        if self.backend not in ("auto", *BACKENDS):
            raise ConfigError(f"regrid.backend: expected auto or one of {list(BACKENDS)}, got {self.backend!r}")
        if self.host_to_model_states not in METHODS:
            raise ConfigError(f"regrid.host_to_model_states: expected one of {list(METHODS)}, got "
                              f"{self.host_to_model_states!r}")
        if not self.host_to_model_fluxes.startswith("conservative") or self.host_to_model_fluxes not in METHODS:
            raise ConfigError(f"regrid.host_to_model_fluxes: expected a conservative method (conservative, "
                              f"conservative_2nd: fluxes keep their totals), got {self.host_to_model_fluxes!r}")


@dataclass
class DeviceSection:
    """``device:``: where the model runs on each rank, and its threads (fixed: results must not depend on cores)."""

    # auto (a GPU where there is one, else the CPU) | cpu | cuda (or gpu) | cuda:N. An explicit GPU request on a
    # rank without a visible GPU is an error (docs/reliability.md), never a silent fall back to the CPU
    kind: str = "auto"
    threads: int = 1  # torch threads per rank (fixed so results do not depend on the machine's core count)
    cuda_graphs: bool = False  # on a GPU: replay each block's evaluation from a captured CUDA graph

    def validate(self) -> None:
        import re

        if not (self.kind in ("auto", "cpu", "cuda", "gpu") or re.fullmatch(r"cuda:\d+", self.kind)):
            raise ConfigError(f"device.kind: expected auto, cpu, cuda (or gpu) or cuda:N, got {self.kind!r}")
        if not 1 <= self.threads <= MAX_THREADS:
            raise ConfigError(f"device.threads: expected a number of threads from 1 to {MAX_THREADS}, got "
                              f"{self.threads} (0 or negative is not clamped: say how many)")


def check_prefix(value: str, key: str) -> None:
    """A file-name prefix stays a file name: no directory part, so every file lands in the output directory."""
    bad = (not value or value.strip() != value or value in (".", "..") or "/" in value or "\\" in value
           or "\0" in value or value.startswith(".."))
    if bad:
        raise ConfigError(f"{key}: {value!r} must be a plain file-name prefix (no '/', no '..', not absolute, not "
                          f"empty): files are written into the output directory given on the command line")
    if len(value.encode()) > MAX_PREFIX:
        raise ConfigError(f"{key}: {len(value.encode())} bytes long; file names are limited to 255 bytes and the "
                          f"product adds a time stamp and suffix: use at most {MAX_PREFIX} bytes")


@dataclass
class OutputSection:
    """``output:``: the offline driver's files (fluxes, map, site scores, inversion prior)."""

    prefix: str = "tamrl_fluxes"
    every: int = 1  # write every n-th coupling step
    map: bool = False  # a PNG map of the time-mean NEE at the end (the demo)
    score: str | None = None  # observed fluxes (FluxVal-layout file) to score a point-set run against
    prior: PriorSection | None = None

    def validate(self) -> None:
        check_prefix(self.prefix, "output.prefix")
        if self.every < 1:
            raise ConfigError(f"output.every: expected a positive number of coupling steps, got {self.every}")


@dataclass
class PriorSection:
    """``output.prior:``: the inversion prior: target grid, averaging window, file prefix."""

    grid: GridSpec = field(default_factory=lambda: GridSpec.parse("host"))  # host, a CDO-style name or a file
    frequency: str = "daily"  # 3hourly | daily | monthly
    prefix: str = "tamrl_prior"

    def __post_init__(self) -> None:
        self.grid = GridSpec.from_config(self.grid, "output.prior.grid")

    def validate(self) -> None:
        self.grid.require("output.prior.grid", GridKind.HOST, GridKind.NAME, GridKind.FILE)
        if self.frequency not in ("3hourly", "daily", "monthly"):
            raise ConfigError(f"output.prior.frequency: expected 3hourly, daily or monthly, got {self.frequency!r}")
        check_prefix(self.prefix, "output.prior.prefix")


@dataclass
class RunConfig:
    """The run YAML: time axis and coupling step, host, forcing, model, exports, regrid, device, output."""

    reference_date: str  # time axis origin, 00:00 UTC
    start: str  # first coupling step (offline driver)
    end: str  # end of the last coupling step (offline driver)
    coupling_step: int | str  # seconds dividing a day, or "period" (one step per model period, e.g. monthly sites)
    host: HostSection
    forcing: ForcingSection = field(default_factory=ForcingSection)  # the offline driver's; a host needs none
    model: ModelSection = field(default_factory=ModelSection)
    exports: ExportSection = field(default_factory=ExportSection)
    regrid: RegridSection = field(default_factory=RegridSection)
    device: DeviceSection = field(default_factory=DeviceSection)
    output: OutputSection = field(default_factory=OutputSection)
    budget: BudgetSection = field(default_factory=BudgetSection)  # NEE's carbon-budget mode (settings/budget.py)
    base_dir: str | None = None  # set by the loader: the config file's directory

    def validate(self) -> None:
        times = {}
        for key in ("reference_date", "start", "end"):
            value = getattr(self, key)
            try:
                times[key] = np.datetime64(value, "s")
            except (ValueError, TypeError, OverflowError):
                raise ConfigError(f"{key}: {value!r} is not an ISO date/time such as 2015-01-01T00:00:00") from None
            year = times[key].astype("datetime64[Y]").astype(np.int64) + 1970
            if not 1 <= year <= 9999:
                raise ConfigError(f"{key}: {value!r} is not a date of years 1 to 9999 (ISO 8601, the clock's range)")
        if times["end"] <= times["start"]:
            raise ConfigError(f"end: {self.end} is not after start {self.start}: nothing would be run")
        if isinstance(self.coupling_step, str):
            if self.coupling_step != "period":
                raise ConfigError(f"coupling_step: expected seconds dividing a day or 'period', got "
                                  f"{self.coupling_step!r}")
        elif self.coupling_step <= 0 or SECONDS_PER_DAY % self.coupling_step:
            raise ConfigError(f"coupling_step: {self.coupling_step} s must divide a day ({SECONDS_PER_DAY} s) or be "
                              f"'period'")
        # the whole span, checked before any step plan is built (a plan of 10^9 steps does not fit in memory)
        span = int((times["end"] - times["start"]).astype(np.int64))
        step = 28 * SECONDS_PER_DAY if self.coupling_step == "period" else int(self.coupling_step)
        if span // step > MAX_STEPS:
            raise ConfigError(f"end: {self.start} to {self.end} is {span // step:,} coupling steps of {step} s, more "
                              f"than {MAX_STEPS:,} in one run: split it into runs that continue from restarts "
                              f"(--steps, --restart)")

    def path(self, value: str | None) -> Path | None:
        """A path of this config: relative to its file's directory, ``package://`` inside the package."""
        return resolve_path(value, Path(self.base_dir) if self.base_dir else None)

    def grid(self, spec: GridSpec) -> str | Path | None:
        """What the regridder takes for ``spec``: a CDO-style name, a resolved grid file, or None (a keyword)."""
        if spec.kind is GridKind.NAME:
            return spec.text
        if spec.kind is GridKind.FILE:
            return self.path(spec.text)
        return None


def load_run_config(source: str | Path | dict | RunConfig) -> RunConfig:
    """A RunConfig from a YAML path, a mapping or an existing RunConfig."""
    if isinstance(source, RunConfig):
        return source
    if isinstance(source, dict):
        return from_dict(RunConfig, source)
    path = resolve_path(source, None)
    cfg = load_yaml(RunConfig, path)
    cfg.base_dir = str(Path(path).resolve().parent)
    return cfg
