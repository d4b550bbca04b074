"""Catalog for chapter 00 (shapes primer): wrong and valid implementations of each small exercise."""
from __future__ import annotations

from course_lib.checks import ch00_shapes as visible
from course_lib.hidden import ch00_shapes as hidden

from . import Exercise, Impl


def _ex(name: str, solution_id: str, test_id: str) -> Exercise:
    return Exercise("00_shapes", name, name, getattr(visible, f"check_{name}"), getattr(hidden, f"hidden_{name}"),
                    solution_id, test_id)


DESC = _ex("channel_descriptor", "channel_descriptor", "test_channel_descriptor")
GATE = _ex("apply_gate", "apply_gate", "test_apply_gate")
SOFT = _ex("row_softmax", "row_softmax", "test_row_softmax")
SCORES = _ex("pairwise_scores", "pairwise_scores", "test_pairwise_scores")
FLAT = _ex("flatten_pixels", "flatten_pixels", "test_flatten_pixels")
Q_BROADCAST = _ex("q_broadcast", "q_broadcast_solution", "test_q_broadcast")
Q_SOFTMAX_DIM = _ex("q_softmax_dim", "q_softmax_dim_solution", "test_q_softmax_dim")
Q_BMM = _ex("q_bmm_shape", "q_bmm_shape_solution", "test_q_bmm_shape")
Q_CONV = _ex("q_conv_params", "q_conv_params_solution", "test_q_conv_params")
EXERCISES = [DESC, GATE, SOFT, SCORES, FLAT, Q_BROADCAST, Q_SOFTMAX_DIM, Q_BMM, Q_CONV]

