"""Chapter 08 (ECA and Coordinate Attention): what students and popular copies write, wrong and right.

Every source defines the exercise's symbol given catalog.PRELUDE (torch, nn, F, einops); each is
self-contained (it defines the helpers it uses), so the same text can be pasted into the notebook's
solution cell.
"""
from __future__ import annotations

from catalog import Exercise, Impl, question
from course_lib.checks import ch08_eca_coordatt as visible
from course_lib.hidden import ch08_eca_coordatt as hidden

CH = "08_eca_coordatt"
KERNEL = Exercise(CH, "adaptive_kernel_size", "adaptive_kernel_size", visible.check_adaptive_kernel_size,
                  hidden.hidden_adaptive_kernel_size, "adaptive_kernel_size_solution", "test_adaptive_kernel_size")
ECA = Exercise(CH, "EfficientChannelAttention", "EfficientChannelAttention", visible.check_eca, hidden.hidden_eca,
               "eca_solution", "test_eca")
POOL = Exercise(CH, "directional_pool", "directional_pool", visible.check_directional_pool,
                hidden.hidden_directional_pool, "directional_pool_solution", "test_directional_pool")
CA = Exercise(CH, "CoordinateAttention", "CoordinateAttention", visible.check_coordinate_attention,
              hidden.hidden_coordinate_attention, "coordinate_attention_solution", "test_coordinate_attention")
COUNTS = Exercise(CH, "attention_parameters", "attention_parameters", visible.check_attention_parameters,
                  hidden.hidden_attention_parameters, "attention_parameters_solution", "test_attention_parameters")
Q_R50, Q_WHY, Q_SHAPE = (question(CH, visible, hidden, q) for q in
                         ("q_eca_resnet50_parameters", "q_why_no_reduction", "q_shared_shape"))
EXERCISES = [KERNEL, ECA, POOL, CA, COUNTS, Q_R50, Q_WHY, Q_SHAPE]

# ------------------------------------------------------------------------------------------------
# shared pieces
# ------------------------------------------------------------------------------------------------
PSI = '''
def adaptive_kernel_size(channels, gamma=2, b=1):
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1
'''


def eca(attention: str, init: str | None = None, forward: str | None = None, psi: str = PSI) -> str:
    """An EfficientChannelAttention whose attention (and optionally __init__ / forward) is replaced."""
    init = init or '''
        if kernel_size is None:
            kernel_size = adaptive_kernel_size(channels, gamma, b)
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False)
'''
    forward = forward or '''
    def forward(self, x):
        return x * self.attention(x)
'''
    return f'''{psi}

class EfficientChannelAttention(nn.Module):
    def __init__(self, channels, kernel_size=None, *, gamma=2, b=1):
        super().__init__()
{init.strip(chr(10))}

{attention.strip(chr(10))}

{forward.strip(chr(10))}
'''


ECA_GATE = '''
    def attention(self, x):
        n, c = x.shape[:2]
        y = x.mean((2, 3)).reshape(n, 1, c)
        return torch.sigmoid(self.conv(y)).reshape(n, c, 1, 1)
'''

POOL_SRC = '''
def directional_pool(x):
    return x.mean(3, keepdim=True), rearrange(x.mean(2, keepdim=True), "b c 1 w -> b c w 1")
'''

CA_INIT = '''
        m = max(8, channels // reduction)
        self.conv1 = nn.Conv2d(channels, m, 1)
        self.bn1 = nn.BatchNorm2d(m)
        self.act = nn.Hardswish()
        self.conv_h = nn.Conv2d(m, channels, 1)
        self.conv_w = nn.Conv2d(m, channels, 1)
'''


def ca_gates(body: str) -> str:
    """A gates() whose body sees h, w, z_h, z_w (the right pools) and returns (g_h, g_w)."""
    return f'''
    def gates(self, x):
        h, w = x.shape[2:]
        z_h, z_w = directional_pool(x)
{body.strip(chr(10))}
'''


RIGHT_GATES = ca_gates('''
        f = self.act(self.bn1(self.conv1(torch.cat([z_h, z_w], dim=2))))
        f_h, f_w = torch.split(f, [h, w], dim=2)
        return torch.sigmoid(self.conv_h(f_h)), torch.sigmoid(self.conv_w(f_w.transpose(2, 3)))
''')
CA_ATT = '''
    def attention(self, x):
        g_h, g_w = self.gates(x)
        return g_h * g_w
'''
CA_FORWARD = '''
    def forward(self, x):
        return x * self.attention(x)
'''


def ca(gates: str = RIGHT_GATES, init: str = CA_INIT, rest: str = CA_ATT + CA_FORWARD, signature: str =
       "channels, reduction=32", pool: str = POOL_SRC) -> str:
    return f'''{pool}

class CoordinateAttention(nn.Module):
    def __init__(self, {signature}):
        super().__init__()
{init.strip(chr(10))}

{gates.strip(chr(10))}

{rest.strip(chr(10))}
'''


def psi(body: str) -> str:
    return f'''
def adaptive_kernel_size(channels, gamma=2, b=1):
{body.strip(chr(10))}
'''


def counts(body: str) -> str:
    return PSI + f'''

def attention_parameters(channels):
{body.strip(chr(10))}
'''


RIGHT_COUNTS = '''
    s = channels // 16
    m = max(8, channels // 32)
    return {"se": 2 * channels * s + s + channels, "eca": adaptive_kernel_size(channels),
            "ca": 3 * channels * m + 3 * m + 2 * channels}
'''

