"""Hidden checks of chapter 00 (shapes primer) and the reference answers its stored values come from.

The reference functions live here, not in a paper module: this file is left out of the student bundle.
"""
from __future__ import annotations

import torch
from einops import rearrange

from typing import Any

from course_lib.checks.toolkit import CheckFailure, exercise, expect_close
from course_lib.checks.questions import define_hidden_question_checks, expect_plain
from course_lib.checks import ch00_shapes as visible

CHAPTER = "ch00_shapes"


def ref_channel_descriptor(x: torch.Tensor) -> torch.Tensor:
    return x.mean((2, 3), keepdim=True)


def ref_apply_gate(x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    return x * gate[:, :, None, None]


def ref_row_softmax(scores: torch.Tensor) -> torch.Tensor:
    return torch.softmax(scores, dim=-1)


def ref_pairwise_scores(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    return q @ k.transpose(1, 2)


def ref_flatten_pixels(x: torch.Tensor) -> torch.Tensor:
    return rearrange(x, "b c h w -> b (h w) c")


REFERENCES = {
    "channel_descriptor": ref_channel_descriptor,
    "apply_gate": ref_apply_gate,
    "row_softmax": ref_row_softmax,
    "pairwise_scores": ref_pairwise_scores,
    "flatten_pixels": ref_flatten_pixels,
}


def build_expected() -> dict:
    """Inputs (sizes chosen so that B, C, H, W, N, M, D all differ) and the results they must give."""
    return {name: {"inputs": inputs, "output": REFERENCES[name](*inputs)}
            for name, inputs in visible.inputs().items()}


def _random_inputs(name: str, seed: int, dtype: torch.dtype) -> tuple:
    g = torch.Generator().manual_seed(seed)
    b, c, h, w = (int(v) for v in torch.randint(1, 7, (4,), generator=g))
    b, c, h, w = b + 1, c + 2, h + 1, w + 2
    x = torch.randn(b, c, h, w, generator=g, dtype=dtype)
    if name == "apply_gate":
        return x, torch.rand(b, c, generator=g, dtype=dtype)
    if name == "row_softmax":
        return (torch.randn(b, h * 2, w + 3, generator=g, dtype=dtype),)
    if name == "pairwise_scores":
        return (torch.randn(b, h + 1, c, generator=g, dtype=dtype), torch.randn(b, w + 2, c, generator=g, dtype=dtype))
    return (x,)


def _hidden(name: str):
    @exercise(f"{name} (hidden)", budget_s=10)
    def run(fn) -> None:
        for trial in range(4):
            dtype = torch.float64 if trial % 2 else torch.float32
            inputs = _random_inputs(name, 100 + trial, dtype)
            wanted = REFERENCES[name](*inputs)
            got = visible.call_safely(fn, name, inputs)
            expect_close(got, wanted, what=f"{name} on random inputs of shapes "
                         f"{[tuple(t.shape) for t in inputs]} ({dtype})")
            if got.dtype != dtype:
                raise CheckFailure(f"{name} returned {got.dtype} for {dtype} inputs: follow the input's dtype",
                                   mistake="dtype")
    return run


hidden_channel_descriptor = _hidden("channel_descriptor")
hidden_apply_gate = _hidden("apply_gate")
hidden_row_softmax = _hidden("row_softmax")
hidden_pairwise_scores = _hidden("pairwise_scores")
hidden_flatten_pixels = _hidden("flatten_pixels")


#: the plain answers of the chapter's questions (kind, answer, options/digits); the visible keys hash these
ANSWERS = {
    # (a) error: (2, 3) meets (5, 7); (c) runs, scales pixel (i, j); (d) right; (e) error
    "q_broadcast": ("choices", "acd", {"options": "abcde"}),
    "q_softmax_dim": ("int", 2, {}),  # the keys' dim of (B, N, M); -1 names the same dim
    "q_bmm_shape": ("shape", (2, 8, 8), {}),  # (8, 35) @ (35, 8) per image
    "q_conv_params": ("int", 4 * 64 * 3 * 3 + 4, {}),  # 2308
}
define_hidden_question_checks(globals(), {qid: a for qid, a in ANSWERS.items() if qid != "q_softmax_dim"})


@exercise("q_softmax_dim (hidden)", budget_s=2)
def hidden_q_softmax_dim(answer: Any) -> None:
    """Question q_softmax_dim, compared with its plain answer (-1 names the same dim as 2)."""
    kind, right, options = ANSWERS["q_softmax_dim"]
    expect_plain("q_softmax_dim", visible._softmax_dim_canonical(answer), right, kind=kind, **options)
