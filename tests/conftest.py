"""Test configuration: float64 enabled (tests check both precisions explicitly),
tests marked ``gpu`` skipped unless JAX sees a CUDA GPU, and the commands'
persistent compilation cache in a temporary directory of the test run (never
the user's ~/.cache), inherited by the commands the tests start.

Tests marked ``slow`` (the modules and tests named below: those that train,
start processes, compile emulators or take seconds each) are left out by
`make test-fast`, the edit loop; `make test` runs everything. Commands run in
this process (cli.main) leave glibc's allocator as it is, and the process's
compiled programs are dropped after a test whenever it holds more than
RESIDENT_LIMIT: the run's memory stays near that limit.

SPHCNN_REQUIRE_GPU=1 (set by benchmarks/gpu_suite.sh) makes every skip of a
``gpu``-marked test a failure, and so a skipped module that holds such tests:
on a GPU machine nothing is silently left out, and on a machine without one
``pytest -m gpu`` exits non-zero. On a GPU machine whose driver cannot run the
CUDA module's runtime the test run stops at once with one error naming both
versions."""

import ctypes
import ctypes.util
import gc
import os
import pathlib
import tempfile

import jax
import pytest

os.environ.setdefault("SPHCNN_COMPILATION_CACHE", tempfile.mkdtemp(prefix="sphcnn-test-jax-cache-"))

jax.config.update("jax_enable_x64", True)

REQUIRE_GPU = os.environ.get("SPHCNN_REQUIRE_GPU") == "1"
RESIDENT_LIMIT = 2 << 30  # bytes held by the test process before its compiled programs are dropped
GPU_MARK = "pytest.mark.gpu"
SLOW_MODULES = ("test_build", "test_cuda_blocks_emulated", "test_cuda_emulation_checks", "test_cuda_resources",
                "test_equivariance", "test_gpu_requirement", "test_interrupted_runs", "test_qm9_models",
                "test_qm9_training", "test_runtime", "test_sharding", "test_step_lowering", "test_training_cli")
SLOW_TESTS = (
    "test_autodiff::test_second_order_and_real_input",
    "test_batch_norm::test_statistics_are_averaged_across_devices",
    "test_batch_norm::test_spectral_equals_spatial_on_band_limited_inputs",
    "test_cuda_launch_sweep::test_every_launch_stays_within_the_hardware_limits",
    "test_mixing::test_product_and_gradients_match_the_einsum",
    "test_mixing::test_vmap",
    "test_fused_blocks::test_affine_synthesis_gradients_lowering_and_vmap",
    "test_fused_blocks::test_affine_synthesis_matches_the_composition",
    "test_fused_blocks::test_fused_classifier_equals_the_unfused_one",
    "test_fused_blocks::test_gradients_match_the_composition",
    "test_fused_blocks::test_kernel_matches_the_composition",
    "test_fused_blocks::test_other_block_configurations_fuse_to_the_same_function",
    "test_fused_blocks::test_vmap_of_the_gradient",
    "test_fused_blocks::test_vmap_over_a_leading_axis",
    "test_grid_kernels::test_kernels_equal_the_reference",
    "test_grid_kernels::test_kernels_on_an_era5_sized_grid_in_float32",
    "test_grid_kernels::test_reference_is_the_direct_sum",
    "test_grid_kernels::test_transposes_are_the_references",
    "test_transform_grids::test_gradients_of_the_grid_ops_equal_those_of_the_jnp_transforms",
    "test_mixing_analysis::test_gradients_match_the_composition",
    "test_mixing_analysis::test_leading_batch_axes_and_vmap",
    "test_mixing_analysis::test_outputs_match_the_composition",
    "test_layers_convolution::test_exactly_rotation_equivariant_on_band_limited_inputs",
    "test_layers_convolution::test_initialization_keeps_variance_through_depth",
    "test_layers_convolution::test_layers_compute_in_complex64",
    "test_layers_convolution::test_layers_build_their_transforms_once",
    "test_layers_pointwise::test_activation_gradient_is_the_derivative_of_the_formula",
    "test_models::test_jitted_train_step_learns",
    "test_models::test_preset_parameter_counts_match_the_original",
    "test_models::test_pure_pytree_round_trip",
    "test_models::test_residual_block_and_model",
    "test_models::test_spectral_and_spatial_batch_norm_blocks_agree",
    "test_models::test_train_and_eval_modes",
    "test_qm9_features::test_gradient_matches_finite_differences",
    "test_qm9_features::test_jit_vmap_and_batching_agree",
    "test_qm9_features::test_no_nan_in_values_or_gradients",
    "test_qm9_features::test_random_rotations_are_haar_orthogonal",
    "test_qm9_features::test_random_rotations_keys_jit_and_errors",
    "test_qm9_features::test_rotated_molecule_gives_rotated_spheres_on_the_grid",
    "test_qm9_features::test_rotation_equivariance_in_the_spectrum",
    "test_rotation::test_traced_angles_jit_vmap_and_grad",
    "test_transforms::test_backends_agree",
    "test_transforms::test_cpu_schedules_agree_with_xla",
    "test_transforms::test_forward_of_harmonic_is_unit_coefficient",
    "test_transforms::test_round_trip_band_limited_maps",
    "test_transforms::test_round_trip_coefficients",
    "test_triton_kernels::test_kernels_compile_to_cubin",
    "test_wigner::test_degree_1023_agrees_with_column_recurrence",
    "test_wigner::test_orthogonal_at_degree_1024",
    "test_zero_sizes::test_cuda_launch_plans_of_nothing",
)


def _has_gpu() -> bool:
    try:
        return any(d.platform == "gpu" for d in jax.devices())
    except RuntimeError:
        return False


def pytest_sessionstart(session):
    if not _has_gpu():
        return
    try:
        from sphcnn_kernels import _cuda
    except ImportError:
        return
    from sphcnn_kernels.backends.cuda_runtime import driver_error

    message = driver_error(_cuda.cuda_runtime_version(), _cuda.cuda_driver_version())
    if message:
        pytest.exit(message, returncode=3)


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = pathlib.Path(str(item.path)).stem
        if module in SLOW_MODULES or f"{module}::{item.originalname}" in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
    if _has_gpu():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def _allocator_left_alone():
    """cli.main keeps freed host memory for the process's lifetime (as a command
    should); in the test process that would keep the peak of every later test."""
    from sphcnn.train import runtime

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runtime, "keep_host_memory", lambda: False)
        yield


def _resident_bytes() -> int:
    """This process's resident set size now (Linux; 0 elsewhere)."""
    try:
        return int(pathlib.Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


@pytest.fixture(autouse=True)
def _compiled_programs_dropped():
    """Compiled programs (eager operations' too) pile up as tests run; once this
    process holds more than RESIDENT_LIMIT they are dropped, so that the run's
    peak stays near the limit without recompiling after every test."""
    yield
    if _resident_bytes() > RESIDENT_LIMIT:
        jax.clear_caches()
        gc.collect()
        if hasattr(_LIBC, "malloc_trim"):  # glibc: hand the freed pages back, so the next test starts below
            _LIBC.malloc_trim(0)


_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or None)


def _required(reason: str) -> str:
    return f"SPHCNN_REQUIRE_GPU=1 and a gpu-marked test was skipped: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_GPU and report.skipped and "gpu" in item.keywords:
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome, report.longrepr = "failed", _required(reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    path = pathlib.Path(str(getattr(collector, "path", "")))
    if REQUIRE_GPU and report.skipped and path.suffix == ".py" and GPU_MARK in path.read_text():
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome, report.longrepr = "failed", _required(f"{path.name} was skipped whole: {reason}")
