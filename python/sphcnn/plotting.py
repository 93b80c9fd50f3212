"""Input spheres and predictions drawn in the Mollweide projection (matplotlib).

Grid values f[j, k] at colatitude theta_j = pi j / (n - 1) and longitude
phi_k = 2 pi k / n are shown at latitude pi/2 - theta and longitude phi wrapped
to [-pi, pi).
"""

from __future__ import annotations

import pathlib

import numpy as np


def plot_spheres(images: np.ndarray, path: pathlib.Path, titles: list[str] | None = None, columns: int = 4) -> None:
    """Save a grid of Mollweide maps of images (N, n, n) to a PNG at `path`."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("sphcnn plot needs matplotlib: pip install 'sphcnn[plot]'") from None
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"plot_spheres: images must be (N, n, n), got shape {images.shape}")
    count, n, _ = images.shape
    theta = np.pi * np.arange(n) / (n - 1)
    phi = (2 * np.pi * np.arange(n) / n + np.pi) % (2 * np.pi) - np.pi
    order = np.argsort(phi)
    lon, lat = np.meshgrid(phi[order], np.pi / 2 - theta)
    rows = (count + columns - 1) // columns
    figure = plt.figure(figsize=(3.2 * columns, 2.0 * rows))
    for i in range(count):
        axis = figure.add_subplot(rows, columns, i + 1, projection="mollweide")
        axis.pcolormesh(lon, lat, images[i][:, order], shading="nearest", cmap="gray")
        axis.set_xticklabels([])
        axis.set_yticklabels([])
        axis.grid(True, alpha=0.3)
        if titles:
            axis.set_title(titles[i], fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
