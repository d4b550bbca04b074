"""What every chapter's tests share: the graded calls its notebook makes, the reference object each graded
check is run on, and the notebook's solution cells executed as a namespace.

``tests/test_chapter_contracts.py`` runs the contracts every chapter keeps (the checks pass on the reference,
fail on a stub and are quick; the stored values are current; the solution passes every graded cell) from
these; ``tests/test_chNN_*.py`` import what they need for their chapter's own tests.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

import nbformat
import torch

from catalog import PRELUDE
from course_lib.checks.toolkit import is_close
from course_lib.tools import notebooks as nbs

# ------------------------------------------------------------------------------------------------
# the notebook's graded cells and solution cells
# ------------------------------------------------------------------------------------------------
_CALL = re.compile(r"((?:check|hidden)_\w+)\((\w+)\)")
_PLUMBING = re.compile(r"### (BEGIN|END) HIDDEN TESTS|from course_lib\.hidden\.\w+ import [\w, ]+")


@dataclass(frozen=True)
class GradedCell:
    """One auto-graded test cell: the visible and the hidden checks it calls, each on a notebook symbol."""
    chapter: str
    grade_id: str
    visible: tuple[tuple[str, str], ...]   # (check_x, symbol)
    hidden: tuple[tuple[str, str], ...]    # (hidden_x, symbol)
    unread: tuple[str, ...] = ()           # lines that are neither a check call nor the hidden-test plumbing

    @property
    def is_question(self) -> bool:
        return all(symbol.startswith("q_") for _, symbol in self.visible + self.hidden)


def notebook(chapter: str, folder: str = nbs.SOURCE) -> nbformat.NotebookNode:
    return nbformat.read(nbs.notebook_path(chapter, folder=folder), as_version=4)


def grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def graded_cells(chapter: str) -> list[GradedCell]:
    """The auto-graded test cells of the chapter's source notebook, in notebook order."""
    found = []
    for cell in notebook(chapter).cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
            continue
        visible, hidden, unread = [], [], []
        for line in filter(None, (raw.strip() for raw in cell.source.splitlines())):
            call = _CALL.fullmatch(line)
            if call:
                (visible if call[1].startswith("check_") else hidden).append((call[1], call[2]))
            elif not _PLUMBING.fullmatch(line):
                unread.append(line)
        found.append(GradedCell(chapter, meta["grade_id"], tuple(visible), tuple(hidden), tuple(unread)))
    return found


def written_cells(chapter: str) -> list:
    """The written (markdown, graded by hand) solution cells of the chapter's source notebook."""
    return [c for c in notebook(chapter).cells
            if c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("solution")]


#: Cells besides the solution cells that the solution cells rely on, and what the notebook imports before
#: them when it is not catalog.PRELUDE.
SETUP_CELLS: dict[str, Callable[[Any], bool]] = {
    "01_se": lambda cell: cell.cell_type == "code" and cell.source.startswith("RESNET50_STAGES"),
    "04_hacnn": lambda cell: cell.cell_type == "code" and grade_id(cell) == "convblock",
}
PRELUDES = {
    "00_shapes": "import torch\nfrom einops import rearrange, reduce\nimport torch.nn.functional as F",
    "09_capstone": PRELUDE + "from course_lib.capstone import CapstoneNet, localisation, spatial_maps\n",
}


@dataclass
class Solution:
    namespace: dict
    cells: list = field(default_factory=list)  # the solution cells (written ones included) and setup cells, in order

    @property
    def ids(self) -> list[str | None]:
        return [grade_id(c) for c in self.cells]

    def code_ids(self) -> set[str | None]:
        return {grade_id(c) for c in self.cells if c.cell_type == "code"}


