"""Slimmable layers, switchable norms and the width state."""
from __future__ import annotations

import pytest
import torch
from detectron2.layers import FrozenBatchNorm2d
from torch import nn

import slimdet
from slimdet.layers import (SlimConv2d, SlimConvTranspose2d, SlimLinear, SwitchableNorm,
                            group_norm_groups)

WIDTHS = (0.5, 1.0)


def _net() -> nn.Sequential:
    norm = SwitchableNorm.from_norm(nn.BatchNorm2d(8), WIDTHS, [4, 8])
    return nn.Sequential(
        SlimConv2d(WIDTHS, [3, 3], [4, 8], 3, padding=1, norm=norm, activation=nn.ReLU()),
        SlimConv2d(WIDTHS, [4, 8], [2, 4], 3, padding=1, groups=2),
        SlimConvTranspose2d(WIDTHS, [2, 4], [4, 8], 2, stride=2),
        nn.Flatten(),
        SlimLinear(WIDTHS, [4 * 16, 8 * 16], [5, 5]),
    )


def test_narrow_width_uses_and_trains_only_leading_slices():
    net = _net().train()
    slimdet.set_width(net, 0.5)
    net(torch.randn(2, 3, 2, 2)).sum().backward()
    conv, grouped, deconv, _, fc = net
    assert conv.weight.grad[4:].abs().sum() == 0 and conv.weight.grad[:4].abs().sum() > 0
    assert grouped.weight.grad[2:].abs().sum() == 0 and grouped.weight.grad[:2, :2].abs().sum() > 0
    assert grouped.weight.grad[:, 2:].abs().sum() == 0  # per-group input slice: 4 in / 2 groups
    assert deconv.weight.grad[2:].abs().sum() == 0 and deconv.weight.grad[:, 4:].abs().sum() == 0
    assert fc.weight.grad[:, 64:].abs().sum() == 0 and fc.weight.grad[:, :64].abs().sum() > 0
    norm = conv.norm
    assert norm[1].weight.grad is None and norm[0].weight.grad.abs().sum() > 0


def test_narrow_output_equals_sliced_dense_layers():
    net = _net().eval()
    slimdet.set_width(net, 0.5)
    x = torch.randn(2, 3, 2, 2)
    conv, grouped, deconv, _, fc = net
    ref = nn.functional.conv2d(x, conv.weight[:4], conv.bias[:4], padding=1)
    ref = torch.relu(conv.norm[0](ref))
    ref = nn.functional.conv2d(ref, grouped.weight[:2, :2], grouped.bias[:2], padding=1, groups=2)
    ref = nn.functional.conv_transpose2d(ref, deconv.weight[:2, :4], deconv.bias[:4], stride=2)
    ref = nn.functional.linear(ref.flatten(1), fc.weight[:, :64], fc.bias)
    with torch.no_grad():
        assert torch.allclose(net(x), ref, atol=1e-6)


def test_inference_cache_follows_weight_updates():
    conv = SlimConv2d(WIDTHS, [3, 3], [4, 8], 1)
    conv.width_index = 0
    x = torch.randn(1, 3, 2, 2)
    with torch.no_grad():
        before = conv(x)
        conv.weight.mul_(2)  # in-place update bumps the version counter
        after = conv(x)
    bias = conv.bias[:4, None, None]
    assert torch.allclose(after - bias, 2 * (before - bias))


def test_bn_training_updates_only_the_active_width_statistics():
    norm = SwitchableNorm.from_norm(nn.BatchNorm2d(8), WIDTHS, [4, 8]).train()
    norm.width_index = 0
    norm(torch.randn(4, 4, 3, 3) + 3)
    assert norm[0].running_mean.abs().sum() > 0 and norm[0].num_batches_tracked == 1
    assert norm[1].running_mean.abs().sum() == 0 and norm[1].num_batches_tracked == 0


@pytest.mark.parametrize("norm", [FrozenBatchNorm2d(8), nn.BatchNorm2d(8), nn.SyncBatchNorm(8),
                                  nn.GroupNorm(4, 8)])
def test_switchable_norm_starts_from_leading_slice(norm):
    with torch.no_grad():
        for t in list(norm.parameters()) + list(norm.buffers()):
            if t.dim():
                t.copy_(torch.arange(8.0) + 1)
    sw = SwitchableNorm.from_norm(norm, WIDTHS, [4, 8])
    assert type(sw[0]) is type(norm)
    for name, t in sw[0].state_dict().items():
        if t.dim():
            assert torch.equal(t, torch.arange(4.0) + 1), name


