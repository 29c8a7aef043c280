"""Image classification with a slimmable ResNet, to pretrain backbones as the paper does before
detection: Detectron2's ``ResNet`` with its own classification head (global average pooling
and a linear layer, output ``"linear"``), made slimmable like every other component.

The parameter names are the detection backbone's (``stem.conv1``, ``res2.0.conv1``, ...,
norms switchable per width), so the pretrained weights load into a detector's
``backbone.bottom_up`` (``slimdet.checkpoint.backbone_weights``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from detectron2.config import CfgNode
from detectron2.layers import ShapeSpec
from detectron2.modeling import META_ARCH_REGISTRY, ResNet
from detectron2.utils.events import get_event_storage
from torch import nn

from .backbone.stock import build_stock_resnet
from .conversion import build_slimmable

__all__ = ["SlimmableImageClassifier", "build_stock_resnet_classifier"]


def build_stock_resnet_classifier(cfg: CfgNode) -> ResNet:
    """Detectron2's ResNet of ``cfg`` (narrow R18/R34 too) with ``MODEL.CLASSIFIER.NUM_CLASSES``
    outputs; ``MODEL.RESNETS.OUT_FEATURES`` must reach ``res5`` (the stages built)."""
    if "res5" not in cfg.MODEL.RESNETS.OUT_FEATURES:
        raise ValueError("a ResNet classifier needs every stage: MODEL.RESNETS.OUT_FEATURES must "
                         f"include res5, got {list(cfg.MODEL.RESNETS.OUT_FEATURES)}")
    features = build_stock_resnet(cfg, ShapeSpec(channels=len(cfg.MODEL.PIXEL_MEAN)))
    return ResNet(features.stem, [list(stage) for stage in features.stages],
                  num_classes=cfg.MODEL.CLASSIFIER.NUM_CLASSES)


@META_ARCH_REGISTRY.register()
class SlimmableImageClassifier(nn.Module):
    """A slimmable ResNet classifier over batches of ``{"image": CHW tensor in INPUT.FORMAT,
    "label": int}`` (images of one size). Training returns ``{"loss_cls"}`` (cross entropy)
    and logs ``cls_accuracy``; inference returns ``[{"logits": (NUM_CLASSES,)}]`` per image."""

    def __init__(self, cfg: CfgNode):
        super().__init__()
        self.backbone = build_slimmable(cfg, build_stock_resnet_classifier)
        self.register_buffer("pixel_mean", torch.tensor(cfg.MODEL.PIXEL_MEAN).view(-1, 1, 1),
                             False)
        self.register_buffer("pixel_std", torch.tensor(cfg.MODEL.PIXEL_STD).view(-1, 1, 1),
                             False)

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def forward(self, batched_inputs: list[dict]):
        images = torch.stack([(x["image"].to(self.device).float() - self.pixel_mean)
                              / self.pixel_std for x in batched_inputs])
        logits = self.backbone(images)["linear"]
        if not self.training:
            return [{"logits": row} for row in logits]
        labels = torch.tensor([x["label"] for x in batched_inputs], device=self.device)
        get_event_storage().put_scalar("cls_accuracy",
                                       (logits.argmax(1) == labels).float().mean().item())
        return {"loss_cls": F.cross_entropy(logits, labels)}
