"""Every bad input gets a ValueError naming the argument, the value and what was
expected, before any kernel runs."""

import jax.numpy as jnp
import numpy as np
import pytest

import sphcnn_kernels as sk


def maps(n=8, m=None, spins=1, channels=2, dtype=jnp.complex64):
    return jnp.zeros((2, n, n if m is None else m, spins, channels), dtype)


def coeffs(ell_max=3, width=None, spins=1, channels=2, dtype=jnp.complex64):
    return jnp.zeros((2, ell_max + 1, 2 * ell_max + 1 if width is None else width, spins, channels), dtype)


@pytest.mark.parametrize(
    "x,spins,kwargs,pattern",
    [
        (maps(n=7), [0], {}, r"'x.shape\[-4\]'.*even integer >= 4.*got 7"),
        (maps(n=2), [0], {}, r"'x.shape\[-4\]'.*got 2"),
        (maps(n=8, m=6), [0], {}, r"'x'.*\(2, 8, 6, 1, 2\).*equal latitude and longitude"),
        (maps(spins=2), [0], {}, r"'x'.*\(2, 8, 8, 2, 2\).*n_spins = 1"),
        (jnp.zeros((8, 8, 1)), [0], {}, r"'x'.*\(8, 8, 1\)"),
        (maps(), [0.5], {}, r"'spins'.*0.5"),
        (maps(), ["1"], {}, r"'spins'.*'1'"),
        (maps(), [True], {}, r"'spins'.*True"),
        (maps(), 1, {}, r"'spins'.*sequence"),
        (maps(), [], {}, r"'spins'.*at least one"),
        (maps(spins=2), [1, 1], {}, r"'spins'.*repeat.*\[1, 1\]"),
        (maps(dtype=jnp.int32), [0], {}, r"'x'.*int32.*complex64 or complex128"),
        (maps(dtype=jnp.float16), [0], {}, r"'x'.*float16"),
        (maps(dtype=jnp.bfloat16), [0], {}, r"'x'.*bfloat16"),
        (maps(dtype=jnp.float32), [1], {}, r"'x'.*real \(float32\).*nonzero spins"),
        (maps(), [0], {"ell_max": 4}, r"'ell_max'.*\[0, 3\].*got 4"),
        (maps(), [0], {"ell_max": -1}, r"'ell_max'.*got -1"),
        (maps(), [2], {"ell_max": 1}, r"'ell_max'.*\[2, 3\].*got 1"),
        (maps(), [0], {"ell_max": 2.0}, r"'ell_max'.*integer.*2.0"),
        (maps(n=4), [2], {}, r"n = 4 is too small for spins \(2,\).*ell_max >= 2, i.e. n >= 6"),
        (maps(), [0], {"backend": "bogus"}, r"'backend'.*'bogus'"),
        (maps(), [0], {"backend": "triton"}, r"backend 'triton' is not available on platform 'cpu'"),
        (maps(), [0], {"precision": "tf32"}, r"'precision'.*'tf32'"),
    ],
)
def test_forward_errors(x, spins, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        sk.forward(x, spins, **kwargs)


@pytest.mark.parametrize(
    "a,spins,kwargs,pattern",
    [
        (coeffs(width=6), [0], {}, r"'coeffs'.*\(2, 4, 6, 1, 2\).*axis -3 of size 7"),
        (coeffs(spins=2), [0], {}, r"'coeffs'.*n_spins = 1"),
        (coeffs(), [0], {"n": 7}, r"'n'.*even integer >= 4.*got 7"),
        (coeffs(), [0], {"n": 6}, r"'n' = 6 cannot hold coefficients up to ell_max = 3.*n >= 8"),
        (coeffs(), [0], {"n": 8.0}, r"'n'.*integer.*8.0"),
        (coeffs(ell_max=1), [2], {}, r"n = 4 is too small for spins \(2,\)"),
        (coeffs(ell_max=1), [2], {"n": 8}, r"'coeffs.shape\[-4\] - 1'.*\[2, 3\].*got 1"),
        (coeffs(dtype=jnp.int8), [0], {}, r"'coeffs'.*int8"),
        (coeffs(), [(0,)], {}, r"'spins'"),
        (coeffs(), [0], {"backend": "cuda"}, r"'backend'.*'cuda'"),
    ],
)
def test_inverse_errors(a, spins, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        sk.inverse(a, spins, **kwargs)


def test_errors_raised_at_trace_time_under_jit():
    import jax

    with pytest.raises(ValueError, match="'spins'"):
        jax.jit(lambda v: sk.forward(v, [0, 0]))(maps(spins=2))


def test_numpy_integer_spins_are_accepted():
    out = sk.forward(maps(spins=2), np.array([0, 1]))
    assert out.shape == (2, 4, 7, 2, 2)


def test_layout_errors():
    with pytest.raises(ValueError, match=r"'layout'.*'ell_major'"):
        sk.forward(maps(), [0], layout="ell_major")
    with pytest.raises(ValueError, match=r"'coeffs'.*degree_major"):
        sk.inverse(jnp.zeros((4, 2, 6, 1, 2), jnp.complex64), [0], layout="degree_major")


def test_double_precision_without_jax_enable_x64_is_one_error_that_says_to_enable_it():
    # in a fresh process with JAX's default 32-bit mode (the test suite enables x64)
    import os
    import subprocess
    import sys

    program = """
import numpy as np
import sphcnn_kernels as sk
for call in (lambda: sk.SphericalTransform(8, (0,), dtype="complex128"),
             lambda: sk.forward(np.zeros((8, 8, 1, 1)), [0]),
             lambda: sk.inverse(np.zeros((4, 7, 1, 1), np.complex128), [0])):
    try:
        call()
        print("accepted")
    except ValueError as error:
        print(error)
print(sk.forward(np.zeros((8, 8, 1, 1), np.float32), [0]).dtype)
"""
    env = {**os.environ, "JAX_ENABLE_X64": "0", "JAX_PLATFORMS": "cpu"}
    lines = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=env,
                           timeout=300).stdout.splitlines()
    assert len(lines) == 4, lines
    for line, (func, name, dtype) in zip(lines, [("SphericalTransform", "dtype", "complex128"),
                                                 ("forward", "x", "float64"), ("inverse", "coeffs", "complex128")]):
        assert line.startswith(f"{func}: argument '{name}' is {dtype}, but jax_enable_x64 is off"), line
        assert "jax.config.update('jax_enable_x64', True)" in line and "JAX_ENABLE_X64=1" in line
    assert lines[3] == "complex64"