IMPLS = [
    # ============================================================ adaptive_kernel_size: wrong
    Impl(KERNEL, "nearest odd, a tie goes down", psi('''
    t = (math.log2(channels) + b) / gamma
    low = 2 * math.floor((t - 1) / 2) + 1
    return low if t - low <= low + 2 - t else low + 2
'''), "nearest_odd_tie"),
    Impl(KERNEL, "nearest odd with Python's round (ties to even)", psi('''
    t = (math.log2(channels) + b) / gamma
    return 2 * round((t - 1) / 2) + 1
'''), "nearest_odd_tie"),
    Impl(KERNEL, "floored but never made odd", psi('''
    return int(abs((math.log2(channels) + b) / gamma))
'''), "even_kernel"),
    Impl(KERNEL, "rounded, then made odd", psi('''
    t = round((math.log2(channels) + b) / gamma)
    return t if t % 2 else t + 1
'''), "round_not_floor"),
    Impl(KERNEL, "rounded up, then made odd", psi('''
    t = math.ceil((math.log2(channels) + b) / gamma)
    return t if t % 2 else t + 1
'''), "round_not_floor"),
    Impl(KERNEL, "natural logarithm", psi('''
    t = int(abs((math.log(channels) + b) / gamma))
    return t if t % 2 else t + 1
'''), "log_base"),
    Impl(KERNEL, "gamma and b hard-coded", psi('''
    t = int(abs((math.log2(channels) + 1) / 2))
    return t if t % 2 else t + 1
'''), "constants_ignored"),
    Impl(KERNEL, "the official code's fixed k = 3", psi('''
    return 3
'''), "fixed_kernel"),
    Impl(KERNEL, "timm's clamp to at least 3", psi('''
    t = int(abs((math.log2(channels) + b) / gamma))
    return max(3, t if t % 2 else t + 1)
'''), "kernel_clamp"),
    Impl(KERNEL, "a float kernel size", psi('''
    t = math.floor((math.log2(channels) + b) / gamma)
    return float(t if t % 2 else t + 1)
'''), "kernel_type"),
    Impl(KERNEL, "untouched stub", psi('''
    raise NotImplementedError()
'''), "not_implemented"),
    # ============================================================ adaptive_kernel_size: valid
    Impl(KERNEL, "the paper's listing: floor, then + 1 when even", PSI),
    Impl(KERNEL, "2 floor(t / 2) + 1", psi('''
    return 2 * int((math.log2(channels) + b) / gamma // 2) + 1
'''),),
    Impl(KERNEL, "nearest odd, a tie goes up", psi('''
    t = (math.log2(channels) + b) / gamma
    low = 2 * math.floor((t - 1) / 2) + 1
    return low if t - low < low + 2 - t else low + 2
''')),
    Impl(KERNEL, "numpy, returning a numpy integer", psi('''
    import numpy as np
    t = np.floor((np.log2(channels) + b) / gamma).astype(np.int64)
    return t + (t % 2 == 0)
''')),
    Impl(KERNEL, "bitwise: t | 1", psi('''
    return int((math.log2(channels) + b) / gamma) | 1
''')),

    # ============================================================ EfficientChannelAttention: wrong
    Impl(ECA, "bias left on (nn.Conv1d's default)", eca(ECA_GATE, init='''
        if kernel_size is None:
            kernel_size = adaptive_kernel_size(channels, gamma, b)
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=(kernel_size - 1) // 2)
'''), "extra_parameter"),
    Impl(ECA, "the official eca_layer: k = 3 whatever C is", eca(ECA_GATE, init='''
        k = 3 if kernel_size is None else kernel_size
        self.conv = nn.Conv1d(1, 1, k, padding=(k - 1) // 2, bias=False)
'''), "fixed_kernel"),
    Impl(ECA, "an even k from a helper that forgets to make t odd", eca(ECA_GATE, psi=psi('''
    return int(abs((math.log2(channels) + b) / gamma))
''')), "even_kernel"),
    Impl(ECA, "gamma and b not passed on", eca(ECA_GATE, init='''
        if kernel_size is None:
            kernel_size = adaptive_kernel_size(channels)
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False)
'''), "constants_ignored"),
    Impl(ECA, "explicit kernel_size ignored", eca(ECA_GATE, init='''
        k = adaptive_kernel_size(channels, gamma, b)
        self.conv = nn.Conv1d(1, 1, k, padding=(k - 1) // 2, bias=False)
'''), "kernel_ignored"),
    Impl(ECA, "conv over the (trivial) spatial axis: C -> C channels", eca('''
    def attention(self, x):
        y = x.mean((2, 3)).unsqueeze(-1)                      # (B, C, 1)
        return torch.sigmoid(self.conv(y)).unsqueeze(-1)      # (B, C, 1, 1)
''', init='''
        k = adaptive_kernel_size(channels, gamma, b) if kernel_size is None else kernel_size
        self.conv = nn.Conv1d(channels, channels, k, padding=(k - 1) // 2, bias=False)
'''), "conv_over_space"),
    Impl(ECA, "a kernel per channel (ECA-NS)", eca('''
    def attention(self, x):
        n, c = x.shape[:2]
        y = F.pad(x.mean((2, 3)), (self.k // 2, self.k // 2))     # (B, C + k - 1)
        windows = y.unfold(1, self.k, 1)                           # (B, C, k)
        return torch.sigmoid((windows * self.w).sum(-1)).reshape(n, c, 1, 1)
''', init='''
        k = adaptive_kernel_size(channels, gamma, b) if kernel_size is None else kernel_size
        self.k = k
        self.w = nn.Parameter(torch.randn(channels, k) / k)
'''), "per_channel_kernel"),
    Impl(ECA, "channels left on the channel axis of a 1-channel conv", eca('''
    def attention(self, x):
        y = x.mean((2, 3), keepdim=True).squeeze(-1)          # (B, C, 1)
        return torch.sigmoid(self.conv(y)).unsqueeze(-1)
'''), "channel_axis"),
    Impl(ECA, "no padding: the gate loses k - 1 channels", eca(ECA_GATE, init='''
        if kernel_size is None:
            kernel_size = adaptive_kernel_size(channels, gamma, b)
        self.conv = nn.Conv1d(1, 1, kernel_size, bias=False)
'''), "conv_padding"),  # trial t78: named by the padding (was kernel_size)
    Impl(ECA, "all the padding on the left (a causal conv): shifted channels", eca('''
    def attention(self, x):
        n, c = x.shape[:2]
        k = self.conv.kernel_size[0]
        y = F.pad(x.mean((2, 3)).reshape(n, 1, c), (k - 1, 0))
        return torch.sigmoid(self.conv(y)).reshape(n, c, 1, 1)
''', init='''
        if kernel_size is None:
            kernel_size = adaptive_kernel_size(channels, gamma, b)
        self.conv = nn.Conv1d(1, 1, kernel_size, bias=False)
'''), "padding_shift"),
    Impl(ECA, "circular padding (timm's CecaModule)", eca('''
    def attention(self, x):
        n, c = x.shape[:2]
        p = (self.conv.kernel_size[0] - 1) // 2
        y = F.pad(x.mean((2, 3)).reshape(n, 1, c), (p, p), mode="circular")
        return torch.sigmoid(self.conv(y)).reshape(n, c, 1, 1)
''', init='''
        if kernel_size is None:
            kernel_size = adaptive_kernel_size(channels, gamma, b)
        self.conv = nn.Conv1d(1, 1, kernel_size, bias=False)
'''), "circular_padding"),
    Impl(ECA, "max pooling", eca('''
    def attention(self, x):
        n, c = x.shape[:2]
        return torch.sigmoid(self.conv(x.amax((2, 3)).reshape(n, 1, c))).reshape(n, c, 1, 1)
'''), "max_pool"),
    Impl(ECA, "no sigmoid", eca('''
    def attention(self, x):
        n, c = x.shape[:2]
        return self.conv(x.mean((2, 3)).reshape(n, 1, c)).reshape(n, c, 1, 1)
'''), "missing_sigmoid"),
    Impl(ECA, "softmax over the channels", eca('''
    def attention(self, x):
        n, c = x.shape[:2]
        return torch.softmax(self.conv(x.mean((2, 3)).reshape(n, 1, c)), dim=-1).reshape(n, c, 1, 1)
'''), "softmax_gate"),
    Impl(ECA, "gate added to x", eca(ECA_GATE, forward='''
    def forward(self, x):
        return x + self.attention(x)
'''), "gate_added"),
    Impl(ECA, "hard-coded float32", eca('''
    def attention(self, x):
        n, c = x.shape[:2]
        y = x.float().mean((2, 3)).reshape(n, 1, c)
        return torch.sigmoid(self.conv.float()(y)).reshape(n, c, 1, 1)
'''), "dtype"),
    Impl(ECA, "forward scales x in place", eca(ECA_GATE, forward='''
    def forward(self, x):
        x *= self.attention(x)
        return x
'''), "inplace"),
    Impl(ECA, "untouched stub", eca(ECA_GATE, init='''
        raise NotImplementedError()
'''), "not_implemented"),
    # ============================================================ EfficientChannelAttention: valid
    Impl(ECA, "Conv1d, mean and reshape (the reference's form)", eca(ECA_GATE)),
    Impl(ECA, "the official form: AdaptiveAvgPool2d, squeeze, transpose", eca('''
    def attention(self, x):
        y = self.pool(x)                                                   # (B, C, 1, 1)
        y = self.conv(y.squeeze(-1).transpose(-1, -2)).transpose(-1, -2).unsqueeze(-1)
        return self.gate(y)
''', init='''
        if kernel_size is None:
            kernel_size = adaptive_kernel_size(channels, gamma, b)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv1d(1, 1, kernel_size=kernel_size, padding=(kernel_size - 1) // 2, bias=False)
        self.gate = nn.Sigmoid()
''', forward='''
    def forward(self, x):
        return x * self.attention(x).expand_as(x)
''')),
    Impl(ECA, "Conv2d(1, 1, (1, k)) on a (B, 1, 1, C) image", eca('''
    def attention(self, x):
        y = rearrange(x.mean((2, 3)), "b c -> b 1 1 c")
        return rearrange(torch.sigmoid(self.conv(y)), "b 1 1 c -> b c 1 1")
''', init='''
        k = adaptive_kernel_size(channels, gamma, b) if kernel_size is None else kernel_size
        self.conv = nn.Conv2d(1, 1, (1, k), padding=(0, (k - 1) // 2), bias=False)
''')),
    Impl(ECA, "einops and F.conv1d with a raw parameter", eca('''
    def attention(self, x):
        k = self.weight.numel()
        y = reduce(x, "b c h w -> b 1 c", "mean")
        s = torch.sigmoid(F.conv1d(y, self.weight.view(1, 1, k), padding=k // 2))
        return rearrange(s, "b 1 c -> b c 1 1")
''', init='''
        k = adaptive_kernel_size(channels, gamma, b) if kernel_size is None else kernel_size
        self.weight = nn.Parameter(torch.randn(k) / k)
''')),
    Impl(ECA, "unfold over padded channel means", eca('''
    def attention(self, x):
        n, c = x.shape[:2]
        k = self.w.numel()
        y = F.pad(x.mean((2, 3)), ((k - 1) // 2, (k - 1) // 2))
        return torch.sigmoid(y.unfold(1, k, 1) @ self.w).reshape(n, c, 1, 1)
''', init='''
        k = adaptive_kernel_size(channels, gamma, b) if kernel_size is None else kernel_size
        self.w = nn.Parameter(torch.zeros(k))
''')),

    # ============================================================ directional_pool: wrong
    Impl(POOL, "the two means swapped", '''
def directional_pool(x):
    return x.mean(2, keepdim=True), x.mean(3, keepdim=True)
''', "swapped_pool"),
    Impl(POOL, "z_w left as a row", '''
def directional_pool(x):
    return x.mean(3, keepdim=True), x.mean(2, keepdim=True)
''', "not_transposed"),
    Impl(POOL, "max instead of mean", '''
def directional_pool(x):
    return x.amax(3, keepdim=True), x.amax(2, keepdim=True).transpose(2, 3)
''', "max_pool"),
    Impl(POOL, "sums divided by the wrong side", '''
def directional_pool(x):
    h, w = x.shape[2:]
    return x.sum(3, keepdim=True) / h, x.sum(2, keepdim=True).transpose(2, 3) / w
''', "divisor"),
    Impl(POOL, "a hard-coded float32", '''
def directional_pool(x):
    x = x.float()
    return x.mean(3, keepdim=True), x.mean(2, keepdim=True).transpose(2, 3)
''', "dtype"),
    Impl(POOL, "untouched stub", '''
def directional_pool(x):
    raise NotImplementedError()
''', "not_implemented"),
    # ============================================================ directional_pool: valid
    Impl(POOL, "mean and rearrange", POOL_SRC),
    Impl(POOL, "the official AdaptiveAvgPool2d((None, 1)) / ((1, None)) and permute", '''
def directional_pool(x):
    z_h = nn.AdaptiveAvgPool2d((None, 1))(x)
    z_w = nn.AdaptiveAvgPool2d((1, None))(x).permute(0, 1, 3, 2)
    return z_h, z_w
'''),
    Impl(POOL, "einops reduce", '''
def directional_pool(x):
    return reduce(x, "b c h w -> b c h 1", "mean"), reduce(x, "b c h w -> b c w 1", "mean")
'''),

    # ============================================================ CoordinateAttention: wrong
    Impl(CA, "timm's width and no biases", ca(init='''
        m = max(8, channels // reduction)
        self.conv1 = nn.Conv2d(channels, m, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(m)
        self.act = nn.Hardswish()
        self.conv_h = nn.Conv2d(m, channels, 1, bias=False)
        self.conv_w = nn.Conv2d(m, channels, 1, bias=False)
'''), "missing_bias"),
    Impl(CA, "no floor on the width: C // r", ca(init='''
        m = channels // reduction
        self.conv1 = nn.Conv2d(channels, m, 1)
        self.bn1 = nn.BatchNorm2d(m)
        self.act = nn.Hardswish()
        self.conv_h = nn.Conv2d(m, channels, 1)
        self.conv_w = nn.Conv2d(m, channels, 1)
'''), "min_hidden"),
    Impl(CA, "one transform per direction", ca(gates=ca_gates('''
        f_h = self.act(self.bn1(self.conv1(z_h)))
        f_w = self.act(self.bn1(self.conv1_w(z_w)))
        return torch.sigmoid(self.conv_h(f_h)), torch.sigmoid(self.conv_w(f_w.transpose(2, 3)))
'''), init=CA_INIT + '''
        self.conv1_w = nn.Conv2d(channels, max(8, channels // reduction), 1)
'''), "not_shared"),
    Impl(CA, "no BatchNorm", ca(gates=ca_gates('''
        f = self.act(self.conv1(torch.cat([z_h, z_w], dim=2)))
        f_h, f_w = torch.split(f, [h, w], dim=2)
        return torch.sigmoid(self.conv_h(f_h)), torch.sigmoid(self.conv_w(f_w.transpose(2, 3)))
'''), init='''
        m = max(8, channels // reduction)
        self.conv1 = nn.Conv2d(channels, m, 1)
        self.act = nn.Hardswish()
        self.conv_h = nn.Conv2d(m, channels, 1)
        self.conv_w = nn.Conv2d(m, channels, 1)
'''), "missing_bn"),
    Impl(CA, "BatchNorm built but not used", ca(gates=ca_gates('''
        f = self.act(self.conv1(torch.cat([z_h, z_w], dim=2)))
        f_h, f_w = torch.split(f, [h, w], dim=2)
        return torch.sigmoid(self.conv_h(f_h)), torch.sigmoid(self.conv_w(f_w.transpose(2, 3)))
''')), "missing_bn"),
    Impl(CA, "f^w not transposed back", ca(gates=ca_gates('''
        f = self.act(self.bn1(self.conv1(torch.cat([z_h, z_w], dim=2))))
        f_h, f_w = torch.split(f, [h, w], dim=2)
        return torch.sigmoid(self.conv_h(f_h)), torch.sigmoid(self.conv_w(f_w))
''')), "not_transposed"),
    Impl(CA, "split in the order [W, H]", ca(gates=ca_gates('''
        f = self.act(self.bn1(self.conv1(torch.cat([z_h, z_w], dim=2))))
        f_h, f_w = torch.split(f, [w, h], dim=2)
        return torch.sigmoid(self.conv_h(f_h)), torch.sigmoid(self.conv_w(f_w.transpose(2, 3)))
''')), "split_order"),
    Impl(CA, "gates returned as (g_w, g_h)", ca(gates=ca_gates('''
        f = self.act(self.bn1(self.conv1(torch.cat([z_h, z_w], dim=2))))
        f_h, f_w = torch.split(f, [h, w], dim=2)
        return torch.sigmoid(self.conv_w(f_w.transpose(2, 3))), torch.sigmoid(self.conv_h(f_h))
''')), "gates_swapped"),
    Impl(CA, "rows and columns swapped before the concatenation", ca(gates='''
    def gates(self, x):
        h, w = x.shape[2:]
        cols = x.mean(2, keepdim=True).transpose(2, 3)            # (B, C, W, 1): a mean per column
        rows = x.mean(3, keepdim=True)                            # (B, C, H, 1): a mean per row
        f = self.act(self.bn1(self.conv1(torch.cat([cols, rows], dim=2))))
        f_h, f_w = torch.split(f, [h, w], dim=2)
        return torch.sigmoid(self.conv_h(f_h)), torch.sigmoid(self.conv_w(f_w.transpose(2, 3)))
'''), "swapped_pool"),
    Impl(CA, "conv_h and conv_w swapped", ca(gates=ca_gates('''
        f = self.act(self.bn1(self.conv1(torch.cat([z_h, z_w], dim=2))))
        f_h, f_w = torch.split(f, [h, w], dim=2)
        return torch.sigmoid(self.conv_w(f_h)), torch.sigmoid(self.conv_h(f_w.transpose(2, 3)))
''')), "convs_swapped"),
    # trial t78 (r3): one conv for both gates was named convs_swapped
    Impl(CA, "conv_h for both gates (conv_w unused)", ca(gates=ca_gates('''
        f = self.act(self.bn1(self.conv1(torch.cat([z_h, z_w], dim=2))))
        f_h, f_w = torch.split(f, [h, w], dim=2)
        return torch.sigmoid(self.conv_h(f_h)), torch.sigmoid(self.conv_h(f_w.transpose(2, 3)))
''')), "conv_reused"),
    Impl(CA, "conv_w for both gates (conv_h unused)", ca(gates=ca_gates('''
        f = self.act(self.bn1(self.conv1(torch.cat([z_h, z_w], dim=2))))
        f_h, f_w = torch.split(f, [h, w], dim=2)
        return torch.sigmoid(self.conv_w(f_h)), torch.sigmoid(self.conv_w(f_w.transpose(2, 3)))
''')), "conv_reused"),
    Impl(CA, "ReLU instead of h-swish", ca(init=CA_INIT.replace("nn.Hardswish()", "nn.ReLU()")), "activation"),
    Impl(CA, "the official h_sigmoid on the gates", ca(gates=ca_gates('''
        f = self.act(self.bn1(self.conv1(torch.cat([z_h, z_w], dim=2))))
        f_h, f_w = torch.split(f, [h, w], dim=2)
        return F.relu6(self.conv_h(f_h) + 3) / 6, F.relu6(self.conv_w(f_w.transpose(2, 3)) + 3) / 6
''')), "hard_sigmoid_gate"),
    Impl(CA, "no sigmoid on the gates", ca(gates=ca_gates('''
        f = self.act(self.bn1(self.conv1(torch.cat([z_h, z_w], dim=2))))
        f_h, f_w = torch.split(f, [h, w], dim=2)
        return self.conv_h(f_h), self.conv_w(f_w.transpose(2, 3))
''')), "missing_sigmoid"),
    Impl(CA, "max pooling", ca(pool='''
def directional_pool(x):
    return x.amax(3, keepdim=True), x.amax(2, keepdim=True).transpose(2, 3)
'''), "max_pool"),
    Impl(CA, "a residual added", ca(rest=CA_ATT + '''
    def forward(self, x):
        return x + x * self.attention(x)
'''), "residual"),
    Impl(CA, "forward applies g^h only", ca(rest=CA_ATT + '''
    def forward(self, x):
        return x * self.gates(x)[0]
'''), "one_gate"),
    Impl(CA, "forward returns the map", ca(rest=CA_ATT + '''
    def forward(self, x):
        return self.attention(x)
'''), "returns_map"),
    Impl(CA, "gates detached", ca(rest=CA_ATT + '''
    def forward(self, x):
        return x * self.attention(x).detach()
'''), "no_grad"),
    Impl(CA, "other names (conv_a, norm, ...)", ca(init='''
        m = max(8, channels // reduction)
        self.conv_a = nn.Conv2d(channels, m, 1)
        self.norm = nn.BatchNorm2d(m)
        self.act = nn.Hardswish()
        self.fh = nn.Conv2d(m, channels, 1)
        self.fw = nn.Conv2d(m, channels, 1)
''', gates=ca_gates('''
        f = self.act(self.norm(self.conv_a(torch.cat([z_h, z_w], dim=2))))
        f_h, f_w = torch.split(f, [h, w], dim=2)
        return torch.sigmoid(self.fh(f_h)), torch.sigmoid(self.fw(f_w.transpose(2, 3)))
''')), "parameters"),
    Impl(CA, "untouched stub", ca(init='''
        raise NotImplementedError()
'''), "not_implemented"),
    # ============================================================ CoordinateAttention: valid
    Impl(CA, "cat, split, transpose (the reference's form)", ca()),
    Impl(CA, "the official form: adaptive pools, permute, h_swish written out, x * a_w * a_h", ca(gates='''
    def gates(self, x):
        n, c, h, w = x.size()
        x_h = self.pool_h(x)
        x_w = self.pool_w(x).permute(0, 1, 3, 2)
        y = torch.cat([x_h, x_w], dim=2)
        y = self.bn1(self.conv1(y))
        y = y * F.relu6(y + 3) / 6
        x_h, x_w = torch.split(y, [h, w], dim=2)
        x_w = x_w.permute(0, 1, 3, 2)
        return self.conv_h(x_h).sigmoid(), self.conv_w(x_w).sigmoid()
''', init='''
        mip = max(8, channels // reduction)
        self.pool_h = nn.AdaptiveAvgPool2d((None, 1))
        self.pool_w = nn.AdaptiveAvgPool2d((1, None))
        self.conv1 = nn.Conv2d(channels, mip, kernel_size=1, stride=1, padding=0)
        self.bn1 = nn.BatchNorm2d(mip)
        self.conv_h = nn.Conv2d(mip, channels, kernel_size=1, stride=1, padding=0)
        self.conv_w = nn.Conv2d(mip, channels, kernel_size=1, stride=1, padding=0)
''', rest=CA_ATT + '''
    def forward(self, x):
        a_h, a_w = self.gates(x)
        return x * a_w * a_h
''')),
    Impl(CA, "columns first in the concatenation, split [W, H]", ca(gates=ca_gates('''
        f = self.act(self.bn1(self.conv1(torch.cat([z_w, z_h], dim=2))))
        f_w, f_h = torch.split(f, [w, h], dim=2)
        return torch.sigmoid(self.conv_h(f_h)), torch.sigmoid(self.conv_w(rearrange(f_w, "b m w 1 -> b m 1 w")))
'''))),
    Impl(CA, "einops throughout, slicing instead of split", ca(gates='''
    def gates(self, x):
        h = x.shape[2]
        z = torch.cat([reduce(x, "b c h w -> b c h 1", "mean"), reduce(x, "b c h w -> b c w 1", "mean")], dim=2)
        f = self.act(self.bn1(self.conv1(z)))
        g_h = torch.sigmoid(self.conv_h(f[:, :, :h]))
        g_w = torch.sigmoid(self.conv_w(rearrange(f[:, :, h:], "b m w 1 -> b m 1 w")))
        return g_h, g_w
''')),

    # ============================================================ attention_parameters: wrong
    Impl(COUNTS, "SE without biases", counts('''
    s = channels // 16
    m = max(8, channels // 32)
    return {"se": 2 * channels * s, "eca": adaptive_kernel_size(channels),
            "ca": 3 * channels * m + 3 * m + 2 * channels}
'''), "missing_bias"),
    Impl(COUNTS, "ECA with the official fixed k = 3", counts(RIGHT_COUNTS.replace(
        "adaptive_kernel_size(channels)", "3")), "fixed_kernel"),
    Impl(COUNTS, "ECA counted per channel", counts(RIGHT_COUNTS.replace(
        "adaptive_kernel_size(channels)", "channels * adaptive_kernel_size(channels)")), "per_channel_kernel"),
    Impl(COUNTS, "BatchNorm not counted", counts(RIGHT_COUNTS.replace("3 * m + 2 * channels", "m + 2 * channels")),
         "bn_not_counted"),
    Impl(COUNTS, "BatchNorm's running statistics counted", counts(RIGHT_COUNTS.replace(
        "3 * m + 2 * channels", "5 * m + 2 * channels")), "buffers_counted"),
    Impl(COUNTS, "CA width without the floor", counts(RIGHT_COUNTS.replace("max(8, channels // 32)", "channels // 32")),
         "min_hidden"),
    Impl(COUNTS, "one gate convolution", counts('''
    s = channels // 16
    m = max(8, channels // 32)
    return {"se": 2 * channels * s + s + channels, "eca": adaptive_kernel_size(channels),
            "ca": (channels * m + m) + 2 * m + (m * channels + channels)}
'''), "one_gate_conv"),
    Impl(COUNTS, "counts in thousands (floats)", counts('''
    s = channels // 16
    m = max(8, channels // 32)
    return {"se": (2 * channels * s + s + channels) / 1000, "eca": adaptive_kernel_size(channels),
            "ca": (3 * channels * m + 3 * m + 2 * channels) / 1000}
'''), "float_count"),
    Impl(COUNTS, "a tuple instead of a dict", counts('''
    s = channels // 16
    m = max(8, channels // 32)
    return (2 * channels * s + s + channels, adaptive_kernel_size(channels), 3 * channels * m + 3 * m + 2 * channels)
'''), "shape"),
    # ============================================================ attention_parameters: valid
    Impl(COUNTS, "the formulas", counts(RIGHT_COUNTS)),
    Impl(COUNTS, "counted from real layers", counts('''
    def n(*layers):
        return sum(p.numel() for layer in layers for p in layer.parameters())
    s, m, k = channels // 16, max(8, channels // 32), adaptive_kernel_size(channels)
    return {"se": n(nn.Conv2d(channels, s, 1), nn.Conv2d(s, channels, 1)),
            "eca": n(nn.Conv1d(1, 1, k, bias=False)),
            "ca": n(nn.Conv2d(channels, m, 1), nn.BatchNorm2d(m), nn.Conv2d(m, channels, 1), nn.Conv2d(m, channels, 1))}
''')),

    # ============================================================ questions
    Impl(Q_R50, "86", "q_eca_resnet50_parameters = 86\n"),
    Impl(Q_R50, "an integral float", "q_eca_resnet50_parameters = 86.0\n"),
    Impl(Q_R50, "a computed sum", "q_eca_resnet50_parameters = 3 * 5 + 4 * 5 + 6 * 5 + 3 * 7\n"),
    Impl(Q_R50, "the abstract's 80", "q_eca_resnet50_parameters = 80\n", "release_kernels"),
    Impl(Q_R50, "16 blocks of k = 3", "q_eca_resnet50_parameters = 48\n", "fixed_kernel"),
    Impl(Q_R50, "psi on the bottleneck widths", "q_eca_resnet50_parameters = 74\n", "bottleneck_width"),
    Impl(Q_R50, "one module per stage", "q_eca_resnet50_parameters = 22\n", "per_stage"),
    Impl(Q_R50, "a string", "q_eca_resnet50_parameters = 'eighty-six'\n", "answer_form"),
    Impl(Q_R50, "unanswered", "q_eca_resnet50_parameters = None\n", "unanswered"),
    Impl(Q_WHY, "'ac'", "q_why_no_reduction = 'ac'\n"),
    Impl(Q_WHY, "a set, upper case", "q_why_no_reduction = {'C', 'A'}\n"),
    Impl(Q_WHY, "a list with commas as a string", "q_why_no_reduction = 'a, c'\n"),
    Impl(Q_WHY, "a alone", "q_why_no_reduction = 'a'\n", "missing_choice"),
    Impl(Q_WHY, "c alone", "q_why_no_reduction = 'c'\n", "missing_choice"),
    Impl(Q_WHY, "with b", "q_why_no_reduction = 'abc'\n", "extra_choice"),
    Impl(Q_WHY, "with d", "q_why_no_reduction = 'acd'\n", "extra_choice"),
    Impl(Q_WHY, "with e (a plausible set one statement too large)", "q_why_no_reduction = 'ace'\n", "extra_choice"),
    Impl(Q_WHY, "not an option", "q_why_no_reduction = 'az'\n", "answer_form"),
    Impl(Q_SHAPE, "a tuple", "q_shared_shape = (2, 8, 32, 1)\n"),
    Impl(Q_SHAPE, "a list", "q_shared_shape = [2, 8, 32, 1]\n"),
    Impl(Q_SHAPE, "a torch.Size", "q_shared_shape = torch.Size([2, 8, 32, 1])\n"),
    Impl(Q_SHAPE, "no floor on M", "q_shared_shape = (2, 2, 32, 1)\n", "min_hidden"),
    Impl(Q_SHAPE, "H x W positions", "q_shared_shape = (2, 8, 240, 1)\n", "shape"),
    Impl(Q_SHAPE, "C channels", "q_shared_shape = (2, 64, 32, 1)\n", "shape"),
    Impl(Q_SHAPE, "a number", "q_shared_shape = 512\n", "answer_form"),
]

