"""What the mock-data factories share: the Lorenz latent that drives the synthetic muscles and
units, and writing NWB files whose series are computed block by block, atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["lorenz_latent", "BlockSeries", "write_nwb_atomically"]


def lorenz_latent(n_steps: int, rng: np.random.Generator, dt: float = 0.006, burn_in: int = 500) -> np.ndarray:
    """Euler-integrated Lorenz system (sigma 10, rho 28, beta 8/3), z-scored.

    Parameters
    ----------
    n_steps : int
        Steps returned (after the burn-in).
    rng : numpy.random.Generator
        Draws the initial state (x, y uniform in [-10, 10], z in [15, 35]).
    dt : float
        Euler step (in the system's own time units).
    burn_in : int
        Steps integrated and discarded first, so the state is on the attractor.

    Returns
    -------
    numpy.ndarray, shape (n_steps, 3)
        The trajectory, each coordinate z-scored (mean 0, SD 1).

    References
    ----------
    Sussillo D et al. (2016), arXiv:1608.06315 (docs/science.md, Synthetic data).
    """
    x = rng.uniform(-10, 10, size=3) + np.array([0.0, 0.0, 25.0])
    out = np.empty((n_steps, 3))
    for i in range(burn_in + n_steps):
        dx = np.array([10.0 * (x[1] - x[0]), x[0] * (28.0 - x[2]) - x[1], x[0] * x[1] - 8.0 / 3.0 * x[2]])
        x = x + dt * dx
        if i >= burn_in:
            out[i - burn_in] = x
    return (out - out.mean(0)) / out.std(0)


class BlockSeries:
    """Rows of a (n, C) series computed on demand by ``rows(start, stop)``, written block by block
    by hdmf (an hdmf ``GenericDataChunkIterator``; built lazily so pynwb stays an optional import)."""

    def __new__(cls, rows, n: int, n_cols: int, dtype, block: int, chunk: int):
        from hdmf.data_utils import GenericDataChunkIterator

        class Blocks(GenericDataChunkIterator):
            def _get_data(self, selection):
                return rows(selection[0].start, selection[0].stop)[:, selection[1]]

            def _get_maxshape(self):
                return (n, n_cols)

            def _get_dtype(self):
                return np.dtype(dtype)

        from hdmf.backends.hdf5.h5_utils import H5DataIO

        chunk = max(1, min(chunk, n))
        block = min(n, max(chunk, block // chunk * chunk))  # hdmf: the chunks tile the buffer
        return H5DataIO(Blocks(buffer_shape=(block, n_cols), chunk_shape=(chunk, n_cols), display_progress=False),
                        compression="gzip", compression_opts=4)


def write_nwb_atomically(path: Path, nwb) -> Path:
    """Write ``nwb`` to a hidden partial file beside ``path`` and rename it: an interrupted
    generation leaves no half-written file under the final name."""
    from pynwb import NWBHDF5IO

    path = Path(path)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        with NWBHDF5IO(str(tmp), "w") as io:
            io.write(nwb)
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
