"""course_lib.data: the cluttered-digits generator.

Each property has a wrong generator (or wrong data) beside it that the same check rejects, so the
check is known to be able to fail.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib import data as D
from course_lib.data import ClutteredDigits, load_cluttered_digits, make_cluttered_digits, split_sources


@pytest.fixture(scope="module")
def split() -> tuple[ClutteredDigits, ClutteredDigits]:
    return load_cluttered_digits(300, 100, seed=3)


# ---------------------------------------------------------------------------------------------
# Checks used by the tests (and run against wrong data to prove they can fail)
# ---------------------------------------------------------------------------------------------
def digit_intact(data: ClutteredDigits, scale: int = 2) -> torch.Tensor:
    """(N,) bool: the pixels inside each box are exactly the scaled source digit."""
    digits = torch.from_numpy(D._scaled_digits(scale))
    ok = []
    for image, box, src in zip(data.images, data.boxes, data.sources):
        top, left, bottom, right = box.tolist()
        ok.append(torch.equal(image[0, top:bottom, left:right], digits[src]))
    return torch.tensor(ok)


def leaked_sources(train: ClutteredDigits, test: ClutteredDigits) -> set[int]:
    """Source images whose pixels appear in both splits (as digit or as clutter)."""
    used = [set(d.sources.tolist()) | set(d.clutter_sources.flatten().tolist()) for d in (train, test)]
    return used[0] & used[1]


def _overwrite_clutter_on_digit(data: ClutteredDigits) -> ClutteredDigits:
    """Wrong generator: pastes a fragment over the digit with '=' (what max-combining prevents)."""
    images = data.images.clone()
    piece = torch.from_numpy(D._scaled_digits(2))[data.clutter_sources[:, 0], 4:12, 4:12]
    for i, (top, left, _, _) in enumerate(data.boxes.tolist()):
        images[i, 0, top + 4:top + 12, left + 4:left + 12] = piece[i]
    return ClutteredDigits(images, data.labels, data.boxes, data.sources, data.clutter_sources, data.clutter_boxes,
                           data.clutter_cuts)


# ---------------------------------------------------------------------------------------------
# Shapes, dtypes, ranges, balance
# ---------------------------------------------------------------------------------------------
def test_shapes_dtypes_and_ranges(split):
    train, test = split
    for d, n in ((train, 300), (test, 100)):
        assert d.images.shape == (n, 1, 48, 48) and d.images.dtype == torch.float32
        assert d.labels.shape == (n,) and d.labels.dtype == torch.int64
        assert d.boxes.shape == (n, 4) and d.boxes.dtype == torch.int64
        assert d.clutter_sources.shape == (n, 6)
        assert d.clutter_boxes.shape == (n, 6, 4) and d.clutter_cuts.shape == (n, 6, 2)
        assert 0.0 <= float(d.images.min()) and float(d.images.max()) <= 1.0
        assert set(d.labels.tolist()) <= set(range(10))
        assert len(d) == n


def test_classes_are_balanced(split):
    counts = split[0].labels.bincount(minlength=10)
    assert int(counts.max() - counts.min()) <= 1, counts


def test_boxes_lie_on_the_canvas_and_have_the_digit_size(split):
    boxes = split[0].boxes
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 48).all()
    torch.testing.assert_close(boxes[:, 2] - boxes[:, 0], torch.full((300,), 16))
    torch.testing.assert_close(boxes[:, 3] - boxes[:, 1], torch.full((300,), 16))


def test_labels_are_the_class_of_the_source_digit(split):
    _, targets = D._raw_digits()
    torch.testing.assert_close(split[0].labels, torch.from_numpy(targets)[split[0].sources])


def test_digit_positions_vary(split):
    assert len(set(map(tuple, split[0].boxes[:, :2].tolist()))) > 100


# ---------------------------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------------------------
def _same(a: ClutteredDigits, b: ClutteredDigits) -> bool:
    return all(torch.equal(getattr(a, k), getattr(b, k)) for k in ("images", "labels", "boxes", "sources",
                                                                   "clutter_sources", "clutter_boxes",
                                                                   "clutter_cuts"))


def test_same_seed_gives_identical_data():
    assert _same(make_cluttered_digits(40, seed=7), make_cluttered_digits(40, seed=7))


def test_different_seed_gives_different_data():
    a, b = make_cluttered_digits(40, seed=7), make_cluttered_digits(40, seed=8)
    assert not torch.equal(a.images, b.images)
    assert not _same(a, b)  # the helper itself can tell data apart


def test_split_is_deterministic_and_seed_dependent():
    a_train, a_test = split_sources(seed=1)
    b_train, b_test = split_sources(seed=1)
    np.testing.assert_array_equal(a_train, b_train)
    np.testing.assert_array_equal(a_test, b_test)
    assert not np.array_equal(split_sources(seed=2)[1], a_test)


# ---------------------------------------------------------------------------------------------
# The digit is never hidden by clutter
# ---------------------------------------------------------------------------------------------
def test_digit_pixels_are_untouched_by_clutter(split):
    for d in split:
        assert digit_intact(d).all()


def test_digit_check_catches_a_generator_that_overwrites_the_digit(split):
    assert not digit_intact(_overwrite_clutter_on_digit(split[0])).any()


def test_digit_is_visible_in_its_box(split):
    # The box holds all the digit's ink, and clutter really is there outside it.
    train = split[0]
    masks = train.box_masks()
    digits = torch.from_numpy(D._scaled_digits(2))[train.sources]
    inside = (train.images * masks).flatten(1).sum(1)
    torch.testing.assert_close(inside, digits.flatten(1).sum(1))
    outside = (train.images * ~masks).flatten(1).sum(1)
    assert (outside > 0).all()


def fragments_kept(data: ClutteredDigits, scale: int = 2) -> bool:
    """Every fragment is still fully there (pixel >= fragment) where it was pasted: max, not '='."""
    digits = torch.from_numpy(D._scaled_digits(scale))
    for image, srcs, boxes, cuts in zip(data.images, data.clutter_sources, data.clutter_boxes, data.clutter_cuts):
        for src, (top, left, bottom, right), (r, c) in zip(srcs, boxes.tolist(), cuts.tolist()):
            piece = digits[src, r:r + bottom - top, c:c + right - left]
            if not (image[0, top:bottom, left:right] >= piece).all():
                return False
    return True


def _paste_fragments_with_overwrite(data: ClutteredDigits, scale: int = 2) -> ClutteredDigits:
    """Wrong generator: re-pastes the fragments with '=', so a later one erases an earlier one's ink."""
    digits = torch.from_numpy(D._scaled_digits(scale))
    images = data.images.clone()
    for image, srcs, boxes, cuts in zip(images, data.clutter_sources, data.clutter_boxes, data.clutter_cuts):
        for src, (top, left, bottom, right), (r, c) in zip(srcs, boxes.tolist(), cuts.tolist()):
            image[0, top:bottom, left:right] = digits[src, r:r + bottom - top, c:c + right - left]
    return ClutteredDigits(images, data.labels, data.boxes, data.sources, data.clutter_sources, data.clutter_boxes,
                           data.clutter_cuts)


