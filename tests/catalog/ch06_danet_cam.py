"""Grader catalog of chapter 06 (DANet CAM): wrong implementations that students and popular copies write,
each with the mistake id the checks must name, and valid alternatives that must get full marks."""
from __future__ import annotations

from catalog import Exercise, Impl, question
from course_lib.checks import ch06_danet_cam as visible
from course_lib.hidden import ch06_danet_cam as hidden

CHAPTER = "06_danet_cam"

PAPER = Exercise(CHAPTER, "ChannelAttention (paper)", "ChannelAttention",
                 visible.check_cam, hidden.hidden_cam, "cam", "test_cam_paper")
OFFICIAL = Exercise(CHAPTER, "ChannelAttention (official)", "ChannelAttention",
                    visible.check_cam_official, hidden.hidden_cam_official, "cam", "test_cam_official")
MOST = Exercise(CHAPTER, "most_attended", "most_attended",
                visible.check_most_attended, hidden.hidden_most_attended, "most_attended", "test_most_attended")
BLOG_PAM = Exercise(CHAPTER, "PAM_Module (blog, repaired)", "PAM_Module", visible.check_blog_pam,
                    hidden.hidden_blog_pam, "blog", "test_blog_pam")
BLOG = Exercise(CHAPTER, "CAM_Module (blog, repaired)", "CAM_Module", visible.check_blog_cam,
                hidden.hidden_blog_cam, "blog", "test_blog_cam")
DUAL = Exercise(CHAPTER, "dual_attention", "dual_attention", visible.check_dual_attention,
                hidden.hidden_dual_attention, "dual_attention", "test_dual_attention")
EXERCISES = [PAPER, OFFICIAL, MOST, BLOG_PAM, BLOG, DUAL]

INIT = """\
        if variant not in ("paper", "official"):
            raise ValueError(f"variant must be 'paper' or 'official', got {variant!r}")
        self.variant = variant
        self.gamma = nn.Parameter(torch.zeros(1))"""
ATT = """\
        b, c, h, w = x.shape
        a = x.reshape(b, c, h * w)
        energy = torch.bmm(a, a.permute(0, 2, 1))
        if self.variant == "official":
            energy = energy.max(-1, keepdim=True)[0].expand_as(energy) - energy
        return torch.softmax(energy, dim=-1)"""
FWD = """\
        b, c, h, w = x.shape
        out = torch.bmm(self.attention(x), x.reshape(b, c, h * w)).reshape(b, c, h, w)
        return self.gamma * out + x"""


def cam(*, init: str = INIT, att: str = ATT, fwd: str = FWD, extra: str = "") -> str:
    return f"""
class ChannelAttention(nn.Module):
    def __init__(self, *, variant="paper"):
        super().__init__()
{init}
{extra}
    def attention(self, x):
{att}

    def forward(self, x):
{fwd}
"""


def att_last(line: str) -> dict:
    return dict(att=ATT.replace("        return torch.softmax(energy, dim=-1)", line))


