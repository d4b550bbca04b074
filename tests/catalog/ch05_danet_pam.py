"""Grader catalog of chapter 05 (DANet PAM): wrong implementations that students and popular copies write,
each with the mistake id the checks must name, and valid alternatives that must get full marks."""
from __future__ import annotations

from catalog import Exercise, Impl, question
from course_lib.checks import ch05_danet_pam as visible
from course_lib.hidden import ch05_danet_pam as hidden

CHAPTER = "05_danet_pam"

ATTENTION = Exercise(CHAPTER, "PositionAttention.attention", "PositionAttention",
                     visible.check_pam_attention, hidden.hidden_pam_attention, "pam", "test_pam_attention")
FORWARD = Exercise(CHAPTER, "PositionAttention.forward", "PositionAttention",
                   visible.check_pam_forward, hidden.hidden_pam_forward, "pam", "test_pam_forward")
EINOPS = Exercise(CHAPTER, "pam_einops", "pam_einops",
                  visible.check_pam_einops, hidden.hidden_pam_einops, "pam_einops", "test_pam_einops")
EXERCISES = [ATTENTION, FORWARD, EINOPS]

INIT = """\
        self.query_conv = nn.Conv2d(channels, channels // reduction, 1)
        self.key_conv = nn.Conv2d(channels, channels // reduction, 1)
        self.value_conv = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))"""
ATT = """\
        b, c, h, w = x.shape
        q = self.query_conv(x).view(b, -1, h * w).permute(0, 2, 1)
        k = self.key_conv(x).view(b, -1, h * w)
        return torch.softmax(torch.bmm(q, k), dim=-1)"""
FWD = """\
        b, c, h, w = x.shape
        a = self.attention(x)
        v = self.value_conv(x).reshape(b, c, h * w)
        out = torch.bmm(v, a.permute(0, 2, 1)).reshape(b, c, h, w)
        return self.gamma * out + x"""


def pam(*, init: str = INIT, att: str = ATT, fwd: str = FWD, extra: str = "") -> str:
    return f"""
class PositionAttention(nn.Module):
    def __init__(self, channels, reduction=8):
        super().__init__()
{init}
{extra}
    def attention(self, x):
{att}

    def forward(self, x):
{fwd}
"""


def att_with(line: str) -> dict:
    return dict(att=ATT.replace("        return torch.softmax(torch.bmm(q, k), dim=-1)", line))


WRONG_ATTENTION = [
    ("the softmax of the energy cast to float64 (a trial's up-cast)", "dtype_upcast",
     att_with("        return torch.softmax(torch.bmm(q, k).double(), dim=-1)")),
    ("softmax over dim 1 (the queries)", "softmax_dim", att_with("        return torch.softmax(torch.bmm(q, k), dim=1)")),
    ("softmax over all N*N pairs (energy flattened)", "softmax_dim", att_with(
        "        e = torch.bmm(q, k)\n        return F.softmax(e.view(b, -1), dim=-1).view_as(e)")),
    ("nn.Softmax() without dim (picks dim 0, the batch)", "softmax_dim", dict(
        extra="        self.softmax = nn.Softmax()",
        att=ATT.replace("torch.softmax(torch.bmm(q, k), dim=-1)", "self.softmax(torch.bmm(q, k))"))),
    ("1/sqrt(C') scaling (Transformer style)", "scaled", att_with(
        "        return torch.softmax(torch.bmm(q, k) / math.sqrt(q.shape[-1]), dim=-1)")),
    ("query and key swapped (key^T @ query)", "qk_swapped", att_with(
        "        return torch.softmax(torch.bmm(k.permute(0, 2, 1), q.permute(0, 2, 1)), dim=-1)")),
    ("no softmax", "values", att_with("        return torch.bmm(q, k)")),
    ("softmax as exp / sum, without subtracting the max", "overflow", att_with(
        "        e = torch.bmm(q, k).exp()\n        return e / e.sum(-1, keepdim=True)")),
    ("energy detached before the softmax", "no_grad", att_with(
        "        return torch.softmax(torch.bmm(q, k).detach(), dim=-1)")),
    ("reduction ignored (hard-coded // 8)", "reduction_ignored", dict(
        init=INIT.replace("channels // reduction", "channels // 8"))),
    ("convolutions without bias", "missing_bias", dict(
        init=INIT.replace(", 1)", ", 1, bias=False)"))),
    ("renamed layers (q, k, v) where the names are asked", "parameters", dict(init="""\
        self.q = nn.Conv2d(channels, channels // reduction, 1)
        self.key_conv = nn.Conv2d(channels, channels // reduction, 1)
        self.value_conv = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))""", att=ATT.replace("self.query_conv", "self.q"))),
    ("hard-coded .cuda()", "device", att_with("        return torch.softmax(torch.bmm(q, k).cuda(), dim=-1)")),
    ("hard-coded float32", "dtype", att_with("        return torch.softmax(torch.bmm(q.float(), k.float()), dim=-1)")),
    ("energy in float32, the map cast back to the input's dtype", "float32_inside", att_with(
        "        return torch.softmax(torch.bmm(q.float(), k.float()), dim=-1).to(x.dtype)")),
    ("attention returns the reweighted features", "returns_features", dict(att="""\
        b, c, h, w = x.shape
        q = self.query_conv(x).view(b, -1, h * w).permute(0, 2, 1)
        k = self.key_conv(x).view(b, -1, h * w)
        a = torch.softmax(torch.bmm(q, k), dim=-1)
        return torch.bmm(self.value_conv(x).view(b, c, -1), a.permute(0, 2, 1)).view(b, c, h, w)""")),
]

