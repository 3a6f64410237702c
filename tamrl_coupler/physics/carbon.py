"""Carbon balance and sign conventions.

The product's interface convention is NEE = GPP - Reco (uptake positive, like CESM's ``Fall_fco2_lnd``).
FLUXNET writes NEE = Reco - GPP (positive to the atmosphere). Conversions happen only at the edges
(readers and writers), and every file says which convention it holds.
"""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

import numpy as np

ArrayT = TypeVar("ArrayT")


class SignConvention(str, Enum):
    """Which way NEE points."""

    UPTAKE_POSITIVE = "uptake_positive"  # NEE = GPP - Reco  (product default; CF positive="down")
    ATMOSPHERE_POSITIVE = "atmosphere_positive"  # NEE = Reco - GPP  (FLUXNET; CF positive="up")

    @classmethod
    def parse(cls, value: str | SignConvention) -> SignConvention:
        if isinstance(value, SignConvention):
            return value
        aliases = {
            "uptake_positive": cls.UPTAKE_POSITIVE,
            "gpp_minus_reco": cls.UPTAKE_POSITIVE,
            "down": cls.UPTAKE_POSITIVE,
            "atmosphere_positive": cls.ATMOSPHERE_POSITIVE,
            "reco_minus_gpp": cls.ATMOSPHERE_POSITIVE,
            "fluxnet": cls.ATMOSPHERE_POSITIVE,
            "up": cls.ATMOSPHERE_POSITIVE,
        }
        try:
            return aliases[str(value).lower()]
        except KeyError:
            raise ValueError(
                f"sign convention {value!r} is not known; expected one of {sorted(aliases)}"
            ) from None

    @property
    def cf_positive(self) -> str:
        """The CF ``positive`` attribute for NEE in this convention."""
        return "down" if self is SignConvention.UPTAKE_POSITIVE else "up"

    @property
    def formula(self) -> str:
        return "NEE = GPP - Reco" if self is SignConvention.UPTAKE_POSITIVE else "NEE = Reco - GPP"


DEFAULT_CONVENTION = SignConvention.UPTAKE_POSITIVE


def nee_from_components(gpp: ArrayT, reco: ArrayT, convention: SignConvention | str = DEFAULT_CONVENTION,
                        out: ArrayT | None = None) -> ArrayT:
    """NEE from GPP and Reco so that the balance identity holds exactly (one IEEE subtraction).

    ``out`` (a NumPy array or torch tensor) receives the result without a temporary: the coupling loop's export.
    """
    convention = SignConvention.parse(convention)
    a, b = (gpp, reco) if convention is SignConvention.UPTAKE_POSITIVE else (reco, gpp)
    if out is None:
        return a - b
    if isinstance(out, np.ndarray):
        return np.subtract(a, b, out=out)
    import torch

    return torch.sub(a, b, out=out)


def convert_nee(nee: ArrayT, source: SignConvention | str, target: SignConvention | str) -> ArrayT:
    """Re-express NEE in another convention (a sign flip, exact)."""
    if SignConvention.parse(source) is SignConvention.parse(target):
        return nee
    return -nee


def balance_residual(gpp: np.ndarray, reco: np.ndarray, nee: np.ndarray,
                     convention: SignConvention | str = DEFAULT_CONVENTION) -> np.ndarray:
    """``nee - nee_from_components(gpp, reco)``: zero everywhere when the balance holds exactly."""
    return nee - nee_from_components(gpp, reco, convention)


# How each export the vocabulary derives on the host cells (``derived_from``, no ``carries``) is made from the
# exports it names, in that order, in the interface's sign convention, into the host's array (``out``). An export
# without an entry here cannot be registered: it would never be written.
EXPORT_DERIVATIONS = {"nee": nee_from_components}
