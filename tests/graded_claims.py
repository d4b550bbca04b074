"""Every sentence of the student notebooks that says what is graded, accepted, checked or required, held to the
checks (issue 26, item 4; tests/test_graded_claims.py runs this table).

A sentence is a *graded claim* when it matches :data:`CLAIM_WORDS`. Each one must be declared here, found by a
key phrase (a piece of the sentence, compared lower-case with its white space collapsed), as one of:

* :class:`Claim` with probes: each probe grades an implementation from ``tests/catalog`` (or a variant of one:
  ``replace`` swaps pieces of its source, each of which must be there; ``append`` adds source, e.g. a subclass
  that breaks one case) with the exercise's visible and hidden checks, the way ``catalog.grade`` does, and states
  the outcome the sentence promises: full marks (``passes``), a failure (``fails``, optionally naming the
  mistake), or a failure of the hidden checks only (``fails_hidden``: the visible check lets it through, as the
  sentence says);
  ``facts`` hold what no implementation can show (a stored case's sizes, a cell graded by hand);
* :class:`Claim` with ``about``: the sentence uses the words but promises nothing about grading (a section title
  of ungraded work, a demo cell, a remark about PyTorch); ``about`` says why, for a reviewer to judge;
* :data:`PENDING`: a sentence of a chapter whose owner is rewriting it today; the test lists these on every run
  (as a warning, with the current outcome of any probe given), it does not skip them silently.

A new graded sentence with no entry fails the test, so a new promise must be declared with its probe.
"""
from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]

#: The words that make a sentence a graded claim.
CLAIM_WORDS = re.compile(
    r"\b(graded|grading|grades|accept(?:ed|s)?|full marks|no points?|the (?:visible )?checks?|the hidden tests?|"
    r"checks? (?:here|of exercise)|required|"
    # the stubs' contracts and the comparisons the chapters announce (what tests/chapter_cases' promise sentences
    # held for chapters 02, 04 and 06 before this table took them over)
    r"hidden checks?|(?:is|are) compared|compared (?:to|with)|any (?:float )?dtype|any device)\b", re.I)


def normalise(text: str) -> str:
    return " ".join(text.split()).lower()


def _texts(cell: dict) -> list[str]:
    source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
    if cell["cell_type"] == "markdown":
        return [source]
    if cell["cell_type"] != "code":
        return []
    comments = [line.strip()[1:] for line in source.split("\n")
                if line.strip().startswith("#") and not line.strip().startswith("###")]
    return comments + re.findall(r'"""(.*?)"""', source, re.S)


def sentences(chapter: str, root: Path = REPO) -> list[str]:
    """The graded-claim sentences of a student notebook (markdown, and the comments and docstrings of code)."""
    nb = json.loads((root / "notebooks" / chapter / f"{chapter}.ipynb").read_text(encoding="utf-8"))
    found = []
    for cell in nb["cells"]:
        for text in _texts(cell):
            flat = " ".join(text.split())
            for sentence in re.split(r"(?<=[.!?:;])\s+(?=[A-Z*(`#])|\s+\*\s+", flat):
                if CLAIM_WORDS.search(sentence):
                    found.append(sentence)
    return found


# --------------------------------------------------------------------------------------------
# probes
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Probe:
    exercise: str                 # the catalog Exercise's name
    label: str                    # the label of a catalog Impl of that exercise
    expect: str                   # "passes", "fails", "fails_visible", "fails_hidden"
    mistake: str | None = None    # for "fails": the mistake id the failure must name
    append: str = ""              # source appended to the impl's (a variant: e.g. a subclass that breaks one case)
    replace: tuple[tuple[str, str], ...] = ()   # (old, new) pairs applied to the impl's source first (a variant)

    def describe(self) -> str:
        what = f"{self.exercise}: {self.label!r}" + (" + variant" if self.append or self.replace else "")
        return f"{what} {self.expect}" + (f" naming {self.mistake}" if self.mistake else "")


def passes(exercise: str, label: str, append: str = "", replace: tuple = ()) -> Probe:
    return Probe(exercise, label, "passes", append=textwrap.dedent(append), replace=tuple(replace))


def fails(exercise: str, label: str, mistake: str | None = None, append: str = "", replace: tuple = ()) -> Probe:
    return Probe(exercise, label, "fails", mistake, textwrap.dedent(append), tuple(replace))


def fails_visible(exercise: str, label: str, mistake: str | None = None, append: str = "",
                  replace: tuple = ()) -> Probe:
    """The visible check alone fails it (a sentence that says the check in the notebook shows the mistake)."""
    return Probe(exercise, label, "fails_visible", mistake, textwrap.dedent(append), tuple(replace))


def fails_hidden(exercise: str, label: str, append: str = "", replace: tuple = ()) -> Probe:
    return Probe(exercise, label, "fails_hidden", append=textwrap.dedent(append), replace=tuple(replace))


def variant_source(source: str, probe: Probe) -> str:
    """The source a probe grades: the catalog implementation's, with the probe's replacements (each must occur in
    it, so that a rewritten catalog entry cannot turn a probe into a copy of the valid answer) and its appendix."""
    for old, new in probe.replace:
        if old not in source:
            raise AssertionError(f"{probe.describe()}: the text to replace is not in the implementation: {old!r}")
        source = source.replace(old, new)
    return source + ("\n" + probe.append if probe.append else "")


def refuse_channels_last(symbol: str, method: str = "forward") -> str:
    """A subclass of a valid module that breaks on inputs in the channels_last layout (as `.view` code does)."""
    return f"""
_Valid = {symbol}
class {symbol}(_Valid):
    def {method}(self, x, *args, **kwargs):
        if not x.is_contiguous():
            raise RuntimeError("view size is not compatible with input tensor's size and stride")
        return super().{method}(x, *args, **kwargs)
"""


def compute_in_float32(symbol: str, method: str = "forward") -> str:
    """A subclass of a valid module whose ``method`` rounds its input and its result to float32 and returns them in
    the input's dtype: the right dtype and gradients, float32 accuracy (as a module that computes in float32 inside
    and casts back)."""
    return f"""
_Valid = {symbol}
class {symbol}(_Valid):
    def {method}(self, x, *args, **kwargs):
        out = super().{method}(x.float().to(x.dtype), *args, **kwargs)
        return out.float().to(out.dtype)
"""


def cpu_tensor_in(symbol: str, method: str = "forward") -> str:
    """A subclass of a valid module whose ``method`` multiplies its result by a tensor of ones made on the CPU
    (``torch.ones(..., dtype=x.dtype)`` without ``device=``)."""
    return f"""
_Valid = {symbol}
class {symbol}(_Valid):
    def {method}(self, x, *args, **kwargs):
        out = super().{method}(x, *args, **kwargs)
        return out * torch.ones(out.shape[-1], dtype=out.dtype)
"""


def refuse_zero_hidden_width(symbol: str) -> str:
    """A subclass of a valid module that raises ValueError for C // r == 0, as the chapter allows."""
    return f"""
_Valid = {symbol}
class {symbol}(_Valid):
    def __init__(self, channels, reduction=16, *args, **kwargs):
        if channels // reduction < 1:
            raise ValueError(f"{symbol}: channels // reduction must be >= 1; got {{channels}} // {{reduction}}")
        super().__init__(channels, reduction, *args, **kwargs)
"""


