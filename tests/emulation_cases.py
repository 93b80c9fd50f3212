"""The cases of the CPU emulators of tests/cuda_emulation, the one list the
tests collect from and the emulators run: the tests pass each case to its
emulator as one command-line argument, its compact JSON (`argument`); the
emulator echoes it as the "case" of each of its records, one JSON line per
check (tests/cuda_emulation/emulated_reference.h), and seeds the case's random
data from it, so that a case draws the same data whatever cases run with it.

A case is a flat dict of integers, booleans, strings and lists of integers:

- emulate_blocks: a transform ("direction" analysis or synthesis, "lambda"
  table or otf, then the fields of its Case, those at their default left out;
  a grid target's transform has "grid", "rings", "nlat" and "nlon" in place
  of "n", "sign", and "mirrored" when its kernels pair the mirror rings),
  or a check of the bias sums ("bias_sums", "rows", "lanes", and for the
  spherical MNIST rows "chain_at_most");
- emulate_mixing: n, ell_max, spins, batch, channels, out_spins, out_channels;
- emulate_affine: n, ell_max, spins, batch, channels;

each in float and double ("precision"). `checks` names the records a case
has; `case_id` names a case in test ids."""

from __future__ import annotations

import json

PRECISIONS = ("float", "double")

# The transforms (each run in the directions and lambda sources of
# `_transform_runs`): n from 4 to 256 (and 70 = 2 5 7), spins up to |s| = 3 and
# beyond ell_max, pooled band limits, odd batch and channel counts, both
# spectral layouts, real input.
TRANSFORMS = [
    dict(n=4, ell_max=1, spins=[0], batch=1, channels=1),
    dict(n=4, ell_max=1, spins=[0], batch=3, channels=1, real_input=True),
    dict(n=8, ell_max=3, spins=[0, 1], batch=2, channels=3, degree_major=True),
    dict(n=8, ell_max=2, spins=[0, 3, -5], batch=1, channels=3),  # |s| > ell_max: zeros
    dict(n=16, ell_max=7, spins=[-2, 1, 3], batch=1, channels=33),
    dict(n=16, ell_max=5, spins=[0, 1, -3], batch=3, channels=1, degree_major=True),  # pooled
    dict(n=32, ell_max=15, spins=[0], batch=5, channels=7, real_input=True),
    dict(n=32, ell_max=15, spins=[-1, 2], batch=3, channels=5, degree_major=True),
    dict(n=64, ell_max=31, spins=[0, 1], batch=3, channels=3),
    dict(n=64, ell_max=20, spins=[-2, 1, 3], batch=1, channels=5, degree_major=True),  # pooled
    dict(n=70, ell_max=20, spins=[2, -1], batch=1, channels=3),  # n = 2 5 7
    dict(n=64, ell_max=31, spins=[0, 2], batch=1, channels=3, global_ring=True),
    dict(n=128, ell_max=63, spins=[0, -3], batch=1, channels=3),
    dict(n=256, ell_max=127, spins=[0, 1], batch=1, channels=3),
    dict(n=256, ell_max=100, spins=[-3], batch=1, channels=1, degree_major=True),  # pooled
    # the activated analysis and its gradient: nonlinearity only, then with
    # pooling from 2n, a leaky spin or none, a pooled band limit, K1's buffers in
    # global scratch
    dict(n=8, ell_max=3, spins=[0, 1], batch=2, channels=3, degree_major=True, activation=1, leaky_spin=0),
    dict(n=16, ell_max=7, spins=[0, 1], batch=3, channels=5, degree_major=True, activation=2, leaky_spin=0),
    dict(n=16, ell_max=5, spins=[1, -2], batch=2, channels=3, activation=2),
    dict(n=32, ell_max=15, spins=[0, 1], batch=2, channels=4, degree_major=True, global_ring=True, activation=2,
         leaky_spin=1),
    dict(n=64, ell_max=31, spins=[0, 1], batch=1, channels=3, degree_major=True, activation=1, leaky_spin=0),
    # the gradient store's shares in global scratch
    dict(n=16, ell_max=7, spins=[0, 1], batch=2, channels=3, global_ring=True, activation=1),
    # the affine synthesis (a batch norm's apply): with and without a spin 0, a
    # pooled band limit, K1's buffers in global scratch
    dict(n=16, ell_max=7, spins=[0, 1], batch=2, channels=3, degree_major=True, affine=True),
    dict(n=16, ell_max=5, spins=[1, -2], batch=2, channels=3, affine=True),
    dict(n=32, ell_max=15, spins=[-1, 0, 2], batch=1, channels=5, degree_major=True, global_ring=True, affine=True),
    dict(n=64, ell_max=20, spins=[0, 1], batch=2, channels=3, affine=True),
    # forced: K1's buffers in global scratch on one block per work item (8
    # rings x 16 rows: 128 blocks; the plan launches up to kGlobalRingBlocks)
    dict(n=8, ell_max=3, spins=[0, 1], batch=1, channels=8, global_ring=True, block_per_item=True),
    # forced: the on-the-fly analysis's accumulators in global scratch at small
    # band limits, every tile; one block per item, or a few looping over them
    dict(n=8, ell_max=3, spins=[0, 1], batch=1, channels=2, degree_major=True, accumulator_config=0),
    dict(n=8, ell_max=2, spins=[1, -2, 0], batch=1, channels=1, accumulator_config=1, accumulator_blocks=5),
    dict(n=8, ell_max=3, spins=[0, 2], batch=2, channels=3, accumulator_config=2, accumulator_blocks=3),
]

