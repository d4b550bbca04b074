"""A stand-in for DANet's official head, written from the published structure for the weight-loading test.

The official code (junfu1115/DANet ``encoding/nn/da_att.py`` ``PAM_Module`` / ``CAM_Module`` and
``encoding/models/sseg/danet.py`` ``DANetHead``) is not installable here (it needs the ``encoding``
package and its CUDA extensions), so this file rebuilds the parts the test needs: the same submodule
names (hence the same state-dict keys: ``conv5a``, ``conv5c``, ``sa``, ``sc``, ``conv51``, ``conv52``,
``conv6``, ``conv7``, ``conv8``), the same layers, and forward passes in the official style:
``view``/``permute``/``bmm`` instead of einops, the CAM's ``max - energy`` line, and the head's three
outputs (fused, PAM-only, CAM-only) before upsampling. Facts: ``shared/reference/official-implementations.md``
section 5. It imports torch only, never course_lib.
"""
from __future__ import annotations

import torch
from torch import nn


class OfficialPAM(nn.Module):
    """PAM_Module(in_dim): 1x1 query/key convs to in_dim // 8, value conv to in_dim, gamma = 0."""

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.chanel_in = in_dim  # sic, as in the official code
        self.query_conv = nn.Conv2d(in_dim, in_dim // 8, kernel_size=1)
        self.key_conv = nn.Conv2d(in_dim, in_dim // 8, kernel_size=1)
        self.value_conv = nn.Conv2d(in_dim, in_dim, kernel_size=1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m_batchsize, c, height, width = x.size()
        proj_query = self.query_conv(x).view(m_batchsize, -1, width * height).permute(0, 2, 1)
        proj_key = self.key_conv(x).view(m_batchsize, -1, width * height)
        attention = self.softmax(torch.bmm(proj_query, proj_key))
        proj_value = self.value_conv(x).view(m_batchsize, -1, width * height)
        out = torch.bmm(proj_value, attention.permute(0, 2, 1)).view(m_batchsize, c, height, width)
        return self.gamma * out + x


class OfficialCAM(nn.Module):
    """CAM_Module(in_dim): no projections; softmax of max(energy) - energy; gamma = 0."""

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.chanel_in = in_dim  # stored, never used
        self.gamma = nn.Parameter(torch.zeros(1))
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m_batchsize, c, height, width = x.size()
        proj_query = x.view(m_batchsize, c, -1)
        proj_key = x.view(m_batchsize, c, -1).permute(0, 2, 1)
        energy = torch.bmm(proj_query, proj_key)
        energy_new = torch.max(energy, -1, keepdim=True)[0].expand_as(energy) - energy
        attention = self.softmax(energy_new)
        out = torch.bmm(attention, x.view(m_batchsize, c, -1)).view(m_batchsize, c, height, width)
        return self.gamma * out + x


def _conv_norm_relu(in_c: int, out_c: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_c, out_c, 3, padding=1, bias=False), nn.BatchNorm2d(out_c), nn.ReLU())


def _head_classifier(in_c: int, out_c: int) -> nn.Sequential:
    return nn.Sequential(nn.Dropout2d(0.1, False), nn.Conv2d(in_c, out_c, 1))


class OfficialDANetHead(nn.Module):
    """DANetHead(in_channels, out_channels): two branches at in_channels // 4, three outputs."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        inter_channels = in_channels // 4
        self.conv5a = _conv_norm_relu(in_channels, inter_channels)
        self.conv5c = _conv_norm_relu(in_channels, inter_channels)
        self.sa = OfficialPAM(inter_channels)
        self.sc = OfficialCAM(inter_channels)
        self.conv51 = _conv_norm_relu(inter_channels, inter_channels)
        self.conv52 = _conv_norm_relu(inter_channels, inter_channels)
        self.conv6 = _head_classifier(inter_channels, out_channels)
        self.conv7 = _head_classifier(inter_channels, out_channels)
        self.conv8 = _head_classifier(inter_channels, out_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        sa_conv = self.conv51(self.sa(self.conv5a(x)))
        sa_output = self.conv6(sa_conv)
        sc_conv = self.conv52(self.sc(self.conv5c(x)))
        sc_output = self.conv7(sc_conv)
        sasc_output = self.conv8(sa_conv + sc_conv)
        return sasc_output, sa_output, sc_output
