"""Chapter 01 (Squeeze-and-Excitation): what students and popular copies write, wrong and right.

Every source defines the exercise's symbol given catalog.PRELUDE (torch, nn, F, einops); each is
self-contained, so the same text can be pasted into the notebook's solution cell.
"""
from __future__ import annotations

from catalog import Exercise, Impl, question
from course_lib.checks import ch01_se as visible
from course_lib.checks.ch01_se import check_se, check_se_parameter_count, check_seresnet50_extra_parameters
from course_lib.hidden import ch01_se as hidden
from course_lib.hidden.ch01_se import hidden_se, hidden_se_parameter_count, hidden_seresnet50_extra_parameters

SE = Exercise("01_se", "SqueezeExcitation", "SqueezeExcitation", check_se, hidden_se,
              "se_solution", "test_se")
COUNT = Exercise("01_se", "se_parameter_count", "se_parameter_count", check_se_parameter_count,
                 hidden_se_parameter_count, "se_parameter_count_solution", "test_se_parameter_count")
RESNET = Exercise("01_se", "seresnet50_extra_parameters", "seresnet50_extra_parameters",
                  check_seresnet50_extra_parameters, hidden_seresnet50_extra_parameters,
                  "seresnet50_solution", "test_seresnet50")
Q_W1, Q_SOFTMAX, Q_STAGE = (question("01_se", visible, hidden, q) for q in
                            ("q_w1_shape", "q_softmax_scale", "q_stage_params"))
EXERCISES = [SE, COUNT, RESNET, Q_W1, Q_SOFTMAX, Q_STAGE]


def se(body: str, init: str | None = None) -> str:
    """A SqueezeExcitation made of 1x1 convolutions with bias, with ``attention`` (and more) replaced."""
    init = init or """
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1)
"""
    return f"""
class SqueezeExcitation(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
{init.strip(chr(10))}
{body.strip(chr(10))}
"""


CONV_GATE = """
    def attention(self, x):
        return torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True)))))
"""
FORWARD = """
    def forward(self, x):
        return x * self.attention(x)
"""


def gate(expression: str) -> str:
    """An attention() whose body is ``return <expression>`` (z is the squeezed input)."""
    return f"""
    def attention(self, x):
        z = x.mean((2, 3), keepdim=True)
        return {expression}
"""