WRONG_PAPER = [
    ("softmax over dim 1 (the transpose: energy is symmetric)", "softmax_dim",
     att_last("        return torch.softmax(energy, dim=1)")),
    ("softmax over all C*C entries", "softmax_dim",
     att_last("        return torch.softmax(energy.view(b, -1), dim=-1).view(b, c, c)")),
    ("official max - energy always (paper asked)", "cam_variant", dict(att=ATT.replace(
        '        if self.variant == "official":\n            energy', "        energy"))),
    ("energy scaled by 1/sqrt(N)", "scaled", att_last("        return torch.softmax(energy / math.sqrt(h * w), dim=-1)")),
    ("map transposed in the bmm (PAM habit)", "extra_transpose", dict(fwd=FWD.replace(
        "self.attention(x)", "self.attention(x).permute(0, 2, 1)"))),
    ("softmax as exp / sum without subtracting the max", "overflow",
     att_last("        e = energy.exp()\n        return e / e.sum(-1, keepdim=True)")),
    ("a CPU tensor of ones in forward", "cpu_constant", dict(fwd=FWD.replace(
        "self.gamma * out + x", "self.gamma * out * torch.ones(h, w, dtype=x.dtype) + x"))),
    ("softmax over dim 1 and the map transposed in forward: the output is right, the rows are not", "softmax_dim",
     dict(att=ATT.replace("dim=-1)", "dim=1)"), fwd=FWD.replace("self.attention(x)",
                                                                  "self.attention(x).transpose(1, 2)"))),
    ("gamma initialised to 1", "gamma_init", dict(init=INIT.replace("torch.zeros(1)", "torch.ones(1)"))),
    ("missing residual", "missing_residual", dict(fwd=FWD.replace("self.gamma * out + x", "self.gamma * out"))),
    ("1x1 query/key convolutions added (the paper says none)", "param_count", dict(
        extra="        self.query_conv = nn.Conv2d(5, 5, 1)")),
    ("hard-coded .cuda()", "device", att_last("        return torch.softmax(energy.cuda(), dim=-1)")),
    ("hard-coded float32", "dtype", att_last("        return torch.softmax(energy.float(), dim=-1)")),
    ("the output cast with .float()", "dtype", dict(fwd=FWD.replace(
        "        return self.gamma * out + x", "        return (self.gamma * out + x).float()"))),
    ("energy in float32, the map cast back to the input's dtype", "float32_inside",
     att_last("        return torch.softmax(energy.float(), dim=-1).to(x.dtype)")),
    ("in-place residual on x", "inplace", dict(fwd=FWD.replace(
        "        return self.gamma * out + x", "        x += self.gamma * out\n        return x"))),
    ("forward returns the map", "returns_map", dict(fwd="        return self.attention(x)")),
    ("gamma left out of forward (out + x)", "gamma_unused", dict(fwd=FWD.replace("self.gamma * out + x", "out + x"))),
    ("output reshaped as (B, C, W, H)", "hw_swapped", dict(fwd=FWD.replace(".reshape(b, c, h, w)",
                                                                           ".reshape(b, c, w, h)"))),
]

WRONG_OFFICIAL = [
    ("variant ignored: always the paper's softmax(energy)", "cam_variant", dict(att=ATT.replace(
        '        if self.variant == "official":\n            energy = energy.max(-1, keepdim=True)[0].expand_as(energy) '
        '- energy\n', ""))),
    ("energy - max (the stabilising shift, = paper) for 'official'", "cam_variant", dict(att=ATT.replace(
        "energy.max(-1, keepdim=True)[0].expand_as(energy) - energy",
        "energy - energy.max(-1, keepdim=True)[0].expand_as(energy)"))),
    ("max over the wrong dim in max - energy, softmax over dim 1", "softmax_dim", dict(att=ATT.replace(
        "return torch.softmax(energy, dim=-1)", "return torch.softmax(energy, dim=1)"))),
    ("unknown variant silently treated as 'paper'", "bad_variant", dict(init="""\
        self.variant = variant
        self.gamma = nn.Parameter(torch.zeros(1))""")),
    ("a ValueError that names nothing", "bad_variant_message", dict(init=INIT.replace(
        "f\"variant must be 'paper' or 'official', got {variant!r}\"", "\"invalid variant\""))),
]

VALID_CAM = [
    ("einsum and softmax(-energy) for official", dict(att="""\
        a = x.flatten(2)
        energy = torch.einsum("bcn,bdn->bcd", a, a)
        return (energy if self.variant == "paper" else -energy).softmax(-1)""", fwd="""\
        out = torch.einsum("bcd,bdn->bcn", self.attention(x), x.flatten(2))
        return x + self.gamma * out.view_as(x)""")),
    ("einops rearrange, @, nn.Softmax module", dict(extra="        self.softmax = nn.Softmax(dim=-1)", att="""\
        a = rearrange(x, "b c h w -> b c (h w)")
        energy = a @ rearrange(a, "b c n -> b n c")
        if self.variant == "official":
            energy = energy.amax(-1, keepdim=True) - energy
        return self.softmax(energy)""")),
    ("a Python loop over the channels, one row of the map at a time", dict(att="""\
        b, c, h, w = x.shape
        a = x.reshape(b, c, h * w)
        rows = []
        for i in range(c):
            e = (a[:, i:i + 1, :] * a).sum(-1)
            if self.variant == "official":
                e = e.amax(-1, keepdim=True) - e
            rows.append(torch.softmax(e, dim=-1))
        return torch.stack(rows, dim=1)""")),
    ("extra buffer and attribute", dict(extra="""\
        self.register_buffer("seen", torch.zeros(()))
        self.name = "cam\"""")),
]

