"""Grader catalog of chapter 07 (non-local block, GCNet): wrong implementations that students and popular copies
write, each with the mistake id the checks must name, and valid alternatives that must get full marks."""
from __future__ import annotations

from catalog import Exercise, Impl, question
from course_lib.checks import ch07_nonlocal_gcnet as visible
from course_lib.hidden import ch07_nonlocal_gcnet as hidden

CHAPTER = "07_nonlocal_gcnet"

NL_ATTENTION = Exercise(CHAPTER, "NonLocalBlock.attention", "NonLocalBlock", visible.check_nl_attention,
                        hidden.hidden_nl_attention, "nonlocal_block", "test_nl_attention")
NL_FORWARD = Exercise(CHAPTER, "NonLocalBlock.forward", "NonLocalBlock", visible.check_nl_forward,
                      hidden.hidden_nl_forward, "nonlocal_block", "test_nl_forward")
GC_CONTEXT = Exercise(CHAPTER, "GlobalContextBlock.attention/context", "GlobalContextBlock", visible.check_gc_context,
                      hidden.hidden_gc_context, "global_context_block", "test_gc_context")
GC_FORWARD = Exercise(CHAPTER, "GlobalContextBlock.forward", "GlobalContextBlock", visible.check_gc_forward,
                      hidden.hidden_gc_forward, "global_context_block", "test_gc_forward")
COSINE = Exercise(CHAPTER, "mean_cosine_distance", "mean_cosine_distance", visible.check_cosine_distance,
                  hidden.hidden_cosine_distance, "cosine_distance", "test_cosine_distance")
GC_AS_SE = Exercise(CHAPTER, "gc_state_from_se", "gc_state_from_se", visible.check_gc_as_se, hidden.hidden_gc_as_se,
                    "gc_state_from_se", "test_gc_as_se")


QUESTIONS = {name: question(CHAPTER, visible, hidden, f"q_{name}")
             for name in ("nl_params", "zero_init_grads", "cost_ratio", "map_mib", "logit_std", "wz_trap")}
EXERCISES = [NL_ATTENTION, NL_FORWARD, GC_CONTEXT, GC_FORWARD, COSINE, GC_AS_SE, *QUESTIONS.values()]

# --------------------------------------------------------------------------------------------
# the non-local block
# --------------------------------------------------------------------------------------------
NL_INIT = """\
        inter = channels // reduction
        self.theta = nn.Conv2d(channels, inter, 1)
        self.phi = nn.Conv2d(channels, inter, 1)
        self.g = nn.Conv2d(channels, inter, 1)
        self.w_z = nn.Conv2d(inter, channels, 1)
        self.bn = nn.BatchNorm2d(channels)
        nn.init.zeros_(self.bn.weight)"""
NL_ATT = """\
        b, c, h, w = x.shape
        q = self.theta(x).reshape(b, -1, h * w).permute(0, 2, 1)
        k = self.phi(x).reshape(b, -1, h * w)
        return torch.softmax(torch.bmm(q, k), dim=-1)"""
NL_FWD = """\
        b, c, h, w = x.shape
        v = self.g(x).reshape(b, -1, h * w).permute(0, 2, 1)
        y = torch.bmm(self.attention(x), v)
        y = y.permute(0, 2, 1).reshape(b, -1, h, w)
        return self.bn(self.w_z(y)) + x"""


def nl(*, init: str = NL_INIT, att: str = NL_ATT, fwd: str = NL_FWD, signature: str = "channels, reduction=2") -> str:
    return f"""
class NonLocalBlock(nn.Module):
    def __init__(self, {signature}):
        super().__init__()
{init}

    def attention(self, x):
{att}

    def forward(self, x):
{fwd}
"""


def nl_att(line: str) -> dict:
    return dict(att=NL_ATT.replace("        return torch.softmax(torch.bmm(q, k), dim=-1)", line))


WRONG_NL_ATTENTION = [
    ("softmax over dim 1 (the queries)", "softmax_dim", nl_att("        return torch.softmax(torch.bmm(q, k), dim=1)")),
    ("softmax over all N*N pairs", "softmax_dim", nl_att(
        "        e = torch.bmm(q, k)\n        return e.flatten(1).softmax(-1).view_as(e)")),
    ("1/sqrt(C') scaling (official Caffe2 code, mmcv)", "scaled", nl_att(
        "        return torch.softmax(torch.bmm(q, k) / math.sqrt(q.shape[-1]), dim=-1)")),
    ("1/sqrt(C) scaling (timm's NonLocalAttn)", "scaled", nl_att(
        "        return torch.softmax(torch.bmm(q, k) * c ** -0.5, dim=-1)")),
    ("theta and phi swapped", "qk_swapped", nl_att(
        "        return torch.softmax(torch.bmm(k.permute(0, 2, 1), q.permute(0, 2, 1)), dim=-1)")),
    # trial t78: a map changed after its softmax, rows summing to 1 / 1.0001 (inside the 1e-4 of the generic check)
    ("softmax divided by 1.0001 afterwards", "map_rescaled", nl_att(
        "        return torch.softmax(torch.bmm(q, k), dim=-1) / 1.0001")),
    ("dot-product form f / N (Eq. (4)) instead of Eq. (3)", "dot_product_form", nl_att(
        "        return torch.bmm(q, k) / (h * w)")),
    ("exp / sum without subtracting the max", "overflow", nl_att(
        "        e = torch.bmm(q, k).exp()\n        return e / e.sum(-1, keepdim=True)")),
    ("affinities detached", "no_grad", nl_att("        return torch.softmax(torch.bmm(q, k).detach(), dim=-1)")),
    ("no bottleneck: theta, phi, g keep C channels", "missing_bottleneck", dict(init=NL_INIT.replace(
        "inter = channels // reduction", "inter = channels"))),
    ("reduction ignored (hard-coded C // 2)", "reduction_ignored", dict(init=NL_INIT.replace(
        "inter = channels // reduction", "inter = channels // 2"))),
    ("convolutions without bias", "missing_bias", dict(init=NL_INIT.replace(", 1)", ", 1, bias=False)"))),
    ("renamed layers (query, key, value) where the names are asked", "parameters", dict(
        init=NL_INIT.replace("self.theta", "self.query"), att=NL_ATT.replace("self.theta", "self.query"))),
    ("hard-coded .cuda()", "device", nl_att("        return torch.softmax(torch.bmm(q, k).cuda(), dim=-1)")),
    ("hard-coded float32", "dtype", nl_att("        return torch.softmax(torch.bmm(q.float(), k.float()), dim=-1)")),
    ("attention returns the block's output", "returns_features", dict(att=NL_FWD.replace(
        "torch.bmm(self.attention(x), v)",
        "torch.bmm(torch.softmax(torch.bmm(self.theta(x).reshape(b, -1, h * w).permute(0, 2, 1), "
        "self.phi(x).reshape(b, -1, h * w)), dim=-1), v)"))),
]