IMPLS = [
    # channel_descriptor
    Impl(DESC, "mean without keepdim", "def channel_descriptor(x):\n    return x.mean((2, 3))\n", "keepdim"),
    Impl(DESC, "mean over channels", "def channel_descriptor(x):\n    return x.mean(1, keepdim=True)\n", "pool_axis"),
    Impl(DESC, "max instead of mean", "def channel_descriptor(x):\n    return x.amax((2, 3), keepdim=True)\n",
         "max_for_mean"),
    Impl(DESC, "in-place on the input", "def channel_descriptor(x):\n    x -= 0\n    x.mul_(2)\n"
         "    return x.mean((2, 3), keepdim=True) / 2\n", "modifies_input"),
    Impl(DESC, "hard-coded float32", "def channel_descriptor(x):\n    return x.float().mean((2, 3), keepdim=True)\n",
         "dtype"),
    Impl(DESC, "sum divided by H * H", "def channel_descriptor(x):\n    h, w = x.shape[-2:]\n"
         "    return x.sum((2, 3), keepdim=True) / (h * h)\n", "divisor"),
    Impl(DESC, "mean over the batch too", "def channel_descriptor(x):\n    return x.mean((0, 2, 3), keepdim=True)\n",
         "batch_mean"),
    Impl(DESC, "pooling kernel with H and W swapped",
         "def channel_descriptor(x):\n    h, w = x.shape[-2:]\n    return F.avg_pool2d(x, (w, h))\n", "pool_kernel"),
    Impl(DESC, "detached result", "def channel_descriptor(x):\n    return x.mean((2, 3), keepdim=True).detach()\n",
         "no_grad"),
    Impl(DESC, "computed under no_grad", "def channel_descriptor(x):\n    with torch.no_grad():\n"
         "        return x.mean((2, 3), keepdim=True)\n", "no_grad"),
    Impl(DESC, "a float32 divisor tensor", "def channel_descriptor(x):\n    h, w = x.shape[-2:]\n"
         "    return x.sum((2, 3), keepdim=True) / torch.tensor(h * w / 3.0) / 3\n", "float32_inside"),
    Impl(DESC, "valid: avg_pool2d over the whole map", "def channel_descriptor(x):\n"
         "    return F.avg_pool2d(x, x.shape[2:])\n"),
    Impl(DESC, "valid: adaptive pooling", "def channel_descriptor(x):\n    return F.adaptive_avg_pool2d(x, 1)\n"),
    Impl(DESC, "valid: einops reduce", "def channel_descriptor(x):\n    return reduce(x, 'b c h w -> b c 1 1', 'mean')\n"),
    Impl(DESC, "valid: sum / count", "def channel_descriptor(x):\n    h, w = x.shape[-2:]\n"
         "    return x.sum(dim=(-1, -2), keepdim=True) / (h * w)\n"),
    # apply_gate
    Impl(GATE, "gate broadcast over (H, W)", "def apply_gate(x, gate):\n    return x * gate\n", "gate_broadcast"),
    Impl(GATE, "gate added", "def apply_gate(x, gate):\n    return x + gate[:, :, None, None]\n", "values"),
    Impl(GATE, "gate transposed before the reshape", "def apply_gate(x, gate):\n    b, c = gate.shape\n"
         "    return x * gate.t().reshape(b, c, 1, 1)\n", "gate_layout"),
    Impl(GATE, "gate detached", "def apply_gate(x, gate):\n    return x * gate.detach()[:, :, None, None]\n", "no_grad"),
    Impl(GATE, "through .data", "def apply_gate(x, gate):\n    return x.data * gate.data[:, :, None, None]\n", "no_grad"),
    Impl(GATE, "valid: view", "def apply_gate(x, gate):\n    b, c = gate.shape\n    return x * gate.view(b, c, 1, 1)\n"),
    Impl(GATE, "valid: rearrange", "def apply_gate(x, gate):\n    return x * rearrange(gate, 'b c -> b c 1 1')\n"),
    Impl(GATE, "valid: einsum", "def apply_gate(x, gate):\n    return torch.einsum('bchw,bc->bchw', x, gate)\n"),
    # row_softmax
    Impl(SOFT, "softmax over dim 1", "def row_softmax(scores):\n    return torch.softmax(scores, dim=1)\n", "softmax_dim"),
    Impl(SOFT, "softmax over the batch", "def row_softmax(scores):\n    return torch.softmax(scores, dim=0)\n",
         "softmax_dim"),
    Impl(SOFT, "exp without normalising", "def row_softmax(scores):\n    return scores.exp()\n", "softmax_dim"),
    Impl(SOFT, "sigmoid", "def row_softmax(scores):\n    return torch.sigmoid(scores)\n", "sigmoid_rows"),
    Impl(SOFT, "softmax computed in float64 whatever the input (a second trial's)",
         "def row_softmax(scores):\n    return torch.softmax(scores.double(), dim=-1)\n", "dtype_upcast"),
    Impl(SOFT, "exp / sum without subtracting the max", "def row_softmax(scores):\n    e = scores.exp()\n"
         "    return e / e.sum(-1, keepdim=True)\n", "overflow"),
    Impl(SOFT, "softmax in float32 inside", "def row_softmax(scores):\n"
         "    return torch.softmax(scores.float(), dim=-1).to(scores.dtype)\n", "float32_inside"),
    Impl(SOFT, "detached after the softmax", "def row_softmax(scores):\n"
         "    return torch.softmax(scores, dim=-1).detach()\n", "no_grad"),
    Impl(SOFT, "max subtracted but its gradient path cut wrongly", "def row_softmax(scores):\n"
         "    e = (scores - scores.amax(-1, keepdim=True)).exp()\n    return e / e.sum(-1, keepdim=True).detach()\n",
         "no_grad"),
    Impl(SOFT, "valid: log-softmax, exponentiated", "def row_softmax(scores):\n"
         "    return scores.log_softmax(-1).exp()\n"),
    Impl(SOFT, "valid: stable by hand, max detached", "def row_softmax(scores):\n"
         "    e = (scores - scores.amax(-1, keepdim=True).detach()).exp()\n    return e / e.sum(-1, keepdim=True)\n"),
    Impl(SOFT, "valid: nn.Softmax", "def row_softmax(scores):\n    return nn.Softmax(dim=-1)(scores)\n"),
    Impl(SOFT, "valid: by hand, stable", "def row_softmax(scores):\n    z = scores - scores.amax(-1, keepdim=True)\n"
         "    e = z.exp()\n    return e / e.sum(-1, keepdim=True)\n"),
    Impl(SOFT, "valid: F.softmax dim=2", "def row_softmax(scores):\n    return F.softmax(scores, dim=2)\n"),
    # pairwise_scores
    Impl(SCORES, "k first", "def pairwise_scores(q, k):\n    return torch.bmm(k, q.transpose(1, 2))\n",
         "missing_transpose"),
    Impl(SCORES, "no transpose", "def pairwise_scores(q, k):\n    return torch.bmm(q, k)\n", "missing_transpose"),
    Impl(SCORES, "scaled by 1/sqrt(D)", "def pairwise_scores(q, k):\n"
         "    return q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])\n", "scores_scaled"),
    Impl(SCORES, "k detached", "def pairwise_scores(q, k):\n    return q @ k.detach().transpose(1, 2)\n", "no_grad"),
    Impl(SCORES, "via numpy", "def pairwise_scores(q, k):\n"
         "    import numpy as np\n    return torch.from_numpy(np.matmul(q.detach().numpy(), "
         "k.detach().numpy().transpose(0, 2, 1)))\n", "no_grad"),
    Impl(SCORES, "valid: bmm + permute", "def pairwise_scores(q, k):\n    return torch.bmm(q, k.permute(0, 2, 1))\n"),
    Impl(SCORES, "valid: einsum", "def pairwise_scores(q, k):\n    return torch.einsum('bnd,bmd->bnm', q, k)\n"),
    Impl(SCORES, "valid: mT", "def pairwise_scores(q, k):\n    return q @ k.mT\n"),
    # flatten_pixels
    Impl(FLAT, "view without permute", "def flatten_pixels(x):\n    b, c, h, w = x.shape\n"
         "    return x.reshape(b, h * w, c)\n", "reshape_not_permute"),
    Impl(FLAT, "columns first", "def flatten_pixels(x):\n    return rearrange(x, 'b c h w -> b (w h) c')\n",
         "pixel_order"),
    Impl(FLAT, "channels not moved", "def flatten_pixels(x):\n    return x.flatten(2)\n", "channels_first_pixels"),
    Impl(FLAT, "einops axis names swapped", "def flatten_pixels(x):\n    return rearrange(x, 'b h w c -> b (h w) c')\n",
         "einops_axes"),
    Impl(FLAT, "under no_grad", "def flatten_pixels(x):\n    with torch.no_grad():\n"
         "        return rearrange(x, 'b c h w -> b (h w) c')\n", "no_grad"),
    Impl(FLAT, "valid: permute + reshape", "def flatten_pixels(x):\n    b, c, h, w = x.shape\n"
         "    return x.permute(0, 2, 3, 1).reshape(b, h * w, c)\n"),
    Impl(FLAT, "valid: flatten + transpose", "def flatten_pixels(x):\n    return x.flatten(2).transpose(1, 2)\n"),

    # question 1: which broadcasting statements are true
    Impl(Q_BROADCAST, "broadcasting from the left", "q_broadcast = 'bd'", "left_aligned"),
    Impl(Q_BROADCAST, "from the left, and (c) as well", "q_broadcast = {'b', 'c', 'd'}", "left_aligned"),
    Impl(Q_BROADCAST, "the silent case missed", "q_broadcast = 'ad'", "silent_broadcast"),
    Impl(Q_BROADCAST, "a (B, C, 1) gate taken for (B, C, 1, 1)", "q_broadcast = 'acde'", "size_one_middle"),
    Impl(Q_BROADCAST, "only the right way", "q_broadcast = 'd'", "mismatch_broadcast"),
    Impl(Q_BROADCAST, "only the (B, C, 1) gate", "q_broadcast = 'e'", "wrong_answer"),
    Impl(Q_BROADCAST, "a letter that is not an option", "q_broadcast = 'acdf'", "answer_form"),
    Impl(Q_BROADCAST, "valid: a set", "q_broadcast = {'a', 'c', 'd'}"),
    Impl(Q_BROADCAST, "valid: a string in another order and case", "q_broadcast = 'D, A, C'"),
    Impl(Q_BROADCAST, "valid: a list", "q_broadcast = ['c', 'a', 'd']"),

    # question 2: the softmax's dim
    Impl(Q_SOFTMAX_DIM, "the columns", "q_softmax_dim = 1", "softmax_dim"),
    Impl(Q_SOFTMAX_DIM, "the batch", "q_softmax_dim = 0", "softmax_dim"),
    Impl(Q_SOFTMAX_DIM, "the columns, counted from the end", "q_softmax_dim = -2", "softmax_dim"),
    Impl(Q_SOFTMAX_DIM, "a word", "q_softmax_dim = 'keys'", "answer_form"),
    Impl(Q_SOFTMAX_DIM, "left as None", "q_softmax_dim = None", "unanswered"),
    Impl(Q_SOFTMAX_DIM, "valid: 2", "q_softmax_dim = 2"),
    Impl(Q_SOFTMAX_DIM, "valid: -1", "q_softmax_dim = -1"),
    Impl(Q_SOFTMAX_DIM, "valid: a 0-d integer tensor", "q_softmax_dim = torch.tensor(-1)"),

    # question 3: the shape of Q^T K
    Impl(Q_BMM, "the position form Q K^T", "q_bmm_shape = (2, 35, 35)", "transpose_side"),
    Impl(Q_BMM, "the batch dropped", "q_bmm_shape = (8, 8)", "batch_dropped"),
    Impl(Q_BMM, "Q^T alone", "q_bmm_shape = (2, 8, 35)", "missing_transpose"),
    Impl(Q_BMM, "the input's shape", "q_bmm_shape = (2, 35, 8)", "operand_shape"),
    Impl(Q_BMM, "one product of the pixels, batch dropped", "q_bmm_shape = (35, 35)", "wrong_answer"),
    Impl(Q_BMM, "a number", "q_bmm_shape = 128", "answer_form"),
    Impl(Q_BMM, "valid: a tuple", "q_bmm_shape = (2, 8, 8)"),
    Impl(Q_BMM, "valid: computed", "q_bmm_shape = tuple(torch.bmm(torch.zeros(2, 35, 8).transpose(1, 2), "
         "torch.zeros(2, 35, 8)).shape)"),
    Impl(Q_BMM, "valid: a list", "q_bmm_shape = [2, 8, 8]"),

    # question 4: a 3 x 3 convolution's parameters
    Impl(Q_CONV, "counted as 1 x 1", "q_conv_params = 4 * 64 + 4", "kernel_ignored"),
    Impl(Q_CONV, "without the bias", "q_conv_params = 4 * 64 * 3 * 3", "missing_bias"),
    Impl(Q_CONV, "one kernel for all outputs", "q_conv_params = 64 * 3 * 3 + 4", "param_count"),
    Impl(Q_CONV, "3 instead of 3 x 3", "q_conv_params = 4 * 64 * 3 + 4", "wrong_answer"),
    Impl(Q_CONV, "a float with a fraction", "q_conv_params = 2308.5", "answer_form"),
    Impl(Q_CONV, "valid: the number", "q_conv_params = 2308"),
    Impl(Q_CONV, "valid: counted from the layer", "q_conv_params = sum(p.numel() for p in "
         "torch.nn.Conv2d(64, 4, 3).parameters())"),
    Impl(Q_CONV, "valid: a float with no fraction", "q_conv_params = 2308.0"),
]