IMPLS: list[Impl] = []
IMPLS += [Impl(PAPER, label, cam(**parts), mistake) for label, mistake, parts in WRONG_PAPER]
IMPLS += [Impl(OFFICIAL, label, cam(**parts), mistake) for label, mistake, parts in WRONG_OFFICIAL]
IMPLS += [Impl(ex, f"{label} ({ex.name})", cam(**parts)) for ex in (PAPER, OFFICIAL) for label, parts in VALID_CAM]

IMPLS += [
    Impl(MOST, "variants swapped (argmin for paper)", """
def most_attended(energy, variant):
    return energy.argmin(-1) if variant == "paper" else energy.argmax(-1)
""", "cam_variant"),
    Impl(MOST, "official treated like the paper (max - energy forgotten)", """
def most_attended(energy, variant):
    return energy.softmax(-1).argmax(-1)
""", "cam_variant"),
    Impl(MOST, "through the maps: softmax(energy) and softmax(max - energy)", """
def most_attended(energy, variant):
    if variant == "official":
        energy = energy.amax(-1, keepdim=True) - energy
    return torch.softmax(energy, dim=-1).argmax(dim=-1)
"""),
    Impl(MOST, "the energy shifted by its row maximum in place (energy -= ...)", """
def most_attended(energy, variant):
    energy -= energy.amax(-1, keepdim=True)
    return energy.argmax(-1) if variant == "paper" else energy.argmin(-1)
""", "inplace"),
    Impl(MOST, "argmax over dim 1 (columns)", """
def most_attended(energy, variant):
    return energy.argmax(1) if variant == "paper" else energy.argmin(1)
""", "argmax_axis"),
    Impl(MOST, "indices as int32", """
def most_attended(energy, variant):
    signed = energy if variant == "paper" else -energy
    return signed.max(dim=-1).indices.to(torch.int32)
"""),
    Impl(MOST, "argmax / argmin of the energy", """
def most_attended(energy, variant):
    return energy.argmax(-1) if variant == "paper" else energy.argmin(-1)
"""),
]

BLOG_TEMPLATE = """
class CAM_Module(nn.Module):
    def __init__(self, in_dim):
        super(CAM_Module, self).__init__()
        self.chanel_in = in_dim
        self.gamma = nn.Parameter(torch.zeros(1))
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x):
        m_batchsize, C, height, width = x.size()
        proj_query = x.view(m_batchsize, C, -1)
        proj_key = x.view(m_batchsize, C, -1).permute(0, 2, 1)
        energy = torch.bmm(proj_query, proj_key)
        ENERGY_LINE
        attention = self.softmax(energy_new)
        proj_value = x.view(m_batchsize, C, -1)
        out = torch.bmm(attention, proj_value)
        out = out.view(m_batchsize, C, height, width)
        out = self.gamma * out + x
        return out
"""
OFFICIAL_LINE = "energy_new = torch.max(energy, -1, keepdim=True)[0].expand_as(energy) - energy"
IMPLS += [
    Impl(BLOG, "fixed to the paper's form (energy_new = energy)", BLOG_TEMPLATE.replace(
        "ENERGY_LINE", "energy_new = energy"), "cam_variant"),
    Impl(BLOG, "fixed, but the transpose of PAM added to the bmm", BLOG_TEMPLATE.replace(
        "ENERGY_LINE", OFFICIAL_LINE).replace("torch.bmm(attention, proj_value)",
                                              "torch.bmm(attention.permute(0, 2, 1), proj_value)"), "extra_transpose"),
    Impl(BLOG, "untouched: `heigh` still there (a NameError)", BLOG_TEMPLATE.replace("ENERGY_LINE", OFFICIAL_LINE)
         .replace("C, height, width)\n        out = self", "C, heigh, width)\n        out = self"), "name_error"),
    Impl(BLOG, "`heigh` defined as a global instead of fixed at the use", "heigh = 5\n" + BLOG_TEMPLATE.replace(
        "ENERGY_LINE", OFFICIAL_LINE).replace("C, height, width)\n        out = self", "C, heigh, width)\n        out = self"),
         "leftover_global"),
    Impl(BLOG, "repaired, then the residual added to x in place", BLOG_TEMPLATE.replace("ENERGY_LINE", OFFICIAL_LINE)
         .replace("        out = self.gamma * out + x\n        return out", "        x += self.gamma * out\n        return x"),
         "inplace"),
    Impl(BLOG, "the blog's code with heigh -> height", BLOG_TEMPLATE.replace("ENERGY_LINE", OFFICIAL_LINE)),
    Impl(BLOG, "reshape instead of view, amax", BLOG_TEMPLATE.replace("ENERGY_LINE",
         "energy_new = energy.amax(-1, keepdim=True) - energy").replace(".view(", ".reshape(")),
]