IMPLS = [
    # ---------------------------------------------------------------- SqueezeExcitation: wrong
    Impl(SE, "bias-free Linear layers (moskomule/senet.pytorch)", """
class SqueezeExcitation(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Linear(channels, channels // reduction, bias=False), nn.ReLU(inplace=True),
                                nn.Linear(channels // reduction, channels, bias=False), nn.Sigmoid())

    def attention(self, x):
        b, c, _, _ = x.shape
        return self.fc(self.pool(x).view(b, c)).view(b, c, 1, 1)

    def forward(self, x):
        return x * self.attention(x).expand_as(x)
""", "missing_bias"),
    Impl(SE, "bias-free 1x1 convolutions (External-Attention style)",
         se(CONV_GATE + FORWARD, init="""
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)
"""), "missing_bias"),
    Impl(SE, "bias only in the first layer",
         se(CONV_GATE + FORWARD, init="""
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)
"""), "missing_bias"),
    Impl(SE, "reduction ignored: hidden width channels // 16",
         se(CONV_GATE + FORWARD, init="""
        self.fc1 = nn.Conv2d(channels, channels // 16, 1)
        self.fc2 = nn.Conv2d(channels // 16, channels, 1)
"""), "reduction_ignored"),
    Impl(SE, "hidden width C / r, a float", se(CONV_GATE + FORWARD, init="""
        self.fc1 = nn.Conv2d(channels, channels / reduction, 1)
        self.fc2 = nn.Conv2d(channels / reduction, channels, 1)
"""), "float_count", extra={"visible": True}),
    Impl(SE, "hidden width rounded up with math.ceil", se(CONV_GATE + FORWARD, init="""
        self.fc1 = nn.Conv2d(channels, math.ceil(channels / reduction), 1)
        self.fc2 = nn.Conv2d(math.ceil(channels / reduction), channels, 1)
"""), "hidden_width", extra={"visible": True}),
    Impl(SE, "squeeze over the batch: one (1, C, 1, 1) gate for all images", se("""
    def attention(self, x):
        z = x.mean((0, 2, 3), keepdim=True)
        return torch.sigmoid(self.fc2(F.relu(self.fc1(z))))
""" + FORWARD), "batch_mean", extra={"visible": True}),
    Impl(SE, "forward multiplies x by a (B, C) gate", se(CONV_GATE + """
    def forward(self, x):
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True)))))
        return x * s.flatten(1)
"""), "shape", extra={"visible": True}),
    Impl(SE, "softmax over channels instead of sigmoid",
         se(gate("torch.softmax(self.fc2(F.relu(self.fc1(z))), dim=1)") + FORWARD), "softmax_gate",
         extra={"visible": True}),
    Impl(SE, "softmax over a size-1 axis (all ones)",
         se(gate("F.softmax(self.fc2(F.relu(self.fc1(z))), dim=-1)") + FORWARD), "softmax_gate"),
    Impl(SE, "no sigmoid", se(gate("self.fc2(F.relu(self.fc1(z)))") + FORWARD), "missing_sigmoid"),
    Impl(SE, "tanh instead of sigmoid", se(gate("torch.tanh(self.fc2(F.relu(self.fc1(z))))") + FORWARD),
         "missing_sigmoid"),
    Impl(SE, "ReLU after the last layer",
         se(gate("torch.sigmoid(F.relu(self.fc2(F.relu(self.fc1(z)))))") + FORWARD), "relu_after_last"),
    Impl(SE, "no ReLU between the layers", se(gate("torch.sigmoid(self.fc2(self.fc1(z)))") + FORWARD),
         "missing_relu"),
    Impl(SE, "max pooling as the squeeze", se("""
    def attention(self, x):
        z = x.amax((2, 3), keepdim=True)
        return torch.sigmoid(self.fc2(F.relu(self.fc1(z))))
""" + FORWARD), "max_squeeze"),
    Impl(SE, "Linear gate transposed before the reshape", """
class SqueezeExcitation(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        self.fc1 = nn.Linear(channels, channels // reduction)
        self.fc2 = nn.Linear(channels // reduction, channels)

    def attention(self, x):
        b, c = x.shape[:2]
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3))))))
        return s.t().reshape(b, c, 1, 1)

    def forward(self, x):
        return x * self.attention(x)
""", "gate_layout"),
    Impl(SE, "squeeze over the batch too", se("""
    def attention(self, x):
        z = x.mean((0, 2, 3), keepdim=True)
        return torch.sigmoid(self.fc2(F.relu(self.fc1(z)))).expand(x.shape[0], -1, -1, -1)
""" + FORWARD), "batch_mean"),
    Impl(SE, "pooling kernel with H and W swapped", se("""
    def attention(self, x):
        z = F.avg_pool2d(x, (x.shape[3], x.shape[2]))
        return torch.sigmoid(self.fc2(F.relu(self.fc1(z))))
""" + FORWARD), "pool_kernel"),
    Impl(SE, "gate detached from the graph", se(gate("torch.sigmoid(self.fc2(F.relu(self.fc1(z)))).detach()") + FORWARD),
         "no_grad"),
    Impl(SE, "a ones tensor made on the CPU in forward", se(CONV_GATE + """
    def forward(self, x):
        return x * self.attention(x) * torch.ones(x.shape[2:])
"""), "cpu_constant"),
    Impl(SE, "a scale kept in a plain tensor attribute", se(CONV_GATE + """
    def forward(self, x):
        return x * self.attention(x) * self.scale
""", init="""
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1)
        self.scale = torch.ones(channels, 1, 1)
"""), "tensor_attribute"),
    Impl(SE, "a float32 constant inside", se(gate("torch.sigmoid(self.fc2(F.relu(self.fc1(z))) * torch.tensor(1 / 3) * 3)")
                                             + FORWARD), "float32_inside", extra={"visible": True}),
    Impl(SE, "the excitation computed in float32, cast back", se(gate(
        "torch.sigmoid(self.fc2.float()(F.relu(self.fc1.float()(z.float())))).to(x.dtype)") + FORWARD),
         "float32_inside", extra={"visible": True}),
    Impl(SE, "valid: a scale registered as a buffer, a CPU scalar", se(CONV_GATE + """
    def forward(self, x):
        return x * self.attention(x) * self.scale * torch.tensor(1.0)
""", init="""
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1)
        self.register_buffer("scale", torch.ones(channels, 1, 1))
""")),
    Impl(SE, "squeeze over the channel axis", se("""
    def attention(self, x):
        z = x.mean(1, keepdim=True)
        return torch.sigmoid(self.fc2(F.relu(self.fc1(z))))
""" + FORWARD), "pool_axis"),
    Impl(SE, "squeeze without keepdim before 1x1 convolutions", se("""
    def attention(self, x):
        z = x.mean((2, 3))
        return torch.sigmoid(self.fc2(F.relu(self.fc1(z))))
""" + FORWARD), "keepdim"),
    Impl(SE, "Linear gate left as (B, C)", """
class SqueezeExcitation(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        self.fc1 = nn.Linear(channels, channels // reduction)
        self.fc2 = nn.Linear(channels // reduction, channels)

    def attention(self, x):
        return torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3))))))

    def forward(self, x):
        return x * self.attention(x)[:, :, None, None]
""", "shape"),
    Impl(SE, "forward returns the gate", se(CONV_GATE + """
    def forward(self, x):
        return self.attention(x)
"""), "returns_map"),
    Impl(SE, "forward adds the gate", se(CONV_GATE + """
    def forward(self, x):
        return x + self.attention(x)
"""), "gate_added"),
    Impl(SE, "forward scales x in place", se(CONV_GATE + """
    def forward(self, x):
        x *= self.attention(x)
        return x
"""), "inplace"),
    Impl(SE, "gate detached from the graph", se(CONV_GATE + """
    def forward(self, x):
        return x * self.attention(x).detach()
"""), "no_grad"),
    Impl(SE, "hard-coded .cuda()", se(CONV_GATE + """
    def forward(self, x):
        return x * self.attention(x).cuda()
"""), "device"),
    Impl(SE, "a ones tensor made with an explicit device='cpu' in forward (a student trial's)", se(CONV_GATE + """
    def forward(self, x):
        return x * self.attention(x) * torch.ones(1, 1, 1, 1, device="cpu")
"""), "cpu_constant"),
    Impl(SE, ".cuda() behind torch.cuda.is_available() in forward (never run on a CPU)", se(CONV_GATE + """
    def forward(self, x):
        gate = self.attention(x)
        if torch.cuda.is_available():
            gate = gate.cuda()
        return x * gate
"""), "device"),
    # training mode and an up-cast (a second student trial): each passed the eval-only, float64-only checks
    Impl(SE, "a Dropout(0.5) between the ReLU and fc2", se("""
    def attention(self, x):
        z = x.mean((2, 3), keepdim=True)
        return torch.sigmoid(self.fc2(self.drop(F.relu(self.fc1(z)))))
""" + FORWARD, init="""
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1)
        self.drop = nn.Dropout(0.5)
"""), "train_mode"),
    Impl(SE, "the output doubled in training mode (reads self.training)", se(CONV_GATE + """
    def forward(self, x):
        return x * self.attention(x) * (2 if self.training else 1)
"""), "train_mode"),
    Impl(SE, "forward returns float64 for any input (.double())", se(CONV_GATE + """
    def forward(self, x):
        return (x * self.attention(x)).double()
"""), "dtype_upcast"),
    Impl(SE, "gate moved to the CPU with .cpu() in forward", se(CONV_GATE + """
    def forward(self, x):
        return x * self.attention(x).cpu()
"""), "device"),
    Impl(SE, "gate moved with .to('cpu') in forward", se(CONV_GATE + """
    def forward(self, x):
        return x * self.attention(x).to("cpu")
"""), "device"),
    Impl(SE, "squeeze moved with .to(torch.device('cpu'))", se(gate(
        "torch.sigmoid(self.fc2(F.relu(self.fc1(z.to(torch.device('cpu'))))))") + FORWARD), "device"),
    Impl(SE, "hard-coded float32 gate", se("""
    def attention(self, x):
        z = x.mean((2, 3), keepdim=True)
        return torch.sigmoid(self.fc2(F.relu(self.fc1(z)))).to(torch.float32)
""" + FORWARD), "dtype", extra={"visible": True}),
    Impl(SE, "hard-coded float32 squeeze", se("""
    def attention(self, x):
        z = x.mean((2, 3), keepdim=True).float()
        return torch.sigmoid(self.fc2(F.relu(self.fc1(z))))
""" + FORWARD), "dtype"),
    Impl(SE, "default reduction 8", """
class SqueezeExcitation(nn.Module):
    def __init__(self, channels, reduction=8):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1)
""" + CONV_GATE + FORWARD, "default_args"),
    Impl(SE, "BatchNorm inside the excitation", se("""
    def attention(self, x):
        z = x.mean((2, 3), keepdim=True)
        return torch.sigmoid(self.fc2(F.relu(self.bn(self.fc1(z)))))
""" + FORWARD, init="""
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1)
        self.bn = nn.BatchNorm2d(channels // reduction)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1)
"""), "extra_layer"),
    Impl(SE, "layers 512 channels wide whatever channels is", se(CONV_GATE + FORWARD, init="""
        self.fc1 = nn.Conv2d(512, 512 // reduction, 1)
        self.fc2 = nn.Conv2d(512 // reduction, 512, 1)
"""), "channels_ignored"),
    Impl(SE, "a sigmoid between the layers too", se(gate("torch.sigmoid(self.fc2(torch.sigmoid(self.fc1(z))))")
                                                     + FORWARD), "sigmoid_hidden"),
    Impl(SE, "the squeeze sums over H and W", se("""
    def attention(self, x):
        z = x.sum((2, 3), keepdim=True)
        return torch.sigmoid(self.fc2(F.relu(self.fc1(z))))
""" + FORWARD), "sum_squeeze"),
    Impl(SE, "F.hardsigmoid as the gate", se(gate("F.hardsigmoid(self.fc2(F.relu(self.fc1(z))))") + FORWARD),
         "hard_sigmoid"),
    Impl(SE, "x.view(b * c, -1) for the squeeze: breaks on channels_last (hidden tests)", se("""
    def attention(self, x):
        b, c = x.shape[:2]
        z = x.view(b * c, -1).mean(-1).view(b, c, 1, 1)
        return torch.sigmoid(self.fc2(F.relu(self.fc1(z))))
""" + FORWARD), "shape"),  # the view's own error, named as a layout the .view() cannot merge
    Impl(SE, "BatchNorm without affine parameters in the excitation (a student trial's)", se("""
    def attention(self, x):
        z = x.mean((2, 3), keepdim=True)
        return torch.sigmoid(self.fc2(F.relu(self.bn(self.fc1(z)))))
""" + FORWARD, init="""
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1)
        self.bn = nn.BatchNorm2d(channels // reduction, affine=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1)
"""), "extra_layer"),
    Impl(SE, "timm-style hidden width rounded to a multiple of 8 (a student trial's)", se(CONV_GATE + FORWARD, init="""
        hidden = max(8, int(channels / reduction + 4) // 8 * 8)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)
"""), "divisible_width"),
    Impl(SE, "tanh between the layers (a student trial's)", se(gate("torch.sigmoid(self.fc2(torch.tanh(self.fc1(z))))")
                                                                + FORWARD), "tanh_hidden"),
    Impl(SE, "standard deviation as the squeeze (a student trial's)", se("""
    def attention(self, x):
        z = x.std((2, 3), keepdim=True)
        return torch.sigmoid(self.fc2(F.relu(self.fc1(z))))
""" + FORWARD), "std_squeeze"),
    Impl(SE, "the first image's gate for every image (a student trial's)", se(CONV_GATE + """
    def forward(self, x):
        return x * self.attention(x)[0]
"""), "first_image_gate"),
    Impl(SE, "the first image's gate returned by attention for every image", se(gate(
        "torch.sigmoid(self.fc2(F.relu(self.fc1(z))))[:1].expand(x.shape[0], -1, -1, -1)") + FORWARD),
         "first_image_gate"),
    Impl(SE, "sigmoid applied again in forward (a student trial's)", se(CONV_GATE + """
    def forward(self, x):
        return x * torch.sigmoid(self.attention(x))
"""), "double_sigmoid"),
    Impl(SE, "sigmoid twice in attention", se(gate("torch.sigmoid(torch.sigmoid(self.fc2(F.relu(self.fc1(z)))))")
                                              + FORWARD), "double_sigmoid"),
    Impl(SE, "untouched stub", """
class SqueezeExcitation(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        raise NotImplementedError()
""", "not_implemented"),

    # ---------------------------------------------------------------- SqueezeExcitation: valid
    Impl(SE, "valid: tensors placed with .to(x.device), .to(x), .type_as(x) and .to(dtype)", se(gate(
        "torch.sigmoid(self.fc2(F.relu(self.fc1(z.to(x.device).to(x).type_as(x).to(x.dtype)))))") + """
    def forward(self, x):
        return x * self.attention(x).to(device=x.device)
""")),
    Impl(SE, "1x1 convolutions with bias, mean over (2, 3)", se(CONV_GATE + FORWARD)),
    Impl(SE, "Linear with bias and einops", """
class SqueezeExcitation(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        self.fc1 = nn.Linear(channels, channels // reduction)
        self.fc2 = nn.Linear(channels // reduction, channels)

    def attention(self, x):
        z = reduce(x, "b c h w -> b c", "mean")
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(z))))
        return rearrange(s, "b c -> b c 1 1")

    def forward(self, x):
        return x * self.attention(x)
"""),
    Impl(SE, "AdaptiveAvgPool2d, view and a Sequential with inplace ReLU and Sigmoid", """
class SqueezeExcitation(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        self.squeeze = nn.AdaptiveAvgPool2d(1)
        self.excite = nn.Sequential(nn.Linear(channels, channels // reduction), nn.ReLU(inplace=True),
                                    nn.Linear(channels // reduction, channels), nn.Sigmoid())

    def attention(self, x):
        b, c, _, _ = x.shape
        return self.excite(self.squeeze(x).view(b, c)).view(b, c, 1, 1)

    def forward(self, x):
        return x * self.attention(x).expand_as(x)
"""),
    Impl(SE, "raw parameters with einsum", """
class SqueezeExcitation(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        hidden = channels // reduction
        self.w1 = nn.Parameter(torch.randn(hidden, channels) / math.sqrt(channels))
        self.b1 = nn.Parameter(torch.zeros(hidden))
        self.w2 = nn.Parameter(torch.randn(channels, hidden) / math.sqrt(hidden))
        self.b2 = nn.Parameter(torch.zeros(channels))

    def attention(self, x):
        z = x.mean(-1).mean(-1)                                      # (B, C)
        hidden = F.relu(torch.einsum("bc,hc->bh", z, self.w1) + self.b1)
        s = torch.sigmoid(torch.einsum("bh,ch->bc", hidden, self.w2) + self.b2)
        return s[:, :, None, None]

    def forward(self, x):
        return x * self.attention(x)
"""),
    Impl(SE, "F.adaptive_avg_pool2d, forward recomputes the gate inline", se("""
    def attention(self, x):
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))

    def forward(self, x):
        s = self.fc2(torch.relu(self.fc1(F.adaptive_avg_pool2d(x, 1))))
        return torch.sigmoid(s) * x
""")),
    Impl(SE, "extra harmless attributes and a buffer", se(CONV_GATE + FORWARD, init="""
        self.channels = channels
        self.reduction = reduction
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1)
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1)
        self.gate = nn.Sigmoid()
""")),

    # ---------------------------------------------------------------- se_parameter_count
    Impl(COUNT, "without biases", """
def se_parameter_count(channels, reduction=16):
    return 2 * channels * (channels // reduction)
""", "missing_bias"),
    Impl(COUNT, "true division", """
def se_parameter_count(channels, reduction=16):
    return 2 * channels * channels / reduction + channels / reduction + channels
""", "float_count"),
    Impl(COUNT, "16 whatever the reduction", """
def se_parameter_count(channels, reduction=16):
    hidden = channels // 16
    return 2 * channels * hidden + hidden + channels
""", "reduction_ignored"),
    Impl(COUNT, "hidden width rounded up", """
def se_parameter_count(channels, reduction=16):
    hidden = math.ceil(channels / reduction)
    return 2 * channels * hidden + hidden + channels
""", "hidden_width", extra={"visible": True}),
    Impl(COUNT, "one layer counted", """
def se_parameter_count(channels, reduction=16):
    hidden = channels // reduction
    return channels * hidden + hidden
""", "param_count"),
    Impl(COUNT, "true division for the hidden width", """
def se_parameter_count(channels, reduction=16):
    hidden = channels / reduction
    return 2 * channels * hidden + hidden + channels
""", "float_count"),
    Impl(COUNT, "true division, int() at the end", """
def se_parameter_count(channels, reduction=16):
    return int(2 * channels * (channels / reduction) + channels / reduction + channels)
""", "floor_late"),
    Impl(COUNT, "2 C^2 // r for the weights", """
def se_parameter_count(channels, reduction=16):
    return 2 * channels * channels // reduction + channels // reduction + channels
""", "floor_late"),
    Impl(COUNT, "C' biases for both layers", """
def se_parameter_count(channels, reduction=16):
    hidden = channels // reduction
    return 2 * channels * hidden + 2 * hidden
""", "bias_count"),
    Impl(COUNT, "default reduction 8", """
def se_parameter_count(channels, reduction=8):
    hidden = channels // reduction
    return 2 * channels * hidden + hidden + channels
""", "default_args"),
    Impl(COUNT, "a numpy integer", """
import numpy as np

def se_parameter_count(channels, reduction=16):
    hidden = np.int64(channels) // reduction
    return 2 * channels * hidden + hidden + channels
"""),
    Impl(COUNT, "an integral 0-d tensor", """
def se_parameter_count(channels, reduction=16):
    layers = nn.Sequential(nn.Conv2d(channels, channels // reduction, 1), nn.Conv2d(channels // reduction, channels, 1))
    return torch.stack([torch.tensor(p.numel()) for p in layers.parameters()]).sum()
"""),
    Impl(COUNT, "the formula with floor division", """
def se_parameter_count(channels, reduction=16):
    hidden = channels // reduction
    return 2 * channels * hidden + hidden + channels
"""),
    Impl(COUNT, "counted from real layers", """
def se_parameter_count(channels, reduction=16):
    layers = nn.Sequential(nn.Conv2d(channels, channels // reduction, 1), nn.Conv2d(channels // reduction, channels, 1))
    return sum(p.numel() for p in layers.parameters())
"""),

    # ---------------------------------------------------------------- seresnet50_extra_parameters
    Impl(RESNET, "without biases", """
RESNET50_STAGES = [(3, 256), (4, 512), (6, 1024), (3, 2048)]

def seresnet50_extra_parameters(reduction=16):
    return sum(blocks * 2 * c * (c // reduction) for blocks, c in RESNET50_STAGES)
""", "missing_bias"),
    Impl(RESNET, "one SE block per stage", """
RESNET50_STAGES = [(3, 256), (4, 512), (6, 1024), (3, 2048)]

def seresnet50_extra_parameters(reduction=16):
    return sum(2 * c * (c // reduction) + c // reduction + c for _, c in RESNET50_STAGES)
""", "se_per_stage"),
    Impl(RESNET, "the bottleneck's inner width", """
def seresnet50_extra_parameters(reduction=16):
    total = 0
    for blocks, width in [(3, 64), (4, 128), (6, 256), (3, 512)]:
        h = width // reduction
        total += blocks * (2 * width * h + h + width)
    return total
""", "bottleneck_width"),
    Impl(RESNET, "the whole network's count", """
RESNET50_STAGES = [(3, 256), (4, 512), (6, 1024), (3, 2048)]

def seresnet50_extra_parameters(reduction=16):
    return 25_557_032 + sum(b * (2 * c * (c // reduction) + c // reduction + c) for b, c in RESNET50_STAGES)
""", "whole_network"),
    Impl(RESNET, "default reduction 8", """
RESNET50_STAGES = [(3, 256), (4, 512), (6, 1024), (3, 2048)]

def seresnet50_extra_parameters(reduction=8):
    return sum(b * (2 * c * (c // reduction) + c // reduction + c) for b, c in RESNET50_STAGES)
""", "default_args"),
    Impl(RESNET, "four blocks in the last stage", """
def seresnet50_extra_parameters(reduction=16):
    return sum(b * (2 * c * (c // reduction) + c // reduction + c) for b, c in [(3, 256), (4, 512), (6, 1024), (4, 2048)])
""", "block_count"),
    Impl(RESNET, "hard-coded answer for r = 16", """
def seresnet50_extra_parameters(reduction=16):
    return 2_530_992
""", "reduction_ignored"),
    Impl(RESNET, "returns millions as a float", """
RESNET50_STAGES = [(3, 256), (4, 512), (6, 1024), (3, 2048)]

def seresnet50_extra_parameters(reduction=16):
    total = sum(b * (2 * c * (c // reduction) + c // reduction + c) for b, c in RESNET50_STAGES)
    return total / 1e6
""", "float_count"),
    Impl(RESNET, "a loop over stages with the formula", """
RESNET50_STAGES = [(3, 256), (4, 512), (6, 1024), (3, 2048)]

def seresnet50_extra_parameters(reduction=16):
    total = 0
    for blocks, channels in RESNET50_STAGES:
        hidden = channels // reduction
        total += blocks * (2 * channels * hidden + hidden + channels)
    return total
"""),
    Impl(RESNET, "counted from real modules", """
def seresnet50_extra_parameters(reduction=16):
    def block(c):
        return nn.Sequential(nn.Linear(c, c // reduction), nn.Linear(c // reduction, c))
    return sum(n * sum(p.numel() for p in block(c).parameters()) for n, c in [(3, 256), (4, 512), (6, 1024), (3, 2048)])
"""),

    # ---------------------------------------------------------------- question 1: W1's weight shape
    Impl(Q_W1, "(in, out)", "q_w1_shape = (512, 32, 1, 1)", "weight_transposed", extra={"visible": True}),
    Impl(Q_W1, "an nn.Linear's weight", "q_w1_shape = (32, 512)", "linear_weight_shape", extra={"visible": True}),
    Impl(Q_W1, "the hidden activation", "q_w1_shape = (8, 32, 1, 1)", "activation_shape", extra={"visible": True}),
    Impl(Q_W1, "a kernel the size of the image", "q_w1_shape = (32, 512, 28, 14)", "kernel_size",
         extra={"visible": True}),
    Impl(Q_W1, "the gate's shape", "q_w1_shape = (8, 512, 1, 1)", "wrong_answer"),
    Impl(Q_W1, "a string", "q_w1_shape = '(32, 512, 1, 1)'", "answer_form"),
    Impl(Q_W1, "left as None", "q_w1_shape = None", "unanswered"),
    Impl(Q_W1, "valid: a tuple", "q_w1_shape = (32, 512, 1, 1)"),
    Impl(Q_W1, "valid: a list", "q_w1_shape = [32, 512, 1, 1]"),
    Impl(Q_W1, "valid: a real layer's weight shape", "q_w1_shape = nn.Conv2d(512, 512 // 16, 1).weight.shape"),

    # ---------------------------------------------------------------- question 2: a softmax gate's scale
    Impl(Q_SOFTMAX, "the sigmoid's 0.5", "q_softmax_scale = 0.5", "sigmoid_value", extra={"visible": True}),
    Impl(Q_SOFTMAX, "a softmax over a size-1 axis", "q_softmax_scale = 1", "softmax_size_one"),
    Impl(Q_SOFTMAX, "the number of channels", "q_softmax_scale = 512", "softmax_inverse"),
    Impl(Q_SOFTMAX, "the demo's C = 256", "q_softmax_scale = 1 / 256", "wrong_answer"),
    Impl(Q_SOFTMAX, "a word", "q_softmax_scale = 'small'", "answer_form"),
    Impl(Q_SOFTMAX, "valid: a fraction", "q_softmax_scale = 1 / 512"),
    Impl(Q_SOFTMAX, "valid: three significant digits", "q_softmax_scale = 0.00195"),
    Impl(Q_SOFTMAX, "valid: a power of two", "q_softmax_scale = 2 ** -9"),
    Impl(Q_SOFTMAX, "valid: a 0-d tensor", "q_softmax_scale = torch.softmax(torch.zeros(512), dim=0)[0]"),

    # ---------------------------------------------------------------- question 3: one stage's parameters
    Impl(Q_STAGE, "without biases", "q_stage_params = 6 * 2 * 1024 * 64", "missing_bias"),
    Impl(Q_STAGE, "one block only", "q_stage_params = 2 * 1024 * 64 + 64 + 1024", "se_per_stage"),
    Impl(Q_STAGE, "the bottleneck's inner width", "q_stage_params = 6 * (2 * 256 * 16 + 16 + 256)",
         "bottleneck_width"),
    Impl(Q_STAGE, "one layer per block", "q_stage_params = 6 * (1024 * 64 + 64)", "wrong_answer"),
    Impl(Q_STAGE, "in millions", "q_stage_params = 0.79296", "answer_form"),
    Impl(Q_STAGE, "valid: the number", "q_stage_params = 792_960"),
    Impl(Q_STAGE, "valid: a float with no fraction", "q_stage_params = 792960.0"),
    Impl(Q_STAGE, "valid: counted from real layers", """
layer = nn.Sequential(nn.Conv2d(1024, 64, 1), nn.Conv2d(64, 1024, 1))
q_stage_params = 6 * sum(p.numel() for p in layer.parameters())
"""),
]

