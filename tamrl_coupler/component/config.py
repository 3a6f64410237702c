"""The run configuration (``tamrl-coupler run CONFIG``, the coupling component, the Fortran bridge).

One YAML file; every section is a dataclass and every error names its key path. Relative paths are taken from the
config file's directory; ``package://sample_data/x.nc`` names a file shipped inside the installed package.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from tamrl_coupler.config.schema import ConfigError, from_dict, load_yaml

PACKAGE_SCHEME = "package://"


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(text: str) -> str:
    """``${VAR}`` and ``${VAR:-default}`` (shell style), e.g. ``${TAMRL_SHARED:-../../shared}``."""
    def sub(m: re.Match) -> str:
        value = os.environ.get(m.group(1))
        if value is None:
            if m.group(2) is None:
                raise ConfigError(f"path {text!r}: environment variable {m.group(1)} is not set")
            return m.group(2)
        return value

    return _ENV.sub(sub, text)


def resolve_path(value: str | Path | None, base: Path | None) -> Path | None:
    """``package://rel`` -> inside the installed package; relative -> from ``base`` (the config's directory);
    ``${VAR:-default}`` is expanded first."""
    if value is None:
        return None
    text = expand_env(str(value))
    if text.startswith(PACKAGE_SCHEME):
        import tamrl_coupler

        return Path(tamrl_coupler.__file__).resolve().parent / text[len(PACKAGE_SCHEME):]
    p = Path(text).expanduser()
    if not p.is_absolute() and base is not None:
        p = base / p
    return p


@dataclass
class ModelSection:
    checkpoint: str | None = None  # None: the checkpoint shipped in the package
    grid: str = "host"  # "host" (model cells = host cells), a CDO-style name (r90x45) or a grid file
    # cells evaluated together; fixed blocks make results independent of the rank count. "auto": 256 (in cache)
    # when every rank runs on a CPU, 65536 (enough to fill a device) when they all run on GPUs
    block_size: int | str = "auto"
    # Seconds between ensemble evaluations inside a model period, dividing a day (so it divides every period). The
    # period's first interval and its last step always evaluate; between evaluations the period estimate is reused
    # and only the step downscaling changes (component/schedule.py).
    update_interval: int = 86400

    def validate(self) -> None:
        if isinstance(self.block_size, str):
            if self.block_size != "auto":
                raise ConfigError(f"model.block_size: expected a positive integer or 'auto', got {self.block_size!r}")
        elif self.block_size < 1:
            raise ConfigError(f"model.block_size: expected a positive integer, got {self.block_size}")
        if self.update_interval <= 0 or 86400 % self.update_interval:
            raise ConfigError(f"model.update_interval: {self.update_interval} s must be a positive number of "
                              f"seconds dividing a day (86400 s), so that it divides every model period")


@dataclass
class HostSection:
    grid: str  # a grid file (CF lat/lon with bounds), a CDO-style name, or "forcing" (the forcing file's grid)
    landfrac_variable: str = "landfrac"  # in the forcing/grid file, for the offline driver
    area_variable: str = "cell_area"


@dataclass
class ForcingSection:
    files: list[str] = field(default_factory=list)  # paths or globs, read in time order (offline driver)
    variables: dict[str, str] = field(default_factory=dict)  # product name -> name in the files (ERA5, GSWP3 ...)
    fill_policy: str = "error"  # error | persist (repeat the cell's last valid value) | missing (NaN to the model)
    check_range: bool = True
    format: str = "cf"  # cf | fluxval (the FluxVal site file, converted to CF forcing at run start)
    sites: list[str] | None = None  # fluxval: run only these sites (default all)

    def validate(self) -> None:
        if self.fill_policy not in ("error", "persist", "missing"):
            raise ConfigError(f"forcing.fill_policy: expected 'error', 'persist' or 'missing', got "
                              f"{self.fill_policy!r}")
        if self.format not in ("cf", "fluxval"):
            raise ConfigError(f"forcing.format: expected 'cf' or 'fluxval', got {self.format!r}")


@dataclass
class ExportSection:
    unit: str = "kgC m-2 s-1"
    sign_convention: str = "uptake_positive"

    def validate(self) -> None:
        from tamrl_coupler.physics.carbon import SignConvention
        from tamrl_coupler.physics.units import flux_unit

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
    backend: str = "auto"
    cache_dir: str | None = None  # None: no on-disk cache; a path: weights are written/read there
    host_to_model_states: str = "bilinear"
    host_to_model_fluxes: str = "conservative"


@dataclass
class DeviceSection:
    kind: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 1  # torch threads per rank (fixed so results do not depend on the machine's core count)
    cuda_graphs: bool = False  # on a GPU: replay each block's evaluation from a captured CUDA graph


@dataclass
class OutputSection:
    prefix: str = "tamrl_fluxes"
    every: int = 1  # write every n-th coupling step
    map: bool = False  # a PNG map of the time-mean NEE at the end (the demo)
    score: str | None = None  # observed fluxes (FluxVal-layout file) to score a point-set run against
    prior: PriorSection | None = None


@dataclass
class PriorSection:
    grid: str = "host"  # target grid: "host", a CDO-style name or a grid file
    frequency: str = "daily"  # 3hourly | daily | monthly
    prefix: str = "tamrl_prior"

    def validate(self) -> None:
        if self.frequency not in ("3hourly", "daily", "monthly"):
            raise ConfigError(f"prior.frequency: expected 3hourly, daily or monthly, got {self.frequency!r}")


@dataclass
class RunConfig:
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
    base_dir: str | None = None  # set by the loader: the config file's directory

    def validate(self) -> None:
        if isinstance(self.coupling_step, str):
            if self.coupling_step != "period":
                raise ConfigError(f"coupling_step: expected seconds dividing a day or 'period', got "
                                  f"{self.coupling_step!r}")
        elif self.coupling_step <= 0 or 86400 % self.coupling_step:
            raise ConfigError(f"coupling_step: {self.coupling_step} s must divide a day (86400 s) or be 'period'")

    def path(self, value: str | None) -> Path | None:
        return resolve_path(value, Path(self.base_dir) if self.base_dir else None)



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
