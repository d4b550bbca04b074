"""Cluttered digits: a small, offline data set on which spatial attention has something to find.

Every image is one handwritten digit from scikit-learn's bundled copy of the UCI optical digits
(``sklearn.datasets.load_digits``: 1 797 images of 8x8 pixels, values 0..16, no download), scaled up
and pasted at a random place on a larger empty canvas, plus a few *clutter fragments*: square pieces
cut out of other digits and pasted elsewhere. The label is the class of the whole digit.

Why this task. A network that ends in global average pooling sums evidence from every position, so
the fragments (pieces of 3s, 7s, ...) add misleading evidence; a map that says "the digit is here"
can down-weight them. The digit's bounding box is returned with every image, so we can ask whether
a spatial attention map actually found the digit.

Choices, and why:

* ``scale=2`` (16x16 digits) by default. At 8x8 a digit is 4 pixels wide after the first two
  poolings of a small CNN, and a quarter-digit fragment (4x4) is barely a stroke. At 16x16 a digit
  still covers a 4x4 patch of a 1/4-resolution feature map and an 8x8 fragment is a recognisable
  piece of a stroke. Upscaling is bilinear, so strokes stay smooth.
* ``canvas_size=48``: the digit covers 1/9 of the image, so 8/9 of the canvas is background or
  clutter, and there is room for 6 fragments beside the digit.
* Clutter never overlaps the digit's box: a fragment is placed only where its square does not
  intersect the box, and fragments are combined with ``max`` (never overwritten), so the pixels
  inside the box are exactly the digit. The digit is therefore never hidden, not even in part.
  Fragments may overlap each other.
* Fragments are cut where a digit has ink (a window holding at least half of the most inked
  window of that digit), so clutter is never an empty square.
* Train/test split by *source image*: :func:`load_cluttered_digits` splits the 1 797 source images
  per class, and train digits *and* train clutter come only from train sources (the same for
  test), so no test pixel was ever seen in training. The bundled set has no writer ids, so the
  same writer may appear on both sides; the split is by image, not by writer.

Everything is generated in memory with a ``numpy.random.Generator`` seeded by ``seed``: the same
arguments give bit-identical tensors on every platform.

Shape glossary: N images, H x W canvas, D = 8 * scale the digit's side, F the fragment's side,
K = ``num_clutter`` fragments per image.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["ClutteredDigits", "make_cluttered_digits", "load_cluttered_digits", "split_sources",
           "NUM_SOURCES", "NUM_CLASSES"]

NUM_CLASSES = 10
NUM_SOURCES = 1797  # images in sklearn's load_digits
_DIGIT_SIDE = 8  # the source images are 8x8


# --------------------------------------------------------------------------------------------
# The result
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClutteredDigits:
    """One split of the cluttered-digits data set (all tensors on the CPU).

    Attributes:
        images: (N, 1, H, W) float32 in [0, 1].
        labels: (N,) int64 in 0..9, the class of the whole digit.
        boxes: (N, 4) int64 ``(top, left, bottom, right)``, half-open, in canvas pixels:
            ``images[i, 0, top:bottom, left:right]`` is exactly the (scaled) digit.
        sources: (N,) int64, the index into ``load_digits()`` of each digit.
        clutter_sources: (N, K) int64, the index into ``load_digits()`` of every fragment.
        clutter_boxes: (N, K, 4) int64, where each fragment was pasted, (top, left, bottom, right).
        clutter_cuts: (N, K, 2) int64, (row, col) in the scaled source digit where it was cut out.
    """

    images: torch.Tensor
    labels: torch.Tensor
    boxes: torch.Tensor
    sources: torch.Tensor
    clutter_sources: torch.Tensor
    clutter_boxes: torch.Tensor
    clutter_cuts: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def box_masks(self, size: tuple[int, int] | None = None) -> torch.Tensor:
        """(N, 1, h, w) bool, True inside each digit's box.

        ``size=(h, w)`` gives the mask at a coarser resolution (a feature map's), where a cell is
        inside when its centre falls inside the box scaled by the same factor.
        """
        n, _, height, width = self.images.shape
        h, w = (height, width) if size is None else size
        rows = (torch.arange(h, dtype=torch.float64) + 0.5) * (height / h)  # cell centres, pixels
        cols = (torch.arange(w, dtype=torch.float64) + 0.5) * (width / w)
        top, left, bottom, right = (self.boxes[:, k, None].double() for k in range(4))
        inside_rows = (rows >= top) & (rows < bottom)  # (N, h)
        inside_cols = (cols >= left) & (cols < right)  # (N, w)
        return (inside_rows[:, :, None] & inside_cols[:, None, :])[:, None]


# --------------------------------------------------------------------------------------------
# Argument checks: each names what was expected and what came
# --------------------------------------------------------------------------------------------
def _int(name: str, value, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int >= {minimum}; got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value}")
    return int(value)


def _canvas(value) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"canvas_size must be an int or a pair (height, width); got {value!r}")
        return _int("canvas_size[0]", value[0], minimum=1), _int("canvas_size[1]", value[1], minimum=1)
    side = _int("canvas_size", value, minimum=1)
    return side, side


def _check_geometry(canvas: tuple[int, int], scale: int, num_clutter: int, fragment_size: int) -> int:
    digit = _DIGIT_SIDE * scale
    if min(canvas) < digit:
        raise ValueError(f"canvas_size must be at least the digit's side 8 * scale = {digit} "
                         f"(scale={scale}); got {canvas[0]}x{canvas[1]}")
    if not 2 <= fragment_size < digit:
        raise ValueError(f"fragment_size must be in 2..{digit - 1} (smaller than the digit's side "
                         f"{digit}, so a fragment is never a whole digit); got {fragment_size}")
    # Wherever the digit lands, one side of it must leave room for a fragment along some axis:
    # the free length H - D splits into two gaps, the larger is >= ceil((H - D) / 2).
    need = digit + 2 * fragment_size - 1
    if num_clutter > 0 and max(canvas) < need:
        raise ValueError(f"canvas_size must be at least digit + 2 * fragment_size - 1 = {need} to "
                         f"leave room for clutter beside the digit (digit {digit}, fragment "
                         f"{fragment_size}); got {canvas[0]}x{canvas[1]}. Use num_clutter=0 or a "
                         f"larger canvas.")
    return digit


# --------------------------------------------------------------------------------------------
# Source digits
# --------------------------------------------------------------------------------------------
def sklearn_data_file(*parts: str) -> Path | None:
    """A data file that ships inside scikit-learn (``datasets/data/digits.csv.gz``, ``datasets/images/china.jpg``),
    found without importing scikit-learn (its import costs about 1.6 s of every kernel); None if absent."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("sklearn")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root).joinpath(*parts)
        if path.is_file():
            return path
    return None


@lru_cache(maxsize=1)
def _raw_digits() -> tuple[np.ndarray, np.ndarray]:
    path = sklearn_data_file("datasets", "data", "digits.csv.gz")
    if path is not None:  # what load_digits reads, read the way it reads it
        import gzip

        with gzip.open(path, mode="rt", encoding="utf-8") as fh:
            table = np.loadtxt(fh, delimiter=",")
        flat, target = table[:, :-1], table[:, -1].astype(int)
    else:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        flat, target = bunch.data, bunch.target
    images = (flat.reshape(-1, 8, 8) / 16.0).astype(np.float32)  # (1797, 8, 8) in [0, 1]
    return images, target.astype(np.int64)


@lru_cache(maxsize=4)
def _scaled_digits(scale: int) -> np.ndarray:
    """(1797, D, D) float32 in [0, 1]: every source digit, bilinearly upscaled."""
    images, _ = _raw_digits()
    if scale == 1:
        return images
    x = torch.from_numpy(images)[:, None]  # (1797, 1, 8, 8)
    x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    return x[:, 0].clamp(0.0, 1.0).numpy()


@lru_cache(maxsize=4)
def _fragment_offsets(scale: int, fragment_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Where fragments may be cut from each source: windows with at least half the top ink.

    Returns ``allowed`` (1797, P) bool over the P = (D - F + 1)^2 window offsets and ``offsets``
    (P, 2) int64 (row, col) of each.
    """
    digits = _scaled_digits(scale)
    windows = np.lib.stride_tricks.sliding_window_view(digits, (fragment_size, fragment_size), axis=(1, 2))
    ink = windows.sum(axis=(-2, -1)).reshape(digits.shape[0], -1)  # (1797, P)
    allowed = ink >= 0.5 * ink.max(axis=1, keepdims=True)
    side = digits.shape[1] - fragment_size + 1
    offsets = np.stack(np.divmod(np.arange(side * side), side), axis=1)
    return allowed, offsets


def split_sources(*, test_fraction: float = 0.25, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split the 1 797 source images into disjoint train and test index arrays, per class.

    Each class contributes ``round(test_fraction * n_class)`` images to test (at least 1 and at
    least 1 left for train); both arrays are sorted.
    """
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, numbers.Real):
        raise TypeError(f"test_fraction must be a float in (0, 1); got {type(test_fraction).__name__} "
                        f"{test_fraction!r}")
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be a float in (0, 1); got {test_fraction}")
    seed = _int("seed", seed, minimum=0)
    _, labels = _raw_digits()
    rng = np.random.default_rng([seed, 1])  # stream 1: the split (stream 0 draws images)
    train, test = [], []
    for digit in range(NUM_CLASSES):
        members = rng.permutation(np.flatnonzero(labels == digit))
        n_test = min(max(round(test_fraction * len(members)), 1), len(members) - 1)
        test.append(members[:n_test])
        train.append(members[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


# --------------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------------
def make_cluttered_digits(
    num_images: int,
    sources: Sequence[int] | np.ndarray | None = None,
    *,
    canvas_size: int | tuple[int, int] = 48,
    scale: int = 2,
    num_clutter: int = 6,
    fragment_size: int = 8,
    seed: int = 0,
) -> ClutteredDigits:
    """Generate ``num_images`` cluttered-digit images from the given source images.

    Args:
        num_images: how many images to make (>= 1). Classes are balanced: image i shows class
            ``i % 10`` before a final shuffle, so every class gets ``num_images // 10`` or one more.
        sources: indices into ``load_digits()`` that digits *and* clutter may come from
            (default: all 1 797). Every class must be present.
        canvas_size: side of the square canvas, or ``(height, width)``.
        scale: integer upscaling of the 8x8 digits (the digit's side is ``8 * scale``).
        num_clutter: fragments per image (>= 0), each cut from a different source image than the
            digit and placed outside the digit's box.
        fragment_size: side of a square fragment, in canvas pixels (2 <= F < 8 * scale).
        seed: non-negative int; the same arguments and seed give identical tensors.

    Returns:
        :class:`ClutteredDigits`.

    Raises:
        TypeError: an argument of the wrong type (e.g. ``seed=1.5``).
        ValueError: a value out of range; the message names what was expected and what came.
    """
    num_images = _int("num_images", num_images, minimum=1)
    scale = _int("scale", scale, minimum=1)
    num_clutter = _int("num_clutter", num_clutter, minimum=0)
    fragment_size = _int("fragment_size", fragment_size, minimum=1)
    seed = _int("seed", seed, minimum=0)
    height, width = _canvas(canvas_size)
    digit = _check_geometry((height, width), scale, num_clutter, fragment_size)
    pool = _check_sources(sources)

    scaled = _scaled_digits(scale)  # (1797, D, D)
    _, all_labels = _raw_digits()
    allowed, offsets = _fragment_offsets(scale, fragment_size) if num_clutter else (None, None)
    rng = np.random.default_rng([seed, 0])

    # Which digit: balanced classes, then a random source image of that class from the pool.
    labels = np.arange(num_images) % NUM_CLASSES
    rng.shuffle(labels)
    by_class = [pool[all_labels[pool] == c] for c in range(NUM_CLASSES)]
    picks = np.empty(num_images, dtype=np.int64)
    for c in range(NUM_CLASSES):
        where = np.flatnonzero(labels == c)
        picks[where] = rng.choice(by_class[c], size=len(where))

    tops = rng.integers(0, height - digit + 1, size=num_images)
    lefts = rng.integers(0, width - digit + 1, size=num_images)
    boxes = np.stack([tops, lefts, tops + digit, lefts + digit], axis=1)

    images = np.zeros((num_images, height, width), dtype=np.float32)
    clutter_sources = np.empty((num_images, num_clutter), dtype=np.int64)
    clutter_boxes = np.empty((num_images, num_clutter, 4), dtype=np.int64)
    clutter_cuts = np.empty((num_images, num_clutter, 2), dtype=np.int64)
    # Top-left corners a fragment may take: (height - F + 1) x (width - F + 1) grid.
    frag_rows = np.arange(height - fragment_size + 1)[:, None]
    frag_cols = np.arange(width - fragment_size + 1)[None, :]
    for i in range(num_images):
        top, left, bottom, right = boxes[i]
        canvas = images[i]
        if num_clutter:
            # A fragment at (r, c) misses the box if it ends above/left of it or starts below/right.
            misses = ((frag_rows + fragment_size <= top) | (frag_rows >= bottom)
                      | (frag_cols + fragment_size <= left) | (frag_cols >= right))
            corners = np.flatnonzero(misses.ravel())
            # Other source images: draw from the pool without the digit's own source.
            own = np.searchsorted(pool, picks[i])
            others = rng.integers(0, len(pool) - 1, size=num_clutter)
            others = pool[others + (others >= own)]
            clutter_sources[i] = others
            places = rng.choice(corners, size=num_clutter)
            for k, (src, place) in enumerate(zip(others, places)):
                cut_options = np.flatnonzero(allowed[src])
                cut_r, cut_c = offsets[rng.choice(cut_options)]
                piece = scaled[src, cut_r:cut_r + fragment_size, cut_c:cut_c + fragment_size]
                r, c = divmod(int(place), frag_cols.shape[1])
                clutter_boxes[i, k] = (r, c, r + fragment_size, c + fragment_size)
                clutter_cuts[i, k] = (cut_r, cut_c)
                region = canvas[r:r + fragment_size, c:c + fragment_size]
                np.maximum(region, piece, out=region)  # combine, never overwrite
        region = canvas[top:bottom, left:right]
        np.maximum(region, scaled[picks[i]], out=region)

    return ClutteredDigits(
        images=torch.from_numpy(images)[:, None],
        labels=torch.from_numpy(labels.astype(np.int64)),
        boxes=torch.from_numpy(boxes.astype(np.int64)),
        sources=torch.from_numpy(picks),
        clutter_sources=torch.from_numpy(clutter_sources),
        clutter_boxes=torch.from_numpy(clutter_boxes),
        clutter_cuts=torch.from_numpy(clutter_cuts),
    )


def _check_sources(sources) -> np.ndarray:
    if sources is None:
        return np.arange(NUM_SOURCES)
    if isinstance(sources, torch.Tensor):
        sources = sources.cpu().numpy()
    pool = np.asarray(sources)
    if pool.ndim != 1 or not np.issubdtype(pool.dtype, np.integer):
        raise TypeError(f"sources must be a 1-D sequence of ints (indices into load_digits()); got "
                        f"array of dtype {pool.dtype} and shape {pool.shape}")
    if pool.size and (pool.min() < 0 or pool.max() >= NUM_SOURCES):
        raise ValueError(f"sources must be indices in 0..{NUM_SOURCES - 1}; got values from "
                         f"{pool.min()} to {pool.max()}")
    pool = np.unique(pool)
    _, labels = _raw_digits()
    missing = sorted(set(range(NUM_CLASSES)) - set(labels[pool].tolist()))
    if missing:
        raise ValueError(f"sources must hold at least one image of every class 0..9 (and two "
                         f"images in all, for clutter); classes missing: {missing}")
    return pool.astype(np.int64)


def load_cluttered_digits(
    num_train: int = 6000,
    num_test: int = 2000,
    *,
    canvas_size: int | tuple[int, int] = 48,
    scale: int = 2,
    num_clutter: int = 6,
    fragment_size: int = 8,
    test_fraction: float = 0.25,
    seed: int = 0,
) -> tuple[ClutteredDigits, ClutteredDigits]:
    """Train and test splits whose digits and clutter come from disjoint source images.

    The sources are split per class by :func:`split_sources` (``test_fraction`` of each class go
    to test); each split is then drawn by :func:`make_cluttered_digits` with its own seed stream.
    Other arguments are as in :func:`make_cluttered_digits`.

    >>> train, test = load_cluttered_digits(200, 100, seed=0)
    >>> train.images.shape, test.labels.dtype
    (torch.Size([200, 1, 48, 48]), torch.int64)
    """
    seed = _int("seed", seed, minimum=0)
    train_sources, test_sources = split_sources(test_fraction=test_fraction, seed=seed)
    common = dict(canvas_size=canvas_size, scale=scale, num_clutter=num_clutter, fragment_size=fragment_size)
    # The two splits use different seeds: 2*seed and 2*seed + 1 never collide across seeds.
    train = make_cluttered_digits(num_train, train_sources, seed=2 * seed, **common)
    test = make_cluttered_digits(num_test, test_sources, seed=2 * seed + 1, **common)
    return train, test