def run_solution(chapter: str) -> Solution:
    """The notebook's solution code cells (and its setup cells) executed in notebook order after its imports."""
    setup = SETUP_CELLS.get(chapter, lambda cell: False)
    solution = Solution({})
    exec(compile(PRELUDES.get(chapter, PRELUDE), "<prelude>", "exec"), solution.namespace)
    for cell in notebook(chapter).cells:
        if not (cell.metadata.get("nbgrader", {}).get("solution") or setup(cell)):
            continue
        if grade_id(cell) is not None:
            solution.cells.append(cell)
        if cell.cell_type == "code":
            exec(compile(cell.source, f"<{chapter} cell {grade_id(cell)}>", "exec"), solution.namespace)
    return solution


# ------------------------------------------------------------------------------------------------
# what passes each chapter's graded checks: notebook symbol -> the reference the checks are run on
# ------------------------------------------------------------------------------------------------
def se_count_by_hand(channels: int, reduction: int = 16) -> int:
    hidden_width = channels // reduction
    return 2 * channels * hidden_width + hidden_width + channels


RESNET50_STAGES = ((3, 256), (4, 512), (6, 1024), (3, 2048))


def seresnet50_by_hand(reduction: int = 16) -> int:
    return sum(b * se_count_by_hand(c, reduction) for b, c in RESNET50_STAGES)


def sam_count_by_hand(c_in: int, c_out: int) -> int:
    return 2 * 9 + c_in * c_out * 9 + 2 * c_out


def swap_by_flip(w):
    return w.flip(1)


def soft_map_interval():
    return (0.5, 1.0)


def pam_einops_reference(q, k, v):
    from einops import rearrange

    h = v.shape[-2]
    q3, k3 = rearrange(q, "b c h w -> b (h w) c"), rearrange(k, "b c h w -> b c (h w)")
    v3 = rearrange(v, "b c h w -> b c (h w)")
    return rearrange(v3 @ (q3 @ k3).softmax(-1).transpose(1, 2), "b c (h w) -> b c h w", h=h)


def most_attended_reference(energy, variant):
    return (energy if variant == "paper" else energy.amax(-1, keepdim=True) - energy).softmax(-1).argmax(-1)


def dual_reference(x, pam, cam):
    return pam(x) + cam(x) - x


def directional_pool_reference(x):
    return x.mean(3, keepdim=True), x.mean(2, keepdim=True).transpose(2, 3)


def judge_by_hand(model, images, boxes) -> dict:
    from course_lib import capstone as cap

    att = cap.localisation(cap.spatial_maps(model, images), boxes)
    ctrl = cap.localisation(cap.spatial_maps(model, images, control=True), boxes)
    return {"lift": att["lift"], "control_lift": ctrl["lift"], "finds_digit": att["lift"] > 1,
            "beats_control": att["lift"] > ctrl["lift"]}


def _blog_classes():
    from course_lib.reference.danet import ChannelAttention, PositionAttention

    class CAM_Module(ChannelAttention):  # the blog's signature, the official variant
        def __init__(self, in_dim):
            super().__init__(variant="official")

    class PAM_Module(PositionAttention):  # the blog's signature, reduction 8
        def __init__(self, in_dim):
            super().__init__(in_dim, 8)

    return CAM_Module, PAM_Module


def _references_00() -> dict:
    from course_lib.hidden import ch00_shapes as hidden

    return dict(hidden.REFERENCES)


def _references_01() -> dict:
    from course_lib.reference.se import SqueezeExcitation

    return {"SqueezeExcitation": SqueezeExcitation, "se_parameter_count": se_count_by_hand,
            "seresnet50_extra_parameters": seresnet50_by_hand}


def _references_02() -> dict:
    from course_lib.reference.cbam import CBAM, ChannelAttention, SpatialAttention

    return {"ChannelAttention": ChannelAttention, "SpatialAttention": SpatialAttention, "CBAM": CBAM}


def _references_03() -> dict:
    from course_lib.reference.ctdnet import SpatialAttentionModule

    return {"SpatialAttentionModule": SpatialAttentionModule, "sam_parameter_count": sam_count_by_hand,
            "swap_pool_order": swap_by_flip}


def _references_04() -> dict:
    from course_lib.reference import hacnn

    return {"SpatialAttention": hacnn.SpatialAttention, "ChannelAttention": hacnn.ChannelAttention,
            "SoftAttention": hacnn.SoftAttention, "HardAttention": hacnn.HardAttention,
            "soft_map_interval": soft_map_interval}