WRONG_NL_FORWARD = [
    # trial t78: the forward check names the swap too (it was a generic 'wrong values')
    ("theta and phi swapped (seen by forward)", "qk_swapped", nl_att(
        "        return torch.softmax(torch.bmm(k.permute(0, 2, 1), q.permute(0, 2, 1)), dim=-1)")),
    ("BN scale left at 1: the block is not the identity (AlexHex7 #12, #18)", "not_identity", dict(
        init=NL_INIT.replace("        nn.init.zeros_(self.bn.weight)", ""))),
    ("W_z weight zeroed but its bias kept, BN scale 1", "not_identity", dict(
        init=NL_INIT.replace("nn.init.zeros_(self.bn.weight)", "nn.init.zeros_(self.w_z.weight)"))),
    ("no BatchNorm after W_z", "missing_norm", dict(
        init=NL_INIT.replace("        self.bn = nn.BatchNorm2d(channels)\n        nn.init.zeros_(self.bn.weight)",
                             "        nn.init.zeros_(self.w_z.weight)\n        nn.init.zeros_(self.w_z.bias)"),
        fwd=NL_FWD.replace("self.bn(self.w_z(y))", "self.w_z(y)"))),
    ("BatchNorm before W_z, on the C' channels", "missing_norm", dict(
        init=NL_INIT.replace("nn.BatchNorm2d(channels)", "nn.BatchNorm2d(inter)"),
        fwd=NL_FWD.replace("self.bn(self.w_z(y))", "self.w_z(self.bn(y))"))),
    ("y (B, N, C') reshaped to (B, C', H, W) without the transpose", "reshape_no_transpose", dict(fwd="""\
        b, c, h, w = x.shape
        v = self.g(x).reshape(b, -1, h * w).permute(0, 2, 1)
        y = torch.bmm(self.attention(x), v).reshape(b, -1, h, w)
        return self.bn(self.w_z(y)) + x""")),
    ("y (B, N, C') viewed as (B, C', H, W) with einops' names but no transpose", "reshape_no_transpose", dict(fwd="""\
        h, w = x.shape[-2:]
        v = rearrange(self.g(x), "b c h w -> b (h w) c")
        y = rearrange(self.attention(x) @ v, "b n c -> b (n c)").reshape(x.shape[0], -1, h, w)
        return self.bn(self.w_z(y)) + x""")),
    ("the BatchNorm renamed (self.norm) where the notebook asks for bn", "parameters", dict(
        init=NL_INIT.replace("self.bn", "self.norm"), fwd=NL_FWD.replace("self.bn", "self.norm"))),
    ("forgetting the residual", "missing_residual", dict(fwd=NL_FWD.replace("self.bn(self.w_z(y)) + x",
                                                                            "self.bn(self.w_z(y))"))),
    ("map transposed in the weighted sum (values channels first, no transpose)", "missing_transpose", dict(fwd="""\
        b, c, h, w = x.shape
        v = self.g(x).reshape(b, -1, h * w)
        y = torch.bmm(v, self.attention(x)).reshape(b, -1, h, w)
        return self.bn(self.w_z(y)) + x""")),
    ("softmax over dim 1, through forward", "softmax_dim",
     nl_att("        return torch.softmax(torch.bmm(q, k), dim=1)")),
    ("1/sqrt(C') scaling, through forward", "scaled", nl_att(
        "        return torch.softmax(torch.bmm(q, k) / math.sqrt(q.shape[-1]), dim=-1)")),
    ("in-place residual (x += ...)", "inplace", dict(fwd=NL_FWD.replace(
        "        return self.bn(self.w_z(y)) + x", "        x += self.bn(self.w_z(y))\n        return x"))),
    ("forward returns the map", "returns_map", dict(fwd="        return self.attention(x)")),
    ("map detached in forward", "no_grad", dict(fwd=NL_FWD.replace("self.attention(x)", "self.attention(x).detach()"))),
    ("reduction defaults to 8 (timm-like)", "default_args", dict(signature="channels, reduction=8")),
    ("BN scale and W_z both zero-initialised: the identity, but it never learns", "dead_branch", dict(
        init=NL_INIT + "\n        nn.init.zeros_(self.w_z.weight)\n        nn.init.zeros_(self.w_z.bias)")),
    ("hard-coded .cuda() in forward", "device", dict(fwd=NL_FWD.replace("+ x", "+ x.cuda()"))),
    # issue 27: training mode on loaded weights, and named layout mistakes
    ("BatchNorm pinned to its running statistics (F.batch_norm with training=False)", "bn_forced_eval", dict(
        fwd=NL_FWD.replace("self.bn(self.w_z(y))", "F.batch_norm(self.w_z(y), self.bn.running_mean, "
                                                   "self.bn.running_var, self.bn.weight, self.bn.bias, training=False)"))),
    ("BatchNorm forced to batch statistics (F.batch_norm with training=True, eval mode too)", "bn_forced_train", dict(
        fwd=NL_FWD.replace("self.bn(self.w_z(y))", "F.batch_norm(self.w_z(y), self.bn.running_mean, "
                                                   "self.bn.running_var, self.bn.weight, self.bn.bias, training=True)"))),
    ("the branch run twice (once to log its size): running statistics updated twice", "bn_twice", dict(
        fwd=NL_FWD.replace("        return self.bn(self.w_z(y)) + x",
                           "        self.branch_size = float(self.bn(self.w_z(y)).abs().mean())\n"
                           "        return self.bn(self.w_z(y)) + x"))),
    ("BatchNorm with Keras's momentum=0.99 (the weight of the old statistics)", "bn_statistics", dict(
        init=NL_INIT.replace("nn.BatchNorm2d(channels)", "nn.BatchNorm2d(channels, momentum=0.99)"))),
    ("H and W swapped when unflattening y", "hw_swapped", dict(fwd="""\
        b, c, h, w = x.shape
        v = self.g(x).reshape(b, -1, h * w).permute(0, 2, 1)
        y = torch.bmm(self.attention(x), v)
        y = y.permute(0, 2, 1).reshape(b, -1, w, h).transpose(2, 3)
        return self.bn(self.w_z(y)) + x""")),
]

