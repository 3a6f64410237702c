#!/usr/bin/env bash
# Installs tamrl-coupler on a fresh Debian/Ubuntu machine, everything it needs:
#   1. system packages (gfortran, MPICH, netCDF-Fortran, CDO, CMake, UDUNITS) when run as root or with sudo;
#   2. a virtual environment in .venv (override with TAMRL_VENV) holding the package and its Python dependencies;
#      torch is the CPU build unless an NVIDIA GPU is visible (override with TORCH_SPEC);
#   3. mpi4py compiled against the system MPI, so that Python and a Fortran host share one MPI library.
# Safe to run again: each step is skipped when already done.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${TAMRL_VENV:-$here/.venv}
python=${PYTHON:-python3}

apt_packages=(gfortran mpich libmpich-dev libnetcdf-dev libnetcdff-dev netcdf-bin cdo cmake pkg-config
              libudunits2-0 make python3-dev python3-venv)
missing=()
if command -v dpkg-query >/dev/null; then
  for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else sudo="none"; fi
  if [ "$sudo" = none ]; then
    echo "install.sh: please install these system packages first: ${missing[*]}" >&2; exit 1
  fi
  echo "install.sh: installing system packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "install.sh: creating virtual environment $venv"
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)

if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  if [ -n "${TORCH_SPEC:-}" ]; then spec=$TORCH_SPEC
  elif command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then spec="torch"
  else spec="torch==2.13.0"; fi
  echo "install.sh: installing $spec"
  "${pip[@]}" install "$spec"
fi

# mpi4py from source against the system MPI (the PyPI wheel looks for libmpi.so.12, which MPICH names differently).
if ! "$venv/bin/python" -c "from mpi4py import MPI; import sys; sys.exit('MPICH' not in MPI.Get_library_version())" \
     2>/dev/null; then
  echo "install.sh: building mpi4py against $(command -v mpicc)"
  MPICC=mpicc "${pip[@]}" install --no-binary=mpi4py --no-build-isolation --force-reinstall --no-deps \
    "mpi4py>=3.1" 2>/dev/null || MPICC=mpicc "${pip[@]}" install --no-binary=mpi4py --force-reinstall --no-deps \
    "mpi4py>=3.1"
fi

echo "install.sh: installing tamrl-coupler and its Python dependencies"
"${pip[@]}" install -e "$here[dev]"
"$venv/bin/python" - <<'PY'
from mpi4py import MPI
import torch
print("install.sh: ready:", MPI.Get_library_version().splitlines()[0].strip(), "| torch", torch.__version__,
      "| CUDA" if torch.cuda.is_available() else "| CPU")
PY
