"""Detectron2 model-zoo configs made slimmable by ``slimdet.slimmable_config``: at every width
each family equals the stock model of ``stock_config(scfg, w)`` with leading-slice weights."""
from __future__ import annotations

import pytest
import torch
from detectron2 import model_zoo
from detectron2.config import get_cfg
from detectron2.export.flatten import flatten_to_tuple
from detectron2.modeling import build_model
from detectron2.structures import BitMasks, Boxes, ImageList, Instances
from detectron2.utils.events import EventStorage

import slimdet
from helpers import WIDTHS, image_inputs, randomize_norms, stock_model_at
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
MASK_RCNN, RETINANET, SEMANTIC = FAMILIES[3], FAMILIES[6], FAMILIES[8]


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
    # A slimmable backbone under stock heads fails when the model is built, not at run time.
    cfg = zoo_cfg(RETINANET, "MODEL.BACKBONE.NAME", "build_slimmable_retinanet_resnet_fpn_backbone")
    slimdet.add_slimmable_config(cfg)
    with pytest.raises(ValueError, match="MODEL.META_ARCHITECTURE 'RetinaNet' would read the "
                                         "slimmable backbone's features at full width; use "
                                         "'SlimmableRetinaNet'"):
        build_model(cfg)
    cfg = slimdet.slimmable_config(zoo_cfg(FAMILIES[0]))
    cfg.MODEL.ROI_HEADS.NAME = "StandardROIHeads"
    with pytest.raises(ValueError, match="MODEL.ROI_HEADS.NAME 'StandardROIHeads' .* use "
                                         "'build_slimmable_standard_roi_heads'"):
        build_model(cfg)
    scfg = slimdet.slimmable_config(zoo_cfg(FAMILIES[0]), widths=[0.5, 1.0], slim_heads=True)
    assert scfg.MODEL.SLIMMABLE.WIDTHS == [0.5, 1.0] and scfg.MODEL.SLIMMABLE.SLIM_HEADS
    assert slimdet.slimmable_config(scfg) == scfg  # already slimmable: unchanged


# Detectron2's own end-to-end model scenarios (tests/modeling/test_model_e2e.py), rewritten
# here and run at every width: empty and half-empty training images of odd sizes, and
# inf/nan features reaching the heads.
ODD_SIZES = [(64, 80), (64, 79)]


def _instances(h: int, w: int, count: int) -> Instances:
    g = torch.Generator().manual_seed(count)
    xy = torch.rand(count, 2, generator=g) * torch.tensor([w / 2, h / 2])
    inst = Instances((h, w), gt_boxes=Boxes(torch.cat([xy, xy + torch.tensor([w / 3, h / 3])],
                                                      dim=1)),
                     gt_classes=torch.arange(count, dtype=torch.int64))
    inst.gt_masks = BitMasks(torch.rand(count, h, w, generator=g) > 0.5)
    return inst


def _non_finite(kind: str, *shape) -> torch.Tensor:
    return torch.full(shape, float("inf") if kind == "inf" else float("nan"))


@pytest.fixture(scope="module")
def zoo_models():
    cache = {}

    def get(name):
        if name not in cache:
            torch.manual_seed(43)
            cache[name] = build_model(slimdet.slimmable_config(zoo_cfg(name)))
        return cache[name]
    return get


@pytest.mark.parametrize("name", [MASK_RCNN, RETINANET], ids=["mask_rcnn", "retinanet"])
def test_empty_and_half_empty_training_data_of_odd_sizes(zoo_models, name):
    model = zoo_models(name)
    images = [torch.rand(3, h, w) * 255 for h, w in ODD_SIZES]
    batches = [[_instances(h, w, 0) for h, w in ODD_SIZES]]
    if name == MASK_RCNN:
        batches.append([_instances(*ODD_SIZES[0], 0), _instances(*ODD_SIZES[1], 3)])
    for width in WIDTHS:
        slimdet.set_width(model, width)
        with torch.no_grad():
            assert len(model.eval()([{"image": image} for image in images])) == 2
        for instances in batches:
            with EventStorage():
                losses = model.train()([{"image": image, "instances": inst}
                                        for image, inst in zip(images, instances)])
                total = sum(losses.values())
                total.backward()
            assert torch.isfinite(total), (width, losses)
            model.zero_grad()


@pytest.mark.parametrize("kind", ["inf", "nan"])
def test_roi_heads_drop_detections_on_non_finite_features(zoo_models, kind):
    model = zoo_models(MASK_RCNN).eval()
    images = ImageList(_non_finite(kind, 1, 3, 128, 128), [(126, 126)])
    for width in WIDTHS:
        slimdet.set_width(model, width)
        channels = int(256 * width)
        features = {f"p{i}": _non_finite(kind, 1, channels, 128 >> i, 128 >> i)
                    for i in range(2, 7)}
        proposals = Instances((126, 126), proposal_boxes=Boxes(torch.tensor([[10., 10, 20, 20]])),
                              objectness_logits=torch.tensor([1.0]))
        with torch.no_grad():
            detections, _ = model.roi_heads(images, features, [proposals])
        assert len(detections[0]) == 0, width


@pytest.mark.parametrize("kind", ["inf", "nan"])
def test_retinanet_keeps_non_finite_predictions_out_of_finite_boxes(zoo_models, kind):
    model = zoo_models(RETINANET).eval()
    model.test_score_thresh = -1e9
    images = ImageList(_non_finite(kind, 1, 3, 128, 128), [(126, 126)])
    for width in WIDTHS:
        slimdet.set_width(model, width)
        channels = int(256 * width)
        features = [_non_finite(kind, 1, channels, 128 >> i, 128 >> i) for i in range(3, 8)]
        with torch.no_grad():
            logits, deltas = model.head(features)
            predictions = [[_non_finite(kind, *x.shape) for x in logits],
                           [_non_finite(kind, *x.shape) for x in deltas]]
            detections = model.forward_inference(images, features, predictions)
        boxes = detections[0].pred_boxes.tensor
        assert not torch.isfinite(boxes).any(), width
        if kind == "inf":  # infinite logits pass any threshold: the check above saw boxes
            assert len(boxes) > 0, width


def test_semantic_fpn_on_odd_sizes(zoo_models):
    model = zoo_models(SEMANTIC).eval()
    for width in WIDTHS:
        slimdet.set_width(model, width)
        with torch.no_grad():
            out = model([{"image": torch.rand(3, h, w) * 255} for h, w in ODD_SIZES])
        assert [tuple(o["sem_seg"].shape[1:]) for o in out] == ODD_SIZES