# Mixed precision (issue 29): gates() refuses a bfloat16 input meeting float32 weights (torch.autocast)
IMPLS += [Impl(CA, "a dtype guard that refuses mixed precision", ca(gates=RIGHT_GATES.replace(
    "        h, w = x.shape[2:]\n",
    "        h, w = x.shape[2:]\n        assert x.dtype == self.conv1.weight.dtype, 'input and weights differ in dtype'\n")),
    "autocast")]

# issue 27: the BatchNorm in training mode on loaded weights, and a default probed where it matters
IMPLS += [
    Impl(CA, "bn1 run per direction: the rows and the columns normalised with their own statistics", ca(
        gates=ca_gates('''
        f_h = self.act(self.bn1(self.conv1(z_h)))
        f_w = self.act(self.bn1(self.conv1(z_w)))
        return torch.sigmoid(self.conv_h(f_h)), torch.sigmoid(self.conv_w(f_w.transpose(2, 3)))
''')), "bn_per_branch"),
    Impl(CA, "attention calls gates twice: bn1's running statistics move twice per forward", ca(rest='''
    def attention(self, x):
        return self.gates(x)[0] * self.gates(x)[1]
''' + CA_FORWARD), "bn_twice"),
    Impl(CA, "bn1 forced to batch statistics (F.batch_norm with training=True)", ca(gates=ca_gates('''
        f = self.conv1(torch.cat([z_h, z_w], dim=2))
        f = self.act(F.batch_norm(f, None, None, self.bn1.weight, self.bn1.bias, training=True))
        f_h, f_w = torch.split(f, [h, w], dim=2)
        return torch.sigmoid(self.conv_h(f_h)), torch.sigmoid(self.conv_w(f_w.transpose(2, 3)))
''')), "bn_forced_train"),
    Impl(CA, "default reduction=16 (hidden at C = 64 by the floor of 8)", ca(signature="channels, reduction=16"),
         "default_args"),
    Impl(CA, "bn1 with Keras's momentum=0.9 (the weight of the old statistics): running statistics off",
         ca(init=CA_INIT.replace("nn.BatchNorm2d(m)", "nn.BatchNorm2d(m, momentum=0.9)")), "bn_statistics"),
]