VALID_NL = [
    ("einsum for both products", dict(att="""\
        q, k = self.theta(x).flatten(2), self.phi(x).flatten(2)
        return torch.einsum("bci,bcj->bij", q, k).softmax(-1)""", fwd="""\
        b, c, h, w = x.shape
        y = torch.einsum("bij,bcj->bci", self.attention(x), self.g(x).flatten(2))
        return x + self.bn(self.w_z(y.reshape(b, -1, h, w)))""")),
    ("einops rearrange, F.softmax, @", dict(att="""\
        q = rearrange(self.theta(x), "b c h w -> b (h w) c")
        k = rearrange(self.phi(x), "b c h w -> b c (h w)")
        return F.softmax(q @ k, dim=2)""", fwd="""\
        h, w = x.shape[-2:]
        v = rearrange(self.g(x), "b c h w -> b (h w) c")
        y = rearrange(self.attention(x) @ v, "b (h w) c -> b c h w", h=h, w=w)
        return self.bn(self.w_z(y)) + x""")),
    ("values channels first, times the map transposed", dict(fwd="""\
        b, c, h, w = x.shape
        v = self.g(x).reshape(b, -1, h * w)
        y = torch.bmm(v, self.attention(x).transpose(1, 2)).reshape(b, -1, h, w)
        return self.bn(self.w_z(y)) + x""")),
    ("BN scale and shift both zeroed (AlexHex7)", dict(init=NL_INIT + "\n        nn.init.zeros_(self.bn.bias)")),
    ("W_z weight and bias zeroed, BN left at its defaults (official frozen-BN configs)", dict(init=NL_INIT.replace(
        "nn.init.zeros_(self.bn.weight)", "nn.init.zeros_(self.w_z.weight)\n        nn.init.zeros_(self.w_z.bias)"))),
    ("scaled_dot_product_attention with scale=1.0 in forward", dict(fwd="""\
        b, c, h, w = x.shape
        t = lambda z: z.flatten(2).transpose(1, 2)
        y = F.scaled_dot_product_attention(t(self.theta(x)), t(self.phi(x)), t(self.g(x)), scale=1.0)
        return self.bn(self.w_z(y.transpose(1, 2).reshape(b, -1, h, w))) + x""")),
    ("nn.Linear embeddings on tokens, nn.Softmax module", dict(init="""\
        inter = channels // reduction
        self.theta = nn.Linear(channels, inter)
        self.phi = nn.Linear(channels, inter)
        self.g = nn.Linear(channels, inter)
        self.w_z = nn.Linear(inter, channels)
        self.bn = nn.BatchNorm2d(channels)
        self.bn.weight.data.zero_()
        self.softmax = nn.Softmax(dim=-1)""", att="""\
        tokens = rearrange(x, "b c h w -> b (h w) c")
        return self.softmax(self.theta(tokens) @ self.phi(tokens).transpose(1, 2))""", fwd="""\
        h, w = x.shape[-2:]
        tokens = rearrange(x, "b c h w -> b (h w) c")
        z = self.w_z(self.attention(x) @ self.g(tokens))
        return x + self.bn(rearrange(z, "b (h w) c -> b c h w", h=h, w=w))""")),
]

# --------------------------------------------------------------------------------------------
# the global context block
# --------------------------------------------------------------------------------------------
GC_INIT = """\
        hidden = channels // reduction
        self.conv_mask = nn.Conv2d(channels, 1, 1)
        self.w_v1 = nn.Conv2d(channels, hidden, 1)
        self.norm = nn.LayerNorm([hidden, 1, 1])
        self.w_v2 = nn.Conv2d(hidden, channels, 1)
        nn.init.zeros_(self.w_v2.weight)
        nn.init.zeros_(self.w_v2.bias)"""
GC_ATT = """\
        b, _, h, w = x.shape
        return self.conv_mask(x).reshape(b, 1, -1).softmax(-1).reshape(b, 1, h, w)"""
GC_CTX = """\
        return (x * self.attention(x)).sum((2, 3), keepdim=True)"""
GC_FWD = """\
        return x + self.w_v2(F.relu(self.norm(self.w_v1(self.context(x)))))"""


def gc(*, init: str = GC_INIT, att: str = GC_ATT, ctx: str = GC_CTX, fwd: str = GC_FWD,
       signature: str = "channels, reduction=16") -> str:
    return f"""
class GlobalContextBlock(nn.Module):
    def __init__(self, {signature}):
        super().__init__()
{init}

    def attention(self, x):
{att}

    def context(self, x):
{ctx}

    def forward(self, x):
{fwd}
"""