WRONG_FORWARD = [
    ("value @ attention without the transpose (DANet #64)", "missing_transpose", dict(fwd=FWD.replace(
        "a.permute(0, 2, 1)", "a"))),
    ("gamma initialised to 1", "gamma_init", dict(init=INIT.replace("torch.zeros(1)", "torch.ones(1)"))),
    ("missing residual", "missing_residual", dict(fwd=FWD.replace("self.gamma * out + x", "self.gamma * out"))),
    ("gamma a plain tensor, not a Parameter", "no_scale_param", dict(init=INIT.replace(
        "nn.Parameter(torch.zeros(1))", "torch.zeros(1)"))),
    ("in-place residual on the input (x += gamma * out)", "inplace", dict(fwd=FWD.replace(
        "        return self.gamma * out + x", "        x += self.gamma * out\n        return x"))),
    ("forward returns the attention map", "returns_map", dict(fwd="        return self.attention(x)")),
    ("a CPU constant for N in forward", "cpu_constant", dict(fwd=FWD.replace(
        "        return self.gamma * out + x", "        n = torch.ones(h * w, dtype=x.dtype).sum()\n"
        "        return self.gamma * out * (torch.ones(h, w, dtype=x.dtype) * n / (h * w)) + x"))),
    ("hard-coded float32 in forward", "float32_inside", dict(fwd=FWD.replace("a.permute(0, 2, 1))", "a.permute(0, 2, 1).float())"
                                                                    ).replace("h * w)\n", "h * w).float()\n"))),
    ("the output multiplied with the input (gamma * out * x, chapter 00's blog slip)", "residual_product",
     dict(fwd=FWD.replace("self.gamma * out + x", "self.gamma * out * x"))),
    ("the map mixes x itself, no value_conv in forward", "no_value_conv",
     dict(fwd=FWD.replace("self.value_conv(x).reshape", "x.reshape"))),
    ("the residual adds value_conv(x), not x", "value_residual",
     dict(fwd=FWD.replace("self.gamma * out + x", "self.gamma * out + self.value_conv(x)"))),
    ("gamma created but not used (out + x)", "gamma_unused",
     dict(fwd=FWD.replace("self.gamma * out + x", "out + x"))),
    ("forward returns float64 for any input (.double(), a trial's up-cast)", "dtype_upcast", dict(fwd=FWD.replace(
        "        return self.gamma * out + x", "        return (self.gamma * out + x).double()"))),
    ("a ones tensor made with an explicit device='cpu' (a student trial's)", "cpu_constant", dict(fwd=FWD.replace(
        "        return self.gamma * out + x", "        return (self.gamma * out + x) * torch.ones(1, 1, 1, 1, device='cpu')"))),
    ("the output cast with .float()", "dtype", dict(fwd=FWD.replace(
        "        return self.gamma * out + x", "        return (self.gamma * out + x).float()"))),
    ("hard-coded .cuda() in forward", "device", dict(fwd=FWD.replace("self.gamma * out + x", "self.gamma * out.cuda() + x"))),
    ("softmax over dim 1 (the same module through forward)", "softmax_dim",
     att_with("        return torch.softmax(torch.bmm(q, k), dim=1)")),
]