# issue 27: the pooling helper's own protections (device watch, memory layouts), so that its own points are lost
IMPLS += [
    Impl(POOL, "means as products with a ones vector made on the CPU", '''
def directional_pool(x):
    h, w = x.shape[2:]
    z_h = x @ (torch.ones(w, 1, dtype=x.dtype) / w)
    z_w = x.transpose(2, 3) @ (torch.ones(h, 1, dtype=x.dtype) / h)
    return z_h, z_w
''', "cpu_constant"),
    Impl(POOL, "rows flattened with view: breaks on a channels_last input", '''
def directional_pool(x):
    b, c, h, w = x.shape
    z_h = x.view(b * c * h, w).mean(1).view(b, c, h, 1)
    z_w = x.transpose(2, 3).reshape(b * c * w, h).mean(1).view(b, c, w, 1)
    return z_h, z_w
''', "memory_layout"),
    Impl(POOL, "means computed in float32, cast back to x's dtype", '''
def directional_pool(x):
    z_h = x.float().mean(3, keepdim=True).to(x.dtype)
    z_w = x.float().mean(2, keepdim=True).transpose(2, 3).to(x.dtype)
    return z_h, z_w
''', "float32_inside"),
    Impl(POOL, "means as products with ones vectors on x's device", '''
def directional_pool(x):
    h, w = x.shape[2:]
    z_h = x @ x.new_full((w, 1), 1 / w)
    z_w = x.transpose(2, 3) @ x.new_full((h, 1), 1 / h)
    return z_h, z_w
'''),
]