WRONG_GC_CONTEXT = [
    ("softmax along W only", "softmax_dim", dict(att="        return self.conv_mask(x).softmax(-1)")),
    ("softmax along H only", "softmax_dim", dict(att="        return self.conv_mask(x).softmax(-2)")),
    ("softmax over the single logit channel (dim 1)", "softmax_dim", dict(att="        return self.conv_mask(x).softmax(1)")),
    ("softmax across the batch", "softmax_dim", dict(att="        return self.conv_mask(x).softmax(0)")),
    ("a sigmoid of each logit in place of the softmax (trial t78)", "sigmoid_pooling", dict(
        att="        return torch.sigmoid(self.conv_mask(x))")),
    ("plain average pooling for the context (SE's squeeze)", "avg_pooling", dict(
        ctx="        return x.mean((2, 3), keepdim=True)")),
    ("exp / sum without subtracting the max", "overflow", dict(att="""\
        e = self.conv_mask(x).exp()
        return e / e.sum((2, 3), keepdim=True)""")),
    ("weights exp(logit), never normalised", "softmax_dim", dict(att="        return self.conv_mask(x).exp()")),
    ("no bottleneck: W_v1 and W_v2 keep C channels", "missing_bottleneck", dict(init=GC_INIT.replace(
        "hidden = channels // reduction", "hidden = channels"))),
    ("W_k gives C logits (a conv C -> C)", "parameters", dict(init=GC_INIT.replace(
        "nn.Conv2d(channels, 1, 1)", "nn.Conv2d(channels, channels, 1)"))),
    ("pooling weights detached", "no_grad", dict(ctx="        return (x * self.attention(x).detach()).sum((2, 3), keepdim=True)")),
    ("hard-coded float32 in context", "dtype", dict(ctx="        return (x.float() * self.attention(x).float()).sum((2, 3), keepdim=True)")),
]

WRONG_GC_FORWARD = [
    ("LayerNorm with eps 1e-6 (timm's LayerNorm2d; trial t78)", "ln_eps", dict(init=GC_INIT.replace(
        "nn.LayerNorm([hidden, 1, 1])", "nn.LayerNorm([hidden, 1, 1], eps=1e-6)"))),
    # issue 27: the LayerNorm written by hand, with its statistics taken wrongly
    ("LayerNorm by hand with torch.var's default (unbiased) variance", "ln_unbiased", dict(fwd="""\
        t = self.w_v1(self.context(x))
        mean, var = t.mean((1, 2, 3), keepdim=True), t.var((1, 2, 3), keepdim=True)
        t = (t - mean) / torch.sqrt(var + self.norm.eps) * self.norm.weight + self.norm.bias
        return x + self.w_v2(F.relu(t))""")),
    ("LayerNorm by hand over the whole batch", "norm_over_batch", dict(fwd="""\
        t = self.w_v1(self.context(x))
        mean, var = t.mean(), t.var(unbiased=False)
        t = (t - mean) / torch.sqrt(var + self.norm.eps) * self.norm.weight + self.norm.bias
        return x + self.w_v2(F.relu(t))""")),
    ("statistics per channel over the batch (a BatchNorm's) where the LayerNorm takes one image's",
     "norm_over_batch", dict(fwd="""\
        t = self.w_v1(self.context(x))
        t = F.batch_norm(t, None, None, self.norm.weight.flatten(), self.norm.bias.flatten(), training=True,
                         eps=self.norm.eps)
        return x + self.w_v2(F.relu(t))""")),
    ("multiplicative fusion (timm's default 'gc')", "fusion_mul", dict(
        fwd="        return x * torch.sigmoid(self.w_v2(F.relu(self.norm(self.w_v1(self.context(x))))))")),
    ("multiplicative and additive fusion (official code with both types)", "fusion_mul", dict(fwd="""\
        t = self.w_v2(F.relu(self.norm(self.w_v1(self.context(x)))))
        return x * torch.sigmoid(t) + t""")),
    ("forgetting the residual: the context alone, (B, C, 1, 1)", "missing_residual", dict(
        fwd="        return self.w_v2(F.relu(self.norm(self.w_v1(self.context(x)))))")),
    ("forgetting the residual: the context broadcast", "missing_residual", dict(
        fwd="        return self.w_v2(F.relu(self.norm(self.w_v1(self.context(x))))).expand_as(x)")),
    ("last convolution not zero-initialised", "not_identity", dict(init=GC_INIT.replace(
        "        nn.init.zeros_(self.w_v2.weight)\n        nn.init.zeros_(self.w_v2.bias)", ""))),
    ("only the last weight zeroed, not its bias (timm's 'gca')", "not_identity", dict(init=GC_INIT.replace(
        "        nn.init.zeros_(self.w_v2.bias)", "        nn.init.normal_(self.w_v2.bias)"))),
    ("no LayerNorm", "missing_norm", dict(init=GC_INIT.replace("nn.LayerNorm([hidden, 1, 1])", "nn.Identity()"),
                                          fwd=GC_FWD)),
    ("the LayerNorm renamed (self.ln) where the notebook asks for norm", "parameters", dict(
        init=GC_INIT.replace("self.norm", "self.ln"), fwd=GC_FWD.replace("self.norm", "self.ln"))),
    ("BatchNorm in place of the LayerNorm", "missing_norm", dict(init=GC_INIT.replace(
        "nn.LayerNorm([hidden, 1, 1])", "nn.BatchNorm2d(hidden)"))),
    ("ReLU before the LayerNorm", "missing_norm", dict(
        fwd="        return x + self.w_v2(self.norm(F.relu(self.w_v1(self.context(x)))))")),
    ("no ReLU", "missing_relu", dict(fwd="        return x + self.w_v2(self.norm(self.w_v1(self.context(x))))")),
    ("forward pools with a plain mean", "avg_pooling", dict(
        fwd="        return x + self.w_v2(F.relu(self.norm(self.w_v1(x.mean((2, 3), keepdim=True)))))")),
    ("reduction ignored (hard-coded C // 16)", "reduction_ignored", dict(init=GC_INIT.replace(
        "hidden = channels // reduction", "hidden = channels // 16"))),
    ("in-place addition (x += ...)", "inplace", dict(fwd="""\
        x += self.w_v2(F.relu(self.norm(self.w_v1(self.context(x)))))
        return x""")),
    ("reduction defaults to 8 (timm's rd_ratio)", "default_args", dict(signature="channels, reduction=8")),
    ("W_v1 and W_v2 both zero-initialised: the identity, but it never learns", "dead_branch", dict(
        init=GC_INIT + "\n        nn.init.zeros_(self.w_v1.weight)\n        nn.init.zeros_(self.w_v1.bias)")),
    ("official ratio as a multiplier, passed r (planes = int(C * r))", "parameters", dict(init=GC_INIT.replace(
        "hidden = channels // reduction", "hidden = int(channels * reduction)"))),
]

