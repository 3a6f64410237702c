"""Which sites a checkpoint was trained on, so that scores on them are reported as in-sample, apart from the honest
out-of-sample ones.

Why: scoring a model on its own training towers flatters it (the shipped daily model's GPP RMSE is 1.80 on its 95
training towers and 2.40 out of sample in grouped CV); a table that mixes them without saying so misleads. The
checkpoint's header lists its training sites (``extra["sites"]``, written by the daily trainer); a checkpoint
without that list is said to be unknown, never guessed.
"""

from __future__ import annotations

import ast
from typing import Any

import numpy as np

from tamrl_coupler.training.metrics import metrics_table


def training_sites(meta: Any) -> frozenset[str] | None:
    """The site IDs of the checkpoint's training set (from its header), or None when the header does not list them."""
    raw = (getattr(meta, "extra", None) or {}).get("sites")
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            raw = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            raw = [s.strip() for s in raw.strip("[]").split(",")]
    return frozenset(str(s).strip().strip("'\"") for s in raw if str(s).strip())


def in_sample_mask(sites: np.ndarray, training: frozenset[str] | None) -> np.ndarray | None:
    """(site,) True where a site is one of ``training``; None when the training sites are unknown."""
    if training is None:
        return None
    return np.array([str(s) in training for s in np.asarray(sites)], dtype=bool)


def sample_tables(pred: dict[str, np.ndarray], obs: dict[str, np.ndarray], igbp: np.ndarray, sites: np.ndarray,
                  in_sample: np.ndarray | None, min_site_obs: int = 6) -> dict:
    """{"out_of_sample": table, "in_sample": table, "sites": {...}} (tables as :func:`metrics_table`, each only when
    it has sites); {} when the training sites are unknown."""
    if in_sample is None:
        return {}
    out: dict = {"sites": {"in_sample": [str(s) for s in sites[in_sample]],
                           "out_of_sample": [str(s) for s in sites[~in_sample]]}}
    for key, mask in (("out_of_sample", ~in_sample), ("in_sample", in_sample)):
        if mask.any():
            idx = np.flatnonzero(mask)
            out[key] = metrics_table({k: v[idx] for k, v in pred.items()}, {k: v[idx] for k, v in obs.items()},
                                     igbp[idx], min_site_obs)
    return out
