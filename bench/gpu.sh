#!/usr/bin/env bash
# The model path on a GPU in one short run: cells per second, the transfer share and the sgemm fraction of one
# evaluation for a 0.25-degree global land grid (~2.6e5 cells, the shipped 10-member ensemble), eager and with CUDA
# graphs, plus the member loop for comparison. Writes bench/results/gpu.md (or the path given as $1).
# Needs a CUDA build of torch (scripts/install.sh installs one when nvidia-smi sees a GPU). A few minutes at most.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-$here/.venv/bin/python}
out=${1:-$here/bench/results/gpu.md}
if ! "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu.sh: no CUDA device visible to torch ($("$python" -c 'import torch; print(torch.__version__)')); nothing measured" >&2
  exit 2
fi
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader || true
export OMP_NUM_THREADS=1 PYTHONPATH=$here${PYTHONPATH:+:$PYTHONPATH}
timeout 900 "$python" "$here/bench/gpu_step.py" --cells 260000 --repeat 20 --out "$out"
echo "gpu.sh: wrote $out"