VALID_GC = [
    ("bmm pooling and rearrange", dict(att="""\
        h, w = x.shape[-2:]
        a = rearrange(self.conv_mask(x), "b 1 h w -> b (h w)").softmax(dim=-1)
        return rearrange(a, "b (h w) -> b 1 h w", h=h, w=w)""", ctx="""\
        a = rearrange(self.attention(x), "b 1 h w -> b (h w) 1")
        return (rearrange(x, "b c h w -> b c (h w)") @ a).unsqueeze(-1)""")),
    ("einsum pooling", dict(ctx="""\
        return torch.einsum("bchw,bhw->bc", x, self.attention(x)[:, 0])[..., None, None]""")),
    ("conv_mask without bias (a constant logit shift does not change a softmax)", dict(init=GC_INIT.replace(
        "nn.Conv2d(channels, 1, 1)", "nn.Conv2d(channels, 1, 1, bias=False)"))),
    ("GroupNorm(1, C') for the LayerNorm", dict(init=GC_INIT.replace("nn.LayerNorm([hidden, 1, 1])",
                                                                        "nn.GroupNorm(1, hidden)"))),
    ("nn.Linear layers on the (B, C) context and LayerNorm(C')", dict(init="""\
        hidden = channels // reduction
        self.conv_mask = nn.Linear(channels, 1)
        self.w_v1 = nn.Linear(channels, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.w_v2 = nn.Linear(hidden, channels)
        nn.init.zeros_(self.w_v2.weight)
        nn.init.zeros_(self.w_v2.bias)""", att="""\
        h, w = x.shape[-2:]
        logits = self.conv_mask(rearrange(x, "b c h w -> b (h w) c"))[..., 0]
        return rearrange(logits.softmax(-1), "b (h w) -> b 1 h w", h=h, w=w)""", ctx="""\
        return (x * self.attention(x)).sum((2, 3), keepdim=True)""", fwd="""\
        c = self.context(x).flatten(1)
        return x + self.w_v2(F.relu(self.norm(self.w_v1(c))))[:, :, None, None]""")),
    ("the transform as an nn.Sequential of named pieces, ReLU module", dict(init=GC_INIT + """
        self.relu = nn.ReLU()""", fwd="""\
        return self.w_v2(self.relu(self.norm(self.w_v1(self.context(x))))) + x""")),
]

# --------------------------------------------------------------------------------------------
# GCNet's measure
# --------------------------------------------------------------------------------------------
COS_RIGHT = """\
    n = v.shape[1]
    v = v / v.abs().amax(-1, keepdim=True).clamp_min(1e-30)
    u = F.normalize(v, dim=-1)
    cos = u @ u.transpose(1, 2)
    off = (cos.sum((1, 2)) - cos.diagonal(dim1=1, dim2=2).sum(-1)) / (n * (n - 1))
    return (1 - off) / 2"""


def cos(body: str = COS_RIGHT) -> str:
    return f"\ndef mean_cosine_distance(v):\n{body}\n"


WRONG_COSINE = [
    ("pairs i = i counted", "diagonal_pairs", cos("""\
    u = F.normalize(v, dim=-1)
    return (1 - (u @ u.transpose(1, 2)).mean((1, 2))) / 2""")),
    ("similarity, not distance", "similarity", cos(COS_RIGHT.replace("return (1 - off) / 2", "return off"))),
    ("1 - cos without the / 2", "similarity", cos(COS_RIGHT.replace("return (1 - off) / 2", "return 1 - off"))),
    ("normalised over the positions (dim 1)", "vector_axis", cos("""\
    n = v.shape[1]
    u = F.normalize(v, dim=1)
    cos = u @ u.transpose(1, 2)
    off = (cos.sum((1, 2)) - cos.diagonal(dim1=1, dim2=2).sum(-1)) / (n * (n - 1))
    return (1 - off) / 2""")),
    ("one number for the whole batch", "batch_mean", cos(COS_RIGHT.replace("return (1 - off) / 2",
                                                                            "return ((1 - off) / 2).mean()"))),
    ("normalises v in place", "modifies_input", cos("""\
    n = v.shape[1]
    v /= v.norm(dim=-1, keepdim=True)
    cos = v @ v.transpose(1, 2)
    return (1 - (cos.sum((1, 2)) - n) / (n * (n - 1))) / 2""")),
    ("computed through numpy (no gradient, float64 lost)", "no_grad", cos("""\
    import numpy as np
    a = v.detach().cpu().numpy()
    a = a / np.maximum(np.abs(a).max(-1, keepdims=True), 1e-30)
    u = a / np.linalg.norm(a, axis=-1, keepdims=True)
    cos = u @ u.transpose(0, 2, 1)
    n = a.shape[1]
    off = (cos.sum((1, 2)) - np.trace(cos, axis1=1, axis2=2)) / (n * (n - 1))
    return torch.as_tensor((1 - off) / 2, dtype=v.dtype, device=v.device)""")),
    # issue 27: "finite for large entries" at the scale where the direct form breaks; a plain function's device watch
    ("dot products divided by the product of the norms: inf / inf at float32 entries near 1e20", "overflow", cos("""\
    n = v.shape[1]
    norms = v.norm(dim=-1)
    dots = torch.einsum("bid,bjd->bij", v, v) / (norms[:, :, None] * norms[:, None, :])
    total = dots.sum((1, 2)) - torch.einsum("bii->b", dots)
    return 0.5 - 0.5 * total / (n * (n - 1))""")),
    # issue 26/27: right values at that scale, not only finite ones. F.normalize (or F.cosine_similarity) on the
    # vectors as given: the norms overflow to inf, every unit vector is zeros, every distance 1/2
    ("F.normalize and a Gram matrix, no rescaling: 1/2 everywhere at float32 entries near 1e20", "overflow", cos("""\
    n = v.shape[1]
    u = F.normalize(v, dim=-1)
    cos = u @ u.transpose(1, 2)
    off = (cos.sum((1, 2)) - cos.diagonal(dim1=1, dim2=2).sum(-1)) / (n * (n - 1))
    return (1 - off) / 2""")),
    ("F.cosine_similarity by broadcasting, no rescaling: 1/2 everywhere at float32 entries near 1e20", "overflow",
     cos("""\
    n = v.shape[1]
    c = F.cosine_similarity(v[:, :, None, :], v[:, None, :, :], dim=-1)
    mask = ~torch.eye(n, dtype=torch.bool, device=v.device)
    return ((1 - c) / 2)[:, mask].mean(-1)""")),
    # trial t78: NaN for an all-zero vector passed every check and then crashed the chapter's own figure
    ("divided by the largest entry and then by the norm, no guard: NaN for an all-zero vector", "zero_vector", cos("""\
    n = v.shape[1]
    s = v / v.abs().amax(-1, keepdim=True)
    u = s / s.norm(dim=-1, keepdim=True)
    cos = u @ u.transpose(1, 2)
    off = (cos.sum((1, 2)) - cos.diagonal(dim1=1, dim2=2).sum(-1)) / (n * (n - 1))
    return (1 - off) / 2""")),
    ("the sum of unit vectors minus N: a zero vector's own pair counted as cos 1", "zero_vector", cos("""\
    n = v.shape[1]
    s = F.normalize(v / v.abs().amax(-1, keepdim=True).clamp_min(1e-30), dim=-1).sum(1)
    return (1 - ((s * s).sum(-1) - n) / (n * (n - 1))) / 2""")),
    ("computed in float64 and returned as float64 for a float32 input (trial t78)", "dtype", cos("""\
    n = v.shape[1]
    u = F.normalize(v.double(), dim=-1)
    cos = u @ u.transpose(1, 2)
    off = (cos.sum((1, 2)) - cos.diagonal(dim1=1, dim2=2).sum(-1)) / (n * (n - 1))
    return (1 - off) / 2""")),
    ("the mask of pairs i != j made on the CPU (torch.eye without device=)", "cpu_constant", cos("""\
    n = v.shape[1]
    u = F.normalize(v / v.abs().amax(-1, keepdim=True).clamp_min(1e-30), dim=-1)
    cos = u @ u.transpose(1, 2)
    mask = ~torch.eye(n, dtype=torch.bool)
    return ((1 - cos) / 2)[:, mask].mean(-1)""")),
]

