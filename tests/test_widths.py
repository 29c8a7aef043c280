"""One owner for widths: TRAIN/TEST_WIDTHS default to all, one matching rule, one key format,
and checkpoints that record their width list."""
from __future__ import annotations

import pytest
from detectron2.modeling import build_model

import slimdet
from helpers import synthetic_cfg
from slimdet.checkpoint import SlimmableCheckpointer
from slimdet.config import eval_widths, train_widths
from slimdet.layers import parse_width_key, width_index, width_key


def test_changing_widths_alone_is_enough():
    cfg = synthetic_cfg("MODEL.SLIMMABLE.WIDTHS", [0.5, 1.0])
    assert train_widths(cfg) == eval_widths(cfg) == [0.5, 1.0]
    assert slimdet.get_widths(build_model(cfg)) == (0.5, 1.0)
    cfg = synthetic_cfg("MODEL.SLIMMABLE.TEST_WIDTHS", [1.0, 0.25])
    assert train_widths(cfg) == [0.25, 0.5, 0.75, 1.0] and eval_widths(cfg) == [1.0, 0.25]


def test_one_rule_matches_a_width_everywhere():
    cfg = synthetic_cfg("MODEL.SLIMMABLE.WIDTHS", [0.3, 1.0], "MODEL.SLIMMABLE.TRAIN_WIDTHS",
                        [0.1 + 0.2])
    assert width_index([0.3, 1.0], 0.1 + 0.2) == 0
    assert train_widths(cfg) == [0.3]  # the listed value, not 0.30000000000000004
    assert slimdet.stock_config(cfg, 0.1 + 0.2).MODEL.FPN.OUT_CHANNELS == int(128 * 0.3)
    model = build_model(cfg)
    slimdet.set_width(model, 0.1 + 0.2)
    assert slimdet.get_width(model) == 0.3
    for call in (lambda: width_index([0.3, 1.0], 0.31), lambda: slimdet.stock_config(cfg, 0.31),
                 lambda: slimdet.set_width(model, 0.31)):
        with pytest.raises(ValueError, match=r"width 0.31 is not supported; allowed widths: "
                                             r"\[0.3, 1.0\]"):
            call()


def test_one_function_writes_and_one_parses_width_keys():
    for width in (0.25, 0.5, 0.75, 1.0, 0.3125):
        assert parse_width_key(width_key(width)) == width
    assert width_key(1.0) == "w1" and parse_width_key("0.5") == 0.5
    with pytest.raises(ValueError, match="'bbox' names no width"):
        parse_width_key("bbox")


def test_checkpoint_records_its_widths_and_refuses_another_list(tmp_path):
    model = build_model(synthetic_cfg())
    SlimmableCheckpointer(model, save_dir=str(tmp_path)).save("model")
    other = build_model(synthetic_cfg("MODEL.SLIMMABLE.WIDTHS", [0.5, 1.0]))
    with pytest.raises(ValueError, match=r"per-width norms for widths \[0.25, 0.5, 0.75, 1.0\], "
                                         r"but MODEL.SLIMMABLE.WIDTHS is \[0.5, 1.0\]"):
        SlimmableCheckpointer(other).load(str(tmp_path / "model.pth"))