VALID_PAM = [
    ("einsum for both contractions", dict(att="""\
        q = self.query_conv(x).flatten(2)
        k = self.key_conv(x).flatten(2)
        return torch.einsum("bcn,bcm->bnm", q, k).softmax(-1)""", fwd="""\
        b, c, h, w = x.shape
        v = self.value_conv(x).flatten(2)
        out = torch.einsum("bnm,bcm->bcn", self.attention(x), v)
        return self.gamma * out.reshape(b, c, h, w) + x""")),
    ("@ instead of bmm, nn.Softmax module", dict(extra="        self.softmax = nn.Softmax(dim=-1)", att="""\
        b, c, h, w = x.shape
        q = self.query_conv(x).reshape(b, -1, h * w).transpose(1, 2)
        k = self.key_conv(x).reshape(b, -1, h * w)
        return self.softmax(q @ k)""")),
    ("einops rearrange, F.softmax", dict(att="""\
        q = rearrange(self.query_conv(x), "b c h w -> b (h w) c")
        k = rearrange(self.key_conv(x), "b c h w -> b c (h w)")
        return F.softmax(q @ k, dim=2)""", fwd="""\
        h, w = x.shape[-2:]
        v = rearrange(self.value_conv(x), "b c h w -> b c (h w)")
        out = rearrange(v @ self.attention(x).transpose(-1, -2), "b c (h w) -> b c h w", h=h, w=w)
        return x + self.gamma * out""")),
    ("attention^T @ value^T order, transposed back", dict(fwd="""\
        b, c, h, w = x.shape
        v = self.value_conv(x).reshape(b, c, h * w)
        out = (self.attention(x) @ v.transpose(1, 2)).transpose(1, 2)
        return self.gamma * out.reshape(b, c, h, w) + x""")),
    ("scaled_dot_product_attention with scale=1.0", dict(fwd="""\
        b, c, h, w = x.shape
        q = self.query_conv(x).flatten(2).transpose(1, 2)
        k = self.key_conv(x).flatten(2).transpose(1, 2)
        v = self.value_conv(x).flatten(2).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, scale=1.0)
        return self.gamma * out.transpose(1, 2).reshape(b, c, h, w) + x""")),
    ("extra buffer and attribute", dict(extra="""\
        self.register_buffer("calls", torch.zeros(()))
        self.channels = channels""")),
    ("nn.Linear projections on (B, N, C) and a 0-d gamma", dict(init="""\
        self.query_conv = nn.Linear(channels, channels // reduction)
        self.key_conv = nn.Linear(channels, channels // reduction)
        self.value_conv = nn.Linear(channels, channels)
        self.gamma = nn.Parameter(torch.tensor(0.0))""", att="""\
        tokens = rearrange(x, "b c h w -> b (h w) c")
        q, k = self.query_conv(tokens), self.key_conv(tokens)
        return (q @ k.transpose(1, 2)).softmax(dim=-1)""", fwd="""\
        h, w = x.shape[-2:]
        v = self.value_conv(rearrange(x, "b c h w -> b (h w) c"))
        out = self.attention(x) @ v
        return self.gamma * rearrange(out, "b (h w) c -> b c h w", h=h, w=w) + x""")),
]

