"""ImageNet-pretrained backbones: official slimmable S-ResNet and torchvision ResNet files convert
into checkpoints whose slimdet backbone computes the source network's res2..res5 at every width;
Detectron2/Caffe2 .pkl files load directly; files that do not fit are errors naming the problem.

Run with ``-s`` to see the measured feature errors per width.
"""
from __future__ import annotations

import logging
import pickle
import re
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from detectron2.modeling import build_model
from torch import nn

import slimdet
from helpers import REPO, WIDTHS, slim_cfg
from slimdet.checkpoint import (SlimmableCheckpointer, convert_pretrained, convert_pretrained_file,
                                load_state_dict_file, stock_state_dict)

STAGES = ("res2", "res3", "res4", "res5")
RTOL = 1e-4  # max abs feature error relative to the feature scale


# --- A network with the official S-ResNet checkpoint layout and forward semantics -------------

class _WidthIndexed(nn.Module):
    """A module whose computation depends on ``width_index`` (set by ``stage_outputs``)."""

    width_index: int


class _SwitchableBN(_WidthIndexed):
    """One BatchNorm per width under ``bn.{i}``."""

    def __init__(self, channels: list[int]):
        super().__init__()
        self.bn = nn.ModuleList(nn.BatchNorm2d(c) for c in channels)
        self.width_index = len(channels) - 1

    def forward(self, x):
        return self.bn[self.width_index](x)


