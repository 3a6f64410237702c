"""The one internal form every reader produces: sites x time arrays of drivers and carbon-flux targets.

Why one form: training, CV, predict and evaluate never care whether the data came from FluxVal, FLUXNET2015 or
AmeriFlux; readers convert units and the sign convention at the edge so that everything inside is
gC m-2 d-1 with NEE = GPP - Reco (uptake positive).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from tamrl_coupler import vocabulary
from tamrl_coupler.errors import InputError
from tamrl_coupler.physics.carbon import SignConvention, nee_from_components
from tamrl_coupler.vocabulary import igbp_index


@dataclass
class FluxDataset:
    """Drivers and targets on (site, time); NaN marks a missing value everywhere (never a fill number)."""

    sites: np.ndarray  # (S,) str
    time: np.ndarray  # (T,) datetime64[ns], first day of each period
    period: str  # "monthly" | "daily"
    drivers: dict[str, np.ndarray]  # name -> (S, T) float64, in the vocabulary's driver units
    targets: dict[str, np.ndarray]  # gpp, reco, nee -> (S, T) float64 gC m-2 d-1, nee = gpp - reco
    igbp: np.ndarray  # (S,) str ("" unknown)
    lat: np.ndarray = field(default_factory=lambda: np.zeros(0))
    lon: np.ndarray = field(default_factory=lambda: np.zeros(0))
    elevation: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (S,) m above sea level, NaN unknown
    weight: np.ndarray | None = None  # (S, T) per-period training weight of the targets (e.g. QC fraction)
    source: str = ""
    attrs: dict[str, str] = field(default_factory=dict)
    convention: SignConvention = SignConvention.UPTAKE_POSITIVE

    def __post_init__(self) -> None:
        shape = (len(self.sites), len(self.time))
        for kind, arrays in (("driver", self.drivers), ("target", self.targets)):
            for name, arr in arrays.items():
                if arr.shape != shape:
                    raise InputError(f"{self.source}: {kind} '{name}' has shape {arr.shape}, expected {shape}")
        if len(self.lat) == 0:
            self.lat = np.full(shape[0], np.nan)
            self.lon = np.full(shape[0], np.nan)
        if len(self.elevation) == 0:
            self.elevation = np.full(shape[0], np.nan)
        if self.weight is not None and self.weight.shape != shape:
            raise InputError(f"{self.source}: target weight has shape {self.weight.shape}, expected {shape}")
        if "igbp" not in self.drivers:
            self.drivers["igbp"] = np.repeat(igbp_index(self.igbp)[:, None], shape[1], axis=1)
        if "elevation" not in self.drivers and np.isfinite(self.elevation).any():  # static: one value per site
            self.drivers["elevation"] = np.repeat(np.asarray(self.elevation, float)[:, None], shape[1], axis=1)

    @property
    def n_sites(self) -> int:
        return len(self.sites)

    def driver_array(self, names: list[str], required: set[str] | None = None) -> np.ndarray:
        """(S, T, D) float32 in ``names`` order; drivers the data lack are all-NaN (the model masks them).

        A *required* driver that is absent is an error naming the driver and the source file.
        """
        out = np.full((self.n_sites, len(self.time), len(names)), np.nan, dtype=np.float32)
        for j, name in enumerate(names):
            if name in self.drivers:
                out[:, :, j] = self.drivers[name]
            elif required and name in required:
                raise InputError(
                    f"{self.source}: required driver '{name}' ({vocabulary.DRIVERS[name].units}) is missing; "
                    f"found {sorted(self.drivers)}"
                )
        return out

    def has_targets(self, names: Iterable[str] | None = None) -> bool:
        """Whether it holds the targets ``names`` (default: every target of the vocabulary), with some values."""
        names = list(vocabulary.TARGETS if names is None else names)
        return all(t in self.targets for t in names) and all(bool(np.isfinite(self.targets[t]).any()) for t in names)

    def subset(self, index: np.ndarray) -> FluxDataset:
        """The same data for the sites at ``index`` (for CV folds)."""
        return FluxDataset(
            sites=self.sites[index], time=self.time, period=self.period,
            drivers={k: v[index] for k, v in self.drivers.items()},
            targets={k: v[index] for k, v in self.targets.items()},
            igbp=self.igbp[index], lat=self.lat[index], lon=self.lon[index], elevation=self.elevation[index],
            weight=None if self.weight is None else self.weight[index], source=self.source, attrs=dict(self.attrs),
            convention=self.convention,
        )

    def periods(self, first: np.datetime64 | str, n: int) -> FluxDataset:
        """The same sites for the ``n`` periods from ``first`` (a run's periods: no history before them)."""
        unit = "D" if self.period == "daily" else "M"
        starts = np.asarray(self.time).astype(f"datetime64[{unit}]")
        i = int(np.searchsorted(starts, np.datetime64(first, unit)))
        if n < 1 or i + n > starts.size or starts[i] != np.datetime64(first, unit):
            raise InputError(f"{self.source}: {n} {self.period} periods from {first} are not all in the data "
                             f"({starts[0]} to {starts[-1]})")
        cut = slice(i, i + n)
        return FluxDataset(
            sites=self.sites, time=self.time[cut], period=self.period,
            drivers={k: v[:, cut] for k, v in self.drivers.items()},
            targets={k: v[:, cut] for k, v in self.targets.items()}, igbp=self.igbp, lat=self.lat, lon=self.lon,
            elevation=self.elevation, weight=None if self.weight is None else self.weight[:, cut],
            source=self.source, attrs=dict(self.attrs), convention=self.convention,
        )


def targets_from_fluxnet(gpp: np.ndarray, nee_fluxnet: np.ndarray) -> dict[str, np.ndarray]:
    """FLUXNET's NEE = Reco - GPP -> the product's targets, with Reco = NEE_fluxnet + GPP and NEE = GPP - Reco.

    The product NEE is recomputed from GPP and Reco so that the targets satisfy the identity exactly too.
    """
    reco = nee_fluxnet + gpp
    return {"gpp": gpp, "reco": reco, "nee": nee_from_components(gpp, reco, SignConvention.UPTAKE_POSITIVE)}
