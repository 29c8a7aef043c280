"""Top-1 accuracy of an image classifier, as a Detectron2 ``DatasetEvaluator``."""
from __future__ import annotations

import itertools
from collections import OrderedDict

import torch
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm

__all__ = ["ClassificationEvaluator"]


class ClassificationEvaluator(DatasetEvaluator):
    """Counts the images whose highest logit is their ``label``, over every process;
    ``evaluate`` returns ``{"classification": {"top1": percent, "images": count}}``."""

    def __init__(self, dataset_name: str):
        self.dataset_name = dataset_name
        self._correct: list[bool] = []

    def reset(self) -> None:
        self._correct = []

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        for x, out in zip(inputs, outputs):
            self._correct.append(int(torch.argmax(out["logits"])) == int(x["label"]))

    def evaluate(self) -> OrderedDict:
        correct = list(itertools.chain(*comm.gather(self._correct)))
        if not comm.is_main_process():
            return OrderedDict()
        if not correct:
            raise ValueError(f"no images of {self.dataset_name} were evaluated")
        return OrderedDict(classification={"top1": 100.0 * sum(correct) / len(correct),
                                           "images": len(correct)})
