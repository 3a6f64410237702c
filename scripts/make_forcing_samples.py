"""Cut the small real forcing samples the reader tests use (tests/data/forcing/) from public files, keeping their
layout byte for byte where it matters (packed int16 with scale_factor/add_offset, CMOR attributes, calendars,
GRIB messages) and their attribution and licence in the file attributes.

    python scripts/make_forcing_samples.py SOURCES_DIR [--out tests/data/forcing]

SOURCES_DIR holds the source files, taken from the repositories at the commits in SOURCES below
(``git -C <clone> show <commit>:<path> > SOURCES_DIR/<name>``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
from pathlib import Path

import netCDF4

ERA5_CITE = ("Hersbach, H. et al. (2020) The ERA5 global reanalysis, Q. J. R. Meteorol. Soc. 146, 1999-2049, "
             "doi:10.1002/qj.3803; contains modified Copernicus Climate Change Service information (ERA5 hourly data "
             "on single levels, doi:10.24381/cds.adbb2d47)")
SOURCES = {
    "era5_cds_hourly_point_2020-01.nc": dict(
        src="era5_testfile.nc", repo="pvlib/pvlib-python", commit="545bafaece023e050b82017290d44b12d620d59f",
        path="pvlib/data/era5_testfile.nc", licence="BSD-3-Clause (pvlib python); ERA5 data: Copernicus licence",
        what="ERA5 hourly single levels as the CDS wrote NetCDF until 2024 (grib_to_netcdf, packed int16), one "
             "point (55.695 N, 12.495 E), first 10 days of 2020", cite=ERA5_CITE, time=slice(0, 240)),
    "era5_cds_field_1995-07-14T12.nc": dict(
        src="era5_1995-07-14T12.nc", repo="NCAR/geocat-datafiles", commit="c06ec3ec6d1c38711c6d4ac6c327c680a0a8aced",
        path="netcdf_files/era5_1995-07-14T12.nc", licence="Apache-2.0 (geocat-datafiles); ERA5 data: Copernicus "
        "licence", what="ERA5 2 m temperature, dew point and surface pressure at 1995-07-14 12 UTC as the CDS wrote "
        "it (packed int16, scalar time), a 12 x 16 cell corner", cite=ERA5_CITE,
        space={"latitude": slice(0, 12), "longitude": slice(0, 16)}, keep=("t2m", "d2m", "sp")),
    "cmip6_prsn_day_CanESM5_historical_r1i1p1f1_gn_19910101-19921231.nc": dict(
        src="prsn_day_CanESM5_historical_r1i1p1f1_gn_19910101-20101231.nc", repo="Ouranosinc/xclim-testdata",
        commit="e9097a8d5167d5c0f48c772a14f63f0362f569d3",
        path="data/cmip6/prsn_day_CanESM5_historical_r1i1p1f1_gn_19910101-20101231.nc",
        licence="MIT (xclim-testdata); CMIP6 data: CC-BY-4.0 (CCCma CanESM5)",
        what="CMIP6 CMOR daily snowfall flux (365_day calendar, time bounds), 1991-1992",
        cite="Swart, N. C. et al. (2019) CCCma CanESM5 model output prepared for CMIP6 CMIP historical, Earth "
             "System Grid Federation, doi:10.22033/ESGF/CMIP6.3610", time=slice(0, 730)),
    "cmip5_tas_Amon_CanESM2_rcp85_r1i1p1_200701-200712.nc": dict(
        src="tas_Amon_CanESM2_rcp85_r1i1p1_200701-200712.nc", repo="Ouranosinc/xclim-testdata",
        commit="e9097a8d5167d5c0f48c772a14f63f0362f569d3",
        path="data/cmip5/tas_Amon_CanESM2_rcp85_r1i1p1_200701-200712.nc",
        licence="MIT (xclim-testdata); CMIP5 data: CMIP5 terms of use (CCCma CanESM2)",
        what="CMOR monthly near-surface air temperature (365_day calendar, time bounds), 2007, an 8 x 10 cell "
             "corner over Europe", cite="CCCma CanESM2 rcp85 r1i1p1 model output prepared for CMIP5, ESGF",
        space={"lat": slice(48, 56), "lon": slice(0, 10)}),
}
GRIB = dict(name="era5_grib_t2m_2017-01-01T12.grib", src="era5-single-level-scalar-time.grib", repo="ecmwf/cfgrib",
            commit="2b58e81ace22c1632b3aded1de86207b103fe382",
            path="tests/sample-data/era5-single-level-scalar-time.grib",
            licence="Apache-2.0 (cfgrib); ERA5 data: Copernicus licence")


def subset(src: Path, dst: Path, meta: dict) -> None:
    time, space, keep = meta.get("time"), meta.get("space", {}), meta.get("keep")
    with netCDF4.Dataset(src) as a, netCDF4.Dataset(dst, "w", format=a.data_model) as b:  # the source's format
        a.set_auto_maskandscale(False)
        compress = a.data_model.startswith("NETCDF4")
        cut = {**space, **({"time": time} if time is not None else {})}
        names = [n for n in a.variables if keep is None or n in keep or n in a.dimensions
                 or n.endswith("_bnds") or n in ("time", "height")]
        for name, d in a.dimensions.items():
            n = len(range(*cut[name].indices(d.size))) if name in cut else d.size
            b.createDimension(name, None if d.isunlimited() else n)
        for name in names:
            v = a.variables[name]
            fill = v.getncattr("_FillValue") if "_FillValue" in v.ncattrs() else None
            o = b.createVariable(name, v.dtype, v.dimensions, fill_value=fill, zlib=compress)
            o.set_auto_maskandscale(False)
            o.setncatts({k: v.getncattr(k) for k in v.ncattrs() if k != "_FillValue"})
            o[...] = v[tuple(cut.get(dim, slice(None)) for dim in v.dimensions)] if v.dimensions else v[...]
        b.setncatts({k: a.getncattr(k) for k in a.ncattrs()})
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        b.setncattr("history", f"{stamp}: cut by tamrl-coupler scripts/make_forcing_samples.py from {meta['repo']}"
                               f"@{meta['commit']}:{meta['path']}\n" + str(getattr(a, "history", "")))
        b.setncattr("sample_source", f"https://github.com/{meta['repo']} commit {meta['commit']}, {meta['path']}")
        b.setncattr("sample_licence", meta["licence"])
        b.setncattr("sample_content", meta["what"])
        b.setncattr("sample_attribution", meta["cite"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sources", type=Path)
    ap.add_argument("--out", type=Path, default=Path("tests/data/forcing"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, meta in SOURCES.items():
        subset(args.sources / meta["src"], args.out / name, meta)
        print(f"wrote {args.out / name} ({(args.out / name).stat().st_size} bytes)")
    shutil.copyfile(args.sources / GRIB["src"], args.out / GRIB["name"])  # GRIB carries no attributes: README
    print(f"copied {args.out / GRIB['name']}")


if __name__ == "__main__":
    main()