# issue 27: a plain function's own protections (device watch, memory layouts), like a module's
IMPLS += [
    Impl(DESC, "divided by a count made on the CPU (torch.tensor([h * w]))",
         "def channel_descriptor(x):\n    h, w = x.shape[-2:]\n"
         "    return x.sum((2, 3), keepdim=True) / torch.tensor([h * w], dtype=x.dtype)\n", "cpu_constant"),
    Impl(DESC, "x.view(B, C, H * W): breaks on a non-contiguous input",
         "def channel_descriptor(x):\n    b, c = x.shape[:2]\n    return x.view(b, c, -1).mean(-1)[:, :, None, None]\n",
         "memory_layout"),
    Impl(FLAT, "x.view(B, C, H * W), then transposed: breaks on a non-contiguous input",
         "def flatten_pixels(x):\n    b, c, h, w = x.shape\n    return x.view(b, c, h * w).transpose(1, 2)\n",
         "memory_layout"),
    Impl(DESC, "valid: x.reshape(B, C, H * W).mean(-1)",
         "def channel_descriptor(x):\n    b, c = x.shape[:2]\n    return x.reshape(b, c, -1).mean(-1)[:, :, None, None]\n"),
]

# issue 26 (student trial): likely mistakes that got no named hint
IMPLS += [
    Impl(DESC, "sum instead of mean", "def channel_descriptor(x):\n    return x.sum((2, 3), keepdim=True)\n",
         "sum_for_mean"),
    Impl(DESC, "mean over the batch too, expanded back to (B, C, 1, 1)", "def channel_descriptor(x):\n"
         "    return x.mean((0, 2, 3), keepdim=True).expand(x.shape[0], -1, 1, 1)\n", "batch_mean"),
    Impl(GATE, "sigmoid of the gate", "def apply_gate(x, gate):\n    return x * torch.sigmoid(gate)[:, :, None, None]\n",
         "gate_squashed"),
    Impl(GATE, "a residual: x + x * gate", "def apply_gate(x, gate):\n    return x + x * gate[:, :, None, None]\n",
         "gate_residual"),
    Impl(GATE, "gate reshaped to (C, B) and transposed", "def apply_gate(x, gate):\n    b, c = gate.shape\n"
         "    return x * gate.reshape(c, b).T[:, :, None, None]\n", "gate_layout"),
    Impl(SOFT, "row sum without keepdim", "def row_softmax(scores):\n    e = (scores - scores.amax(-1, keepdim=True)).exp()\n"
         "    return e / e.sum(-1)\n", "keepdim"),
    Impl(SOFT, "max taken over dim 1", "def row_softmax(scores):\n    e = (scores - scores.amax(1, keepdim=True)).exp()\n"
         "    return e / e.sum(-1, keepdim=True)\n", "shift_not_row_constant"),
    Impl(SCORES, "k.T on a 3-D tensor", "def pairwise_scores(q, k):\n    return q @ k.T\n", "t_all_dims"),
    Impl(SCORES, "elementwise product", "def pairwise_scores(q, k):\n    return (q * k).sum(-1)\n", "elementwise_scores"),
    Impl(SCORES, "k reshaped instead of transposed", "def pairwise_scores(q, k):\n    b, m, d = k.shape\n"
         "    return torch.bmm(q, k.reshape(b, d, m))\n", "reshape_for_transpose"),
    Impl(SCORES, "valid: transpose of k @ q^T", "def pairwise_scores(q, k):\n"
         "    return (k @ q.transpose(1, 2)).transpose(1, 2)\n"),
    Impl(Q_SOFTMAX_DIM, "valid: a float with no fraction (the text accepts it)", "q_softmax_dim = 2.0"),
]

