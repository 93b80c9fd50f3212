# make test: the test suite (make test-fast: without the slow tests); make demo: the main job (builds spherical MNIST,
# trains spin_classifier_6_layers and prints the test accuracy). Both create and reuse .venv and install
# everything they need; the extension is rebuilt when its sources change.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sphcnn-installed
BUILD_DEPS := "scikit-build-core>=0.10" "pybind11>=2.12" "jax>=0.6" "jaxlib>=0.6" "numpy>=1.26" cmake ninja
SOURCES := $(shell find csrc -type f) CMakeLists.txt pyproject.toml
# The editable install maps the package's Python files at install time: a file
# added, moved or removed needs a reinstall, which this list triggers.
PYFILES := $(shell find python/sphcnn sphcnn_kernels -name '*.py' | sort)
FILELIST := $(VENV)/.sphcnn-files

.PHONY: test test-fast demo install clean FORCE

test: $(STAMP)
	$(PY) -m pytest -q

# The edit loop: everything but the tests marked slow (tests/conftest.py).
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

demo: $(STAMP)
	$(PY) -m sphcnn.cli demo

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(FILELIST): FORCE
	@mkdir -p $(VENV)
	@echo "$(PYFILES)" | cmp -s - $@ || echo "$(PYFILES)" > $@

# Where nvcc exists the build compiles the CUDA kernels. Where a GPU answers
# (nvidia-smi -L), or with GPU=1 (Dockerfile.cuda builds without one), JAX's
# CUDA 13 plugin of the installed jax version, Triton and jax-triton are
# installed too: the stack the GPU tests run on (jax-triton without its
# dependencies, so that it never moves the jax version the plugin matches).
# Nowhere else: a CPU machine gets neither the plugin nor Triton's 641 MB.
GPU ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1)
GPU_DEPS = "jax[cuda13]==$$($(PY) -c 'import jax; print(jax.__version__)')" "triton==3.6.0"

$(STAMP): $(PY) $(SOURCES) $(FILELIST)
	$(PY) -m pip install --quiet $(BUILD_DEPS)
	$(PY) -m pip install --quiet --no-build-isolation -e ".[dev]"
	if [ "$(GPU)" = 1 ]; then $(PY) -m pip install --quiet $(GPU_DEPS) && \
		$(PY) -m pip install --quiet --no-deps "jax-triton>=0.3"; fi
	touch $(STAMP)

clean:
	rm -rf build $(VENV)
