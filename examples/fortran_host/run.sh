#!/usr/bin/env bash
# examples/fortran_host/run.sh NP OUTDIR [CONFIG]
#
# Builds the Fortran bridge (CMake configure/build/install into build/bridge-install) and the example land host,
# then runs the host on NP MPI ranks with the demo config (configs/run/demo.yaml) and the demo forcing shipped in the
# package. Writes OUTDIR/<prefix>_<start>.nc (the offline driver's variables: gpp, reco, nee, their spreads, on the
# host grid), OUTDIR/<prefix>_nee_map.png when the config asks for a map, and OUTDIR/land_host.nml.
#
# Environment: TAMRL_PYTHON (the python of the environment holding tamrl-coupler; default <repo>/.venv/bin/python),
# TAMRL_BUILD_DIR (default <repo>/build), MPIEXEC (default mpiexec), TAMRL_HOST_STEPS (default: all forcing steps).
set -euo pipefail
np=${1:?usage: run.sh NP OUTDIR [CONFIG]}
outdir=${2:?usage: run.sh NP OUTDIR [CONFIG]}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
config=$(realpath "${3:-$repo/configs/run/demo.yaml}")
python=${TAMRL_PYTHON:-$repo/.venv/bin/python}
build=${TAMRL_BUILD_DIR:-$repo/build}
mkdir -p "$outdir" "$build"
outdir=$(realpath "$outdir")

if [ ! -x "$python" ]; then
  echo "run.sh: no python at $python: run scripts/install.sh first or set TAMRL_PYTHON" >&2; exit 1
fi

# 1. the bridge: configure (records $python in the library), build, install
cmake -S "$repo/fortran_bridge" -B "$build/bridge" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$build/bridge-install" -DTAMRL_PYTHON="$python" >"$build/bridge.configure.log" 2>&1 \
  || { cat "$build/bridge.configure.log" >&2; exit 1; }
cmake --build "$build/bridge" -j 2 >"$build/bridge.build.log" 2>&1 || { cat "$build/bridge.build.log" >&2; exit 1; }
cmake --install "$build/bridge" >/dev/null
# 2. the host, through find_package(TamrlBridge)
cmake -S "$here" -B "$build/host" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$build/bridge-install" \
  >"$build/host.configure.log" 2>&1 || { cat "$build/host.configure.log" >&2; exit 1; }
cmake --build "$build/host" -j 2 >"$build/host.build.log" 2>&1 || { cat "$build/host.build.log" >&2; exit 1; }

# 3. the run: what the host needs from the config (forcing file, variable names, time origin) as a namelist
"$python" "$here/host_namelist.py" "$config" "$outdir" --steps "${TAMRL_HOST_STEPS:--1}" >"$outdir/land_host.nml"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
${MPIEXEC:-mpiexec} -n "$np" "$build/host/land_host" "$outdir/land_host.nml"

# 4. like the offline driver: a PNG map of the time-mean NEE when the config asks for one
"$python" - "$config" "$outdir" <<'PY'
import sys
from pathlib import Path

from tamrl_coupler.settings.run import load_run_config

cfg = load_run_config(sys.argv[1])
if cfg.output.map:
    from tamrl_coupler.products.maps import nee_map

    for flux_file in sorted(Path(sys.argv[2]).glob(f"{cfg.output.prefix}_2*.nc")):
        print("run.sh: wrote", nee_map(flux_file, flux_file.with_name(f"{cfg.output.prefix}_nee_map.png")))
PY