# issue 26: x.max(dim) used as a tensor (it returns (values, indices)): named, not a raw TypeError
IMPLS += [
    Impl(POOL, "z_h = x.max(3, keepdim=True): a (values, indices) tuple returned as a tensor", '''
def directional_pool(x):
    return x.max(3, keepdim=True), x.mean(2, keepdim=True).transpose(2, 3)
''', "tuple_as_tensor"),
]

# issue 26: what exercises 2 and 4 say is graded, held to the checks: float64 compared at float64 precision
IMPLS += [
    Impl(ECA, "the gate computed in float32 and cast back to x's dtype", '''
def adaptive_kernel_size(channels, gamma=2, b=1):
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1

class EfficientChannelAttention(nn.Module):
    def __init__(self, channels, kernel_size=None, *, gamma=2, b=1):
        super().__init__()
        k = adaptive_kernel_size(channels, gamma, b) if kernel_size is None else kernel_size
        self.conv = nn.Conv1d(1, 1, k, padding=(k - 1) // 2, bias=False)

    def attention(self, x):
        b, c = x.shape[:2]
        y = x.float().mean((2, 3)).reshape(b, 1, c)
        gate = torch.sigmoid(F.conv1d(y, self.conv.weight.float(), padding=self.conv.padding))
        return gate.reshape(b, c, 1, 1).to(x.dtype)

    def forward(self, x):
        return x * self.attention(x)
''', "float32_inside"),
    Impl(CA, "forward computed in float32 and cast back to x's dtype", ca(rest=CA_ATT + '''
    def forward(self, x):
        return (x.float() * self.attention(x).float()).to(x.dtype)
'''), "float32_inside"),
]