BLOG_PAM_TEMPLATE = """
class PAM_Module(nn.Module):
    def __init__(self, in_dim):
        super(PAM_Module, self).__init__()
        self.chanel_in = in_dim
        self.query_conv = nn.Conv2d(in_channels=in_dim, out_channels=in_dim // 8, kernel_size=1)
        self.key_conv = nn.Conv2d(in_channels=in_dim, out_channels=in_dim // 8, kernel_size=1)
        self.value_conv = nn.Conv2d(in_channels=in_dim, out_channels=in_dim, kernel_size=1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x):
        m_batchsize, C, height, width = x.size()
        proj_query = self.query_conv(x).view(m_batchsize, -1, width * height).permute(0, 2, 1)
        proj_key = self.key_conv(x).view(m_batchsize, -1, width * height)
        energy = torch.bmm(proj_query, proj_key)
        attention = self.softmax(energy)
        proj_value = self.value_conv(x).view(m_batchsize, -1, width * height)
        out = torch.bmm(proj_value, attention.permute(0, 2, 1))
        out = out.view(m_batchsize, C, height, width)
        out = self.gamma * out + x
        return out
"""
IMPLS += [
    Impl(BLOG_PAM, "untouched: `attetion` assigned, `attention` used (a NameError)",
         BLOG_PAM_TEMPLATE.replace("attention = self.softmax", "attetion = self.softmax"), "name_error"),
    Impl(BLOG_PAM, "`attetion` left, a global `attention` from an earlier cell used instead",
         "attention = torch.eye(35).expand(2, 35, 35)\n"
         + BLOG_PAM_TEMPLATE.replace("attention = self.softmax", "attetion = self.softmax"), "leftover_global"),
    Impl(BLOG_PAM, "made to run by dropping the permute", BLOG_PAM_TEMPLATE.replace(
        "attention.permute(0, 2, 1)", "attention"), "missing_transpose"),
    Impl(BLOG_PAM, "made to run, softmax over dim 1", BLOG_PAM_TEMPLATE.replace(
        "nn.Softmax(dim=-1)", "nn.Softmax(dim=1)"), "softmax_dim"),
    Impl(BLOG_PAM, "the blog's code with attetion -> attention", BLOG_PAM_TEMPLATE),
    Impl(BLOG_PAM, "both names spelt `attetion`", BLOG_PAM_TEMPLATE.replace("attention", "attetion")),
]

