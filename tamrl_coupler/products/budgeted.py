"""The budget modes applied to predictions made offline (``predict``, the global test bed, the CV's held-out towers):
the coupled component's rule period by period (physics/budget.py), each cell from its first period, the prior
looked up at each cell's position. GPP and the spreads are untouched; NEE is made again from GPP and the adjusted
Reco."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tamrl_coupler.io.budgetprior import describe_prior, resolve_prior
from tamrl_coupler.physics.budget import BudgetSpec, apply_budget
from tamrl_coupler.physics.carbon import SignConvention, nee_from_components


def budget_fields(fields: dict[str, np.ndarray], starts: np.ndarray, period: str, spec: BudgetSpec,
                  lat: np.ndarray, lon: np.ndarray, prior: str = "auto", checkpoint: str | Path | None = None,
                  fingerprint: str = "", weight_m2: np.ndarray | None = None,
                  convention: SignConvention | str = SignConvention.UPTAKE_POSITIVE
                  ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(cells, T) ``fields`` with gpp, reco (as trained) -> the same fields with Reco and NEE in ``spec``'s mode,
    and the attributes that say so. Periods before a cell's first value (NaN) are not counted; its sums start
    there, as a run started there would."""
    p = None
    if spec.adjusts and not (prior == "auto" and checkpoint is None):
        p = resolve_prior(prior, checkpoint or "", None)
    attrs = spec.attributes(describe_prior(p, fingerprint))
    if not spec.adjusts:
        return fields, attrs
    pg = None
    if p is not None:
        g, r, _ = p.for_cells(lat, lon)
        pg = (g, r)
    reco, factor = apply_budget(fields["gpp"], fields["reco"], starts, period, spec, pg, weight_m2)
    out = dict(fields)
    out["reco"] = np.where(np.isfinite(fields["reco"]), reco, np.nan)
    out["nee"] = nee_from_components(out["gpp"], out["reco"], convention)
    finite = factor[np.isfinite(fields["reco"])]
    if finite.size:
        q = np.percentile(finite, [5, 50, 95])
        attrs["budget_factor_percentiles_5_50_95"] = " ".join(f"{v:.4g}" for v in q)
    return out, attrs


__all__ = ["budget_fields"]
