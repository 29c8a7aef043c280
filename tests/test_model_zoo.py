"""Detectron2 model-zoo configs made slimmable by ``slimdet.slimmable_config``: at every width
each family equals the stock model of ``stock_config(scfg, w)`` with leading-slice weights."""
from __future__ import annotations

import pytest
import torch
from detectron2 import model_zoo
from detectron2.config import get_cfg
from detectron2.export.flatten import flatten_to_tuple
from detectron2.modeling import build_model

import slimdet
from conftest import WIDTHS, image_inputs, randomize_norms, stock_model_at
from slimdet.export import max_output_difference

SMALL = ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "", "INPUT.MIN_SIZE_TEST", 64,
         "INPUT.MAX_SIZE_TEST", 96, "MODEL.ROI_HEADS.SCORE_THRESH_TEST", 0.0,
         "MODEL.RETINANET.SCORE_THRESH_TEST", 0.0, "MODEL.RPN.POST_NMS_TOPK_TEST", 30,
         "TEST.DETECTIONS_PER_IMAGE", 10]
FAMILIES = [
    "COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml",
    "COCO-Detection/faster_rcnn_R_50_C4_1x.yaml",
    "COCO-Detection/faster_rcnn_R_50_DC5_1x.yaml",
    "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml",
    "COCO-Keypoints/keypoint_rcnn_R_50_FPN_1x.yaml",
    "Misc/cascade_mask_rcnn_R_50_FPN_1x.yaml",
    "COCO-Detection/retinanet_R_50_FPN_1x.yaml",
    "COCO-Detection/rpn_R_50_FPN_1x.yaml",
    "Misc/semantic_R_50_FPN_1x.yaml",
    "COCO-PanopticSegmentation/panoptic_fpn_R_50_1x.yaml",
]


def zoo_cfg(name: str, *opts):
    cfg = get_cfg()
    cfg.merge_from_file(model_zoo.get_config_file(name))
    cfg.merge_from_list([*SMALL, *opts])
    return cfg


def relative_error(a, b) -> float:
    """Max absolute difference over all output tensors, relative to the largest reference
    value (``inf`` if the outputs differ in structure, e.g. in number of detections)."""
    for out in (a, b):  # panoptic segments_info are dicts of ids, compared through the mask
        for item in out:
            if "panoptic_seg" in item:
                item["panoptic_seg"] = item["panoptic_seg"][0]
    largest = max(t.double().abs().max().item() for t in flatten_to_tuple(b)[0]
                  if torch.is_tensor(t) and t.numel())
    return max_output_difference(a, b) / max(largest, 1e-12)


CASES = [(f, False) for f in FAMILIES] + [(FAMILIES[5], True), (FAMILIES[9], True)]


@pytest.mark.parametrize("name,slim_heads", CASES,
                         ids=[f.split("/")[1][:-5] + ("-slim_heads" if h else "")
                              for f, h in CASES])
def test_model_zoo_family_equals_stock_at_every_width(name, slim_heads):
    cfg = zoo_cfg(name)
    scfg = slimdet.slimmable_config(cfg, slim_heads=slim_heads)
    assert cfg.MODEL.META_ARCHITECTURE == slimdet.stock_config(scfg, 1.0).MODEL.META_ARCHITECTURE
    assert "SLIMMABLE" not in cfg.MODEL  # the stock config is left unchanged
    model = build_model(scfg).eval()
    randomize_norms(model)
    inputs = image_inputs(height=64, width=96)
    for width in WIDTHS:
        stock = stock_model_at(scfg, model, width)
        with slimdet.width_scope(model, width), torch.no_grad():
            assert relative_error(model(inputs), stock(inputs)) < 1e-4, width


def test_unknown_components_are_named():
    with pytest.raises(ValueError, match="MODEL.ROI_HEADS.NAME 'MyROIHeads' has no slimmable"):
        slimdet.slimmable_config(zoo_cfg(FAMILIES[0], "MODEL.ROI_HEADS.NAME", "MyROIHeads"))
    with pytest.raises(ValueError, match="MODEL.META_ARCHITECTURE 'FCOS' has no slimmable"):
        slimdet.slimmable_config(zoo_cfg(FAMILIES[0], "MODEL.META_ARCHITECTURE", "FCOS"))
    scfg = slimdet.slimmable_config(zoo_cfg(FAMILIES[0]), widths=[0.5, 1.0], slim_heads=True)
    assert scfg.MODEL.SLIMMABLE.WIDTHS == [0.5, 1.0] and scfg.MODEL.SLIMMABLE.SLIM_HEADS
    assert slimdet.slimmable_config(scfg) == scfg  # already slimmable: unchanged