class _SlicedConv(_WidthIndexed):
    """Bias-free conv with full weights, used as ``weight[:out_w, :in_w]`` at width index w."""

    def __init__(self, ins: list[int], outs: list[int], kernel: int, stride: int = 1):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max(outs), max(ins), kernel, kernel))
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")
        self.ins, self.outs, self.stride, self.width_index = ins, outs, stride, len(ins) - 1

    def forward(self, x):
        w = self.weight[: self.outs[self.width_index], : self.ins[self.width_index]]
        return F.conv2d(x, w, None, self.stride, self.weight.shape[-1] // 2)


class _Block(nn.Module):
    """Bottleneck: ``body`` (1x1, 3x3 with the stride, 1x1 convs, BN, ReLU after the first two),
    residual add, ReLU; ``shortcut`` (1x1 conv with the stride, BN) where the shape changes."""

    def __init__(self, ins: list[int], outs: list[int], stride: int):
        super().__init__()
        mids = [c // 4 for c in outs]
        self.body = nn.Sequential(
            _SlicedConv(ins, mids, 1), _SwitchableBN(mids), nn.ReLU(),
            _SlicedConv(mids, mids, 3, stride), _SwitchableBN(mids), nn.ReLU(),
            _SlicedConv(mids, outs, 1), _SwitchableBN(outs))
        self.shortcut = None
        if stride != 1 or ins != outs:
            self.shortcut = nn.Sequential(_SlicedConv(ins, outs, 1, stride), _SwitchableBN(outs))

    def forward(self, x):
        return F.relu(self.body(x) + (x if self.shortcut is None else self.shortcut(x)))


class OfficialSResNet(nn.Module):
    """S-ResNet as in the Slimmable Networks model zoo: ``features`` (stem: 7x7/2 conv, BN, ReLU,
    3x3/2 max-pool; then the blocks) and ``classifier``; ``int(C * w)`` channels at width w."""

    def __init__(self, widths: list[float], blocks: tuple[int, ...] = (3, 4, 6, 3)):
        super().__init__()
        stem = [int(64 * w) for w in widths]
        layers = [nn.Sequential(_SlicedConv([3] * len(widths), stem, 7, 2), _SwitchableBN(stem),
                                nn.ReLU(), nn.MaxPool2d(3, 2, 1))]
        self.stage_ends, ins = [], stem
        for s, num_blocks in enumerate(blocks):
            outs = [int(256 * 2 ** s * w) for w in widths]
            for b in range(num_blocks):
                layers.append(_Block(ins, outs, 2 if b == 0 and s > 0 else 1))
                ins = outs
            self.stage_ends.append(len(layers) - 1)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(max(ins), 1000))

    def stage_outputs(self, x: torch.Tensor, width_index: int) -> dict[str, torch.Tensor]:
        for m in self.modules():
            if isinstance(m, _WidthIndexed):
                m.width_index = width_index
        out = {}
        for k, layer in enumerate(self.features):
            x = layer(x)
            if k in self.stage_ends:
                out[STAGES[self.stage_ends.index(k)]] = x
        return out


def _randomize_bns(net: nn.Module, seed: int) -> None:
    """Non-trivial BN parameters and statistics (fresh ones are identity maps)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.num_batches_tracked.fill_(1000)


def _official_file(state_dict: dict, path) -> str:
    """``state_dict`` saved as the model zoo files are: DataParallel names under "model", in the
    pre-1.6 (non-zip) serialization of 2019."""
    model = OrderedDict(("module." + k, v) for k, v in state_dict.items())
    torch.save({"model": model}, path, _use_new_zipfile_serialization=False)
    return str(path)


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    torch.manual_seed(0)
    net = OfficialSResNet(WIDTHS).eval()
    _randomize_bns(net, seed=1)
    path = tmp_path_factory.mktemp("zoo") / "s_resnet50_0.25_0.5_0.75_1.0.pt"
    return net, _official_file(net.state_dict(), path)


@pytest.fixture(scope="module")
def converted_official(official, tmp_path_factory):
    path = tmp_path_factory.mktemp("converted") / "s_resnet50_0.25_0.5_0.75_1.0.pth"
    return convert_pretrained_file(official[1], str(path), "slimmable"), str(path)


def _model(*opts) -> nn.Module:
    return build_model(slim_cfg("slim_faster_rcnn_R50_FPN.yaml", *opts)).eval()


def _feature_errors(bottom_up: nn.Module, reference, widths: list[float], source: str) -> dict:
    """Max abs error of res2..res5 between ``bottom_up`` at each width and
    ``reference(x, width_index)``, relative to the reference features' scale."""
    x = torch.randn(2, 3, 64, 64)  # a normalised RGB batch: normalisation is the meta-arch's job
    errors = {}
    for i, width in enumerate(widths):
        slimdet.set_width(bottom_up, width)
        with torch.no_grad():
            out, ref = bottom_up(x), reference(x, i)
        assert [out[k].shape for k in STAGES] == [ref[k].shape for k in STAGES], width
        abs_err = max((out[k] - ref[k]).abs().max().item() for k in STAGES)
        scale = max(ref[k].abs().max().item() for k in STAGES)
        errors[width] = abs_err / scale
        print(f"\n[{source}] width {width}: max |error| {abs_err:.2e} over res2..res5 "
              f"(features up to {scale:.2e}; relative {abs_err / scale:.2e})", end="")
    return errors


# --- Official slimmable checkpoints ------------------------------------------------------------

def test_official_checkpoint_gives_the_source_features_at_every_width(official, converted_official):
    net, _ = official
    converted, path = converted_official
    assert (converted.depth, converted.widths) == (50, WIDTHS)
    assert converted.mapped == {"conv weights": 53, "norm tensors": 53 * 4 * len(WIDTHS)}
    assert converted.dropped["classifier"] == ["classifier.0.weight", "classifier.0.bias"]
    assert len(converted.dropped["num_batches_tracked"]) == 53 * len(WIDTHS)

    model = _model()
    SlimmableCheckpointer(model).load(path)
    errors = _feature_errors(model.backbone.bottom_up, net.stage_outputs, WIDTHS, "slimmable")
    assert all(e < RTOL for e in errors.values()), errors


def test_cli_converts_and_prints_a_summary(official, converted_official, tmp_path):
    dst = tmp_path / "pretrained" / "s_resnet50.pth"
    run = subprocess.run(
        [sys.executable, str(REPO / "tools" / "convert_pretrained.py"), "--source-format",
         "slimmable", official[1], str(dst), "--widths", *map(str, WIDTHS)],
        capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "slimmable ResNet-50, widths [0.25, 0.5, 0.75, 1.0]" in run.stdout
    assert re.search(r"mapped +53 conv weights", run.stdout)
    assert re.search(r"mapped +848 norm tensors", run.stdout)
    assert "classifier: classifier.0.weight, classifier.0.bias" in run.stdout
    assert "converting" in run.stderr  # the progress bar

    saved = torch.load(dst, weights_only=True)
    assert saved["__author__"] == "slimdet convert_pretrained"
    assert saved["matching_heuristics"] is False and saved["widths"] == WIDTHS
    expected = converted_official[0].weights
    assert saved["model"].keys() == expected.keys()
    assert all(torch.equal(saved["model"][k], v) for k, v in expected.items())


def test_width_lists_are_read_from_the_file_and_must_fit_slimdets_channels(tmp_path):
    # Widths on a 1/64 grid have the same channels under both rules: converts, equal features.
    torch.manual_seed(3)
    net = OfficialSResNet([0.375, 1.0]).eval()
    _randomize_bns(net, seed=3)
    converted = convert_pretrained(net.state_dict(), "slimmable")
    assert converted.widths == [0.375, 1.0]
    torch.save(converted.checkpoint(), tmp_path / "converted.pth")
    model = _model(*[x for key in ("WIDTHS", "TRAIN_WIDTHS", "TEST_WIDTHS")
                     for x in (f"MODEL.SLIMMABLE.{key}", [0.375, 1.0])])
    SlimmableCheckpointer(model).load(str(tmp_path / "converted.pth"))
    errors = _feature_errors(model.backbone.bottom_up, net.stage_outputs, [0.375, 1.0],
                             "slimmable [0.375, 1.0]")
    assert all(e < RTOL for e in errors.values()), errors
    # At 0.35 the official res3 has int(512 * 0.35) = 179 channels, slimdet int(256 * 0.35) * 2.
    net = OfficialSResNet([0.35, 1.0])
    with pytest.raises(ValueError, match=r"(?s)does not fit slimdet's ResNet-50 at widths "
                                         r"\[0\.35, 1\.0\].*res3\.0\.conv3\.norm\.0\.weight: "
                                         r"checkpoint \(179,\) vs model \(178,\)"):
        convert_pretrained(net.state_dict(), "slimmable")


# --- torchvision ---------------------------------------------------------------------------

def _torchvision_d2_name(key: str) -> str:
    """torchvision ResNet name -> Detectron2 bottom_up name, written out for the test."""
    key = re.sub(r"^layer(\d)", lambda m: f"res{int(m.group(1)) + 1}", key)
    key = key.replace("downsample.0", "shortcut").replace("downsample.1", "shortcut.norm")
    key = re.sub(r"bn(\d)", r"conv\1.norm", key)
    return key if key.startswith("res") else "stem." + key


def test_torchvision_resnet50_converts(tmp_path):
    tv = torchvision.models.resnet50(weights=None).eval()
    _randomize_bns(tv, seed=2)
    src, dst = tmp_path / "resnet50.pth", tmp_path / "converted.pth"
    torch.save(tv.state_dict(), src)  # torchvision's files are bare state dicts
    converted = convert_pretrained_file(str(src), str(dst), "torchvision", widths=WIDTHS)
    assert (converted.depth, converted.widths) == (50, None)
    assert converted.dropped["classifier"] == ["fc.weight", "fc.bias"]
    assert "widths" not in torch.load(dst, weights_only=True)

    model = _model()
    SlimmableCheckpointer(model).load(str(dst))

    def torchvision_stages(x, _):
        x = tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))
        out = {}
        for stage, layer in zip(STAGES, (tv.layer1, tv.layer2, tv.layer3, tv.layer4)):
            out[stage] = x = layer(x)
        return out

    errors = _feature_errors(model.backbone.bottom_up, torchvision_stages, [1.0], "torchvision")
    assert errors[1.0] < RTOL, errors

    # Narrower widths: every width's FrozenBN is the leading slice of torchvision's BN, and the
    # convs are torchvision's full weights (sliced by the slimmable layers at run time).
    slim = model.backbone.bottom_up.state_dict()
    checked = 0
    for key, value in tv.state_dict().items():
        if key.startswith("fc.") or key.endswith("num_batches_tracked"):
            continue
        name = _torchvision_d2_name(key)
        if ".norm." in name:
            prefix, _, leaf = name.rpartition(".")
            for i in range(len(WIDTHS)):
                per_width = slim[f"{prefix}.{i}.{leaf}"]
                assert torch.equal(per_width, value[: len(per_width)]), (key, i)
        else:
            assert torch.equal(slim[name], value), key
        checked += 1
    assert checked == len(converted.weights)
    assert len(slim["res5.0.conv3.norm.0.weight"]) == 512  # int(2048 * 0.25)


