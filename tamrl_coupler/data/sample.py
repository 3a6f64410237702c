"""The small FluxVal-layout sample shipped inside the package (derived from CARDAMOM-FluxVal v1.0, CC-BY-4.0).

It lets ``predict``, ``evaluate``, the demo and the tests run on a fresh machine without ../shared. Made by
:func:`make_sample` from the shared file; the attribution travels in the file's attributes.
"""

from __future__ import annotations

from pathlib import Path

SAMPLE_SITES = ("DK-Sor", "DE-Tha", "US-Var", "AU-How", "DE-Geb", "FI-Hyy", "GF-Guy", "CZ-wet", "BE-Vie")


def sample_path() -> Path:
    return Path(__file__).resolve().parents[1] / "sample_data" / "fluxval_sample.nc"


def make_sample(source: str | Path, out: str | Path | None = None, sites: tuple[str, ...] = SAMPLE_SITES) -> Path:
    """Copy ``sites`` (all months, all variables) out of the FluxVal file, keeping its attribution."""
    import xarray as xr

    out = Path(out) if out is not None else sample_path()
    with xr.open_dataset(source) as ds:
        present = [s for s in sites if s in set(ds["site"].values.astype(str))]
        sub = ds.sel(site=present).load()
    sub = sub.drop_vars([v for v in ("burned_area",) if v in sub])
    sub.attrs.update({
        "title": "tamrl-coupler sample: " + sub.attrs.get("title", "CARDAMOM-FluxVal v1.0"),
        "derived_from": f"{Path(source).name}: sites {', '.join(present)} (all months), burned_area dropped",
        "nee_convention": "atmosphere_positive",
        "nee_formula": "NEE = Reco - GPP (FLUXNET); Reco = nee + gpp",
    })
    encoding = {v: {"zlib": True, "complevel": 5} for v in sub.data_vars if sub[v].dtype.kind == "f"}
    out.parent.mkdir(parents=True, exist_ok=True)
    sub.to_netcdf(out, encoding=encoding)
    return out


if __name__ == "__main__":  # python -m tamrl_coupler.data.sample ../shared/data/fluxval/fluxval_monthly.nc
    import sys

    print(make_sample(sys.argv[1]))