DUAL_TEMPLATE = """
def dual_attention(x, pam, cam):
    BODY
"""
IMPLS += [
    Impl(DUAL, "pam(x) + cam(x): x counted twice", DUAL_TEMPLATE.replace("BODY", "return pam(x) + cam(x)"),
         "residual_twice"),
    Impl(DUAL, "sequential: cam(pam(x))", DUAL_TEMPLATE.replace("BODY", "return cam(pam(x))"), "sequential"),
    Impl(DUAL, "sequential: pam(cam(x))", DUAL_TEMPLATE.replace("BODY", "return pam(cam(x))"), "sequential"),
    Impl(DUAL, "only the position branch", DUAL_TEMPLATE.replace("BODY", "return pam(x)"), "values"),
    Impl(DUAL, "averaged branches", DUAL_TEMPLATE.replace("BODY", "return (pam(x) + cam(x)) / 2"), "branches_averaged"),
    Impl(DUAL, "x plus the branches' contributions averaged", DUAL_TEMPLATE.replace(
        "BODY", "return x + ((pam(x) - x) + (cam(x) - x)) / 2"), "branches_averaged"),
    Impl(DUAL, "x updated in place", DUAL_TEMPLATE.replace(
        "BODY", "p, c = pam(x), cam(x)\n    x += (p - x) + (c - x)\n    return x"), "inplace"),
    Impl(DUAL, "one branch's contribution detached", DUAL_TEMPLATE.replace(
        "BODY", "return x + (pam(x) - x) + (cam(x) - x).detach()"), "no_grad"),
    Impl(DUAL, "summed under no_grad", DUAL_TEMPLATE.replace(
        "BODY", "with torch.no_grad():\n        return pam(x) + cam(x) - x"), "no_grad"),
    Impl(DUAL, "pam(x) + cam(x) - x", DUAL_TEMPLATE.replace("BODY", "return pam(x) + cam(x) - x")),
    Impl(DUAL, "x + both branch differences", DUAL_TEMPLATE.replace(
        "BODY", "return x + (pam(x) - x) + (cam(x) - x)")),
    Impl(DUAL, "in place on a fresh tensor", DUAL_TEMPLATE.replace(
        "BODY", "out = pam(x)\n    out += cam(x)\n    out -= x\n    return out")),
]


# --------------------------------------------------------------------------------------------
# conceptual questions: a wrong answer names its mistake; the right one passes in another form
# --------------------------------------------------------------------------------------------
Q_SYMMETRIC, Q_OFFICIAL_FORM, Q_DIAGONAL, Q_COST = (question(CHAPTER, visible, hidden, q) for q in
                                                   ("q_symmetric", "q_official_form", "q_diagonal", "q_cost_ratio"))
EXERCISES += [Q_SYMMETRIC, Q_OFFICIAL_FORM, Q_DIAGONAL, Q_COST]

IMPLS += [
    Impl(Q_SYMMETRIC, "the column softmax is the same map", "q_symmetric = 'b'", "symmetric"),
    Impl(Q_SYMMETRIC, "only the transpose statement", "q_symmetric = {'a'}", "symmetric"),
    Impl(Q_SYMMETRIC, "the official input symmetric too", "q_symmetric = 'acd'", "symmetric"),
    Impl(Q_SYMMETRIC, "two letters in one string with a comma", "q_symmetric = 'a, z'", "answer_form"),
    Impl(Q_SYMMETRIC, "valid: a set", "q_symmetric = {'c', 'a'}"),
    Impl(Q_SYMMETRIC, "valid: upper case with a comma", "q_symmetric = 'A, C'"),
    Impl(Q_OFFICIAL_FORM, "the paper's map, stabilised", "q_official_form = 'a'", "official_form"),
    Impl(Q_OFFICIAL_FORM, "the e - m form", "q_official_form = 'c'", "official_form"),
    Impl(Q_OFFICIAL_FORM, "rows no longer sum to 1", "q_official_form = 'd'", "official_form"),
    Impl(Q_OFFICIAL_FORM, "two letters where one is asked", "q_official_form = 'bc'", "answer_form"),
    Impl(Q_OFFICIAL_FORM, "valid: upper case", "q_official_form = 'B'"),
    Impl(Q_OFFICIAL_FORM, "valid: with spaces", "q_official_form = ' b '"),
    Impl(Q_DIAGONAL, "a rule for any features", "q_diagonal = 'a'", "diagonal"),
    Impl(Q_DIAGONAL, "the rule and its consequence for the official map", "q_diagonal = 'ad'", "diagonal"),
    Impl(Q_DIAGONAL, "only the counterexample", "q_diagonal = ['c']", "diagonal"),
    Impl(Q_DIAGONAL, "valid: a list", "q_diagonal = ['c', 'b']"),
    Impl(Q_DIAGONAL, "valid: a string", "q_diagonal = 'BC'"),
    Impl(Q_COST, "the energies only", "q_cost_ratio = (96**2) ** 2 * 64 / (512**2 * 96**2)", "cost_ratio"),
    Impl(Q_COST, "CAM counted with one product", "q_cost_ratio = 96**4 * (512 + 64) / (512**2 * 96**2)",
         "cost_ratio"),
    Impl(Q_COST, "the ratio of the maps' sizes", "q_cost_ratio = (96**2 / 512) ** 2", "cost_ratio"),
    Impl(Q_COST, "inverted", "q_cost_ratio = 2 * 512**2 * 96**2 / (96**4 * (512 + 64))", "cost_ratio"),
    Impl(Q_COST, "PAM's energy left out", "q_cost_ratio = 512 * 96**4 / (2 * 512**2 * 96**2)", "cost_ratio"),
    Impl(Q_COST, "the weighted sums only", "q_cost_ratio = 512 * 96**4 / (512**2 * 96**2)", "cost_ratio"),
    Impl(Q_COST, "a string", "q_cost_ratio = 'about ten'", "answer_form"),
    Impl(Q_COST, "valid: rounded by hand", "q_cost_ratio = 10.1"),
    Impl(Q_COST, "valid: the formula N (C + C') / (2 C^2)", "q_cost_ratio = 9216 * (512 + 64) / (2 * 512 ** 2)"),
]

