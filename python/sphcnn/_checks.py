"""Configuration and input checks of the model layer: every failure is a
ValueError naming the module, the argument, the value and what was expected."""

from __future__ import annotations

from sphcnn_kernels import _validation as v

REPRESENTATIONS = ("spatial", "spectral")


def positive_int(module: str, name: str, value) -> int:
    return v.check_int(module, name, value, minimum=1)


def spins(module: str, name: str, value) -> tuple[int, ...]:
    try:
        return v.check_spins(module, value)
    except ValueError as err:
        raise ValueError(str(err).replace("'spins'", f"'{name}'")) from None


def resolution(module: str, name: str, value) -> int:
    return v.check_grid_size(module, name, value)


def representation(module: str, name: str, value) -> str:
    if value not in REPRESENTATIONS:
        raise ValueError(f"{module}: argument '{name}' must be 'spatial' or 'spectral', got {value!r}")
    return value


LAYOUTS = ("batch_major", "degree_major")


def layout(module: str, name: str, value) -> str:
    if value not in LAYOUTS:
        raise ValueError(f"{module}: argument '{name}' must be 'batch_major' or 'degree_major', got {value!r}")
    return value


def spatial_input(module: str, x, resolution: int, spins: tuple[int, ...], channels: int) -> None:
    """x must be (batch..., n, n, len(spins), channels) with n = resolution."""
    expected = (resolution, resolution, len(spins), channels)
    if x.ndim < 5 or tuple(x.shape[-4:]) != expected:
        raise ValueError(
            f"{module}: input has shape {tuple(x.shape)}; expected (batch, {resolution}, {resolution}, "
            f"{len(spins)}, {channels}) (spins {spins}, {channels} channels)"
        )


def spectral_input(module: str, x, ell_max: int, spins: tuple[int, ...], channels: int,
                   layout: str = "batch_major") -> None:
    """x must be (batch..., ell_max + 1, 2 ell_max + 1, len(spins), channels), or
    (ell_max + 1, batch..., 2 ell_max + 1, ...) degree-major."""
    tail = (2 * ell_max + 1, len(spins), channels)
    if layout == "degree_major":
        ok = x.ndim >= 5 and x.shape[0] == ell_max + 1 and tuple(x.shape[-3:]) == tail
        expected = f"({ell_max + 1}, batch, {2 * ell_max + 1}, {len(spins)}, {channels})"
    else:
        ok = x.ndim >= 5 and tuple(x.shape[-4:]) == (ell_max + 1,) + tail
        expected = f"(batch, {ell_max + 1}, {2 * ell_max + 1}, {len(spins)}, {channels})"
    if not ok:
        raise ValueError(
            f"{module}: input has shape {tuple(x.shape)}; expected {expected} ({layout} coefficients up to "
            f"ell_max = {ell_max}, spins {spins}, {channels} channels)"
        )


def input_spins(module: str, built_for: tuple[int, ...], given) -> None:
    """Optional call-time check of the spins an input carries."""
    if given is None:
        return
    given = spins(module, "spins", given)
    if given != built_for:
        raise ValueError(f"{module}: input carries spins {given}, but the layer was built for spins {built_for}")
