"""A check that a written figure holds a drawing, not only that a file exists.

PNG figures are written with an indexed palette (``pepmix.plots.imagepdf``), so their size in
bytes says little about their content: a figure is checked by decoding it instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def assert_drawn(path: Path, min_side: int = 300) -> None:
    """Assert that ``path`` is a decodable figure with something drawn on it.

    Parameters
    ----------
    path : Path
        A ``.png`` or ``.pdf`` file.
    min_side : int, default 300
        Smallest accepted width and height of a PNG, in pixels.
    """
    if path.suffix == ".pdf":
        data = path.read_bytes()
        assert data.startswith(b"%PDF") and b"/Page" in data, path
        return
    with Image.open(path) as image:
        assert min(image.size) >= min_side, (path, image.size)
        rgb = np.asarray(image.convert("RGB")).reshape(-1, 3)
    colours, counts = np.unique(rgb, axis=0, return_counts=True)
    # more than a background and one colour, and ink on at least 1 % of the pixels
    assert len(colours) >= 4, (path, len(colours))
    assert 1 - counts.max() / counts.sum() >= 0.01, path