def test_group_norm_rule_keeps_narrow_widths_valid():
    assert group_norm_groups(32, 256) == 32
    assert group_norm_groups(32, 64) == 32
    assert group_norm_groups(32, 16) == 16  # 16 channels with 32 groups: 16 groups
    assert group_norm_groups(32, 48) == 16
    sw = SwitchableNorm.from_norm(nn.GroupNorm(32, 64), (0.25, 1.0), [16, 64])
    assert (sw[0].num_groups, sw[1].num_groups) == (16, 32)
    sw.width_index = 0
    assert sw(torch.randn(2, 16, 4, 4)).shape == (2, 16, 4, 4)


def test_unsupported_norm_is_an_error():
    with pytest.raises(TypeError, match="no switchable version of LayerNorm"):
        SwitchableNorm.from_norm(nn.LayerNorm(8), WIDTHS, [4, 8])


def test_set_width_get_width_scope_and_errors():
    net = _net()
    assert slimdet.get_width(net) == 1.0 and slimdet.get_widths(net) == WIDTHS
    with slimdet.width_scope(net, 0.5):
        assert slimdet.get_width(net) == 0.5
        assert all(m.width_index == 0 for m in net.modules() if hasattr(m, "width_index"))
    assert slimdet.get_width(net) == 1.0
    with pytest.raises(ValueError,
                       match=r"width 0\.3 is not supported; allowed widths: \[0\.5, 1\.0\]"):
        slimdet.set_width(net, 0.3)
    with pytest.raises(ValueError, match="has no slimmable layers"):
        slimdet.set_width(nn.Conv2d(1, 1, 1), 1.0)


def test_wrong_input_width_names_the_problem():
    conv = SlimConv2d(WIDTHS, [4, 8], [4, 8], 1)
    with pytest.raises(ValueError, match="at width 1.0 expects 8 input channels, got 4"):
        conv(torch.randn(1, 4, 2, 2))


def test_model_width_api_on_built_model_and_config_errors():
    from detectron2.modeling import build_model

    from helpers import slim_cfg

    cfg = slim_cfg("slim_faster_rcnn_R50_FPN.yaml", "MODEL.RESNETS.DEPTH", 18,
                   "MODEL.RESNETS.RES2_OUT_CHANNELS", 64)
    model = build_model(cfg)
    slimdet.set_width(model, 0.25)
    assert slimdet.get_width(model) == 0.25
    with pytest.raises(ValueError, match=r"allowed widths: \[0\.25, 0\.5, 0\.75, 1\.0\]"):
        slimdet.set_width(model, 0.6)
    bad = slim_cfg("slim_faster_rcnn_R50_FPN.yaml", "MODEL.SLIMMABLE.TRAIN_WIDTHS", [0.3])
    with pytest.raises(ValueError, match=r"TRAIN_WIDTHS has widths \[0\.3\] not in"):
        build_model(bad)


def _gn_resnet_cfg(*opts):
    from detectron2.config import get_cfg

    cfg = get_cfg()
    cfg.merge_from_list(["MODEL.RESNETS.NORM", "GN", "MODEL.RESNETS.OUT_FEATURES", ["res3"],
                         "MODEL.BACKBONE.FREEZE_AT", 2, *opts])
    return cfg


def test_gn_rule_builds_narrow_group_norms_and_keeps_stock_weights():
    from detectron2.layers import ShapeSpec
    from detectron2.modeling.backbone import build_resnet_backbone

    from slimdet.modeling.conversion import build_with_gn_rule

    def build(c):
        return build_resnet_backbone(c, ShapeSpec(channels=3))

    narrow = build_with_gn_rule(build, _gn_resnet_cfg(  # ResNet-50 at width 0.25
        "MODEL.RESNETS.STEM_OUT_CHANNELS", 16, "MODEL.RESNETS.RES2_OUT_CHANNELS", 64,
        "MODEL.RESNETS.WIDTH_PER_GROUP", 16))
    groups = {(m.num_groups, m.num_channels) for m in narrow.modules()
              if isinstance(m, nn.GroupNorm)}
    assert groups == {(16, 16), (32, 32), (32, 64), (32, 128)}
    assert not any(type(m).__name__ == "LayerNorm" for m in narrow.modules())
    assert not narrow.stem.conv1.norm.weight.requires_grad  # frozen stem, as stock GN's
    torch.manual_seed(0)
    ours = build_with_gn_rule(build, _gn_resnet_cfg())
    torch.manual_seed(0)
    stock = build(_gn_resnet_cfg())
    assert [type(m) for m in ours.modules()] == [type(m) for m in stock.modules()]
    for (name, a), (_, b) in zip(ours.state_dict().items(), stock.state_dict().items()):
        assert torch.equal(a, b), name
    assert ([p.requires_grad for p in ours.parameters()]
            == [p.requires_grad for p in stock.parameters()])


def test_gn_rule_refuses_layer_norm_configs():
    from slimdet.modeling.conversion import build_with_gn_rule

    with pytest.raises(ValueError, match="no switchable version of LN"):
        build_with_gn_rule(lambda c: None, _gn_resnet_cfg("MODEL.FPN.NORM", "LN"))