VALID_COSINE = [
    ("each vector divided by its largest entry, then F.normalize and a Gram matrix", cos()),
    ("F.cosine_similarity by broadcasting on vectors divided by their norm in float64, a mask for i != j", cos("""\
    n = v.shape[1]
    v = (v.double() / v.double().norm(dim=-1, keepdim=True).clamp_min(1e-300)).to(v.dtype)
    c = F.cosine_similarity(v[:, :, None, :], v[:, None, :, :], dim=-1)
    mask = ~torch.eye(n, dtype=torch.bool, device=v.device)
    return ((1 - c) / 2)[:, mask].mean(-1)""")),
    ("einsum with norms, the vectors first brought to a safe size", cos("""\
    n = v.shape[1]
    v = v / v.abs().amax(-1, keepdim=True).clamp_min(1e-30)
    norms = v.norm(dim=-1)
    dots = torch.einsum("bid,bjd->bij", v, v) / (norms[:, :, None] * norms[:, None, :]).clamp_min(1e-30)
    total = dots.sum((1, 2)) - torch.einsum("bii->b", dots)
    return 0.5 - 0.5 * total / (n * (n - 1))""")),
    ("sum of unit vectors: |sum u|^2 = sum |u_i|^2 + sum_{i != j} cos, after dividing by the largest entry", cos("""\
    n = v.shape[1]
    u = F.normalize(v / v.abs().amax(-1, keepdim=True).clamp_min(1e-30), dim=-1)
    s = u.sum(1)
    return (1 - ((s * s).sum(-1) - (u * u).sum((1, 2))) / (n * (n - 1))) / 2""")),
    ("F.normalize in float64, the result cast back to v's dtype", cos("""\
    n = v.shape[1]
    u = F.normalize(v.double(), dim=-1)
    cos = u @ u.transpose(1, 2)
    off = (cos.sum((1, 2)) - cos.diagonal(dim1=1, dim2=2).sum(-1)) / (n * (n - 1))
    return ((1 - off) / 2).to(v.dtype)""")),
]

# --------------------------------------------------------------------------------------------
# GC and SE
# --------------------------------------------------------------------------------------------
SE_RIGHT = """\
    new = {k: t.detach().clone() for k, t in state.items()}
    new["conv_mask.weight"] = torch.zeros_like(new["conv_mask.weight"])
    for name, t in (("w_v1.weight", w1), ("w_v1.bias", b1), ("w_v2.weight", w2), ("w_v2.bias", b2)):
        new[name] = t.detach().clone().reshape(new[name].shape)
    new["norm.weight"] = torch.ones_like(new["norm.weight"])
    new["norm.bias"] = torch.zeros_like(new["norm.bias"])
    return new"""


def gc_se(body: str = SE_RIGHT) -> str:
    return f"\ndef gc_state_from_se(state, w1, b1, w2, b2):\n{body}\n"