def _references_05() -> dict:
    from course_lib.reference.danet import PositionAttention

    return {"PositionAttention": PositionAttention, "pam_einops": pam_einops_reference}


def _references_06() -> dict:
    from course_lib.reference.danet import ChannelAttention

    blog_cam, blog_pam = _blog_classes()
    return {"ChannelAttention": ChannelAttention, "most_attended": most_attended_reference, "CAM_Module": blog_cam,
            "PAM_Module": blog_pam, "dual_attention": dual_reference}


def _references_07() -> dict:
    from course_lib.reference.nonlocal_block import NonLocalBlock

    # The reference GC block keeps the official names (the checks ask for the paper's), and the chapter has no
    # reference mean_cosine_distance of the notebook's signature: both come from the solution cells.
    ns = run_solution("07_nonlocal_gcnet").namespace
    return {"NonLocalBlock": NonLocalBlock, "GlobalContextBlock": ns["GlobalContextBlock"],
            "mean_cosine_distance": ns["mean_cosine_distance"], "gc_state_from_se": ns["gc_state_from_se"]}


def _references_08() -> dict:
    from course_lib.hidden import ch08_eca_coordatt as hidden
    from course_lib.reference.coord_attention import CoordinateAttention
    from course_lib.reference.eca import EfficientChannelAttention, adaptive_kernel_size

    return {"adaptive_kernel_size": adaptive_kernel_size, "EfficientChannelAttention": EfficientChannelAttention,
            "directional_pool": directional_pool_reference, "CoordinateAttention": CoordinateAttention,
            "attention_parameters": hidden.reference_counts}


def _references_09() -> dict:
    from course_lib.checks import ch09_capstone as visible
    from course_lib.hidden import ch09_capstone as hidden

    return {"ChannelSpatialGate": hidden.ChannelSpatialGate, "gate_parameter_count": visible.gate_count_by_hand,
            "paired_difference": visible.paired_by_hand, "judge_localisation": judge_by_hand}


#: chapter -> a function giving {notebook symbol: the reference object its graded checks pass on}.
REFERENCES: dict[str, Callable[[], dict]] = {
    "00_shapes": _references_00, "01_se": _references_01, "02_cbam": _references_02,
    "03_ctdnet_sam": _references_03, "04_hacnn": _references_04, "05_danet_pam": _references_05,
    "06_danet_cam": _references_06, "07_nonlocal_gcnet": _references_07, "08_eca_coordatt": _references_08,
    "09_capstone": _references_09,
}


def stub_for(reference: Any) -> Any:
    """The untouched stub of what ``reference`` is: a class whose constructor, or a function that, raises
    NotImplementedError, as the released notebook's cells do."""
    if isinstance(reference, type):
        class Stub(torch.nn.Module):
            def __init__(self, *args, **kwargs):
                super().__init__()
                raise NotImplementedError()

        return Stub

    def stub(*args, **kwargs):
        raise NotImplementedError()

    return stub


# ------------------------------------------------------------------------------------------------
# assertions several chapters make on their own data
# ------------------------------------------------------------------------------------------------
def assert_diagnoses_differ(groups, advice) -> None:
    """Each stored diagnosis (label -> wrong value) is named in ``advice`` and differs from its right answer:
    a diagnosis equal to the expected value would name a mistake for a right answer."""
    for right, diagnoses in groups:
        for label, wrong in diagnoses.items():
            assert label in advice, label
            assert not is_close(wrong, right), label


def assert_follows_device_and_dtype(module: torch.nn.Module, x: torch.Tensor, shape=None) -> torch.Tensor:
    """``module``, moved to ``x``'s device and dtype, gives a result on that device, in that dtype, of ``shape``
    (``x``'s unless given)."""
    y = module.to(device=x.device, dtype=x.dtype)(x)
    assert y.device == x.device and y.dtype == x.dtype and y.shape == (x.shape if shape is None else shape)
    return y
