"""Bad-input sequences for the hardening corpus, derived from :func:`tests.make_data.write_tum_sequence`."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from tests.make_data import write_tum_sequence


def sequence_with_depth(root: Path, raw: int | None, n: int = 8, frames: range | None = None) -> Path:
    """A TUM sequence whose depth PNGs (all of them, or ``frames``) are filled with the raw value ``raw``."""
    write_tum_sequence(root, n=n)
    depth_files = sorted((root / "depth").glob("*.png"))
    for i, path in enumerate(depth_files):
        if frames is None or i in frames:
            depth = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            cv2.imwrite(str(path), np.full_like(depth, raw))
    return root


def shuffle_lines(path: Path, seed: int = 0) -> None:
    """Shuffle the data lines of a text file (comment lines stay on top)."""
    lines = path.read_text().splitlines()
    comments = [ln for ln in lines if ln.startswith("#")]
    data = [ln for ln in lines if ln and not ln.startswith("#")]
    order = np.random.default_rng(seed).permutation(len(data))
    path.write_text("\n".join(comments + [data[i] for i in order]) + "\n")