# Mixed precision (issue 29): a dtype test that refuses a bfloat16 input meeting float32 weights, which every
# torch.autocast region hands a module placed after a convolution (toolkit.expect_autocast).
IMPLS += [
    Impl(SE, "a dtype guard that refuses mixed precision", se(CONV_GATE + """
    def forward(self, x):
        if x.dtype != self.fc1.weight.dtype:
            raise TypeError(f"SqueezeExcitation: expected a {self.fc1.weight.dtype} input, got {x.dtype}")
        return x * self.attention(x)
"""), "autocast"),
]

# issue 26 (student trial): mistakes that passed or got no named hint
IMPLS += [
    Impl(SE, "a ReLU after W2 and none between the layers",
         se(gate("torch.sigmoid(F.relu(self.fc2(self.fc1(z))))") + FORWARD), "relu_after_last"),
    Impl(SE, "a residual: x + x * s", se(CONV_GATE + """
    def forward(self, x):
        return x + x * self.attention(x)
"""), "gate_residual"),
    Impl(SE, "hidden width round(C / r)", se(CONV_GATE + FORWARD, init="""
        self.fc1 = nn.Conv2d(channels, round(channels / reduction), 1)
        self.fc2 = nn.Conv2d(round(channels / reduction), channels, 1)
"""), "hidden_width"),
    Impl(COUNT, "hidden width round(C / r)", """
def se_parameter_count(channels, reduction=16):
    hidden = round(channels / reduction)
    return 2 * channels * hidden + hidden + channels
""", "hidden_width"),
    Impl(COUNT, "a table of the checked counts", """
def se_parameter_count(channels, reduction=16):
    return {(32, 4): 552, (64, 16): 580, (256, 16): 8464, (48, 8): 630, (100, 16): 1306, (24, 6): 220,
            (48, 5): 921}[(channels, reduction)]
""", "lookup_table"),
    Impl(RESNET, "a table of the three checked reductions", """
def seresnet50_extra_parameters(reduction=16):
    return {16: 2530992, 8: 5046880, 32: 1273048}[reduction]
""", "lookup_table"),
    Impl(RESNET, "a table that falls back to 0", """
def seresnet50_extra_parameters(reduction=16):
    return {16: 2530992, 8: 5046880, 32: 1273048}.get(reduction, 0)
""", "lookup_table"),
]