# The grid targets (sphcnn_grid_analysis / sphcnn_grid_synthesis: the kGrid
# kernels, lambda on the fly at the colatitudes of a device array), each in
# both directions, precisions and signs and with spins (0,) and (0, 1, -2):
# equiangular with both poles and an equator ring (odd nlat), equiangular
# even, Gauss-Legendre with a prime nlon, all mirrored (the attribute: mirror
# rings paired, the equator ring alone), and McEwen-Wiaux-like rings (no north
# pole, not mirrored) at nlon = 2L - 1.
GRIDS = [
    dict(rings="equiangular", nlat=7, nlon=16, ell_max=6, batch=2, channels=3, mirrored=True),
    dict(rings="equiangular", nlat=10, nlon=24, ell_max=9, batch=1, channels=3, degree_major=True, mirrored=True),
    dict(rings="gauss", nlat=8, nlon=17, ell_max=7, batch=2, channels=1, mirrored=True),
    dict(rings="mw", nlat=5, nlon=9, ell_max=4, batch=1, channels=2),
]
GRID_SPINS = ([0], [0, 1, -2])
# A mirrored grid with the attribute false (every ring alone): spins (0, 1, -2)
# in both directions and precisions, the two signs split between the
# precisions.
UNPAIRED = dict(rings="equiangular", nlat=7, nlon=16, ell_max=6, batch=2, channels=3)
# The ERA5 grid 721 x 1440 = 721 x 2^5 3^2 5 at L = 33, mirrored (about 13 s a
# run): as UNPAIRED.
ERA5 = dict(rings="equiangular", nlat=721, nlon=1440, ell_max=32, batch=1, channels=1, mirrored=True)

# The bias sums of the activated gradient: B n_in rows of the spherical MNIST
# model's activations at batch 128 (S C = 2 x 16 .. 2 x 32 lanes; the first
# is one thread per lane adding 8192 rows without the two levels), a lane
# count that does not divide the block's threads, two lane tiles with a
# partial last chunk, fewer rows than a chunk.
BIAS_SUMS = [
    dict(rows=128 * 64, lanes=32, chain_at_most=20),
    dict(rows=128 * 32, lanes=48),
    dict(rows=128 * 16, lanes=64),
    dict(rows=128 * 32, lanes=56),
    dict(rows=1000, lanes=300),
    dict(rows=5, lanes=3),
]

# The convolution's mixing (emulate_mixing.cc).
MIXING = [
    dict(n=8, ell_max=3, spins=[0, 1], batch=3, channels=3, out_spins=2, out_channels=5),
    dict(n=16, ell_max=7, spins=[0, 1], batch=5, channels=16, out_spins=2, out_channels=16,
         degree_major=True),  # two batch items per block
    dict(n=16, ell_max=5, spins=[1, -2], batch=2, channels=40, out_spins=1,
         out_channels=3),  # C > 32: two column tiles per item, pooled band limit
    dict(n=32, ell_max=15, spins=[-1, 0, 2], batch=2, channels=7, out_spins=3, out_channels=4,
         degree_major=True),  # three spins, |s| = 2
    dict(n=64, ell_max=31, spins=[0, 1], batch=3, channels=20, out_spins=2, out_channels=24,
         degree_major=True),  # a spherical-MNIST block
    dict(n=128, ell_max=40, spins=[0], batch=70, channels=1, out_spins=2, out_channels=3,
         degree_major=True),  # two degree tiles; 32 batch items a block, the last tile partial
]

