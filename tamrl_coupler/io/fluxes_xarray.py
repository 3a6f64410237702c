"""``open_fluxes(path)``: a run's flux file as an xarray Dataset, decoded, with its units and sign convention.

The flux file (written by :class:`~tamrl_coupler.io.fluxfile.FluxFileWriter`, or by a Fortran host through the
bridge) is plain CF, so ``xarray.open_dataset`` reads it; what this adds is what a reader would otherwise have to
know: the fill values off land become NaN and times datetimes (with bounds), every flux carries its UDUNITS string
(``units``), the product's name of its unit (``flux_unit``: ``kgC m-2 s-1`` says carbon, which ``kg m-2 s-1`` does
not) and, for NEE, its sign convention and formula; and it converts on the way in when asked (``convention``,
``unit``), with NEE recomputed from the converted GPP and Reco so that the balance stays exact.

Inversion prior files (``io/priorfile.py``: ``nee`` and ``nee_uncertainty`` per m2 of grid cell) open the same way;
an uncertainty (``<flux>_uncertainty``) follows its flux's unit, never its sign.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tamrl_coupler import vocabulary
from tamrl_coupler.errors import InputError
from tamrl_coupler.io.fluxfile import flux_file_metadata, long_name, standard_name
from tamrl_coupler.physics.carbon import SignConvention, convert_nee, nee_from_components
from tamrl_coupler.physics.units import FluxUnit, flux_unit


def open_fluxes(path: str | Path, convention: str | SignConvention | None = None, unit: str | None = None,
                chunks: Any = None) -> Any:
    """The flux file at ``path`` as an ``xarray.Dataset`` (``chunks``: dask chunks, as ``xarray.open_dataset``).

    ``convention`` (``uptake_positive`` | ``atmosphere_positive``) and ``unit`` (an export unit such as
    ``gC m-2 d-1``): the fluxes re-expressed on the way in, attributes (units, standard names, NEE's ``positive``
    and long name, the global ``sign_convention``) following them."""
    import xarray as xr

    path = Path(path)
    if not path.exists():
        raise InputError(f"flux file {path} does not exist")
    try:
        ds = xr.open_dataset(path, chunks=chunks)
    except (OSError, ValueError) as exc:
        raise InputError(f"flux file {path} is not a readable NetCDF file: {exc}") from None
    where = f"flux file {path}"
    source_unit, source_conv = flux_file_metadata(ds.attrs, where)
    fields = [f for f in vocabulary.EXPORTS if f in ds.data_vars]
    if not fields:
        raise InputError(f"{where}: none of the fluxes {list(vocabulary.EXPORTS)} is in it")
    sds = [f"{f}_uncertainty" for f in fields if f"{f}_uncertainty" in ds.data_vars]  # prior files
    target_unit = flux_unit(unit) if unit is not None else source_unit
    target_conv = SignConvention.parse(convention) if convention is not None else source_conv
    attrs = {f: dict(ds[f].attrs) for f in fields + sds}  # arithmetic drops them
    if target_unit != source_unit:
        ratio = target_unit.factor / source_unit.factor
        for f in fields + sds:
            ds[f] = ds[f] * ratio
        if {"gpp", "reco", "nee"} <= set(fields):  # the balance exact in the new unit too
            ds["nee"] = nee_from_components(ds["gpp"], ds["reco"], source_conv)
    if target_conv is not source_conv and "nee" in fields:
        ds["nee"] = convert_nee(ds["nee"], source_conv, target_conv)
    _describe(ds, attrs, target_unit, target_conv, target_conv is not source_conv)
    if target_conv is not source_conv:
        ds.attrs["nee_definition"] = f"{target_conv.formula} (converted from {source_conv.formula} when read)"
    return ds


def _describe(ds: Any, original: dict[str, dict], unit: FluxUnit, convention: SignConvention, flipped: bool) -> None:
    """The file's attributes of each flux, with what the values now are: unit, names, NEE's convention (a file's
    own long name is kept unless NEE's sign was flipped)."""
    for f, attrs in original.items():
        attrs.update(units=unit.udunits, flux_unit=unit.name)
        if f.endswith("_uncertainty"):  # the error of its flux: the flux's standard name with its modifier
            std = standard_name(f[: -len("_uncertainty")], unit, convention)
            attrs.pop("standard_name", None)
            if std:
                attrs["standard_name"] = f"{std} standard_error"
            ds[f].attrs = attrs
            continue
        if flipped or "long_name" not in attrs:
            attrs["long_name"] = long_name(f, convention)
        std = standard_name(f, unit, convention)
        attrs.pop("standard_name", None)
        if std:
            attrs["standard_name"] = std
        if f == "nee":
            attrs.update(positive=convention.cf_positive, sign_convention=convention.value,
                         nee_definition=convention.formula)
        ds[f].attrs = attrs
    ds.attrs.update(flux_unit=unit.name, flux_unit_description=unit.description, sign_convention=convention.value)
