"""Training side of the site-level error model: the training towers' mean task embeddings, and the novelty of
held-out towers' days against them (what the CV writes beside its predictions, for ``scripts/calibrate_spread.py``).
"""

from __future__ import annotations

import numpy as np

from tamrl_coupler.data.dataset import FluxDataset
from tamrl_coupler.model.ensemble import Ensemble
from tamrl_coupler.model.novelty import EmbeddingNovelty


def daily_embeddings(ens: Ensemble, data: FluxDataset, x: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
    """The ensemble's fields and every period's member embeddings (S, T, M, E): a daily ensemble over each site's
    record (whole-record evaluation), a monthly one stepped over the whole axis (as ``predict`` does)."""
    x = data.driver_array(ens.meta.driver_names) if x is None else x
    if ens.meta.period != "daily":
        return stepped_embeddings(ens, x, data.time[0], data.lat)
    from tamrl_coupler.model.records import predict_records

    f = predict_records(ens, x, data.time[0], data.lat, embeddings=True)
    return f, f.pop("z")


def stepped_embeddings(ens: Ensemble, x: np.ndarray, first_period, lat: np.ndarray) -> tuple[dict, np.ndarray]:
    """Step the ensemble over x (S, T, D) from a fresh state: its fields (S, T) and the embedding z each period was
    predicted with (S, T, M, E)."""
    import torch

    n, t_len = x.shape[:2]
    state = ens.init_state(n, first_period=first_period, lat=lat)
    zs = np.empty((n, t_len, ens.n_members, ens.kernel.embedding), dtype=np.float32)
    fields: dict[str, np.ndarray] = {}
    xt = torch.from_numpy(np.asarray(x, dtype=np.float32))
    for t in range(t_len):
        zs[:, t] = ens.ensure_embedding(state).cpu().numpy()
        f, state = ens.step(xt[:, t], state)
        for k, v in f.to_numpy().items():
            fields.setdefault(k, np.empty((n, t_len)))[:, t] = v
    return fields, zs


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