# --- Errors ----------------------------------------------------------------------------------

def test_width_list_other_than_the_files_is_an_error(official, converted_official):
    model = _model(*[x for key in ("WIDTHS", "TRAIN_WIDTHS", "TEST_WIDTHS")
                     for x in (f"MODEL.SLIMMABLE.{key}", [0.5, 1.0])])
    with pytest.raises(ValueError, match=r"per-width norms for widths \[0\.25, 0\.5, 0\.75, 1\.0\]"
                                         r", but MODEL\.SLIMMABLE\.WIDTHS is \[0\.5, 1\.0\]"):
        SlimmableCheckpointer(model).load(converted_official[1])
    with pytest.raises(ValueError, match=r"MODEL\.SLIMMABLE\.WIDTHS is \[0\.25, 0\.5, 1\.0\]"):
        convert_pretrained(load_state_dict_file(official[1]), "slimmable", widths=[0.25, 0.5, 1.0])


def _renumbered(state_dict: dict, first: int, shift: int, copies: dict[int, int]) -> dict:
    """``features.{k}`` -> ``features.{k + shift}`` for k >= first, plus block copies
    {new index: copied index} (same tensors), for layouts of other depths."""
    out = {}
    for key, value in state_dict.items():
        m = re.match(r"features\.(\d+)\.(.*)", key)
        if m and int(m.group(1)) >= first:
            key = f"features.{int(m.group(1)) + shift}.{m.group(2)}"
        out[key] = value
        if m and int(m.group(1)) in copies.values():
            for new, old in copies.items():
                if old == int(m.group(1)):
                    out[f"features.{new}.{m.group(2)}"] = value
    return out