# issue 26, second trial: likely mistakes that got no named hint
IMPLS += [
    Impl(DESC, "x.reshape(B, H*W, C) averaged over dim 1",
         "def channel_descriptor(x):\n    b, c = x.shape[:2]\n    return x.reshape(b, -1, c).mean(1)[:, :, None, None]\n",
         "reshape_not_permute"),
    Impl(DESC, "returned in half precision", "def channel_descriptor(x):\n    return x.half().mean((2, 3), keepdim=True)\n",
         "dtype"),
    Impl(GATE, "gate transposed with .T before the size-1 dims",
         "def apply_gate(x, gate):\n    return x * gate.T[..., None, None]\n", "gate_transposed"),
    Impl(SOFT, "shifted by the max of the whole tensor",
         "def row_softmax(scores):\n    e = torch.exp(scores - scores.max())\n    return e / e.sum(-1, keepdim=True)\n",
         "global_shift"),
    Impl(SOFT, "log_softmax", "def row_softmax(scores):\n    return torch.log_softmax(scores, -1)\n", "log_softmax"),
    Impl(SOFT, "divided by the row sum, no exp",
         "def row_softmax(scores):\n    return scores / scores.sum(-1, keepdim=True)\n", "no_exp"),
    Impl(SOFT, "scaled by 1/sqrt(M) first",
         "def row_softmax(scores):\n    return torch.softmax(scores / scores.shape[-1] ** 0.5, -1)\n", "scores_scaled"),
    Impl(SCORES, "scores put through a softmax",
         "def pairwise_scores(q, k):\n    return torch.softmax(q @ k.transpose(1, 2), -1)\n", "scores_softmaxed"),
]

