#!/usr/bin/env bash
# Installs tamrl-coupler on a fresh Debian/Ubuntu machine, everything it needs:
#   1. system packages (gfortran, MPICH, netCDF-Fortran, CDO, CMake, UDUNITS) when run as root or with sudo;
#   2. a virtual environment in .venv (override with TAMRL_VENV) holding the package and its Python dependencies;
#      torch is the CPU build unless an NVIDIA GPU is visible (override with TORCH_SPEC / TORCH_INDEX_URL);
#   3. mpi4py compiled against the system MPI, so that Python and a Fortran host share one MPI library.
# Safe to run again: each step is skipped when already done, so a second run with nothing changed is a quick no-op.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${TAMRL_VENV:-$here/.venv}
python=${PYTHON:-python3}
torch_version=2.13.0
# PyTorch's own index of CPU-only wheels: a plain `pip install torch` on Linux pulls several GB of CUDA packages
cpu_index=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}

say() { echo "install.sh: $*"; }

# Runs "$@" quietly, printing a line every 20 s so that a long compile is not mistaken for a hang.
with_progress() {
  local what=$1; shift
  local log; log=$(mktemp)
  "$@" >"$log" 2>&1 &
  local pid=$! start=$SECONDS last=$SECONDS
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if (( SECONDS - last >= 20 )); then say "  still $what ($((SECONDS - start)) s)"; last=$SECONDS; fi
  done
  if wait "$pid"; then rm -f "$log"; return 0; fi
  tail -n 40 "$log" >&2; rm -f "$log"; return 1
}

# ------------------------------------------------------------------------------------------- 1. system packages
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
  say "installing system packages: ${missing[*]}"
  $sudo apt-get update -qq
  with_progress "installing system packages" \
    env DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# ------------------------------------------------------------------------------------------- 2. the environment
if [ ! -x "$venv/bin/python" ]; then
  say "creating virtual environment $venv"
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)

# Whether $1 answers within 10 s (python, not curl: a fresh machine may lack curl).
reachable() {
  "$venv/bin/python" - "$1" <<'PY' 2>/dev/null
import sys
import urllib.request

try:
    urllib.request.urlopen(sys.argv[1], timeout=10).close()
except Exception:
    sys.exit(1)
PY
}

if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  if [ -n "${TORCH_SPEC:-}" ]; then
    say "installing $TORCH_SPEC (TORCH_SPEC)"
    with_progress "installing torch" "${pip[@]}" install "$TORCH_SPEC"
  elif command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
    say "NVIDIA GPU found: installing torch==$torch_version with CUDA from the default index"
    with_progress "installing torch" "${pip[@]}" install "torch==$torch_version"
  elif reachable "$cpu_index/torch/"; then
    say "no GPU: installing the CPU build torch==$torch_version from $cpu_index"
    with_progress "installing torch" "${pip[@]}" install "torch==$torch_version" --index-url "$cpu_index" \
      --extra-index-url "${PIP_INDEX_URL:-https://pypi.org/simple}"
  else
    say "no GPU, and $cpu_index is not reachable: installing torch==$torch_version from the default index"
    with_progress "installing torch" "${pip[@]}" install "torch==$torch_version"
  fi
fi

# mpi4py from source against the system MPI (the PyPI wheel looks for libmpi.so.12, which MPICH names differently),
# in pip's isolated build environment, which brings the Cython mpi4py's build needs (one attempt, so the happy path
# prints no error). A single-process run needs no MPI at all (mpi4py is optional for one rank).
if ! "$venv/bin/python" -c "from mpi4py import MPI; import sys; sys.exit('MPICH' not in MPI.Get_library_version())" \
     2>/dev/null; then
  say "building mpi4py against $(command -v mpicc) (a few minutes on a fresh machine)"
  with_progress "compiling mpi4py" env MPICC=mpicc "${pip[@]}" install --no-binary=mpi4py --force-reinstall \
      --no-deps "mpi4py>=3.1"
fi

# the package itself, and the optional C kernels that setup.py compiles into the source tree (pip install -e):
# skipped when its metadata, the build script and the C sources are unchanged since the last successful install, so
# an edited kernel is rebuilt
stamp="$venv/.tamrl-coupler-installed"
digest=$(cat "$here/pyproject.toml" "$here/setup.py" "$here/scripts/install.sh" "$here"/tamrl_coupler/kernels/csrc/* \
         | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ] && "$venv/bin/python" -c "import tamrl_coupler" 2>/dev/null
then
  say "tamrl-coupler and its dependencies are up to date"
else
  say "installing tamrl-coupler and its Python dependencies"
  with_progress "installing Python dependencies" "${pip[@]}" install -e "$here[dev]"
  echo "$digest" >"$stamp"
fi
"$venv/bin/python" - <<'PY'
from mpi4py import MPI
import torch
from tamrl_coupler.kernels.fused_cpu import available
print("install.sh: ready:", MPI.Get_library_version().splitlines()[0].strip(), "| torch", torch.__version__,
      "| CUDA" if torch.cuda.is_available() else "| CPU",
      "| CPU kernels: fused C" if available() else "| CPU kernels: torch (the C kernels did not build: no C compiler?)")
PY
