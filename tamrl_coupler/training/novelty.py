"""Training side of the site-level error model: the training towers' mean task embeddings, and the novelty of
held-out towers' days against them (what the CV writes beside its predictions, for ``scripts/calibrate_spread.py``).
"""

from __future__ import annotations

import numpy as np

from tamrl_coupler.data.dataset import FluxDataset
from tamrl_coupler.model.ensemble import Ensemble
from tamrl_coupler.model.site_error import EmbeddingNovelty


def daily_embeddings(ens: Ensemble, data: FluxDataset, x: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
    """The daily ensemble's fields over each site's record and every day's member embeddings (S, T, M, E)."""
    from tamrl_coupler.model.records import predict_records

    x = data.driver_array(ens.meta.driver_names) if x is None else x
    f = predict_records(ens, x, data.time[0], data.lat, embeddings=True)
    return f, f.pop("z")


def embedding_centres(z: np.ndarray) -> np.ndarray:
    """(S, T, M, E) embeddings -> (M, S, E): each member's mean embedding of each site over its days."""
    ok = np.isfinite(z).all(axis=(2, 3))
    centres = np.stack([z[s, ok[s]].astype(np.float64).mean(axis=0) for s in range(z.shape[0])])  # (S, M, E)
    return centres.transpose(1, 0, 2).astype(np.float32)


def training_novelty(ens: Ensemble, train: FluxDataset) -> EmbeddingNovelty:
    """The novelty measure of ``ens`` against the towers it was trained on (their whole records, warm)."""
    _, z = daily_embeddings(ens, train)
    keep = np.isfinite(z).all(axis=(2, 3)).any(axis=1)
    return EmbeddingNovelty.fit(embedding_centres(z[keep]))
