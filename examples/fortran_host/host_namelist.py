"""Writes the example land host's namelist (/host/) from a tamrl-coupler run config and the product's vocabulary.

A real host's case scripts turn the case configuration into namelists; this is that step for the example. It
resolves the forcing file and its variable names, the import fields (chosen from the forcing exactly as the offline
driver chooses them) and the export fields (every export of the vocabulary, in its order), the time axis (forcing
times -> seconds since the config's reference date, lower time bounds when the file has them, as the offline driver
reads them), the coupling step and the number of steps, and the metadata the host copies into its flux file so that
its file has the offline driver's variables and attributes. It refuses what the small host does not do (several
forcing files, unit conversions) instead of running something different from the offline driver.

    python examples/fortran_host/host_namelist.py CONFIG OUTDIR [--steps N] > OUTDIR/land_host.nml
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def stamp(t: np.datetime64) -> str:
    """The offline driver's file-name time stamp (20150101T000000)."""
    return str(np.datetime64(t, "s")).replace("-", "").replace(":", "")


def fortran_string(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def namelist(config_path: str, outdir: Path, steps: int) -> str:
    import netCDF4

    from tamrl_coupler import __version__, vocabulary
    from tamrl_coupler.host.offline import import_fields_for
    from tamrl_coupler.io.fluxfile import field_attributes, file_attributes
    from tamrl_coupler.io.forcing import expand_files
    from tamrl_coupler.ncfiles import parse_time_units
    from tamrl_coupler.physics.carbon import SignConvention
    from tamrl_coupler.physics.units import flux_unit
    from tamrl_coupler.settings.run import GridKind, load_run_config

    cfg = load_run_config(config_path)
    if cfg.forcing is None:
        raise SystemExit(f"{config_path}: the example host needs a forcing section")
    files = expand_files(cfg.forcing.files, Path(cfg.base_dir) if cfg.base_dir else None)
    if len(files) != 1:
        raise SystemExit(f"{config_path}: forcing.files gives {len(files)} files; the example host reads one")
    forcing = files[0]
    grid = cfg.host.grid
    if grid.kind is not GridKind.FORCING and (grid.kind is not GridKind.FILE or
                                               cfg.path(grid.text).resolve() != forcing.resolve()):
        raise SystemExit(f"{config_path}: host.grid {grid.text!r} is not the forcing file; the example host reads "
                         f"its grid (lat, lon, {cfg.host.landfrac_variable}, {cfg.host.area_variable}) from the "
                         "forcing")
    reference = np.datetime64(cfg.reference_date, "s")
    start, end = np.datetime64(cfg.start, "s"), np.datetime64(cfg.end, "s")
    dt = int(cfg.coupling_step)
    n_total = int((end - start).astype(np.int64)) // dt
    n_steps = n_total if steps < 0 else min(steps, n_total)

    names = []
    with netCDF4.Dataset(forcing) as ds:
        imports = import_fields_for(cfg, set(ds.variables))
        for f in imports:
            name = cfg.forcing.variables.get(f, f)
            if name not in ds.variables:
                raise SystemExit(f"{forcing}: no variable '{name}' for import '{f}'")
            units, canonical = getattr(ds[name], "units", None), vocabulary.IMPORTS[f].units
            if units != canonical:
                raise SystemExit(f"{forcing}: variable '{name}' is in {units!r}; the example host passes values "
                                 f"unconverted, so it needs {canonical!r}")
            names.append(name)
        tv = ds["time"]
        scale, origin_s = parse_time_units(tv.units, str(forcing))
        bounds = getattr(tv, "bounds", "")
        bounds = bounds if bounds in ds.variables else ""

    unit = flux_unit(cfg.exports.unit)
    convention = SignConvention.parse(cfg.exports.sign_convention)
    exports = list(vocabulary.EXPORTS)
    # the offline driver's attributes, from the same functions its writer uses
    variable_attrs = [field_attributes(f, unit, convention, tuple(exports)) for f in exports]
    std_names = [a.get("standard_name", "") for a in variable_attrs]
    long_names = [a["long_name"] for a in variable_attrs]
    ancillary = [a.get("ancillary_variables", "") for a in variable_attrs]
    file_attrs = file_attributes(unit, convention)
    file_attrs["source"] = (f"tamrl-coupler {__version__} through its Fortran bridge, called by examples/fortran_host "
                            "(land_host)")
    file_attrs.update(cfg.budget.spec().attributes(f"budget.prior {cfg.budget.prior} of the run config"))  # the mode
    lines = [
        "&host",
        f"  config = {fortran_string(Path(config_path).resolve())}",
        f"  forcing = {fortran_string(forcing)}",
        f"  output = {fortran_string(outdir / (cfg.output.prefix + '_' + stamp(start) + '.nc'))}",
        f"  landfrac_variable = {fortran_string(cfg.host.landfrac_variable)}",
        f"  area_variable = {fortran_string(cfg.host.area_variable)}",
        f"  n_imports = {len(imports)}",
        f"  import_names = {', '.join(fortran_string(n) for n in imports)}",
        f"  forcing_names = {', '.join(fortran_string(n) for n in names)}",
        f"  n_exports = {len(exports)}",
        f"  export_names = {', '.join(fortran_string(n) for n in exports)}",
        f"  time_bounds = {fortran_string(bounds)}",
        f"  time_scale = {float(scale)!r}",
        f"  time_offset = {float((origin_s - reference).astype(np.int64))!r}",
        f"  reference_date = {fortran_string(str(reference).replace('T', ' '))}",
        f"  start_seconds = {float((start - reference).astype(np.int64))!r}",
        f"  dt = {float(dt)!r}",
        f"  n_steps = {n_steps}",
        f"  flux_units = {fortran_string(unit.udunits)}",
        f"  flux_unit_name = {fortran_string(unit.name)}",
        f"  sign_convention = {fortran_string(convention.value)}",
        f"  nee_formula = {fortran_string(convention.formula)}",
        f"  nee_positive = {fortran_string(convention.cf_positive)}",
        f"  long_names = {', '.join(fortran_string(n) for n in long_names)}",
        f"  standard_names = {', '.join(fortran_string(n) for n in std_names)}",
        f"  ancillary_variables = {', '.join(fortran_string(n) for n in ancillary)}",
        f"  n_file_attributes = {len(file_attrs)}",
        f"  file_attribute_names = {', '.join(fortran_string(n) for n in file_attrs)}",
        f"  file_attribute_values = {', '.join(fortran_string(v) for v in file_attrs.values())}",
        "/",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--steps", type=int, default=-1, help="number of coupling steps (-1: start to end)")
    args = parser.parse_args(argv)
    sys.stdout.write(namelist(args.config, args.outdir.resolve(), args.steps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