# issue 27: a plain function's own protections (the device watch, float64 throughout)
IMPLS += [
    Impl(DUAL, "the two branches stacked and weighted by a tensor made on the CPU", DUAL_TEMPLATE.replace(
        "BODY", "weights = torch.tensor([1.0, 1.0], dtype=x.dtype).view(2, 1, 1, 1, 1)\n"
                "    return (torch.stack([pam(x), cam(x)]) * weights).sum(0) - x"), "cpu_constant"),
    Impl(MOST, "argmax over an index map built on the CPU", '''
def most_attended(energy, variant):
    a = energy if variant == "paper" else energy.amax(-1, keepdim=True) - energy
    order = torch.arange(energy.shape[-1])
    return (a.softmax(-1).argmax(-1, keepdim=True) == order).long().argmax(-1)
''', "cpu_constant"),
]

# issue 26 (second trial): gamma compared at 0.37 and 0 as well as 1, the blog PAM's gamma init, named hints
IMPLS += [
    Impl(PAPER, "gamma * (out + x): a new module returns zeros", cam(fwd=FWD.replace(
        "return self.gamma * out + x", "return self.gamma * (out + x)")), "gamma_placement"),
    Impl(PAPER, "out + gamma * x", cam(fwd=FWD.replace("return self.gamma * out + x", "return out + self.gamma * x")),
         "gamma_placement"),
    Impl(PAPER, "gamma * out * x", cam(fwd=FWD.replace("return self.gamma * out + x", "return self.gamma * out * x")),
         "gamma_placement"),
    Impl(OFFICIAL, "official form with the maximum over dim 1", cam(att=ATT.replace(
        "energy.max(-1, keepdim=True)[0]", "energy.max(1, keepdim=True)[0]"), fwd=FWD), "official_max_axis"),
    Impl(BLOG_PAM, "made to run, gamma initialised to 1", BLOG_PAM_TEMPLATE.replace(
        "self.gamma = nn.Parameter(torch.zeros(1))", "self.gamma = nn.Parameter(torch.ones(1))"), "gamma_init"),
    Impl(MOST, "the largest weights returned instead of their indices", '''
def most_attended(energy, variant):
    a = energy if variant == "paper" else energy.amax(-1, keepdim=True) - energy
    return a.softmax(-1).amax(-1)
''', "values"),
    Impl(DUAL, "each branch's contribution weighted by its gamma again", DUAL_TEMPLATE.replace(
        "BODY", "return x + pam.gamma * (pam(x) - x) + cam.gamma * (cam(x) - x)"), "gamma_twice"),
    Impl(BLOG, "repaired, gamma around the residual sum", BLOG_TEMPLATE.replace("ENERGY_LINE", OFFICIAL_LINE).replace(
        "out = self.gamma * out + x", "out = self.gamma * (out + x)"), "gamma_placement"),
    Impl(Q_COST, "N taken as the side of the map", "q_cost_ratio = 96 * (512 + 64) / (2 * 512**2)", "cost_ratio"),
    Impl(Q_COST, "N cancelled out", "q_cost_ratio = 1.125", "cost_ratio"),
    Impl(Q_COST, "PAM's energy counted twice", "q_cost_ratio = 9216 * (512 + 2 * 64) / (2 * 512**2)", "cost_ratio"),
    Impl(Q_SYMMETRIC, "the column softmax also the same map", "q_symmetric = 'abc'", "symmetric"),
    Impl(Q_DIAGONAL, "the official diagonal claim added", "q_diagonal = 'bcd'", "diagonal"),
    Impl(Q_DIAGONAL, "only the equal-norm statement", "q_diagonal = 'b'", "diagonal"),
]