@dataclass(frozen=True)
class Claim:
    chapter: str
    key: str
    probes: tuple[Probe, ...] = ()
    about: str = ""
    facts: tuple[Callable[[], None], ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if bool(self.probes or self.facts) == bool(self.about):
            raise ValueError(f"{self.chapter} {self.key!r}: give probes (or facts) or an 'about', not both or neither")


def claim(chapter: str, key: str, *probes: Probe, facts: tuple = ()) -> Claim:
    return Claim(chapter, key, tuple(probes), facts=facts)


def about(chapter: str, key: str, why: str) -> Claim:
    return Claim(chapter, key, about=why)


@dataclass(frozen=True)
class Pending:
    chapter: str
    key: str
    why: str
    probes: tuple[Probe, ...] = ()


# --------------------------------------------------------------------------------------------
# facts: claims a catalog implementation cannot show
# --------------------------------------------------------------------------------------------
def _capstone_graded_cells_take_only_the_student_object() -> None:
    """Chapter 09: 'every graded answer is recomputed from whatever was trained, so it grades the same way'. No
    graded check reads the trained networks: each visible check is called with the student's object alone."""
    nb = json.loads((REPO / "solutions/09_capstone/09_capstone.ipynb").read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        meta = cell["metadata"].get("nbgrader", {})
        if meta.get("grade") and cell["cell_type"] == "code":
            first = cell["source"].split("\n")[0]
            assert re.fullmatch(r"check_\w+\(\w+\)", first), f"a graded cell passes more than the answer: {first}"


def _ch03_layers_found_for_any_width() -> None:
    """Chapter 03: 'any attribute names will do, because the checks find the layers by their shapes', for any
    in_channels and out_channels (1 and 2 included; for (2, 1) the first convolution is the gate's)."""
    import torch

    from course_lib.checks.ch03_ctdnet_sam import sam_layers

    class Renamed(torch.nn.Module):
        def __init__(self, c_in: int, c_out: int) -> None:
            super().__init__()
            self.g = torch.nn.Conv2d(2, 1, 3, padding=1, bias=False)
            self.p = torch.nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
            self.n = torch.nn.BatchNorm2d(c_out)

    for c_in, c_out in ((12, 1), (12, 2), (2, 1), (1, 1), (12, 6), (5, 64)):
        module = Renamed(c_in, c_out)
        found = sam_layers(module, c_in, c_out, what="m")
        assert (found["att"], found["conv"], found["bn"]) == (module.g.weight, module.p.weight, module.n), (c_in, c_out)


def _ch03_visible_checks_keep_section_4() -> None:
    """Chapter 03, section 4: 'the checks below run your module on float32 and float64 inputs, ... channels_last; the
    outputs must have the input's dtype': the visible check alone fails each of these, naming it."""
    import catalog

    from course_lib.checks import CheckFailure

    wanted = {
        ("SpatialAttentionModule.attention", "the map computed in float32 and cast back to x's dtype"): "float32_inside",
        ("SpatialAttentionModule.attention", "the map returned as .float() whatever x's dtype"): "dtype",
        ("SpatialAttentionModule.attention", "attention refuses a channels_last input (a .view-style assumption)"):
            "memory_layout",
        ("SpatialAttentionModule.forward", "the module cast to float32 inside forward, the result cast back"):
            "float32_inside",
        ("SpatialAttentionModule.forward", "the projection computed in float32 and cast back to x's dtype"):
            "float32_inside",
        ("SpatialAttentionModule.forward", "forward returns .float() whatever x's dtype"): "dtype",
        ("SpatialAttentionModule.forward", "forward returns .double() whatever x's dtype"): "dtype",
        ("SpatialAttentionModule.forward", "forward refuses a channels_last input (a .view-style assumption)"):
            "memory_layout",
        ("SpatialAttentionModule.forward", "in-place gating x *= A"): "inplace",
        ("SpatialAttentionModule.forward", "BatchNorm forced into eval mode in forward"): "bn_forced_eval",
    }
    _, impls = catalog.load_all()
    for (exercise, label), mistake in wanted.items():
        impl = next(i for i in impls if i.exercise.chapter == "03_ctdnet_sam" and i.exercise.name == exercise
                    and i.label == label)
        try:
            impl.exercise.visible(impl.load())
        except CheckFailure as failure:
            assert failure.mistake == mistake, (label, failure.mistake)
        else:
            raise AssertionError(f"the visible check of {exercise} lets through {label!r}")


# --------------------------------------------------------------------------------------------
# the declarations
# --------------------------------------------------------------------------------------------
CH00, CH01, CH03, CH05, CH09 = "00_shapes", "01_se", "03_ctdnet_sam", "05_danet_pam", "09_capstone"
SAM_A, SAM_F = "SpatialAttentionModule.attention", "SpatialAttentionModule.forward"
SE = "SqueezeExcitation"
PAM_A, PAM_F = "PositionAttention.attention", "PositionAttention.forward"
GATE = "ChannelSpatialGate"

CLAIMS: list[Claim] = [
    # ---- 00 ----
    claim(CH00, "the hidden tests use float64 too",
          fails("channel_descriptor", "hard-coded float32", "dtype"),
          fails("channel_descriptor", "a float32 divisor tensor", "float32_inside"),
          fails("channel_descriptor", "in-place on the input", "modifies_input")),
    claim(CH00, "the check also tries a batch where $b = h$ and $c = w$",
          fails("apply_gate", "gate broadcast over (H, W)", "gate_broadcast"),
          passes("apply_gate", "valid: einsum")),
    claim(CH00, "requirements the check tests",
          fails("row_softmax", "exp / sum without subtracting the max", "overflow"),
          fails("row_softmax", "softmax in float32 inside", "float32_inside"),
          passes("row_softmax", "valid: by hand, stable")),
    claim(CH00, "the check also passes it `x` in the `channels_last` memory format and as a non-contiguous view",
          fails("channel_descriptor", "x.view(B, C, H * W): breaks on a non-contiguous input", "memory_layout"),
          passes("channel_descriptor", "valid: adaptive pooling")),
    about(CH00, "going further (not graded)", "the title of a section of ungraded exercises (no test cell)"),
    # ---- 01 ----
    claim(CH01, "the checks never look at your code's text; they call it",
          passes(SE, "raw parameters with einsum"),
          passes(SE, "AdaptiveAvgPool2d, view and a Sequential with inplace ReLU and Sigmoid")),
    claim(CH01, "they need the biases (as in the official model)",
          fails(SE, "bias-free Linear layers (moskomule/senet.pytorch)", "missing_bias"),
          fails(SE, "hidden width rounded up with math.ceil", "hidden_width"),
          fails(SE, "BatchNorm inside the excitation", "extra_layer")),
    about(CH01, "what else is graded.", "a run-in heading; the sentences after it carry the claims (declared below)"),
    claim(CH01, "the visible check below tests the default `reduction=16`",
          fails(SE, "default reduction 8", "default_args"),
          fails(SE, "the excitation computed in float32, cast back", "float32_inside"),
          fails(SE, "a float32 constant inside", "float32_inside")),
    claim(CH01, "the hidden tests, when an instructor grades, add random shapes",
          fails_hidden(SE, "Linear with bias and einops", append=refuse_channels_last(SE))),
    claim(CH01, "the checks only build blocks with c' >= 1",
          passes(SE, "Linear with bias and einops", append=refuse_zero_hidden_width(SE))),
    claim(CH01, "the check builds `squeezeexcitation(32, reduction=4)`",
          fails(SE, "gate detached from the graph", "no_grad"),
          fails(SE, "hard-coded float32 gate", "dtype")),
    claim(CH01, "the check of exercise 1 names it `softmax_gate`",
          fails(SE, "softmax over a size-1 axis (all ones)", "softmax_gate")),
    claim(CH01, "choose either in your block; the checks accept both",
          passes(SE, "1x1 convolutions with bias, mean over (2, 3)"), passes(SE, "Linear with bias and einops")),
    claim(CH01, "the checks compare with the modules' real counts",
          passes("se_parameter_count", "counted from real layers"),
          fails("se_parameter_count", "without biases", "missing_bias"),
          fails("se_parameter_count", "a table of the checked counts", "lookup_table"),
          fails("se_parameter_count", "hidden width round(C / r)", "hidden_width")),
    claim(CH01, "(a numpy integer or a 0-d integer tensor is accepted too; a float is not)",
          passes("se_parameter_count", "a numpy integer"),
          passes("se_parameter_count", "an integral 0-d tensor"),
          fails("se_parameter_count", "true division", "float_count")),
    claim(CH01, "for any r (the checks try several, one of them drawn afresh on every run)",
          fails("seresnet50_extra_parameters", "hard-coded answer for r = 16", "reduction_ignored"),
          fails("seresnet50_extra_parameters", "a table of the three checked reductions", "lookup_table"),
          fails("seresnet50_extra_parameters", "returns millions as a float", "float_count"),
          passes("seresnet50_extra_parameters", "a loop over stages with the formula")),
    about(CH01, "by the same roles (the shapes of $w_1, b_1, w_2, b_2$) that the checks used",
          "describes how the demo cell loads the trained weights; the roles-by-shape promise is probed by 'the checks "
          "never look at your code's text'"),
    claim(CH01, "it is compared at three significant digits, with one unit of slack either way in the third",
          passes("q_softmax_scale", "valid: three significant digits"),
          passes("q_softmax_scale", "valid: three significant digits", replace=[("0.00195", "0.00194")]),
          passes("q_softmax_scale", "valid: three significant digits", replace=[("0.00195", "0.00196")]),
          fails("q_softmax_scale", "valid: three significant digits", "wrong_answer",
                replace=[("0.00195", "0.00193")]),
          fails("q_softmax_scale", "valid: three significant digits", "wrong_answer",
                replace=[("0.00195", "0.00197")])),
    claim(CH01, "the checks here name this mistake `missing_bias`",
          fails(SE, "bias-free 1x1 convolutions (External-Attention style)", "missing_bias")),
    about(CH01, "going further (not graded)", "the title of a section of ungraded exercises (no test cell)"),
    # ---- 05 ----
    claim(CH05, "asked whether the official transpose of the map is a bug; it is required",
          fails(PAM_F, "value @ attention without the transpose (DANet #64)", "missing_transpose")),
    claim(CH05, "the checks load weights by name",
          fails(PAM_A, "renamed layers (q, k, v) where the names are asked", "parameters")),
    claim(CH05, "the checks also accept `nn.Linear` layers under these names",
          passes(PAM_A, "nn.Linear projections on (B, N, C) and a 0-d gamma (PositionAttention.attention)"),
          passes(PAM_F, "nn.Linear projections on (B, N, C) and a 0-d gamma (PositionAttention.forward)")),
    claim(CH05, "what the checks require, besides the values",
          fails(PAM_A, "energy in float32, the map cast back to the input's dtype", "float32_inside"),
          fails(PAM_F, "in-place residual on the input (x += gamma * out)", "inplace"),
          fails(PAM_F, "hard-coded .cuda() in forward", "device")),
    claim(CH05, "the visible checks also run your module on the same input laid out `channels_last`",
          fails(PAM_A, "a module that refuses a channels_last input (asserts x.is_contiguous())", "memory_layout"),
          fails(PAM_F, "a module that refuses a channels_last input (asserts x.is_contiguous())", "memory_layout")),
    claim(CH05, "the checks set `gamma = 1` before comparing values",
          fails(PAM_F, "gamma initialised to 1", "gamma_init"),
          fails(PAM_F, "missing residual", "missing_residual")),
    claim(CH05, "do not change `q`, `k` or `v` in place",
          fails("pam_einops", "normalises q and k in place (cosine-attention copies)", "modifies_input"),
          fails("pam_einops", "the map computed in float32, cast back", "float32_inside"),
          fails("pam_einops", "views on the inputs: breaks on a channels_last input", "memory_layout")),
    about(CH05, "will the check below print `true`", "a prediction about an ungraded demo cell that prints a boolean"),
    about(CH05, "each accepts only some head widths", "about PyTorch's attention kernels, not about grading"),
    claim(CH05, "the checks here name it, and the softmax over all",
          fails(PAM_A, "softmax over dim 1 (the queries)", "softmax_dim"),
          fails(PAM_A, "softmax over all N*N pairs (energy flattened)", "softmax_dim")),
    about(CH05, "by the official names the checks used",
          "describes how the demo cell loads the trained weights; probed by 'the checks load weights by name'"),
    # ---- 09 ----
    about(CH09, "### running modes", "describes the three training budgets; tests/test_ch09_capstone.py checks that "
          "grading uses the quick one (test_training_uses_the_quick_budget_while_nbgrader_grades)"),
    claim(CH09, "every graded answer is recomputed from whatever was trained",
          facts=(_capstone_graded_cells_take_only_the_student_object,)),
    about(CH09, "and a grading", "a code comment on thread counts, not about what is graded"),
    claim(CH09, "the checks find the weights by their shapes",
          passes(GATE, "1x1 convolutions for the MLP, keepdim mean"),
          passes(GATE, "spatial gate as nn.Linear on channels-last positions"),
          passes(GATE, "einsum with raw parameters for the spatial gate"),
          passes(GATE, "raw parameters: w of shape (C,), as (G2) writes it"),
          passes(GATE, "every weight a raw parameter, b2 and w both (C,)"),
          fails(GATE, "spatial conv without bias", "missing_bias")),
    claim(CH09, "the check below runs your module in float32, in float64 (compared at float64 precision) and on a "
          "`channels_last` input",
          fails_visible(GATE, "forward returns float32 (.float() on the result)", "dtype"),
          fails_visible(GATE, "the spatial gate's sigmoid in float32, cast back", "float32_inside"),
          fails_visible(GATE, "x.view for the squeeze: breaks on a channels_last input", "memory_layout"),
          fails_visible(GATE, "1x1 convolutions for the MLP, keepdim mean", "memory_layout",
                        append=refuse_channels_last(GATE)),
          fails(GATE, "hard-coded .cuda()", "device"),
          fails(GATE, "in-place multiplication of the input", "inplace")),
    about(CH09, "the cell after the check compares it with the network", "an ungraded demo cell"),
    about(CH09, "only while nbgrader grades are they left out", "which networks train in which mode; "
          "tests/test_ch09_capstone.py checks it (test_the_notebook_trains_only_the_plain_cnn_and_the_gate_while_grading)"),
    about(CH09, "none of these extras train while grading", "as above: what trains in which mode, tested by "
          "test_the_notebook_trains_only_the_plain_cnn_and_the_gate_while_grading"),
    claim(CH09, "the check runs your function on networks whose maps are made up",
          fails("judge_localisation", "finds_digit always True", "wrong_baseline"),
          fails("judge_localisation", "beats_control = finds_digit", "wrong_baseline"),
          fails("judge_localisation", "control=True forgotten: the control is the map again", "no_control"),
          fails_visible("judge_localisation", "finds_digit by the pointing game", "wrong_metric"),
          fails_visible("judge_localisation", "finds_digit with lift >= 1", "wrong_baseline")),
    claim(CH09, "not a sign of a bug (the checks above tested the module)",
          fails(GATE, "gates in sequence: the spatial gate sees x * c (CBAM's order)", "sequential_gates"),
          fails(GATE, "forward applies only the spatial gate", "gate_missing")),
    about(CH09, "they have no graded answer", "says that the questions about the published table are ungraded"),
    # ---- 03 ----
    about(CH03, "imports what the exercises use and the checks", "describes the set-up cell's imports"),
    claim(CH03, "the checks never look at your code's text; they call it",
          passes(SAM_A, "einops reduce for the pooled maps, nn.Sigmoid"),
          passes(SAM_F, "official style: conv3x3 helper, torch.max(...)[0], torch.mul, in-place ReLU"),
          passes(SAM_F, "valid: a Python loop over the images of the batch")),
    claim(CH03, "because the checks find the layers by their shapes",
          passes(SAM_F, "nn.Sequential projection with other names"),
          passes(SAM_F, "torch.stack of squeezed maps, functional conv with its own Parameter"),
          fails_visible(SAM_F, "(2, 1): the projection conv created before the attention conv", "layer_order"),
          facts=(_ch03_layers_found_for_any_width,)),
    claim(CH03, "what is graded besides the values",
          fails(SAM_A, "the map computed in float32 and cast back to x's dtype", "float32_inside"),
          fails(SAM_F, "the module cast to float32 inside forward, the result cast back", "float32_inside"),
          fails(SAM_F, "forward returns .float() whatever x's dtype", "dtype"),
          fails(SAM_F, "forward refuses a channels_last input (a .view-style assumption)", "memory_layout"),
          facts=(_ch03_visible_checks_keep_section_4,)),
    claim(CH03, "the hidden tests, run when an instructor grades, repeat all of this on random shapes",
          fails_hidden(SAM_F, "nn.Sequential projection with other names", append="""
              _Valid = SpatialAttentionModule
              class SpatialAttentionModule(_Valid):
                  def forward(self, x):
                      if x.shape[1] not in (2, 12):
                          raise RuntimeError("written for the channel counts of the visible checks")
                      return super().forward(x)
              """)),
    claim(CH03, "a mistake that the checks of exercise 3 name",
          fails("swap_pool_order", "mirrors the kernel left-right", "flipped_kernel"),
          fails("swap_pool_order", "rotates the kernel by 180 degrees", "flipped_kernel")),
    about(CH03, "by the roles the checks found", "describes how the demo cell loads the trained weights; the roles-by-"
          "shape promise is probed by 'because the checks find the layers by their shapes'"),
    claim(CH03, "as the checks here do",
          fails(SAM_F, "BatchNorm forced to batch statistics (F.batch_norm with training=True)", "bn_forced_train")),
    claim(CH03, "which the checks catch", fails(SAM_F, "in-place gating x *= A", "inplace")),
    about(CH03, "going further (not graded)", "the title of a section of ungraded exercises (no test cell)"),
]

# --------------------------------------------------------------------------------------------
# chapters 02, 04, 06, 07, 08 (issue 26, item 4: declared from the promises their chapter tests held before)
# --------------------------------------------------------------------------------------------
CH02, CH04, CH06, CH07, CH08 = "02_cbam", "04_hacnn", "06_danet_cam", "07_nonlocal_gcnet", "08_eca_coordatt"
CBAM_CA, CBAM_SA, CBAM_X = "ChannelAttention", "SpatialAttention", "CBAM"
CBAM_GOOD_CA = "valid: the paper's shared MLP as 1x1 convolutions, no biases"
CBAM_GOOD_SA = "the paper's gate"
CBAM_GOOD = "channel then spatial"
CA_BIAS = "valid: the official code's Linear layers with their default bias (the checks zero it, as §3 says)"
SA_BIAS = "valid: a conv with nn.Conv2d's default bias (the checks zero it, as §4 says)"
CBAM_BIAS = "valid: every layer keeps its bias (the checks zero them, as §6 says)"
CA_GATE = "return torch.sigmoid(self.mlp(avg) + self.mlp(mx))"

HA_SP, HA_CH, HA_SOFT = "SpatialAttention", "ChannelAttention", "SoftAttention"
HA_THETA, HA_CROPS = "HardAttention.attention", "HardAttention.forward"
HA_GOOD_SP, HA_GOOD_CH = "size from x.shape[-2:]", "F.adaptive_avg_pool2d"
HA_GOOD_SOFT = "nn.Sigmoid, .attention() of the submodules, torch.mul"
HA_GOOD_THETA = "nn.init and einops rearrange"
HA_GOOD_CROPS = "torch.stack of rows, einops repeat/rearrange"
CONVBLOCK_BN = "return F.relu(self.bn(self.conv(x)))"

CAM_P, CAM_O = "ChannelAttention (paper)", "ChannelAttention (official)"
CAM_GOOD = "einops rearrange, @, nn.Softmax module (ChannelAttention (paper))"
CAM_LOOP = "a Python loop over the channels, one row of the map at a time (ChannelAttention (paper))"
CAM_CANCEL = "softmax over dim 1 and the map transposed in forward: the output is right, the rows are not"

NL_A, NL_F = "NonLocalBlock.attention", "NonLocalBlock.forward"
NL_GOOD = "einsum for both products (NonLocalBlock.forward)"
GC_A, GC_F = "GlobalContextBlock.attention/context", "GlobalContextBlock.forward"
GC_GOOD = "einsum pooling (GlobalContextBlock.forward)"

ECA, CA, POOL = "EfficientChannelAttention", "CoordinateAttention", "directional_pool"
ECA_GOOD = "Conv1d, mean and reshape (the reference's form)"
CA_GOOD = "cat, split, transpose (the reference's form)"


def _ch02_stored_channel_case_is_the_one_described() -> None:
    """Chapter 02: 'The check builds ChannelAttention(40, reduction=8) ... on a batch of 2 with odd sizes 7x5': the
    stored case the visible check compares with is that one."""
    from course_lib.checks.toolkit import expected

    data = expected("ch02_cbam")["channel"]
    assert (int(data["channels"]), int(data["reduction"])) == (40, 8), (data["channels"], data["reduction"])
    assert tuple(data["x"].shape) == (2, 40, 7, 5), tuple(data["x"].shape)


def _graded_by_hand(chapter: str, heading: str, points: int) -> Callable[[], None]:
    """A written question 'graded by hand': its answer cell is a markdown cell that nbgrader grades manually
    (grade and solution set, the points the heading gives), not a cell any check reads."""
    def fact() -> None:
        nb = json.loads((REPO / f"solutions/{chapter}/{chapter}.ipynb").read_text(encoding="utf-8"))
        cells = [c for c in nb["cells"] if heading in "".join(c["source"])]
        assert len(cells) == 1, f"{chapter}: {len(cells)} cells hold {heading!r}"
        meta = cells[0]["metadata"].get("nbgrader", {})
        assert cells[0]["cell_type"] == "markdown" and meta.get("grade") and meta.get("solution"), meta
        assert meta.get("points") == points, meta
    fact.__name__ = f"graded_by_hand_{re.sub(r'[^a-z0-9]+', '_', heading.lower()).strip('_')}"
    return fact


CLAIMS += [
    # ---- 02 ----
    claim(CH02, "the checks find your two weights by their shapes",
          passes(CBAM_CA, "official style: Linear layers, bias=False"),
          passes(CBAM_CA, "adaptive pools, both descriptors in one batch through the MLP"),
          passes(CBAM_CA, CBAM_GOOD_CA)),
    claim(CH02, "a layer left with its bias (as in the official code) is accepted as well",
          passes(CBAM_CA, CA_BIAS),
          passes(CBAM_CA, CBAM_GOOD_CA, replace=[("bias=False", "bias=True")])),
    claim(CH02, "graded as well, by the visible check or by the hidden tests",
          fails(CBAM_CA, CBAM_GOOD_CA, "param_count", replace=[("reduction=16", "reduction=8")]),
          fails(CBAM_CA, CBAM_GOOD_CA, "float32_inside", append=compute_in_float32(CBAM_CA, "attention")),
          fails(CBAM_CA, CBAM_GOOD_CA, "cpu_constant", append=cpu_tensor_in(CBAM_CA)),
          fails_hidden(CBAM_CA, CBAM_GOOD_CA, append=refuse_channels_last(CBAM_CA, "attention")),
          fails(CBAM_CA, CBAM_GOOD_CA, "no_grad", replace=[(CA_GATE, CA_GATE.replace("(avg)", "(avg.detach())")
                                                            .replace("(mx)", "(mx.detach())"))]),
          fails(CBAM_CA, CBAM_GOOD_CA, "no_grad", append="""
              _Valid = ChannelAttention
              class ChannelAttention(_Valid):
                  def attention(self, x):
                      w0 = self.mlp[0].weight.detach()
                      hidden = lambda d: F.relu(F.conv2d(d, w0))
                      return torch.sigmoid(self.mlp[2](hidden(x.mean((2, 3), keepdim=True)))
                                           + self.mlp[2](hidden(x.amax((2, 3), keepdim=True))))
              """)),
    claim(CH02, "the checks only build gates with c' >= 1",
          passes(CBAM_CA, CBAM_GOOD_CA, append=refuse_zero_hidden_width(CBAM_CA))),
    claim(CH02, "no biases (eq. 2; a bias left on is accepted, the checks set it to zero)",
          passes(CBAM_CA, CBAM_GOOD_CA, replace=[("bias=False", "bias=True")]), passes(CBAM_CA, CA_BIAS)),
    claim(CH02, "the check builds `channelattention(40, reduction=8)`",
          fails(CBAM_CA, "the blog copy: in_planes // 16 whatever the ratio", "reduction_ignored"),
          fails(CBAM_CA, CBAM_GOOD_CA, "param_count", replace=[("reduction=16", "reduction=8")]),
          facts=(_ch02_stored_channel_case_is_the_one_described,)),
    claim(CH02, "as in exercise 1, a bias left on is accepted: the checks set it to zero",
          passes(CBAM_SA, SA_BIAS)),
    claim(CH02, "the order of the stacked maps matters as soon as weights are given",
          fails(CBAM_SA, "[max; mean] as in the official code", "pool_order"), passes(CBAM_SA, CBAM_GOOD_SA)),
    claim(CH02, "gives another map, and the check says so",
          fails(CBAM_SA, "[max; mean] as in the official code", "pool_order")),
    claim(CH02, "it also builds kernel sizes 3 and 7 (the default)",  # then float64 (visible), 5 and channels_last
          fails(CBAM_SA, "padding 3 whatever the kernel size", "kernel_size"),
          fails_hidden(CBAM_SA, CBAM_GOOD_SA, append="""
              _Valid = SpatialAttention
              class SpatialAttention(_Valid):  # a padding that is right for the kernel sizes 3 and 7 only
                  def __init__(self, kernel_size=7):
                      super().__init__(kernel_size)
                      if kernel_size not in (3, 7):
                          self.conv.padding = (3, 3)
              """),
          fails(CBAM_SA, CBAM_GOOD_SA, "float32_inside", append=compute_in_float32(CBAM_SA, "attention")),
          fails_hidden(CBAM_SA, CBAM_GOOD_SA, append=refuse_channels_last(CBAM_SA, "attention"))),
    # the sentence said the checks and the loader "look for those names"; both find the layers by their shapes
    # (the probe gave full marks to gates renamed), so the solution's sentence was corrected to this one
    claim(CH02, "the checks and the loader of trained weights find the layers by their shapes",
          passes(CBAM_X, CBAM_GOOD, replace=[("self.channel_gate", "self.channel"),
                                             ("self.spatial_gate", "self.spatial")])),
    claim(CH02, "graded too: the defaults `reduction=16` and `kernel_size=7`, and any device",
          fails(CBAM_X, "wrong constructor defaults (reduction=8, kernel_size=3)", "default_args"),
          fails(CBAM_X, "a CPU tensor made in forward", "cpu_constant"),
          passes(CBAM_X, "a constant made on x's device, and a buffer")),
    claim(CH02, "a block whose layers kept their biases is a valid answer to exercise 3 too",
          passes(CBAM_X, CBAM_BIAS)),
    about(CH02, "by the roles the checks used", "describes how the demo cell loads the trained weights; that the "
          "checks find W_0 and W_1 by their shapes is probed by 'the checks find your two weights by their shapes'"),
    claim(CH02, "the checks accept a layer that keeps its bias because they set every bias to zero",
          passes(CBAM_CA, CA_BIAS), passes(CBAM_SA, SA_BIAS), passes(CBAM_X, CBAM_BIAS)),
    about(CH02, "going further (not graded)", "the title of a section of ungraded exercises (no test cell)"),
    # ---- 04 ----
    about(CH04, "imports, the checks, and the `convblock`",
          "the set-up cell's description (what it imports); the checks it imports are probed sentence by sentence"),
    claim(CH04, "so the checks cannot tell them apart by shape",
          fails(HA_SP, HA_GOOD_SP, "parameters", replace=[("self.conv1", "self.down")]),
          fails(HA_SOFT, HA_GOOD_SOFT, "parameters",
                replace=[("self.conv ", "self.fuse "), ("self.conv(", "self.fuse(")]),
          passes(HA_SP, HA_GOOD_SP)),
    claim(CH04, "the checks call `module.eval()` and write stored running statistics into every batchnorm",
          fails(HA_SP, HA_GOOD_SP, "values",  # a BatchNorm that ignores the stored statistics
                replace=[(CONVBLOCK_BN, "return F.relu(F.batch_norm(self.conv(x), None, None, self.bn.weight, "
                                        "self.bn.bias, training=True))")]),
          passes(HA_SP, HA_GOOD_SP)),
    claim(CH04, "the checks also run it on float64 and `channels_last` inputs and on any device",
          fails(HA_SP, "F.interpolate(scale_factor=2)", "odd_size"),
          # float32 inside: the visible gradient check (finite differences in float64) already fails it, naming
          # it no_grad (toolkit.expect_gradients), so no mistake id is promised here
          fails(HA_SP, HA_GOOD_SP, append=compute_in_float32(HA_SP, "attention")),
          fails_hidden(HA_SP, HA_GOOD_SP, append=refuse_channels_last(HA_SP, "attention")),
          fails(HA_SP, HA_GOOD_SP, "cpu_constant", append=cpu_tensor_in(HA_SP, "attention"))),
    # (the ChannelAttention and SoftAttention stubs promise the same in their docstrings: the catalog holds them,
    # e.g. "the squeeze and the convolutions run in float32, ..." and "the product computed in float32, ...")
    claim(CH04, "keep the attribute names: the checks load weights by name",
          fails(HA_SP, HA_GOOD_SP, "parameters", replace=[("self.conv1", "self.down")]),
          fails(HA_CH, HA_GOOD_CH, "parameters", replace=[("self.conv2", "self.expand")])),
    claim(CH04, "the check first replaces `spatial_attn` and `channel_attn` by fixed maps",
          fails(HA_SOFT, "right SoftAttention on a SpatialAttention without its scaling conv", "submodule"),
          fails(HA_SOFT, "S + C instead of S * C", "sum_not_product"), passes(HA_SOFT, HA_GOOD_SOFT)),
    claim(CH04, "the checks treat that warning as a mistake",
          fails(HA_CROPS, "align_corners left out (PyTorch's warning)", "align_corners")),
    claim(CH04, "the checks also use float64 inputs and any device (the matrices and crops follow x)",
          fails(HA_CROPS, "affine built in a float32 zeros tensor", "dtype"),
          fails(HA_CROPS, "torchreid's transform_theta with .cuda()", "device"),
          fails(HA_CROPS, HA_GOOD_CROPS, "cpu_constant", append=cpu_tensor_in("HardAttention", "affine")),
          fails_hidden(HA_CROPS, HA_GOOD_CROPS, append=compute_in_float32("HardAttention"))),
    claim(CH04, "compared to 3 significant digits, one unit of the third digit either way accepted",
          passes("q_initial_centre", "valid: three digits"),
          passes("q_initial_centre", "valid: three digits", replace=[("-0.635", "-0.634")]),
          passes("q_initial_centre", "valid: three digits", replace=[("-0.635", "-0.636")]),
          fails("q_initial_centre", "valid: three digits", "wrong_answer", replace=[("-0.635", "-0.633")]),
          fails("q_initial_centre", "valid: three digits", "wrong_answer", replace=[("-0.635", "-0.637")])),
    claim(CH04, "keep the name fc: the checks load weights by name",
          fails(HA_THETA, HA_GOOD_THETA, "parameters", replace=[("self.fc", "self.linear")])),
    about(CH04, "by the names the checks used", "describes how the demo cell loads the trained weights; loading by "
          "name is probed by 'keep the attribute names: the checks load weights by name'"),
    about(CH04, "(by name, as the checks do)", "a demo cell loading the trained fc; probed by 'keep the name fc'"),
    about(CH04, "going further (not graded)", "the title of a section of ungraded exercises (no test cell)"),
    # ---- 06 ----
    claim(CH06, "the checks of exercise 2 therefore test the rows of the map *and* the output",
          fails(CAM_P, CAM_CANCEL, "softmax_dim")),
    claim(CH06, "although the checks do not time it",
          passes(CAM_P, CAM_LOOP), passes(CAM_O, CAM_LOOP.replace("(paper)", "(official)")),
          fails(CAM_P, "in-place residual on x", "inplace"),
          fails(CAM_P, "energy in float32, the map cast back to the input's dtype", "float32_inside"),
          fails(CAM_P, "the output cast with .float()", "dtype"),
          fails_hidden(CAM_P, CAM_GOOD, append=refuse_channels_last("ChannelAttention")),
          fails(CAM_P, "a CPU tensor of ones in forward", "cpu_constant"),
          fails(CAM_P, CAM_GOOD, "no_grad", replace=[("self.softmax(energy)", "self.softmax(energy).detach()")])),
    claim(CH06, "the checks set `gamma = 1` before comparing values",
          fails(CAM_P, "gamma initialised to 1", "gamma_init"), fails(CAM_P, "missing residual", "missing_residual"),
          fails(CAM_P, "gamma left out of forward (out + x)", "gamma_unused")),
    claim(CH06, "one unit of the third digit either way accepted",
          passes("q_cost_ratio", "valid: rounded by hand"),
          passes("q_cost_ratio", "valid: rounded by hand", replace=[("10.1", "10.0")]),
          passes("q_cost_ratio", "valid: rounded by hand", replace=[("10.1", "10.2")]),
          fails("q_cost_ratio", "valid: rounded by hand", "wrong_answer", replace=[("10.1", "10.3")]),
          fails("q_cost_ratio", "valid: rounded by hand", "wrong_answer", replace=[("10.1", "9.9")])),
    claim(CH06, "the checks compare it with the official code (so `cam_module` keeps its `max - energy` line)",
          fails("CAM_Module (blog, repaired)", "fixed to the paper's form (energy_new = energy)", "cam_variant"),
          passes("CAM_Module (blog, repaired)", "the blog's code with heigh -> height"),
          fails("PAM_Module (blog, repaired)", "made to run by dropping the permute", "missing_transpose")),
    claim(CH06, "keep the names (`query_conv`, `key_conv`, `value_conv`, `gamma`): the checks load weights by name",
          fails("PAM_Module (blog, repaired)", "the blog's code with attetion -> attention", "parameters",
                replace=[("self.query_conv", "self.q")]),
          fails("CAM_Module (blog, repaired)", "the blog's code with heigh -> height", "no_scale_param",
                replace=[("self.gamma", "self.scale")])),
    claim(CH06, "a map whose rows and output the checks compare separately",
          fails(CAM_P, CAM_CANCEL, "softmax_dim")),
    # ---- 07 ----
    claim(CH07, "**keep the layer names** of the docstring: the checks (and, later, the trained network) load weights",
          fails(NL_A, "renamed layers (query, key, value) where the names are asked", "parameters"),
          fails(NL_F, "the BatchNorm renamed (self.norm) where the notebook asks for bn", "parameters")),
    claim(CH07, "the checks test the behaviour, not which parameter you zeroed",
          passes(NL_F, "BN scale and shift both zeroed (AlexHex7) (NonLocalBlock.forward)"),
          passes(NL_F, "W_z weight and bias zeroed, BN left at its defaults (official frozen-BN configs) "
                       "(NonLocalBlock.forward)"),
          fails(NL_F, "BN scale left at 1: the block is not the identity (AlexHex7 #12, #18)", "not_identity"),
          fails(NL_F, "BN scale and W_z both zero-initialised: the identity, but it never learns", "dead_branch")),
    claim(CH07, "do not change `x` in place; let everything follow `x`'s dtype and device (the checks test both)",
          fails(NL_F, "in-place residual (x += ...)", "inplace"),
          fails(NL_F, "hard-coded .cuda() in forward", "device"),
          fails(NL_A, "hard-coded float32", "dtype"),
          fails(NL_F, NL_GOOD, "cpu_constant", append=cpu_tensor_in("NonLocalBlock"))),
    claim(CH07, "the checks load nonzero weights (and nonzero bn statistics) into your layers",
          fails(NL_F, "BatchNorm forced to batch statistics (F.batch_norm with training=True, eval mode too)",
                "bn_forced_train"),
          fails(NL_F, "BN scale left at 1: the block is not the identity (AlexHex7 #12, #18)", "not_identity"),
          passes(NL_F, NL_GOOD)),
    claim(CH07, "layers (keep these names: the checks and the trained network load weights by them)",
          fails(NL_A, "renamed layers (query, key, value) where the names are asked", "parameters")),
    claim(CH07, "both follow x's dtype and device, accept any memory layout (channels_last too), and leave x unchanged",
          passes(NL_F, "values channels first, times the map transposed (NonLocalBlock.forward)"),
          fails_hidden(NL_F, NL_GOOD, append=refuse_channels_last("NonLocalBlock")),
          fails(NL_F, "in-place residual (x += ...)", "inplace"),
          fails(NL_A, "hard-coded float32", "dtype")),
    claim(CH07, "the checks of exercise 1 accept both forms",
          passes(NL_F, "BN scale and shift both zeroed (AlexHex7) (NonLocalBlock.forward)"),
          passes(NL_F, "W_z weight and bias zeroed, BN left at its defaults (official frozen-BN configs) "
                       "(NonLocalBlock.forward)")),
    claim(CH07, "the checks load nonzero weights into all four layers",
          passes(GC_F, "nn.Linear layers on the (B, C) context and LayerNorm(C') (GlobalContextBlock.forward)"),
          passes(GC_F, "GroupNorm(1, C') for the LayerNorm (GlobalContextBlock.forward)"),
          passes(GC_F, GC_GOOD),
          fails(GC_F, "the LayerNorm renamed (self.ln) where the notebook asks for norm", "parameters"),
          fails(GC_A, "W_k gives C logits (a conv C -> C)", "parameters")),
    claim(CH07, "all three follow x's dtype and device, accept any memory layout, and leave x unchanged",
          fails(GC_F, "in-place addition (x += ...)", "inplace"),
          fails(GC_A, "hard-coded float32 in context", "dtype"),
          fails(GC_F, GC_GOOD, "cpu_constant", append=cpu_tensor_in("GlobalContextBlock")),
          fails_hidden(GC_F, GC_GOOD, append=refuse_channels_last("GlobalContextBlock"))),
    claim(CH07, "the check compares your dict, entry by entry",
          passes("gc_state_from_se", "zeros for W_k's weight and bias, flat shapes for SE's layers"),
          passes("gc_state_from_se", "W_k's weight times 0, built with einops' rearrange for the convolution layout"),
          fails("gc_state_from_se", "only W_k's bias changed (set to 0), its weight kept", "bias_only"),
          fails("gc_state_from_se", "w2 reshaped into W_v1 without a transpose", "se_weights_swapped"),
          fails("gc_state_from_se", "the LayerNorm's scale set to 0", "norm_affine")),
    claim(CH07, "the checks compare it with the definition on random vectors",
          fails("mean_cosine_distance", "dot products divided by the product of the norms: inf / inf at float32 "
                                        "entries near 1e20", "overflow"),
          fails("mean_cosine_distance", "F.normalize and a Gram matrix, no rescaling: 1/2 everywhere at float32 "
                                        "entries near 1e20", "overflow"),
          fails("mean_cosine_distance", "pairs i = i counted", "diagonal_pairs"),
          fails("mean_cosine_distance", "divided by the largest entry and then by the norm, no guard: NaN for an "
                                        "all-zero vector", "zero_vector"),
          fails("mean_cosine_distance", "computed through numpy (no gradient, float64 lost)", "no_grad"),
          passes("mean_cosine_distance", "each vector divided by its largest entry, then F.normalize and a Gram "
                                         "matrix")),
    claim(CH07, "the checks compare it with the same distance computed in float64",
          fails("mean_cosine_distance", "dot products divided by the product of the norms: inf / inf at float32 "
                                        "entries near 1e20", "overflow"),
          fails("mean_cosine_distance", "F.cosine_similarity by broadcasting, no rescaling: 1/2 everywhere at "
                                        "float32 entries near 1e20", "overflow"),
          passes("mean_cosine_distance", "sum of unit vectors: |sum u|^2 = sum |u_i|^2 + sum_{i != j} cos, after "
                                         "dividing by the largest entry")),
    # ---- 08 ----
    claim(CH08, "### question 1 (auto-graded): what does table 2 support?",
          passes("q_why_no_reduction", "'ac'"), fails("q_why_no_reduction", "a alone", "missing_choice")),
    claim(CH08, "the check tries resnet's widths and other values of γ and b",
          fails("adaptive_kernel_size", "gamma and b hard-coded", "constants_ignored"),
          fails("adaptive_kernel_size", "the official code's fixed k = 3", "fixed_kernel"),
          fails("adaptive_kernel_size", "nearest odd with Python's round (ties to even)", "nearest_odd_tie"),
          passes("adaptive_kernel_size", "the paper's listing: floor, then + 1 when even")),
    claim(CH08, "the check finds it by its size and loads known weights into it",
          passes(ECA, "Conv2d(1, 1, (1, k)) on a (B, 1, 1, C) image"),
          passes(ECA, "einops and F.conv1d with a raw parameter"), passes(ECA, ECA_GOOD),
          fails(ECA, "bias left on (nn.Conv1d's default)", "extra_parameter")),
    claim(CH08, "it must work in float64 (the checks compare float64 inputs at float64 precision",
          fails(ECA, "the gate computed in float32 and cast back to x's dtype", "float32_inside"),
          fails(ECA, "hard-coded float32", "dtype"),
          fails_hidden(ECA, ECA_GOOD, append=refuse_channels_last(ECA)),
          fails(ECA, ECA_GOOD, "cpu_constant", append=cpu_tensor_in(ECA))),
    claim(CH08, "the check builds `efficientchannelattention(128)`",
          fails(ECA, "the official eca_layer: k = 3 whatever C is", "fixed_kernel"),
          fails(ECA, "gamma and b not passed on", "constants_ignored"),
          fails(ECA, "explicit kernel_size ignored", "kernel_ignored"),
          fails(ECA, "all the padding on the left (a causal conv): shifted channels", "padding_shift")),
    about(CH08, "the official `eca_layer` accepts an even k",
          "about the official code's eca_layer (it takes an even k and fails later), not about what is graded"),
    claim(CH08, "### question 2 (auto-graded): what eca adds to resnet-50",
          passes("q_eca_resnet50_parameters", "86"),
          fails("q_eca_resnet50_parameters", "16 blocks of k = 3", "fixed_kernel")),
    claim(CH08, "### written question 1 (2 points, graded by hand)",
          facts=(_graded_by_hand(CH08, "### Written question 1 (2 points, graded by hand)", 2),)),
    claim(CH08, "### question 3 (auto-graded): the shared transform's output",
          passes("q_shared_shape", "a tuple"), fails("q_shared_shape", "no floor on M", "min_hidden")),
    claim(CH08, "which the checks (and the trained weights at the end of the chapter) load by",
          fails(CA, "other names (conv_a, norm, ...)", "parameters"), passes(CA, CA_GOOD)),
    claim(CH08, "the checks compare the module in eval mode",
          fails(CA, "attention calls gates twice: bn1's running statistics move twice per forward", "bn_twice"),
          fails(CA, "bn1 run per direction: the rows and the columns normalised with their own statistics",
                "bn_per_branch"),
          fails(CA, "bn1 forced to batch statistics (F.batch_norm with training=True)", "bn_forced_train"),
          fails(CA, "bn1 with Keras's momentum=0.9 (the weight of the old statistics): running statistics off",
                "bn_statistics"),
          fails(POOL, "means computed in float32, cast back to x's dtype", "float32_inside")),
    claim(CH08, "they use float32 and float64 (the hidden tests compare float64 inputs at float64 precision)",
          fails(CA, "forward computed in float32 and cast back to x's dtype", "float32_inside"),
          fails(CA, "rows and columns swapped before the concatenation", "swapped_pool"),
          fails(POOL, "rows flattened with view: breaks on a channels_last input", "memory_layout"),
          fails_hidden(CA, CA_GOOD, append=refuse_channels_last(CA)),
          fails(CA, CA_GOOD, "cpu_constant", append=cpu_tensor_in(CA)),
          fails(CA, CA_GOOD, "inplace", append="""
              _Valid = CoordinateAttention
              class CoordinateAttention(_Valid):
                  def forward(self, x):
                      g_h, g_w = self.gates(x)
                      return x.mul_(g_h).mul_(g_w)
              """)),
    claim(CH08, "the check counts the parameters of `coordinateattention(64)`",
          fails(CA, "no floor on the width: C // r", "min_hidden"),
          fails(CA, "timm's width and no biases", "missing_bias"),
          fails(CA, "one transform per direction", "not_shared"),
          fails(CA, "M = max(8, ceil(C / r)): the width rounded up", "width_round_up")),
    claim(CH08, "### written question 2 (2 points, graded by hand)",
          facts=(_graded_by_hand(CH08, "### Written question 2 (2 points, graded by hand)", 2),)),
    claim(CH08, "the checks fed your modules stored weights",
          fails(CA, "conv_h and conv_w swapped", "convs_swapped"),
          fails(ECA, "all the padding on the left (a causal conv): shifted channels", "padding_shift")),
    about(CH08, "by the same roles the checks used", "describes how the demo cells load the trained weights; the "
          "loading by size and by name is probed by 'the check finds it by its size' and 'which the checks (and "
          "the trained weights ...) load by'"),
    claim(CH08, "the checks here name that `circular_padding`",
          fails(ECA, "circular padding (timm's CecaModule)", "circular_padding")),
]


_REWRITING = "its owner is rewriting the chapter today (issue 26): to be declared with a probe once the text settles"

#: Chapters whose owners are rewriting them today: a graded sentence of theirs that matches no declaration is
#: reported as pending (with its text) instead of failing the test.
PENDING_CHAPTERS: tuple[str, ...] = ()

#: Graded sentences of chapters being rewritten now, by key phrase. Probes, where given, show today's outcome.
PENDING: list[Pending] = [
]


# --------------------------------------------------------------------------------------------
# the stubs' contracts ("any float dtype, any device ...") and the comparisons the chapters announce
# ("is compared", "the hidden checks"): every chapter
# --------------------------------------------------------------------------------------------
def _function_in_float32(symbol: str, *args: str) -> str:
    """A valid function wrapped to compute in float32 and return the input's dtype (float32 accuracy)."""
    params = ", ".join(args)
    rounded = ", ".join(f"{a}.float()" for a in args)
    return f"""
_Valid = {symbol}
def {symbol}({params}):
    return _Valid({rounded}).to({args[0]}.dtype)
"""


SAM_F = "SpatialAttentionModule.forward"

CLAIMS += [
    claim(CH00, "write `apply_gate(x, gate)` for x of shape",
          passes("apply_gate", "valid: einsum"),
          fails("apply_gate", "valid: einsum", "float32_inside",
                append=_function_in_float32("apply_gate", "x", "gate"))),
    claim(CH00, "write `pairwise_scores(q, k)`",
          passes("pairwise_scores", "valid: einsum"),
          fails("pairwise_scores", "valid: einsum", "float32_inside",
                append=_function_in_float32("pairwise_scores", "q", "k"))),
    claim(CH01, "both follow their input: any float dtype (float64 included), any device, and the channels_last",
          fails(SE, "the excitation computed in float32, cast back", "float32_inside"),
          fails(SE, "hard-coded float32 gate", "dtype"),
          fails(SE, "a ones tensor made on the CPU in forward", "cpu_constant"),
          fails_hidden(SE, "Linear with bias and einops", append=refuse_channels_last(SE)),
          passes(SE, "valid: tensors placed with .to(x.device), .to(x), .type_as(x) and .to(dtype)")),
    claim(CH02, "both methods follow their input: any float dtype, any device, the channels_last memory format",
          fails(CBAM_CA, CBAM_GOOD_CA, "float32_inside", append=compute_in_float32(CBAM_CA, "attention")),
          fails(CBAM_SA, CBAM_GOOD_SA, "float32_inside", append=compute_in_float32(CBAM_SA, "attention")),
          fails(CBAM_CA, CBAM_GOOD_CA, "cpu_constant", append=cpu_tensor_in(CBAM_CA)),
          fails(CBAM_SA, CBAM_GOOD_SA, "cpu_constant", append=cpu_tensor_in(CBAM_SA)),
          fails_hidden(CBAM_CA, CBAM_GOOD_CA, append=refuse_channels_last(CBAM_CA, "attention")),
          fails_hidden(CBAM_SA, CBAM_GOOD_SA, append=refuse_channels_last(CBAM_SA, "attention"))),
    claim(CH03, "float32 or float64, contiguous or channels_last, any device: the outputs follow x. x is never",
          fails(SAM_F, "the module cast to float32 inside forward, the result cast back", "float32_inside"),
          fails(SAM_F, "forward refuses a channels_last input (a .view-style assumption)", "memory_layout"),
          fails(SAM_F, "a CPU mask made in forward", "cpu_constant"),
          fails(SAM_F, "in-place gating x *= A", "inplace")),
    claim(CH04, "works for any h, w (odd ones too)",
          fails(HA_SP, "F.interpolate(scale_factor=2)", "odd_size"),
          fails(HA_SP, HA_GOOD_SP, append=compute_in_float32(HA_SP, "attention")),
          fails_hidden(HA_SP, HA_GOOD_SP, append=refuse_channels_last(HA_SP, "attention")),
          fails(HA_SP, HA_GOOD_SP, "cpu_constant", append=cpu_tensor_in(HA_SP, "attention"))),
    claim(CH04, "values >= 0 (no sigmoid here). float32 or float64, contiguous or channels_last, any device",
          fails(HA_CH, "the squeeze and the convolutions run in float32, the map cast back to x's dtype",
                "float32_inside"),
          fails(HA_CH, "a CPU constant divisor tensor", "cpu_constant"),
          fails_hidden(HA_CH, HA_GOOD_CH, append=refuse_channels_last(HA_CH, "attention"))),
    claim(CH04, "float32 or float64, contiguous or channels_last, any device: the outputs follow x; x is not modified",
          fails(HA_SOFT, "the product computed in float32, cast back to x's dtype", "float32_inside"),
          fails(HA_SOFT, "in-place x *= M", "inplace"),
          fails(HA_SOFT, HA_GOOD_SOFT, "cpu_constant", append=cpu_tensor_in("SoftAttention")),
          fails_hidden(HA_SOFT, HA_GOOD_SOFT, append=refuse_channels_last("SoftAttention"))),
    claim(CH05, "any float dtype: a float32 input gives a float32 result, a float64 input a float64 result",
          fails(PAM_A, "energy in float32, the map cast back to the input's dtype", "float32_inside"),
          fails(PAM_F, "hard-coded float32 in forward", "float32_inside"),
          fails(PAM_F, "the output cast with .float()", "dtype"),
          fails(PAM_F, "a module that refuses a channels_last input (asserts x.is_contiguous())", "memory_layout"),
          fails(PAM_F, "a CPU constant for N in forward", "cpu_constant")),
    claim(CH05, "any float dtype, memory layout (channels_last too) and device; x is not modified in place",
          fails(PAM_F, "in-place residual on the input (x += gamma * out)", "inplace"),
          fails(PAM_F, "hard-coded .cuda() in forward", "device"),
          fails(PAM_A, "a module that refuses a channels_last input (asserts x.is_contiguous())", "memory_layout")),
    claim(CH05, "it is compared at three significant digits, with one unit of slack either way in the third",
          passes("q_map_mib", "valid: rounded"),
          passes("q_map_mib", "valid: rounded", replace=[("324", "323")]),
          passes("q_map_mib", "valid: rounded", replace=[("324", "325")]),
          fails("q_map_mib", "valid: rounded", "wrong_answer", replace=[("324", "322")]),
          fails("q_map_mib", "valid: rounded", "wrong_answer", replace=[("324", "326")]),
          passes("q_map_mib", "valid: a tensor")),
    claim(CH06, "do not change `energy` in place; any float dtype and device",
          fails("most_attended", "the energy shifted by its row maximum in place (energy -= ...)", "inplace"),
          fails("most_attended", "argmax over an index map built on the CPU", "cpu_constant"),
          passes("most_attended", "indices as int32")),
    claim(CH06, "the map and the output are compared in float32 and again in float64 on the same numbers",
          fails_visible(CAM_P, "energy in float32, the map cast back to the input's dtype", "float32_inside"),
          fails_visible(CAM_P, "the output cast with .float()", "dtype")),
    claim(CH06, "the hidden checks repeat them on random shapes, with `channels_last` inputs",
          fails_hidden(CAM_P, CAM_GOOD, append=refuse_channels_last("ChannelAttention")),
          fails_hidden(CAM_O, CAM_GOOD.replace("(paper)", "(official)"),
                       append=refuse_channels_last("ChannelAttention"))),
    claim(CH06, "any float dtype, memory layout (channels_last too) and device; x is not modified in place",
          fails(CAM_P, "in-place residual on x", "inplace"),
          fails(CAM_P, "hard-coded float32", "dtype"),
          fails(CAM_P, "a CPU tensor of ones in forward", "cpu_constant"),
          fails_hidden(CAM_P, CAM_GOOD, append=refuse_channels_last("ChannelAttention"))),
    claim(CH07, "a float, `q_map_mib`; it is compared at three significant digits, with one unit of slack either way",
          passes("q_map_mib", "valid: q_map_mib = 9.38"),
          passes("q_map_mib", "valid: q_map_mib = 9.38", replace=[("9.38", "9.3789")]),
          passes("q_map_mib", "valid: q_map_mib = 9.38", replace=[("9.38", "9.37")]),
          passes("q_map_mib", "valid: q_map_mib = 9.38", replace=[("9.38", "9.39")]),
          fails("q_map_mib", "valid: q_map_mib = 9.38", "wrong_answer", replace=[("9.38", "9.36")]),
          fails("q_map_mib", "valid: q_map_mib = 9.38", "wrong_answer", replace=[("9.38", "9.40")]),
          fails("q_map_mib", "valid: q_map_mib = 9.38", "wrong_answer", replace=[("9.38", "9.5")]),
          fails("q_map_mib", "q_map_mib = 9.834496", "memory_units")),
    claim(CH07, "a float, `q_logit_std`; it is compared at three significant digits, with one unit of slack either way",
          passes("q_logit_std", "valid: q_logit_std = 22.6"),
          passes("q_logit_std", "valid: q_logit_std = math.sqrt(512)"),
          passes("q_logit_std", "valid: q_logit_std = 22.6", replace=[("22.6", "22.5")]),
          passes("q_logit_std", "valid: q_logit_std = 22.6", replace=[("22.6", "22.7")]),
          fails("q_logit_std", "valid: q_logit_std = 22.6", "wrong_answer", replace=[("22.6", "22.4")]),
          fails("q_logit_std", "valid: q_logit_std = 22.6", "wrong_answer", replace=[("22.6", "22.8")]),
          fails("q_logit_std", "valid: q_logit_std = 22.6", "wrong_answer", replace=[("22.6", "23.0")]),
          fails("q_logit_std", "q_logit_std = 512", "logit_scale")),
    about(CH09, "every variant is compared with the plain cnn as in section 8",
          "the statistics of the trained variants (section 11), not a graded answer"),
]