WRONG_EINOPS = [
    ("softmax over dim 1", "softmax_dim", "e = einsum(q3, k3, 'b c n, b c m -> b n m')\n    a = e.softmax(1)"),
    ("softmax over all N*N pairs", "softmax_dim",
     "e = einsum(q3, k3, 'b c n, b c m -> b n m')\n    a = e.flatten(1).softmax(-1).view_as(e)"),
    ("scaled by 1/sqrt(C')", "scaled", "e = einsum(q3, k3, 'b c n, b c m -> b n m') / math.sqrt(q3.shape[1])\n"
                                       "    a = e.softmax(-1)"),
    ("query and key swapped", "qk_swapped", "e = einsum(k3, q3, 'b c n, b c m -> b n m')\n    a = e.softmax(-1)"),
]


def einops_fn(map_lines: str, out_line: str = "out = einsum(a, v3, 'b n m, b c m -> b c n')") -> str:
    return f"""
def pam_einops(q, k, v):
    h, w = v.shape[-2:]
    q3 = rearrange(q, 'b c h w -> b c (h w)')
    k3 = rearrange(k, 'b c h w -> b c (h w)')
    v3 = rearrange(v, 'b c h w -> b c (h w)')
    {map_lines}
    {out_line}
    return rearrange(out, 'b c (h w) -> b c h w', h=h, w=w)
"""


RIGHT_MAP = "e = einsum(q3, k3, 'b c n, b c m -> b n m')\n    a = e.softmax(-1)"
IMPLS: list[Impl] = []
IMPLS += [Impl(ATTENTION, label, pam(**parts), mistake) for label, mistake, parts in WRONG_ATTENTION]
IMPLS += [Impl(FORWARD, label, pam(**parts), mistake) for label, mistake, parts in WRONG_FORWARD]
IMPLS += [Impl(ex, f"{label} ({ex.name})", pam(**parts)) for ex in (ATTENTION, FORWARD) for label, parts in VALID_PAM]
IMPLS += [Impl(EINOPS, label, einops_fn(lines), mistake) for label, mistake, lines in WRONG_EINOPS]
IMPLS += [Impl(FORWARD, "reduction defaults to 16", pam().replace("def __init__(self, channels, reduction=8)",
                                                                  "def __init__(self, channels, reduction=16)"),
               "default_args")]
IMPLS += [
    Impl(EINOPS, "missing transpose (einsum 'b m n' for the map)", einops_fn(
        RIGHT_MAP, "out = einsum(a, v3, 'b m n, b c m -> b c n')"), "missing_transpose"),
    Impl(EINOPS, "normalises q and k in place (cosine-attention copies)", """
def pam_einops(q, k, v):
    b, c, h, w = v.shape
    q /= q.norm(dim=1, keepdim=True)
    k /= k.norm(dim=1, keepdim=True)
    a = torch.einsum('bcn,bcm->bnm', q.flatten(2), k.flatten(2)).softmax(-1)
    return torch.einsum('bnm,bcm->bcn', a, v.flatten(2)).reshape(b, c, h, w)
""", "modifies_input"),
    Impl(EINOPS, "hard-coded float32", einops_fn(RIGHT_MAP.replace("a = e.softmax(-1)", "a = e.float().softmax(-1)"),
                                                 "out = einsum(a, v3.float(), 'b n m, b c m -> b c n')"), "dtype"),
    Impl(EINOPS, "the output cast with .float()", einops_fn(
        RIGHT_MAP, "out = einsum(a, v3, 'b n m, b c m -> b c n').float()"), "dtype"),
    Impl(EINOPS, "the map computed in float32, cast back", einops_fn(
        "e = einsum(q3.float(), k3.float(), 'b c n, b c m -> b n m')\n    a = e.softmax(-1).to(v3.dtype)"),
        "float32_inside"),
    Impl(EINOPS, "exp / sum without subtracting the max", einops_fn(
        "e = einsum(q3, k3, 'b c n, b c m -> b n m').exp()\n    a = e / e.sum(-1, keepdim=True)"), "overflow"),
    Impl(EINOPS, "the map computed under no_grad", einops_fn(
        "with torch.no_grad():\n        a = einsum(q3, k3, 'b c n, b c m -> b n m').softmax(-1)"), "no_grad"),
    Impl(EINOPS, "keys detached", einops_fn(
        "a = einsum(q3, k3.detach(), 'b c n, b c m -> b n m').softmax(-1)"), "no_grad"),
    Impl(EINOPS, "valid: stable softmax by hand", einops_fn(
        "e = einsum(q3, k3, 'b c n, b c m -> b n m')\n    e = (e - e.amax(-1, keepdim=True)).exp()\n"
        "    a = e / e.sum(-1, keepdim=True)")),
    Impl(EINOPS, "einops einsum", einops_fn(RIGHT_MAP)),
    Impl(EINOPS, "torch.einsum on flattened views and bmm", """
def pam_einops(q, k, v):
    b, c, h, w = v.shape
    a = torch.einsum('bcn,bcm->bnm', q.reshape(b, -1, h * w), k.reshape(b, -1, h * w)).softmax(-1)
    return torch.bmm(v.reshape(b, c, h * w), a.transpose(1, 2)).reshape(b, c, h, w)
"""),
    Impl(EINOPS, "scaled_dot_product_attention, scale=1.0", """
def pam_einops(q, k, v):
    h, w = v.shape[-2:]
    t = lambda z: rearrange(z, 'b c h w -> b (h w) c')
    out = F.scaled_dot_product_attention(t(q), t(k), t(v), scale=1.0)
    return rearrange(out, 'b (h w) c -> b c h w', h=h, w=w)
"""),
]