# trial t78: wrong answers that passed, misnamed and generic ones, now named
IMPLS += [
    Impl(KERNEL, "the kernel size returned as a 0-d tensor", psi('''
    t = int(abs((math.log2(channels) + b) / gamma))
    return torch.tensor(t if t % 2 else t + 1)
'''), "kernel_type"),
    Impl(KERNEL, "an even floor of t goes down to the odd number below", psi('''
    k = int((math.log2(channels) + b) / gamma)
    return k if k % 2 else k - 1
'''), "odd_down"),
    Impl(KERNEL, "b added after the division by gamma", psi('''
    t = int(math.log2(channels) / gamma + b)
    return t if t % 2 else t + 1
'''), "b_misplaced"),
    Impl(KERNEL, "default gamma = 1 in the signature", '''
def adaptive_kernel_size(channels, gamma=1, b=1):
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1
''', "default_args"),
    Impl(ECA, "padding k - 1 on both sides: the convolution lengthens the channel signal", eca(ECA_GATE, init='''
        if kernel_size is None:
            kernel_size = adaptive_kernel_size(channels, gamma, b)
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=kernel_size - 1, bias=False)
'''), "conv_padding"),
    Impl(CA, "M = max(8, ceil(C / r)): the width rounded up", ca(init=CA_INIT.replace(
        "m = max(8, channels // reduction)", "m = max(8, math.ceil(channels / reduction))")), "width_round_up"),
    Impl(CA, "SiLU for h_swish (the README's tip)", ca(init=CA_INIT.replace("nn.Hardswish()", "nn.SiLU()")),
         "activation_silu"),
    Impl(CA, "bn1 with eps 1e-3", ca(init=CA_INIT.replace("nn.BatchNorm2d(m)", "nn.BatchNorm2d(m, eps=1e-3)")),
         "bn_eps"),
    Impl(CA, "f split back as [W, H]", ca(gates=RIGHT_GATES.replace(
        "f_h, f_w = torch.split(f, [h, w], dim=2)", "f_w, f_h = torch.split(f, [w, h], dim=2)")), "split_order"),
    Impl(KERNEL, "valid: a numpy integer", psi('''
    import numpy as np
    t = np.int64((math.log2(channels) + b) / gamma)
    return t if t % 2 else t + 1
''')),
]