WRONG_GC_AS_SE = [
    ("only W_k's bias changed (set to 0), its weight kept", "bias_only", gc_se(SE_RIGHT.replace(
        'new["conv_mask.weight"] = torch.zeros_like(new["conv_mask.weight"])',
        'new["conv_mask.bias"] = torch.zeros_like(new["conv_mask.bias"])'))),
    ("W_k's weight set to ones (a constant weight, not a constant logit)", "not_uniform", gc_se(SE_RIGHT.replace(
        "torch.zeros_like(new[\"conv_mask.weight\"])", "torch.ones_like(new[\"conv_mask.weight\"])"))),
    ("W_k left as it is (attention pooling kept)", "not_uniform", gc_se(SE_RIGHT.replace(
        'new["conv_mask.weight"] = torch.zeros_like(new["conv_mask.weight"])', 'pass'))),
    ("SE's layers swapped in the transform", "se_weights_swapped", gc_se(SE_RIGHT.replace(
        '(("w_v1.weight", w1), ("w_v1.bias", b1), ("w_v2.weight", w2), ("w_v2.bias", b2))',
        '(("w_v1.weight", w2.T), ("w_v1.bias", b1), ("w_v2.weight", w1.T), ("w_v2.bias", b2))'))),
    ("w2 reshaped into W_v1 without a transpose", "se_weights_swapped", gc_se(SE_RIGHT.replace(
        '("w_v1.weight", w1)', '("w_v1.weight", w2)'))),
    ("the LayerNorm's scale set to 0", "norm_affine", gc_se(SE_RIGHT.replace(
        'torch.ones_like(new["norm.weight"])', 'torch.zeros_like(new["norm.weight"])'))),
    ("the LayerNorm left with the block's scale and shift", "norm_affine", gc_se(SE_RIGHT.replace(
        'new["norm.weight"] = torch.ones_like(new["norm.weight"])\n    new["norm.bias"] = torch.zeros_like(new["norm.bias"])',
        'pass'))),
    ("the norm's entries left out of the dict", "parameters", gc_se(SE_RIGHT.replace(
        "    return new", "    del new[\"norm.weight\"], new[\"norm.bias\"]\n    return new"))),
    ("state modified in place", "modifies_input", gc_se("""\
    state["conv_mask.weight"].data.zero_()
    new = {k: t.detach().clone() for k, t in state.items()}
    for name, t in (("w_v1.weight", w1), ("w_v1.bias", b1), ("w_v2.weight", w2), ("w_v2.bias", b2)):
        new[name] = t.detach().clone().reshape(new[name].shape)
    new["norm.weight"] = torch.ones_like(new["norm.weight"])
    new["norm.bias"] = torch.zeros_like(new["norm.bias"])
    return new""")),
    ("returns a list, not a dict", "shape", gc_se("    return [w1, b1, w2, b2]")),
    # trial t78: the docstring asks for new tensors; a reshape of w1 is w1's memory
    ("SE's weights reshaped into the dict without a copy (views of the arguments)", "aliases_argument", gc_se(
        SE_RIGHT.replace("new[name] = t.detach().clone().reshape(new[name].shape)",
                         "new[name] = t.reshape(new[name].shape)"))),
]

VALID_GC_AS_SE = [
    ("zeros for W_k's weight and bias, flat shapes for SE's layers", gc_se("""\
    new = dict(state)
    new["conv_mask.weight"] = torch.zeros_like(state["conv_mask.weight"])
    new["conv_mask.bias"] = torch.zeros_like(state["conv_mask.bias"])
    new.update({"w_v1.weight": w1.clone(), "w_v1.bias": b1.clone(), "w_v2.weight": w2.clone(), "w_v2.bias": b2.clone(),
                "norm.weight": torch.ones_like(b1), "norm.bias": torch.zeros_like(b1)})
    return new""")),
    ("the reference's own answer", gc_se()),
    ("W_k's weight times 0, built with einops' rearrange for the convolution layout", gc_se("""\
    new = {k: v.detach().clone() for k, v in state.items()}
    new["conv_mask.weight"] = 0 * new["conv_mask.weight"]
    new["w_v1.weight"] = rearrange(w1, "o i -> o i 1 1").clone()
    new["w_v2.weight"] = rearrange(w2, "o i -> o i 1 1").clone()
    new["w_v1.bias"], new["w_v2.bias"] = b1.clone(), b2.clone()
    new["norm.weight"] = new["norm.weight"] * 0 + 1
    new["norm.bias"] = new["norm.bias"] * 0
    return new""")),
]

# --------------------------------------------------------------------------------------------
# questions
# --------------------------------------------------------------------------------------------
WRONG_QUESTIONS = [
    ("nl_params", "131712", "missing_norm"), ("nl_params", "132736", "param_count"),
    ("nl_params", "263680", "missing_bottleneck"), ("nl_params", "131072", "missing_bias"),
    ("nl_params", "132224.5", "answer_form"), ("nl_params", "1", "wrong_answer"),
    ("zero_init_grads", '"e"', "zero_init_gradient"), ("zero_init_grads", '"cde"', "zero_init_gradient"),
    ("zero_init_grads", '"abcde"', "zero_init_gradient"), ("zero_init_grads", '"f"', "answer_form"),
    ("zero_init_grads", '"d"', "missing_choice"), ("zero_init_grads", '"ade"', "extra_choice"),
    ("cost_ratio", "9834496", "cost_ratio"), ("cost_ratio", "1568", "cost_ratio"), ("cost_ratio", "6272", "cost_ratio"),
    ("map_mib", "37.515625", "map_size"), ("map_mib", "2.3447265625", "map_size"),
    ("map_mib", "9.834496", "memory_units"), ("map_mib", "None", "unanswered"),
    ("logit_std", "512", "logit_scale"), ("logit_std", "1.0", "logit_scale"), ("logit_std", "1 / math.sqrt(512)", "logit_scale"),
    ("wz_trap", '"a"', "zero_init_gradient"), ("wz_trap", '"ab"', "zero_init_gradient"),
    ("wz_trap", '"acd"', "zero_init_gradient"), ("wz_trap", '"ace"', "zero_init_gradient"),
    ("wz_trap", '"c"', "not_identity"), ("wz_trap", '"abcde"', "wrong_answer"), ("wz_trap", '"acf"', "answer_form"),
]
VALID_QUESTIONS = [
    ("nl_params", "3 * (256 * 128 + 128) + 128 * 256 + 256 + 2 * 256"), ("nl_params", "132224.0"),
    ("zero_init_grads", '"ED"'), ("zero_init_grads", '{"d", "e"}'),
    ("cost_ratio", "torch.tensor(3136)"), ("cost_ratio", "2 * (56 * 56) ** 2 * 128 // (56 * 56 * 256)"),
    ("map_mib", "9.38"), ("map_mib", "torch.tensor(9.3789)"),
    ("logit_std", "22.6"), ("logit_std", "math.sqrt(512)"),
    ("wz_trap", '"CA"'), ("wz_trap", '{"a", "c"}'), ("wz_trap", '["c", "a"]'),
]