def test_fragments_never_touch_the_digit_box(split):
    for d in split:
        top, left, bottom, right = (d.boxes[:, None, k] for k in range(4))
        ct, cl, cb, cr = (d.clutter_boxes[..., k] for k in range(4))
        overlap = (ct < bottom) & (cb > top) & (cl < right) & (cr > left)
        assert not overlap.any()


def test_overlapping_fragments_are_combined_with_max():
    # Many fragments on a small canvas overlap each other (never the digit).
    d = make_cluttered_digits(20, canvas_size=32, num_clutter=12, fragment_size=8, seed=0)
    assert digit_intact(d).all()
    assert fragments_kept(d)
    assert not fragments_kept(_paste_fragments_with_overwrite(d))  # the check catches '='


def test_no_clutter_means_only_the_digit():
    d = make_cluttered_digits(10, num_clutter=0, seed=0)
    digits = torch.from_numpy(D._scaled_digits(2))[d.sources]
    torch.testing.assert_close(d.images.flatten(1).sum(1), digits.flatten(1).sum(1))
    assert d.clutter_sources.shape == (10, 0)


def test_clutter_comes_from_other_source_images(split):
    d = split[0]
    assert not (d.clutter_sources == d.sources[:, None]).any()


def test_non_square_canvas_and_scale_one():
    d = make_cluttered_digits(12, canvas_size=(40, 56), scale=1, fragment_size=4, seed=0)
    assert d.images.shape == (12, 1, 40, 56)
    assert digit_intact(d, scale=1).all()
    torch.testing.assert_close(d.boxes[:, 2] - d.boxes[:, 0], torch.full((12,), 8))


def test_box_masks_at_feature_resolution(split):
    d = split[0]
    full = d.box_masks()
    assert full.shape == (300, 1, 48, 48) and full.flatten(1).sum(1).eq(256).all()
    small = d.box_masks((12, 12))
    assert small.shape == (300, 1, 12, 12)
    # the coarse mask is the fine mask read at each cell's centre pixel (rows 4i + 2 of 48)
    torch.testing.assert_close(small, full[:, :, 2::4, 2::4])