# trial t78 (r2): a pool cut from the graph passed exercise 3; misnamed and generic answers, now named
IMPLS += [
    Impl(POOL, "the means taken of x.detach()", '''
def directional_pool(x):
    x = x.detach()
    return x.mean(3, keepdim=True), x.mean(2, keepdim=True).transpose(2, 3)
''', "no_grad"),
    Impl(POOL, "the means computed under torch.no_grad()", '''
def directional_pool(x):
    with torch.no_grad():
        return x.mean(3, keepdim=True), x.mean(2, keepdim=True).transpose(2, 3)
''', "no_grad"),
    Impl(POOL, "median of each row and column", '''
def directional_pool(x):
    return x.median(3, keepdim=True).values, x.median(2, keepdim=True).values.transpose(2, 3)
''', "median_pool"),
    Impl(KERNEL, "b subtracted: t = (log2 C - b) / gamma", psi('''
    t = int(abs((math.log2(channels) - b) / gamma))
    return t if t % 2 else t + 1
'''), "b_sign"),
    # trial t78 (r3): was a bare ZeroDivisionError ("crash") at b = 0
    Impl(KERNEL, "gamma and b trade places: t = (log2 C + gamma) / b", psi('''
    t = int((math.log2(channels) + gamma) / b)
    return t if t % 2 else t + 1
'''), "divides_by_b"),
    Impl(ECA, "the channel summary is a sum over H and W", eca(ECA_GATE.replace("x.mean((2, 3))", "x.sum((2, 3))")),
         "sum_pool"),
    Impl(ECA, "the sigmoid before the convolution", eca(ECA_GATE.replace(
        "torch.sigmoid(self.conv(y))", "self.conv(torch.sigmoid(y))")), "sigmoid_order"),
    Impl(CA, "h_swish before bn1", ca(gates=RIGHT_GATES.replace(
        "self.act(self.bn1(self.conv1(", "self.bn1(self.act(self.conv1(")), "activation_order"),
    Impl(CA, "a hard sigmoid as the non-linearity", ca(init=CA_INIT.replace("nn.Hardswish()", "nn.Hardsigmoid()")),
         "activation"),
    Impl(CA, "GELU as the non-linearity", ca(init=CA_INIT.replace("nn.Hardswish()", "nn.GELU()")), "activation"),
    Impl(COUNTS, "SE's first bias counted with C entries", counts(RIGHT_COUNTS.replace(
        '"se": 2 * channels * s + s + channels', '"se": 2 * channels * s + 2 * channels')), "se_bias_size"),
    Impl(COUNTS, "ECA's kernel counted as k * k", counts(RIGHT_COUNTS.replace(
        '"eca": adaptive_kernel_size(channels)', '"eca": adaptive_kernel_size(channels) ** 2')), "kernel_squared"),
    Impl(COUNTS, "CA's conv1 counted without its bias", counts(RIGHT_COUNTS.replace(
        '"ca": 3 * channels * m + 3 * m + 2 * channels', '"ca": 3 * channels * m + 2 * m + 2 * channels')),
         "ca_vector_missing"),
    Impl(COUNTS, "widths rounded up (C = 300)", counts(RIGHT_COUNTS.replace(
        "s = channels // 16", "s = -(-channels // 16)").replace("m = max(8, channels // 32)",
                                                                  "m = max(8, -(-channels // 32))")), "width_round_up"),
]