# --------------------------------------------------------------------------------------------
# conceptual questions: a wrong answer names its mistake; the right one passes in another form
# --------------------------------------------------------------------------------------------
Q_PARAMS, Q_GRADS, Q_MIB, Q_EQUIV = (question(CHAPTER, visible, hidden, q) for q in
                                     ("q_pam_params", "q_zero_gamma_grads", "q_map_mib", "q_equivariance"))
EXERCISES += [Q_PARAMS, Q_GRADS, Q_MIB, Q_EQUIV]

IMPLS += [
    Impl(Q_PARAMS, "biases left out", "q_pam_params = 2 * 512 * 64 + 512 * 512 + 1", "missing_bias"),
    Impl(Q_PARAMS, "gamma left out", "q_pam_params = 2 * (512 * 64 + 64) + 512 * 512 + 512", "param_count"),
    Impl(Q_PARAMS, "value_conv reduced like the query", "q_pam_params = 3 * (512 * 64 + 64) + 1", "param_count"),
    Impl(Q_PARAMS, "a float", "q_pam_params = 328321.5", "answer_form"),
    Impl(Q_PARAMS, "still the placeholder", "q_pam_params = None", "unanswered"),
    Impl(Q_PARAMS, "valid: the number as a float with no fraction", "q_pam_params = 328321.0"),
    Impl(Q_PARAMS, "valid: counted from an nn.Conv2d", "q_pam_params = sum(p.numel() for c in (nn.Conv2d(512, 64, 1), "
                                                        "nn.Conv2d(512, 64, 1), nn.Conv2d(512, 512, 1)) "
                                                        "for p in c.parameters()) + 1"),
    Impl(Q_GRADS, "all of them", "q_zero_gamma_grads = 'abcd'", "zero_gamma_gradient"),
    Impl(Q_GRADS, "only the convolutions", "q_zero_gamma_grads = {'a', 'b', 'c'}", "zero_gamma_gradient"),
    Impl(Q_GRADS, "the value convolution and gamma", "q_zero_gamma_grads = ['c', 'd']", "zero_gamma_gradient"),
    Impl(Q_GRADS, "not an option", "q_zero_gamma_grads = 'e'", "answer_form"),
    Impl(Q_GRADS, "valid: an upper-case letter", "q_zero_gamma_grads = 'D'"),
    Impl(Q_GRADS, "valid: a list", "q_zero_gamma_grads = ['d']"),
    Impl(Q_MIB, "in MB", "q_map_mib = 9216 ** 2 * 4 / 1e6", "memory_units"),
    Impl(Q_MIB, "N numbers, not N x N", "q_map_mib = 96 * 96 * 4 / 2 ** 20", "map_size"),
    Impl(Q_MIB, "the crop's pixels", "q_map_mib = (768 * 768) ** 2 * 4 / 2 ** 20", "output_stride"),
    Impl(Q_MIB, "float64 bytes", "q_map_mib = 9216 ** 2 * 8 / 2 ** 20", "bytes_per_number"),
    Impl(Q_MIB, "an eighth of the map (no misconception named)", "q_map_mib = 40.5", "wrong_answer"),
    Impl(Q_MIB, "valid: rounded", "q_map_mib = 324"),
    Impl(Q_MIB, "valid: a tensor", "q_map_mib = torch.tensor(9216.0) ** 2 * 4 / 2 ** 20"),
    Impl(Q_EQUIV, "only the output statement", "q_equivariance = 'b'", "equivariance"),
    Impl(Q_EQUIV, "invariant, not equivariant", "q_equivariance = {'c'}", "invariance"),
    Impl(Q_EQUIV, "equivariant and invariant at once", "q_equivariance = 'abc'", "invariance"),
    Impl(Q_EQUIV, "PAM knows positions", "q_equivariance = 'abd'", "equivariance"),
    Impl(Q_EQUIV, "valid: another order and case", "q_equivariance = 'BA'"),
    Impl(Q_EQUIV, "valid: a tuple", "q_equivariance = ('a', 'b')"),
]

