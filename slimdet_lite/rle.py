"""COCO run-length encoding of binary masks, in the compressed string form of COCO's result
files (``{"size": [h, w], "counts": "..."}``), without pycocotools."""
from __future__ import annotations

import numpy as np

__all__ = ["encode_rle", "decode_rle"]


def _run_lengths(mask: np.ndarray) -> list[int]:
    """Lengths of alternating runs of 0s and 1s over the mask in column-major order, starting
    with a (possibly empty) run of 0s."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    lengths = np.diff(bounds).tolist()
    return [0] + lengths if flat.size and flat[0] else lengths


def _compress(counts: list[int]) -> str:
    """COCO's string form: each count (from the third on, as the difference from the count two
    before) in little-endian groups of 5 bits, a 6th bit saying more follow, plus 48."""
    chars = []
    for i, count in enumerate(counts):
        x = count - counts[i - 2] if i > 2 else count
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = not ((c & 0x10 == 0 and x == 0) or (c & 0x10 and x == -1))
            if more:
                c |= 0x20
            chars.append(chr(c + 48))
    return "".join(chars)


def _decompress(text: str) -> list[int]:
    """The counts of COCO's string form (the inverse of ``_compress``)."""
    counts: list[int] = []
    pos = 0
    while pos < len(text):
        x, shift, more = 0, 0, True
        while more:
            c = ord(text[pos]) - 48
            x |= (c & 0x1F) << shift
            more = bool(c & 0x20)
            pos += 1
            shift += 5
            if not more and c & 0x10:
                x |= -1 << shift
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def encode_rle(mask: np.ndarray) -> dict:
    """COCO RLE of a binary ``H x W`` mask."""
    if mask.ndim != 2:
        raise ValueError(f"expected an H x W mask, got shape {mask.shape}")
    return {"size": [int(mask.shape[0]), int(mask.shape[1])],
            "counts": _compress(_run_lengths(mask))}


def decode_rle(rle: dict) -> np.ndarray:
    """The binary ``H x W`` mask of a COCO RLE in string form."""
    height, width = rle["size"]
    counts = _decompress(rle["counts"])
    values = np.arange(len(counts)) % 2 == 1
    flat = np.repeat(values, counts)
    if flat.size != height * width:
        raise ValueError(f"RLE counts cover {flat.size} pixels, its size {height}x{width} "
                         f"has {height * width}")
    return flat.reshape((height, width), order="F")