# The batch norm's gradient (emulate_affine.cc).
AFFINE = [
    dict(n=8, ell_max=3, spins=[0, 1], batch=3, channels=3),
    dict(n=16, ell_max=7, spins=[0, 1, -2], batch=2, channels=5, degree_major=True),  # two spin groups
    dict(n=32, ell_max=10, spins=[1, 0], batch=2, channels=40, degree_major=True),  # pooled band limit, spin 0 second
    dict(n=64, ell_max=31, spins=[0, 1], batch=3, channels=20, degree_major=True),  # a spherical-MNIST block
    dict(n=128, ell_max=63, spins=[0], batch=1, channels=2),  # few columns: the tall tile, several degree tiles
    dict(n=128, ell_max=50, spins=[0, 2], batch=40, channels=4, degree_major=True),  # many columns: the wide tile
]


def _transform_runs():
    """Every transform in both directions (synthesis not of real input) and both
    lambda sources, except the forced cases: the global accumulators only in
    the on-the-fly analysis, K1 on one block per item only with the table (K1
    is the same for both lambda sources)."""
    for case in TRANSFORMS:
        forced_accumulators = "accumulator_config" in case
        for direction in ("analysis", "synthesis"):
            if direction == "synthesis" and (case.get("real_input") or forced_accumulators):
                continue
            for source in ("table", "otf"):
                if (forced_accumulators and source == "table") or (case.get("block_per_item") and source == "otf"):
                    continue
                yield dict(direction=direction, **{"lambda": source}, **case)


def _grid_run(case, direction, spins, sign, precision):
    rest = {key: value for key, value in case.items() if key not in ("rings", "nlat", "nlon")}
    return dict(direction=direction, **{"lambda": "otf"}, grid=True, rings=case["rings"], nlat=case["nlat"],
                nlon=case["nlon"], spins=spins, sign=sign, **rest, precision=precision)


def _grid_runs():
    """Every case of GRIDS in both directions, signs and precisions, with each
    of GRID_SPINS; UNPAIRED and ERA5 as their comments say."""
    for case in GRIDS:
        for direction in ("analysis", "synthesis"):
            for spins in GRID_SPINS:
                for sign in (-1, 1):
                    for precision in PRECISIONS:
                        yield _grid_run(case, direction, spins, sign, precision)
    for case in (UNPAIRED, ERA5):
        for direction in ("analysis", "synthesis"):
            for sign, precision in zip((-1, 1), PRECISIONS):
                yield _grid_run(case, direction, [0, 1, -2], sign, precision)


EMULATIONS = {
    "emulate_blocks": [dict(run, precision=p) for run in _transform_runs() for p in PRECISIONS]
    + list(_grid_runs())
    + [dict(bias_sums=True, **case, precision=p) for case in BIAS_SUMS for p in PRECISIONS],
    "emulate_mixing": [dict(case, precision=p) for case in MIXING for p in PRECISIONS],
    "emulate_affine": [dict(case, precision=p) for case in AFFINE for p in PRECISIONS],
}


def cases_of(emulator: str, sizes: tuple[int, ...] | None = None) -> list[dict]:
    """The emulator's cases, those of grid sizes n in `sizes` when given."""
    return [case for case in EMULATIONS[emulator] if sizes is None or case.get("n") in sizes]


def argument(case: dict) -> str:
    """The case as its emulator's command-line argument (and as its records echo it)."""
    return json.dumps(case, separators=(",", ":"))


def case_id(case: dict) -> str:
    """The case in a test id: its values in order, each but strings and true
    flags after its key (analysis-table-float-n8-ell_max3-spins0,1-...)."""
    words = []
    for key, value in case.items():
        if value is True or isinstance(value, str):
            words.append(key if value is True else value)
        else:
            words.append(key + (",".join(map(str, value)) if isinstance(value, list) else str(value)))
    return "-".join(words)


def checks(emulator: str, case: dict) -> tuple[str, ...]:
    """The checks of the case's records, as its emulator decides them."""
    if emulator == "emulate_mixing":
        return ("a", "b", "energy", "ct_a", "rings", "written", "zeros", "energy_grids", "fences")
    if emulator == "emulate_affine":
        return ("ct_a", "products", "constant", "written", "zeros", "products_grids")
    if case.get("bias_sums"):
        return ("error", "grids") + (("chain",) if "chain_at_most" in case else ())
    analysis = case["direction"] == "analysis"
    activation = case.get("activation", 0)
    return (("stage",) + (("result",) if analysis or activation != 1 else ())  # else K1 stores the gradient
            + (("gradient",) if activation and not analysis else ()) + ("written",)
            + (("zeros_below",) if analysis else ()) + ("fences",))