# issue 26, trial t015: wrong answers that got only a generic message
IMPLS += [
    Impl(DESC, "mean over (1, 2), dims kept", "def channel_descriptor(x):\n    return x.mean((1, 2), keepdim=True)\n",
         "pool_axis"),
    Impl(DESC, "mean over (1, 2), dims dropped", "def channel_descriptor(x):\n    return x.mean((1, 2))\n", "pool_axis"),
    Impl(DESC, "mean over everything", "def channel_descriptor(x):\n    return x.mean()\n", "pool_axis"),
    Impl(Q_BROADCAST, "all four of (a)-(d)", "q_broadcast = {'a', 'b', 'c', 'd'}", "contradictory_statements"),
    Impl(Q_BROADCAST, "(a) taken to run", "q_broadcast = {'c', 'd'}", "mismatch_broadcast"),
    Impl(Q_SOFTMAX_DIM, "dims counted from 1", "q_softmax_dim = 3", "one_based_dim"),
    Impl(Q_BMM, "the batch summed to one product", "q_bmm_shape = (1, 8, 8)", "batch_dropped"),
    Impl(Q_BMM, "a vector per image", "q_bmm_shape = (2, 8)", "product_dims"),
    Impl(Q_CONV, "a bias per kernel position", "q_conv_params = 4 * 64 * 9 + 4 * 9", "conv_bias_count"),
    Impl(Q_CONV, "a bias per input channel", "q_conv_params = 4 * 64 * 9 + 64", "conv_bias_count"),
]

# round-2 trial t015: wrong answers that got only a generic message
IMPLS += [
    Impl(DESC, "median instead of mean (a student trial's)",
         "def channel_descriptor(x):\n    return x.flatten(2).median(-1).values[:, :, None, None]\n", "median_for_mean"),
    Impl(SOFT, "softmax of the scores halved (a student trial's)",
         "def row_softmax(scores):\n    return torch.softmax(scores / 2, dim=-1)\n", "scores_scaled"),
    Impl(SOFT, "softmax with a temperature of 0.7",
         "def row_softmax(scores):\n    return torch.softmax(scores / 0.7, dim=-1)\n", "scores_scaled"),
    Impl(SOFT, "ReLU, then divided by the row sum (a student trial's)",
         "def row_softmax(scores):\n    r = F.relu(scores)\n    return r / r.sum(-1, keepdim=True)\n", "no_exp"),
]
