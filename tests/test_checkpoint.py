"""Loading stock full-width Detectron2 checkpoints (and our own) into slimmable models."""
from __future__ import annotations

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

import slimdet
from helpers import WIDTHS, image_inputs, randomize_norms, slim_cfg
from slimdet.checkpoint import SlimmableCheckpointer


def _stock_checkpoint(cfg, tmp_path, name="stock"):
    """A trained-looking stock Detectron2 model of ``cfg`` at width 1.0, saved as Detectron2
    saves it (``{"model": state_dict}``)."""
    stock = build_model(slimdet.stock_config(cfg, 1.0)).eval()
    randomize_norms(stock, seed=1)
    DetectionCheckpointer(stock, save_dir=str(tmp_path)).save(name)
    return stock, str(tmp_path / f"{name}.pth")


def test_stock_checkpoint_loads_into_every_width(tmp_path):
    cfg = slim_cfg("slim_mask_rcnn_R50_FPN.yaml", "MODEL.SLIMMABLE.SLIM_HEADS", True,
                   "MODEL.ROI_MASK_HEAD.NORM", "GN")
    stock, path = _stock_checkpoint(cfg, tmp_path)
    model = build_model(cfg).eval()
    SlimmableCheckpointer(model).load(path)

    inputs = image_inputs()
    with torch.no_grad():
        out, ref = model(inputs)[0]["instances"], stock(inputs)[0]["instances"]
    assert len(out) == len(ref) > 0
    assert torch.allclose(out.pred_boxes.tensor, ref.pred_boxes.tensor, atol=1e-3)
    assert torch.allclose(out.scores, ref.scores, atol=1e-5)
    assert torch.equal(out.pred_masks, ref.pred_masks)

    stock_sd, slim_sd = stock.state_dict(), model.state_dict()
    key = "backbone.bottom_up.res3.0.conv2.norm"
    for i, channels in enumerate([32, 64, 96, 128]):
        for name in ("weight", "bias", "running_mean", "running_var"):
            assert torch.equal(slim_sd[f"{key}.{i}.{name}"], stock_sd[f"{key}.{name}"][:channels])
    gn = "roi_heads.mask_head.mask_fcn1.norm"
    assert torch.equal(slim_sd[f"{gn}.0.weight"], stock_sd[f"{gn}.weight"][:64])
    for width in WIDTHS:  # every width runs after loading
        slimdet.set_width(model, width)
        with torch.no_grad():
            assert len(model(inputs)[0]["instances"]) > 0


def test_stock_checkpoint_through_model_weights_and_trainer_checkpointer(tmp_path):
    from slimdet.engine import SlimmableTrainer

    cfg = slim_cfg("slim_faster_rcnn_R50_FPN.yaml", "MODEL.RESNETS.DEPTH", 18,
                   "MODEL.RESNETS.RES2_OUT_CHANNELS", 64)
    stock, path = _stock_checkpoint(cfg, tmp_path)
    model = SlimmableTrainer.build_model(cfg)
    SlimmableCheckpointer(model).resume_or_load(path, resume=False)
    sd = model.state_dict()
    assert torch.equal(sd["backbone.bottom_up.stem.conv1.weight"],
                       stock.state_dict()["backbone.bottom_up.stem.conv1.weight"])


def test_every_loader_loads_a_stock_checkpoint_the_same(tmp_path):
    """DetectionCheckpointer, DefaultPredictor and load_state_dict give each width the leading
    slice of the stock norm, exactly as SlimmableCheckpointer does."""
    from detectron2.engine import DefaultPredictor

    cfg = slim_cfg("slim_mask_rcnn_R50_FPN.yaml", "MODEL.RESNETS.DEPTH", 18,
                   "MODEL.RESNETS.RES2_OUT_CHANNELS", 64, "MODEL.ROI_MASK_HEAD.NORM", "GN")
    stock, path = _stock_checkpoint(cfg, tmp_path)
    reference = build_model(cfg).eval()
    SlimmableCheckpointer(reference).load(path)
    expected = reference.state_dict()
    norm = "backbone.bottom_up.res2.0.conv1.norm.0.weight"
    assert not torch.equal(expected[norm], build_model(cfg).state_dict()[norm])  # norms loaded

    detectron2_loaded = build_model(cfg).eval()
    DetectionCheckpointer(detectron2_loaded).load(path)
    plain_loaded = build_model(cfg).eval()
    plain_loaded.load_state_dict(stock.state_dict())  # strict: every key is placed
    predictor_cfg = cfg.clone()
    predictor_cfg.MODEL.WEIGHTS = path
    predictor_cfg.DATASETS.TEST = ()
    for loaded in (detectron2_loaded, plain_loaded, DefaultPredictor(predictor_cfg).model):
        state = loaded.state_dict()
        assert state.keys() == expected.keys()
        assert all(torch.equal(state[k], v) for k, v in expected.items())


def test_own_checkpoint_round_trip(tmp_path):
    cfg = slim_cfg("slim_faster_rcnn_R50_FPN.yaml", "MODEL.RESNETS.NORM", "BN")
    model = build_model(cfg).eval()
    randomize_norms(model, seed=3)
    SlimmableCheckpointer(model, save_dir=str(tmp_path)).save("slim")
    other = build_model(cfg).eval()
    SlimmableCheckpointer(other).load(str(tmp_path / "slim.pth"))
    for k, v in model.state_dict().items():
        assert torch.equal(v, other.state_dict()[k]), k


@pytest.mark.parametrize("stock_opts,slim_opts,message", [
    # deeper checkpoint: res4.6 ... res4.22 have no place in an R50
    (("MODEL.RESNETS.DEPTH", 101), (),
     r"checkpoint keys not in the model:\n  backbone\.bottom_up\.res4\.(6|[1-2][0-9])\."),
    # shallower checkpoint: the R101 model's extra blocks would stay random
    ((), ("MODEL.RESNETS.DEPTH", 101), r"model keys missing from parts the checkpoint covers"),
    # other number of classes: the predictor does not fit
    (("MODEL.ROI_HEADS.NUM_CLASSES", 3), (),
     r"mismatched shapes:\n  roi_heads\.box_predictor\.bbox_pred\.bias"),
])
def test_checkpoint_that_does_not_fit_is_an_error(tmp_path, stock_opts, slim_opts, message):
    stock_cfg = slim_cfg("slim_faster_rcnn_R50_FPN.yaml", *stock_opts)
    _, path = _stock_checkpoint(stock_cfg, tmp_path)
    model = build_model(slim_cfg("slim_faster_rcnn_R50_FPN.yaml", *slim_opts))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=message):
        SlimmableCheckpointer(model).load(path)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # nothing loaded