# Mixed precision (issue 29): attention() refuses a bfloat16 input meeting float32 weights (torch.autocast)
IMPLS += [Impl(ATTENTION, "a dtype guard that refuses mixed precision", pam(att="""\
        if x.dtype != self.query_conv.weight.dtype:
            raise TypeError(f"PositionAttention: input is {x.dtype}, weights are {self.query_conv.weight.dtype}")
""" + ATT), "autocast")]

# issue 27: a plain function's own protections (device watch, memory layouts)
IMPLS += [
    Impl(EINOPS, "the softmax taken on the energy cast to float64 (a third trial's up-cast)", einops_fn(
        "e = einsum(q3, k3, 'b c n, b c m -> b n m')\n"
        "    a = e.double().softmax(-1)", "out = einsum(a, v3.double(), 'b n m, b c m -> b c n')"), "dtype_upcast"),
    Impl(EINOPS, "the map's mask of ones made on the CPU (torch.ones without device=)", einops_fn(
        "e = einsum(q3, k3, 'b c n, b c m -> b n m')\n"
        "    a = (e * torch.ones(e.shape[-1], dtype=e.dtype)).softmax(-1)"), "cpu_constant"),
    Impl(EINOPS, "views on the inputs: breaks on a channels_last input", """
def pam_einops(q, k, v):
    b, c, h, w = v.shape
    a = torch.bmm(q.view(b, -1, h * w).transpose(1, 2), k.view(b, -1, h * w)).softmax(-1)
    return torch.bmm(v.view(b, c, h * w), a.transpose(1, 2)).view(b, c, h, w)
""", "memory_layout"),
]

# issue 27: a layout mistake named (H and W swapped when the output is unflattened)
IMPLS += [Impl(FORWARD, "H and W swapped when unflattening the output", pam(fwd=FWD.replace(
    ".reshape(b, c, h, w)", ".reshape(b, c, w, h).transpose(2, 3)")), "hw_swapped")]