# issue 26, trial t015: a count misnamed, and wrong answers that got only a generic message
IMPLS += [
    Impl(RESNET, "true division, int() of the float total", """
RESNET50_STAGES = [(3, 256), (4, 512), (6, 1024), (3, 2048)]

def seresnet50_extra_parameters(reduction=16):
    return int(sum(n * (2 * c * c / reduction + c / reduction + c) for n, c in RESNET50_STAGES))
""", "floor_late"),
    Impl(RESNET, "2 C^2 // r for the weights", """
RESNET50_STAGES = [(3, 256), (4, 512), (6, 1024), (3, 2048)]

def seresnet50_extra_parameters(reduction=16):
    return sum(n * (2 * c * c // reduction + c // reduction + c) for n, c in RESNET50_STAGES)
""", "floor_late"),
    Impl(RESNET, "hidden width rounded up", """
RESNET50_STAGES = [(3, 256), (4, 512), (6, 1024), (3, 2048)]

def seresnet50_extra_parameters(reduction=16):
    return sum(n * (2 * c * math.ceil(c / reduction) + math.ceil(c / reduction) + c) for n, c in RESNET50_STAGES)
""", "hidden_width"),
    Impl(RESNET, "ResNet-101's block counts", """
def seresnet50_extra_parameters(reduction=16):
    stages = [(3, 256), (4, 512), (23, 1024), (3, 2048)]
    return sum(n * (2 * c * (c // reduction) + c // reduction + c) for n, c in stages)
""", "block_count"),
    Impl(Q_W1, "(in, out) of an nn.Linear", "q_w1_shape = (512, 32)", "weight_transposed"),
    Impl(Q_W1, "a Conv1d's weight", "q_w1_shape = (32, 512, 1)", "kernel_axes"),
    Impl(Q_W1, "a hidden width off by one", "q_w1_shape = (31, 512, 1, 1)", "hidden_width_count"),
    Impl(Q_W1, "valid: a torch.Size", "q_w1_shape = torch.Size([32, 512, 1, 1])"),
    Impl(Q_SOFTMAX, "valid: 0.00194, within the stated slack", "q_softmax_scale = 0.00194"),
    Impl(Q_SOFTMAX, "0.00197, outside the stated slack", "q_softmax_scale = 0.00197", "wrong_answer"),
    Impl(Q_STAGE, "the ResNet paper's conv3_x (4 blocks of 512)", "q_stage_params = 4 * (2 * 512 * 32 + 32 + 512)",
         "stage_index"),
    Impl(Q_STAGE, "the bottleneck's inner width as C'", "q_stage_params = 6 * (2 * 1024 * 256 + 256 + 1024)",
         "hidden_is_bottleneck"),
    Impl(Q_STAGE, "3 blocks", "q_stage_params = 3 * (2 * 1024 * 64 + 64 + 1024)", "block_count"),
    Impl(Q_STAGE, "C biases for both layers", "q_stage_params = 6 * (2 * 1024 * 64 + 2 * 1024)", "bias_count"),
]