# ---------------------------------------------------------------------------------------------
# Train/test separation
# ---------------------------------------------------------------------------------------------
def test_train_and_test_use_disjoint_source_images(split):
    assert leaked_sources(*split) == set()


def test_leak_check_catches_splits_drawn_from_the_same_sources():
    a, b = make_cluttered_digits(100, seed=0), make_cluttered_digits(100, seed=1)
    assert leaked_sources(a, b)


def test_source_split_is_disjoint_covers_everything_and_keeps_every_class():
    train, test = split_sources(test_fraction=0.25, seed=0)
    assert not set(train) & set(test)
    assert len(train) + len(test) == D.NUM_SOURCES
    _, targets = D._raw_digits()
    assert set(targets[test]) == set(range(10)) == set(targets[train])
    assert 0.2 < len(test) / D.NUM_SOURCES < 0.3


def test_digits_come_from_the_given_sources():
    train, _ = split_sources(seed=0)
    d = make_cluttered_digits(50, train, seed=0)
    assert set(d.sources.tolist()) | set(d.clutter_sources.flatten().tolist()) <= set(train.tolist())


# ---------------------------------------------------------------------------------------------
# Bad arguments: the error names what was expected and what came
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(num_images=0), ValueError, ["num_images", ">= 1", "got 0"]),
        (dict(num_images=-3), ValueError, ["num_images", "got -3"]),
        (dict(num_images=2.5), TypeError, ["num_images", "int", "float"]),
        (dict(num_images=True), TypeError, ["num_images", "bool"]),
        (dict(canvas_size=12), ValueError, ["canvas_size", "digit", "16", "12x12"]),
        (dict(canvas_size=(48, 10)), ValueError, ["canvas_size", "16", "48x10"]),
        (dict(canvas_size=(48, 48, 3)), ValueError, ["canvas_size", "pair", "(48, 48, 3)"]),
        (dict(canvas_size=24, num_clutter=3), ValueError, ["at least", "31", "24x24", "num_clutter=0"]),
        (dict(num_clutter=-1), ValueError, ["num_clutter", ">= 0", "got -1"]),
        (dict(fragment_size=16), ValueError, ["fragment_size", "2..15", "got 16"]),
        (dict(scale=0), ValueError, ["scale", "got 0"]),
        (dict(seed=1.5), TypeError, ["seed", "int", "float 1.5"]),
        (dict(seed="0"), TypeError, ["seed", "str"]),
        (dict(seed=-1), ValueError, ["seed", ">= 0", "got -1"]),
        (dict(sources=[0, 1, 2]), ValueError, ["every class", "missing"]),
        (dict(sources=[0, 5000]), ValueError, ["0..1796", "5000"]),
        (dict(sources=[0.5, 1.5]), TypeError, ["sources", "ints", "float64"]),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, error, words):
    kwargs = {"num_images": 4, **kwargs}
    with pytest.raises(error) as info:
        make_cluttered_digits(**kwargs)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


@pytest.mark.parametrize("fraction, error", [(0.0, ValueError), (1.0, ValueError), (1.5, ValueError),
                                              ("0.2", TypeError)])
def test_bad_test_fraction(fraction, error):
    with pytest.raises(error, match="test_fraction must be a float in \\(0, 1\\)"):
        load_cluttered_digits(10, 10, test_fraction=fraction)


def test_zero_canvas_room_is_fine_without_clutter():
    d = make_cluttered_digits(3, canvas_size=16, num_clutter=0, seed=0)
    assert (d.boxes == torch.tensor([0, 0, 16, 16])).all()


def test_source_digits_and_photos_are_scikit_learns_read_without_importing_it():
    """The digits and the two photos are read from scikit-learn's own files (its import costs every kernel
    about 1.6 s): they must be exactly what load_digits and load_sample_image give, and reading them must
    not import scikit-learn."""
    import subprocess
    import sys

    from sklearn.datasets import load_digits, load_sample_image

    from course_lib.data import _raw_digits
    from course_lib.figures.common import photo

    images, labels = _raw_digits.__wrapped__()
    bunch = load_digits()
    np.testing.assert_array_equal(images, (bunch.images / 16.0).astype(np.float32))
    np.testing.assert_array_equal(labels, bunch.target)
    assert labels.dtype == np.int64 and images.shape == (1797, 8, 8)
    for name in ("china.jpg", "flower.jpg"):
        image = photo.__wrapped__(name)
        np.testing.assert_array_equal(image, load_sample_image(name))
        assert image.dtype == np.uint8 and image.shape == (427, 640, 3)
    probe = ("import sys; from course_lib.data import _raw_digits; from course_lib.figures.common import photo; "
             "_raw_digits(); photo('china.jpg'); print(sorted(m for m in sys.modules if m.startswith('sklearn')))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