# issue 26 (student trial): mistakes that passed or got no named hint
_ATT_VIEW = ATT.replace(".view(b, -1, h * w).permute(0, 2, 1)", ".reshape(b, h * w, -1)")
IMPLS += [
    Impl(ATTENTION, "queries reshaped to (B, N, C') instead of transposed", pam(att=_ATT_VIEW), "query_view"),
    Impl(FORWARD, "queries reshaped to (B, N, C') instead of transposed", pam(att=_ATT_VIEW), "query_view"),
    Impl(ATTENTION, "a module that refuses a channels_last input (asserts x.is_contiguous())",
         pam(att="        assert x.is_contiguous(), 'contiguous input expected'\n" + ATT), "memory_layout"),
    Impl(FORWARD, "a module that refuses a channels_last input (asserts x.is_contiguous())",
         pam(fwd="        assert x.is_contiguous(), 'contiguous input expected'\n" + FWD), "memory_layout"),
    Impl(EINOPS, "H and W swapped when folding back ('(w h)')", """
def pam_einops(q, k, v):
    h, w = v.shape[-2:]
    q3, k3, v3 = (rearrange(t, 'b c h w -> b c (h w)') for t in (q, k, v))
    a = einsum(q3, k3, 'b c n, b c m -> b n m').softmax(-1)
    out = einsum(a, v3, 'b n m, b c m -> b c n')
    return rearrange(out, 'b c (w h) -> b c h w', h=h, w=w)
""", "hw_swapped"),
    Impl(EINOPS, "(B, N, C) result reshaped to (B, C, H, W) without moving the channels", """
def pam_einops(q, k, v):
    b, c, h, w = v.shape
    q3, k3, v3 = (rearrange(t, 'b c h w -> b c (h w)') for t in (q, k, v))
    a = einsum(q3, k3, 'b c n, b c m -> b n m').softmax(-1)
    out = einsum(a, v3, 'b n m, b c m -> b n c')
    return out.reshape(b, c, h, w)
""", "out_not_permuted"),
    Impl(EINOPS, "the values added back (out + v)", """
def pam_einops(q, k, v):
    h, w = v.shape[-2:]
    q3, k3, v3 = (rearrange(t, 'b c h w -> b c (h w)') for t in (q, k, v))
    a = einsum(q3, k3, 'b c n, b c m -> b n m').softmax(-1)
    out = einsum(a, v3, 'b n m, b c m -> b c n')
    return rearrange(out, 'b c (h w) -> b c h w', h=h, w=w) + v
""", "einsum_residual"),
    Impl(ATTENTION, "valid: a Python loop over the query pixels (the text promises no speed)", pam(att="""\
        b, c, h, w = x.shape
        q = self.query_conv(x).flatten(2)
        k = self.key_conv(x).flatten(2)
        rows = [torch.softmax((q[:, :, j:j + 1] * k).sum(1), dim=-1) for j in range(h * w)]
        return torch.stack(rows, 1)""")),
]

# issue 26, second trial: the likely mistakes that got no named hint
IMPLS += [
    Impl(ATTENTION, "hidden width rounded up with math.ceil (C / r not whole)", pam(init=INIT.replace(
        "channels // reduction", "math.ceil(channels / reduction)")), "hidden_width"),
    Impl(ATTENTION, "key_conv used for the queries too", pam(att=ATT.replace("self.query_conv(x)", "self.key_conv(x)")),
         "key_as_query"),
    Impl(FORWARD, "key_conv used for the queries too", pam(att=ATT.replace("self.query_conv(x)", "self.key_conv(x)")),
         "key_as_query"),
    Impl(ATTENTION, "a sigmoid instead of the softmax", pam(**att_with("        return torch.sigmoid(torch.bmm(q, k))")),
         "sigmoid_map"),
    Impl(FORWARD, "a sigmoid map used in forward (attention right)", pam(fwd=FWD.replace(
        "a = self.attention(x)", "a = torch.sigmoid(torch.bmm(self.query_conv(x).view(b, -1, h * w).permute(0, 2, 1), "
        "self.key_conv(x).view(b, -1, h * w)))")), "sigmoid_map"),
    Impl(FORWARD, "gamma * (out + x)", pam(fwd=FWD.replace("return self.gamma * out + x",
                                                          "return self.gamma * (out + x)")), "gamma_on_residual"),
    Impl(FORWARD, "map detached in forward", pam(fwd=FWD.replace("a = self.attention(x)",
                                                                "a = self.attention(x).detach()")), "detached_map"),
    Impl(ATTENTION, "BatchNorm and ReLU after the query and key convolutions (paper v3)", pam(
        extra="        self.bn = nn.BatchNorm2d(channels // reduction)",
        att=ATT.replace("self.query_conv(x)", "F.relu(self.bn(self.query_conv(x)))")), "param_count"),
]