def test_other_depths_are_errors(official, tmp_path):
    net, _ = official
    sd = net.state_dict()
    # R-101 layout: res4 has 23 blocks (features.8 ... features.30). It converts, as ResNet-101,
    # and does not load into the R-50 configs.
    r101 = _renumbered(sd, first=14, shift=17, copies={k: 13 for k in range(14, 31)})
    converted = convert_pretrained(r101, "slimmable")
    assert converted.depth == 101
    weights = {k[len("backbone.bottom_up."):]: v for k, v in converted.weights.items()}
    assert weights["res4.22.conv1.weight"] is sd["features.13.body.0.weight"]
    assert weights["res5.0.shortcut.weight"] is sd["features.14.shortcut.0.weight"]
    path = tmp_path / "r101.pth"
    torch.save(converted.checkpoint(), path)
    with pytest.raises(ValueError,
                       match=r"not in the model:\n  backbone\.bottom_up\.res4\.(6|[12]\d)\."):
        SlimmableCheckpointer(_model()).load(str(path))
    # Truncated to 3 stages: no ResNet depth.
    truncated = {k: v for k, v in sd.items() if not re.match(r"features\.1[4-6]\.", k)}
    with pytest.raises(ValueError, match=r"(?s)closest: ResNet-50.*missing keys:\n"
                                         r"  features\.14\.body\.0\.weight"):
        convert_pretrained(truncated, "slimmable")