# ---------------------------------------------------------------- student trial t246: named where they were generic
IMPLS += [
    Impl(MOST, "the rows' softmax, then the argmax down the columns", """
def most_attended(energy, variant):
    if variant == "official":
        energy = energy.amax(-1, keepdim=True) - energy
    return torch.softmax(energy, dim=-1).argmax(dim=1)
""", "argmax_axis"),
    Impl(MOST, "the largest values instead of their indices", """
def most_attended(energy, variant):
    if variant == "official":
        energy = energy.amax(-1, keepdim=True) - energy
    return energy.max(dim=-1).values
""", "values"),
    Impl(BLOG, "repaired, softmax over dim 1", BLOG_TEMPLATE.replace("ENERGY_LINE", OFFICIAL_LINE).replace(
        "nn.Softmax(dim=-1)", "nn.Softmax(dim=1)"), "softmax_dim"),
    Impl(BLOG_PAM, "repaired, and the query/key width changed to in_dim // 16",
         BLOG_PAM_TEMPLATE.replace("out_channels=in_dim // 8", "out_channels=in_dim // 16"), "parameters"),
    Impl(DUAL, "x + pam(x) + cam(x): x counted three times",
         DUAL_TEMPLATE.replace("BODY", "return x + pam(x) + cam(x)"), "residual_count"),
    Impl(DUAL, "pam(x) + cam(x) - 2 x: x dropped", DUAL_TEMPLATE.replace("BODY", "return pam(x) + cam(x) - 2 * x"),
         "residual_count"),
    Impl(Q_OFFICIAL_FORM, "valid: a set of one letter", "q_official_form = {'b'}"),
    Impl(Q_OFFICIAL_FORM, "valid: a tuple of one letter", "q_official_form = ('b',)"),
    Impl(Q_DIAGONAL, "(b) and (d): a channel always its own favourite", "q_diagonal = 'bd'", "diagonal"),
    Impl(Q_DIAGONAL, "(c) and (d)", "q_diagonal = 'cd'", "diagonal"),
]

# second trial, round 2: likely CAM mistakes that had no "Likely mistake" line
WRONG_CAM_R2 = [
    ("energy scaled by 1/sqrt(C)", "scaled", att_last("        return torch.softmax(energy / math.sqrt(c), dim=-1)")),
    ("gamma inside the softmax, out + x in forward", "gamma_placement", dict(
        att=ATT.replace("torch.softmax(energy, dim=-1)", "torch.softmax(self.gamma * energy, dim=-1)"),
        fwd=FWD.replace("self.gamma * out + x", "out + x"))),
    ("output reshaped as (B, C, W, H), then transposed", "hw_swapped", dict(fwd=FWD.replace(
        ".reshape(b, c, h, w)", ".reshape(b, c, w, h).transpose(2, 3)"))),
]
IMPLS += [Impl(ex, f"{label} ({ex.name})", cam(**parts), mistake)
          for ex in (PAPER, OFFICIAL) for label, mistake, parts in WRONG_CAM_R2]