# issue 26, trial t015: wrong answers that got only a generic message
IMPLS += [
    Impl(Q_PARAMS, "the paper's full width C for the query and key", "q_pam_params = 3 * (512 * 512 + 512) + 1",
         "qk_full_width"),
    Impl(Q_PARAMS, "C biases for the query and key", "q_pam_params = 2 * (512 * 64 + 512) + 512 * 512 + 512 + 1",
         "conv_bias_count"),
    Impl(Q_MIB, "numbers, not bytes", "q_map_mib = 9216 ** 2 / 2 ** 20", "bytes_per_number"),
    Impl(Q_MIB, "output stride 16", "q_map_mib = (768 // 16) ** 4 * 4 / 2 ** 20", "output_stride"),
    Impl(Q_MIB, "in GiB", "q_map_mib = 9216 ** 2 * 4 / 2 ** 30", "memory_units"),
]

# issue 26, round-2 trial t015: more wrong answers that got only a generic message
_KEY_RESHAPED = ATT.replace("k = self.key_conv(x).view(b, -1, h * w)",
                            "k = self.key_conv(x).reshape(b, h * w, -1).transpose(1, 2)")
_QK_RELU = ATT.replace("self.query_conv(x)", "F.relu(self.query_conv(x))").replace("self.key_conv(x)",
                                                                                   "F.relu(self.key_conv(x))")
_QUERY_FOR_BOTH = ATT.replace("self.key_conv(x)", "self.query_conv(x)")
_SOFTMAX_TWICE = "        return torch.softmax(torch.softmax(torch.bmm(q, k), dim=-1), dim=-1)"
IMPLS += [
    Impl(FORWARD, "(B, N, C) product reshaped to (B, C, H, W) without a permute (a student trial's)", pam(fwd="""\
        b, c, h, w = x.shape
        s = self.attention(x)
        v = self.value_conv(x).view(b, c, h * w)
        out = torch.bmm(s, v.transpose(1, 2)).reshape(b, c, h, w)
        return self.gamma * out + x"""), "out_not_permuted"),
    Impl(FORWARD, "gamma on the input: out + gamma * x (a student trial's)", pam(fwd=FWD.replace(
        "return self.gamma * out + x", "return out + self.gamma * x")), "gamma_on_input"),
    Impl(ATTENTION, "query_conv used for the keys too (q^T q)", pam(att=_QUERY_FOR_BOTH), "key_as_query"),
    Impl(FORWARD, "query_conv used for the keys too (q^T q)", pam(att=_QUERY_FOR_BOTH), "key_as_query"),
    Impl(ATTENTION, "keys reshaped to (B, N, C') and transposed", pam(att=_KEY_RESHAPED), "key_view"),
    Impl(FORWARD, "keys reshaped to (B, N, C') and transposed", pam(att=_KEY_RESHAPED), "key_view"),
    Impl(ATTENTION, "ReLU on the queries and keys (paper v3)", pam(att=_QK_RELU), "qk_relu"),
    Impl(FORWARD, "ReLU on the queries and keys (paper v3)", pam(att=_QK_RELU), "qk_relu"),
    Impl(ATTENTION, "softmax applied twice", pam(**att_with(_SOFTMAX_TWICE)), "double_softmax"),
    Impl(FORWARD, "softmax applied twice", pam(**att_with(_SOFTMAX_TWICE)), "double_softmax"),
    Impl(ATTENTION, "queries and keys normalised to unit length (cosine)", pam(att=ATT.replace(
        "return torch.softmax(torch.bmm(q, k), dim=-1)",
        "return torch.softmax(torch.bmm(F.normalize(q, dim=-1), F.normalize(k, dim=1)), dim=-1)")), "cosine_energy"),
    Impl(EINOPS, "no softmax (a student trial's)", einops_fn("a = einsum(q3, k3, 'b c n, b c m -> b n m')"),
         "missing_softmax"),
]