def test_unknown_and_missing_keys_are_listed(official):
    sd = load_state_dict_file(official[1])
    unknown = {**sd, "module.features.3.extra.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match=r"1 unknown keys:\n  features\.3\.extra\.weight$"):
        convert_pretrained(unknown, "slimmable")
    del sd["module.features.5.body.4.bn.2.running_var"]
    with pytest.raises(ValueError,
                       match=r"1 missing keys:\n  features\.5\.body\.4\.bn\.2\.running_var$"):
        convert_pretrained(sd, "slimmable")
    # A torchvision file given as slimmable
    tv_keys = {"conv1.weight": torch.zeros(64, 3, 7, 7), "bn1.weight": torch.zeros(64)}
    with pytest.raises(ValueError, match=r"not a slimmable ResNet checkpoint.*\n  conv1\.weight"):
        convert_pretrained(tv_keys, "slimmable")


def test_files_that_are_no_checkpoint_are_errors(tmp_path):
    noise = np.random.default_rng(0).bytes(4096)
    files = {"random.pth": noise, "random.pkl": noise, "empty.pt": b""}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    torch.save({"epoch": 3, "best_val": 0.24}, tmp_path / "no_weights.pt")
    torch.save({"model": {}}, tmp_path / "empty_model.pt")
    model = _model()
    for name in [*files, "no_weights.pt", "empty_model.pt"]:
        path = str(tmp_path / name)
        message = r"is not a readable checkpoint|holds no model weights"
        if not name.endswith(".pkl"):
            with pytest.raises(ValueError, match=message):
                load_state_dict_file(path)
        with pytest.raises(ValueError, match=message):
            SlimmableCheckpointer(model).load(path)


# --- Detectron2 / Detectron (Caffe2) .pkl ---------------------------------------------------------

def _c2_name(key: str) -> str:
    """Detectron2 bottom_up name -> Caffe2 Detectron blob name (e.g. res2_0_branch2a_bn_s)."""
    if key.startswith("stem."):
        return {"stem.conv1.weight": "conv1_w", "stem.conv1.norm.weight": "res_conv1_bn_s",
                "stem.conv1.norm.bias": "res_conv1_bn_b"}[key]
    for d2, c2 in (("shortcut", "branch1"), ("conv1", "branch2a"), ("conv2", "branch2b"),
                   ("conv3", "branch2c")):
        key = key.replace(f".{d2}.", f".{c2}.")
    key = key.replace(".norm.weight", "_bn_s").replace(".norm.bias", "_bn_b")
    return key.replace(".weight", "_w").replace(".", "_")


def _c2_pickle(model: nn.Module, path, extra: dict | None = None) -> dict[str, np.ndarray]:
    """A Detectron-style ImageNet R-50.pkl for ``model``'s backbone: Caffe2 names, BN as affine
    only (no statistics), random values, the fc1000 classifier and a stem conv bias (as MSRA's)."""
    rng = np.random.default_rng(0)
    blobs = {_c2_name(k): rng.standard_normal(tuple(v.shape), dtype=np.float32)
             for k, v in stock_state_dict(model.backbone.bottom_up).items() if "running" not in k}
    blobs.update(fc1000_w=np.zeros((1000, 2048), np.float32), fc1000_b=np.zeros(1000, np.float32),
                 conv1_b=np.zeros(64, np.float32))
    blobs.update(extra or {})
    with open(path, "wb") as f:
        pickle.dump({"model": blobs, "__author__": "Caffe2", "matching_heuristics": True}, f)
    return blobs


def test_detectron_pkl_loads_with_frozen_bn_defaults(tmp_path, caplog):
    model = _model()
    blobs = _c2_pickle(model, tmp_path / "R-50.pkl")
    caplog.set_level(logging.INFO)
    SlimmableCheckpointer(model).load(str(tmp_path / "R-50.pkl"))
    assert "Dropping ['fc1000.bias', 'fc1000.weight', 'stem.conv1.bias']" in caplog.text

    slim = model.backbone.bottom_up.state_dict()
    for key in stock_state_dict(model.backbone.bottom_up):
        prefix, _, leaf = key.rpartition(".")
        if not prefix.endswith(".norm"):
            assert np.array_equal(slim[key].numpy(), blobs[_c2_name(key)]), key
            continue
        for i in range(len(WIDTHS)):
            per_width = slim[f"{prefix}.{i}.{leaf}"]
            if leaf == "running_mean":
                assert not per_width.any(), key
            elif leaf == "running_var":
                assert (per_width == 1).all(), key
            else:
                assert np.array_equal(per_width.numpy(), blobs[_c2_name(key)][: len(per_width)])


def test_detectron_pkl_of_another_depth_is_an_error(tmp_path):
    model = _model()
    extra = {f"res4_{b}_branch2{c}_{p}": np.zeros(1, np.float32)
             for b in range(6, 23) for c in "abc" for p in ("w", "bn_s", "bn_b")}
    _c2_pickle(model, tmp_path / "R-101.pkl", extra)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"153 checkpoint keys match no model key.*\n"
                                         r"(?s:.*)res4\.(6|[12]\d)\.conv1\.weight"):
        SlimmableCheckpointer(model).load(str(tmp_path / "R-101.pkl"))
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())  # nothing loaded
