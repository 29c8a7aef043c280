"""Individually trained models (I-Nets): ``MODEL.SLIMMABLE.WIDTHS [w]`` is the stock network of
``stock_config(cfg, w)`` with its own initialisation and nothing wider, GroupNorm included, and
its run reports its width as a slimmable run does."""
from __future__ import annotations

import json

import pytest
import torch
from detectron2.engine import default_argument_parser
from detectron2.modeling import build_model

import slimdet
from helpers import (GN_R50, REPO, build_with_gn_rule, image_inputs, load_leading_slices,
                      randomize_norms, slim_cfg, tiny_train_cfg, tool)
from slimdet.config import train_widths
from slimdet.evaluation import load_run


def _num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())




@pytest.mark.parametrize("width", [0.25, 0.75])  # GN over 16 and 48 channels
def test_individual_model_is_the_stock_model_of_its_width(width):
    cfg = slim_cfg("slim_mask_rcnn_R50_FPN.yaml", *GN_R50, "MODEL.SLIMMABLE.WIDTHS", [width])
    model = build_model(cfg).eval()
    stock = build_with_gn_rule(build_model, slimdet.stock_config(cfg, width)).eval()
    assert _num_params(model) == _num_params(stock)  # no wider weights built or carried

    # Initialised as the stock network of that width (He init over its own fan-out), not as a
    # slice of a wider network's initialisation.
    conv = "backbone.bottom_up.res3.0.conv2.weight"
    ours, theirs = model.get_parameter(conv).std().item(), stock.get_parameter(conv).std().item()
    assert ours == pytest.approx(theirs, rel=0.1)
    wide = build_model(slim_cfg("slim_mask_rcnn_R50_FPN.yaml", *GN_R50)).get_parameter(conv)
    assert wide.std().item() == pytest.approx(ours * width ** 0.5, rel=0.05)  # its slice

    randomize_norms(model)
    load_leading_slices(stock, model, width)
    with torch.no_grad():
        out, ref = model(image_inputs())[0], stock(image_inputs())[0]
    a, b = out["instances"], ref["instances"]
    assert len(a) == len(b) > 0
    assert torch.allclose(a.pred_boxes.tensor, b.pred_boxes.tensor, atol=1e-3)
    assert torch.equal(a.pred_masks, b.pred_masks)


CONFIGS = sorted(str(p.relative_to(REPO)) for p in (REPO / "configs").rglob("*.yaml")
                 if not p.name.startswith("Base"))


@pytest.mark.parametrize("config", CONFIGS)
def test_every_config_of_the_repo_builds_individual_models(config):
    """Width 0.75 has channel counts like 48, which stock GN (32 groups) cannot take."""
    model = build_model(slim_cfg(str(REPO / config), "MODEL.SLIMMABLE.WIDTHS", [0.75]))
    assert slimdet.get_widths(model) == (0.75,)


def test_individual_run_reports_its_width(tiny_data, tmp_path):
    config = tmp_path / "inet.yaml"
    config.write_text(tiny_train_cfg(tmp_path / "run", "MODEL.SLIMMABLE.WIDTHS", [0.5],
                                     "SOLVER.MAX_ITER", 2).dump())
    args = default_argument_parser().parse_args(["--config-file", str(config)])
    tool("train_net").main(args)
    run = load_run(str(tmp_path / "run"))
    assert train_widths(run.cfg) == [0.5] and list(run.rows) == [0.5]
    rows = json.loads((tmp_path / "run" / "per_width_results.json").read_text())["rows"]
    assert rows[0]["width"] == 0.5 and "box AP" in rows[0] and "mask AP" in rows[0]
