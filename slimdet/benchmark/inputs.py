"""Random benchmark inputs in Detectron2's model input format.

Images are uniform noise; training targets are random boxes with box-shaped masks (in
``INPUT.MASK_FORMAT``, as Detectron2's dataset mapper makes them: the default polygons are cheap
to index per proposal, full-image bitmasks are not) and keypoints inside their boxes.

An untrained RPN rarely proposes boxes overlapping the objects, so the ROI heads would train on
the ground-truth boxes (appended to the proposals) alone, a number that varies with the weights.
With as many objects as the positive quota of the ROI sampler, every width trains its ROI heads on
exactly that quota of positives, as a trained RPN gives on busy images. (The RPN then matches
its anchors against more boxes than a typical image has; that cost is the same at every width.)
"""
from __future__ import annotations

import torch
from detectron2.config import CfgNode
from detectron2.structures import BitMasks, Boxes, Instances, Keypoints, PolygonMasks

__all__ = ["random_images", "positive_quota", "random_training_batch"]


def random_images(height: int, width: int, device: torch.device, *, count: int = 1,
                  seed: int = 0) -> list[dict]:
    """``count`` uniform-noise images (0-255, CHW) as inference inputs."""
    g = torch.Generator().manual_seed(seed)
    return [{"image": (torch.rand(3, height, width, generator=g) * 255).to(device)}
            for _ in range(count)]


def positive_quota(cfg: CfgNode) -> int:
    """Most positive proposals the ROI heads sample per training image."""
    return int(cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE * cfg.MODEL.ROI_HEADS.POSITIVE_FRACTION)


def random_training_batch(cfg: CfgNode, height: int, width: int, device: torch.device, *,
                          count: int = 1, seed: int = 0) -> list[dict]:
    """Training inputs with ``positive_quota(cfg)`` random objects per image: boxes and classes,
    plus masks and keypoints where ``cfg`` turns those heads on."""
    g = torch.Generator().manual_seed(seed)
    instances = positive_quota(cfg)
    batch = random_images(height, width, device, count=count, seed=seed)
    for item in batch:
        size = torch.tensor([width, height], dtype=torch.float32)
        wh = (0.2 + 0.3 * torch.rand(instances, 2, generator=g)) * size
        x0y0 = torch.rand(instances, 2, generator=g) * (size - wh)
        boxes = torch.cat([x0y0, x0y0 + wh], dim=1)
        target = Instances((height, width), gt_boxes=Boxes(boxes),
                           gt_classes=torch.randint(cfg.MODEL.ROI_HEADS.NUM_CLASSES, (instances,),
                                                    generator=g))
        if cfg.MODEL.MASK_ON:
            polygons = [[[x0, y0, x1, y0, x1, y1, x0, y1]] for x0, y0, x1, y1 in boxes.tolist()]
            target.gt_masks = (PolygonMasks(polygons) if cfg.INPUT.MASK_FORMAT == "polygon" else
                               BitMasks.from_polygon_masks(polygons, height, width))
        if cfg.MODEL.KEYPOINT_ON:
            k = cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS
            xy = boxes[:, None, :2] + torch.rand(instances, k, 2, generator=g) * wh[:, None]
            target.gt_keypoints = Keypoints(torch.cat([xy, torch.full((instances, k, 1), 2.0)], 2))
        item["instances"] = target.to(device)
    return batch