IMPLS: list[Impl] = []
IMPLS += [Impl(NL_ATTENTION, label, nl(**parts), mistake) for label, mistake, parts in WRONG_NL_ATTENTION]
IMPLS += [Impl(NL_FORWARD, label, nl(**parts), mistake) for label, mistake, parts in WRONG_NL_FORWARD]
IMPLS += [Impl(ex, f"{label} ({ex.name})", nl(**parts)) for ex in (NL_ATTENTION, NL_FORWARD) for label, parts in VALID_NL]
IMPLS += [Impl(NL_FORWARD, "the reference's plain solution", nl())]
IMPLS += [Impl(GC_CONTEXT, label, gc(**parts), mistake) for label, mistake, parts in WRONG_GC_CONTEXT]
IMPLS += [Impl(GC_FORWARD, label, gc(**parts), mistake) for label, mistake, parts in WRONG_GC_FORWARD]
IMPLS += [Impl(ex, f"{label} ({ex.name})", gc(**parts)) for ex in (GC_CONTEXT, GC_FORWARD) for label, parts in VALID_GC]
IMPLS += [Impl(COSINE, label, source, mistake) for label, mistake, source in WRONG_COSINE]
IMPLS += [Impl(COSINE, label, source) for label, source in VALID_COSINE]
IMPLS += [Impl(GC_AS_SE, label, source, mistake) for label, mistake, source in WRONG_GC_AS_SE]
IMPLS += [Impl(GC_AS_SE, label, source) for label, source in VALID_GC_AS_SE]
IMPLS += [Impl(QUESTIONS[name], f"q_{name} = {value}", f"q_{name} = {value}\n", mistake)
          for name, value, mistake in WRONG_QUESTIONS]
IMPLS += [Impl(QUESTIONS[name], f"valid: q_{name} = {value}", f"q_{name} = {value}\n") for name, value in VALID_QUESTIONS]

# trial t78 (r2): generic messages for likely answers, now named; a float32 softmax, now named in the attention check
IMPLS += [
    Impl(NL_ATTENTION, "softmax computed in float32 and cast back to x's dtype", nl(**nl_att(
        "        return torch.softmax(torch.bmm(q, k).float(), dim=-1).to(x.dtype)")), "float32_inside"),
    Impl(NL_ATTENTION, "log_softmax for the softmax", nl(**nl_att(
        "        return torch.log_softmax(torch.bmm(q, k), dim=-1)")), "log_softmax"),
    Impl(NL_FORWARD, "the plain Gaussian of Eq. (2): no theta and phi", nl(**nl_att(
        "        xf = x.reshape(b, c, h * w)\n        return torch.softmax(xf.transpose(1, 2) @ xf, dim=-1)")),
         "plain_gaussian"),
    Impl(NL_ATTENTION, "the plain Gaussian of Eq. (2), seen by attention", nl(**nl_att(
        "        xf = x.reshape(b, c, h * w)\n        return torch.softmax(xf.transpose(1, 2) @ xf, dim=-1)")),
         "plain_gaussian"),
    Impl(NL_FORWARD, "the values taken from theta", nl(fwd=NL_FWD.replace("self.g(x)", "self.theta(x)")),
         "values_theta"),
    Impl(NL_FORWARD, "BatchNorm with eps 1e-3", nl(init=NL_INIT.replace("nn.BatchNorm2d(channels)",
                                                                        "nn.BatchNorm2d(channels, eps=1e-3)")), "bn_eps"),
    Impl(GC_CONTEXT, "context as the mean of the weighted positions", gc(ctx=GC_CTX.replace(".sum((2, 3)", ".mean((2, 3)")),
         "context_mean"),
    Impl(GC_CONTEXT, "context summed along W, averaged along H", gc(ctx="""\
        return (x * self.attention(x)).sum(3, keepdim=True).mean(2, keepdim=True)"""), "context_mean"),
    Impl(GC_FORWARD, "x + sigmoid(transform)", gc(fwd=GC_FWD.replace(
        "x + self.w_v2(F.relu(self.norm(self.w_v1(self.context(x)))))",
        "x + torch.sigmoid(self.w_v2(F.relu(self.norm(self.w_v1(self.context(x))))))")), "sigmoid_added"),
    Impl(GC_FORWARD, "pooling logits divided by sqrt(C)", gc(att=GC_ATT.replace(
        "self.conv_mask(x).reshape", "(self.conv_mask(x) / x.shape[1] ** 0.5).reshape")), "scaled"),
    Impl(COSINE, "|cos| in the distance", cos(COS_RIGHT.replace("cos = u @ u.transpose(1, 2)",
                                                               "cos = (u @ u.transpose(1, 2)).abs()")), "cos_sign"),
    Impl(COSINE, "cos clamped to [0, 1]", cos(COS_RIGHT.replace("cos = u @ u.transpose(1, 2)",
                                                               "cos = (u @ u.transpose(1, 2)).clamp(0, 1)")), "cos_sign"),
    Impl(COSINE, "pairs i <= j from triu_indices, the diagonal included", cos("""\
    n = v.shape[1]
    v = v / v.abs().amax(-1, keepdim=True).clamp_min(1e-30)
    u = F.normalize(v, dim=-1)
    i, j = torch.triu_indices(n, n, device=v.device)
    return ((1 - (u[:, i] * u[:, j]).sum(-1)) / 2).mean(-1)"""), "diagonal_pairs"),
    # trial t78 (r3): was generic ("largest difference ... at (0,)")
    Impl(COSINE, "the pairs i != j summed as twice the upper triangle, diagonal included", cos(COS_RIGHT.replace(
        "off = (cos.sum((1, 2)) - cos.diagonal(dim1=1, dim2=2).sum(-1))", "off = 2 * cos.triu().sum((1, 2))")),
         "diagonal_pairs"),
]
