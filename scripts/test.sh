#!/usr/bin/env bash
# Runs the whole test suite (lint, Python tests, MPI tests under mpiexec, the Fortran bridge) on CPU.
# Tests that need ../shared data skip with a reason when it is absent.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${TAMRL_VENV:-$here/.venv}
cd "$here"
export PATH="$venv/bin:$PATH"
# one thread per process: the MPI tests start several, and oversubscribed cores make torch crawl
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
"$venv/bin/ruff" check tamrl_coupler tests bench examples fortran_bridge
"$venv/bin/python" -m pytest -q "$@"
