"""Slimmable training: every width per iteration, evaluation per width, resume and DDP."""
from __future__ import annotations

import json
import math
import os
import shutil

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage
from torch import nn

import slimdet
from helpers import DETERMINISTIC, WIDTHS, tiny_train_cfg
from slimdet.checkpoint import SlimmableCheckpointer
from slimdet.engine import (SandwichWidths, SlimmableSimpleTrainer, SlimmableTrainer,
                            forward_backward_widths)
from slimdet.layers import SlimLinear, SwitchableNorm
from slimdet.solver import NormPercentile


def _metrics(output_dir):
    with open(os.path.join(output_dir, "metrics.json")) as f:
        return [json.loads(line) for line in f]


def test_train_every_width_then_evaluate_every_width(tiny_data, tmp_path):
    cfg = tiny_train_cfg(tmp_path, "SOLVER.MAX_ITER", 3, "TEST.EVAL_PERIOD", 3)
    trainer = SlimmableTrainer(cfg)
    assert type(trainer._trainer) is SlimmableSimpleTrainer
    checkpointers = [h.checkpointer for h in trainer._hooks if hasattr(h, "checkpointer")]
    assert checkpointers == [trainer.checkpointer]
    assert isinstance(trainer.checkpointer, SlimmableCheckpointer)
    trainer.resume_or_load(resume=False)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train()

    history = trainer.storage.histories()
    for width in WIDTHS:
        for loss in ("loss_cls", "loss_box_reg", "loss_mask", "loss_rpn_cls", "loss_rpn_loc"):
            values = [v for v, _ in history[f"{slimdet.width_key(width)}/{loss}"].values()]
            assert len(values) == 3 and all(map(math.isfinite, values)), (width, loss, values)
    totals = [history[f"{slimdet.width_key(w)}/total_loss"].latest() for w in WIDTHS]
    assert history["total_loss"].latest() == pytest.approx(sum(totals), rel=1e-5)

    after = trainer.model.state_dict()
    sd_key = "backbone.bottom_up.res3.0.conv1.norm.{}.weight"
    for i in range(len(WIDTHS)):  # every width's own norm was trained
        assert not torch.equal(before[sd_key.format(i)], after[sd_key.format(i)])
    fc1 = "roi_heads.box_head.fc1.weight"
    assert not torch.equal(before[fc1], after[fc1])

    # EvalHook scalars per width
    eval_row = next(m for m in _metrics(tmp_path) if "w0.25/bbox/AP" in m)
    assert all(f"{slimdet.width_key(w)}/segm/AP" in eval_row for w in WIDTHS)
    with open(tmp_path / "per_width_results.json") as f:
        rows = json.load(f)["rows"]
    assert [r["width"] for r in rows] == WIDTHS
    assert all({"box AP", "AP50", "AP75", "mask AP", "GFLOPs"} <= r.keys() for r in rows)
    gflops = [r["GFLOPs"] for r in rows]
    assert gflops == sorted(gflops) and gflops[0] < gflops[-1] / 4  # narrow is really cheaper
    assert (tmp_path / "per_width_results.csv").read_text().startswith("width,GFLOPs,box AP")


class _Toy(nn.Module):
    """Slimmable toy whose loss is NaN at width 0.5."""

    def __init__(self):
        super().__init__()
        self.fc = SlimLinear((0.5, 1.0), [4, 8], [1, 1])
        self.norm = SwitchableNorm.from_norm(nn.BatchNorm1d(8), (0.5, 1.0), [4, 8])

    def forward(self, x):
        x = x[:, : self.fc.in_channels_list[self.fc.width_index]]
        loss = self.fc(self.norm(x)).mean()
        return {"loss_toy": loss / 0 * 0 if self.fc.width_index == 0 else loss}


def test_non_finite_loss_names_width_and_loss():
    with pytest.raises(FloatingPointError,
                       match=r"non-finite loss at width 0.5: \{'loss_toy': nan\}"):
        forward_backward_widths(_Toy(), torch.randn(4, 8), [0.5, 1.0])


def test_single_train_width_trains_an_individual_model():
    toy = _Toy()
    forward_backward_widths(toy, torch.randn(4, 8), [1.0])
    assert toy.norm[1].weight.grad is not None and toy.norm[0].weight.grad is None
    assert toy.fc.weight.grad.abs().sum() > 0


def test_resume_gives_the_same_weights_as_straight_training(tiny_data, tmp_path):
    opts = ["SOLVER.MAX_ITER", 4, "SOLVER.CHECKPOINT_PERIOD", 2, "MODEL.MASK_ON", False,
            "DATASETS.TEST", (),
            "SOLVER.MOMENTUM", 0.9, *DETERMINISTIC]
    straight = SlimmableTrainer(tiny_train_cfg(tmp_path / "straight", *opts))
    straight.resume_or_load(resume=False)
    straight.train()

    # An interrupted run: it had written the checkpoint after 2 iterations, then died.
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copy(tmp_path / "straight" / "model_0000001.pth", resumed_dir)
    (resumed_dir / "last_checkpoint").write_text("model_0000001.pth")
    resumed = SlimmableTrainer(tiny_train_cfg(resumed_dir, *opts))
    resumed.resume_or_load(resume=True)
    assert resumed.start_iter == 2
    resumed.train()

    a, b = straight.model.state_dict(), resumed.model.state_dict()
    errors = {k: (a[k].float() - b[k].float()).abs().max().item() for k in a}
    assert max(errors.values()) < 1e-4, sorted(errors.items(), key=lambda kv: -kv[1])[:5]
    momentum = straight.optimizer.state_dict()["state"]
    assert len(momentum) == len(resumed.optimizer.state_dict()["state"]) > 0
    assert straight.scheduler.get_last_lr() == resumed.scheduler.get_last_lr()


def _ddp_batch():
    """Two 64x64 images with two boxes each (one per process in the DDP run)."""
    g = torch.Generator().manual_seed(0)
    batch = []
    for i in range(2):
        inst = Instances((64, 64))
        inst.gt_boxes = Boxes(torch.tensor([[4.0, 6.0, 30.0, 40.0], [28.0, 20.0, 60.0, 58.0]]) + i)
        inst.gt_classes = torch.tensor([i, 2])
        batch.append({"image": torch.rand(3, 64, 64, generator=g) * 255, "instances": inst,
                      "height": 64, "width": 64})
    return batch


def _ddp_cfg(universal: bool):
    return tiny_train_cfg("/tmp/unused", "MODEL.MASK_ON", False, "MODEL.ROI_BOX_HEAD.NORM", "",
                          "MODEL.SLIMMABLE.UNIVERSAL", universal, *DETERMINISTIC)


def _one_step(model, data, universal: bool, width_clip: float = 0.0):
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    widths = SandwichWidths(0.25, 1.0, 4, seed=5) if universal else WIDTHS
    trainer = SlimmableSimpleTrainer(model, [data], opt, widths=widths, width_clip=width_clip)
    trainer.iter = 3  # the sandwich rule draws for (seed, iteration), on every process alike
    with EventStorage(0):
        trainer.run_step()


def _ddp_worker(rank, init_file, weights, out, universal, width_clip):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    torch.set_num_threads(1)
    model = build_model(_ddp_cfg(universal))
    model.load_state_dict(torch.load(weights))
    ddp = nn.parallel.DistributedDataParallel(model)
    _one_step(ddp, [_ddp_batch()[rank]], universal, width_clip)
    if rank == 0:
        torch.save(model.state_dict(), out)
    dist.destroy_process_group()


def _percentile_after_small_norms() -> NormPercentile:
    """The median of a history of one tiny norm per width and this step's: about half of
    each width's norm, so every width is clipped."""
    threshold = NormPercentile(50.0)
    threshold.load_state_dict({"history": {slimdet.width_key(w): [1e-3] for w in WIDTHS}})
    return threshold


@pytest.mark.parametrize("universal, width_clip", [
    (False, 0.0), (True, 0.0), (False, 0.05), (False, _percentile_after_small_norms())],
    ids=["width-list", "universal-sandwich", "per-width-clipping", "per-width-percentile"])
def test_ddp_step_equals_single_process_step_on_union_batch(tmp_path, universal, width_clip):
    """Two processes of one image each step as one process of both images; with per-width
    clipping (at a norm every width's gradient exceeds, or at a percentile of a history
    below them) each width's gradient is clipped after it is averaged over the processes, not
    each process's share before."""
    torch.manual_seed(0)
    model = build_model(_ddp_cfg(universal))
    weights = tmp_path / "init.pth"
    torch.save(model.state_dict(), weights)

    mp.start_processes(_ddp_worker, args=(str(tmp_path / "init"), str(weights),
                                          str(tmp_path / "ddp.pth"), universal, width_clip),
                       nprocs=2, start_method="spawn")
    _one_step(model, _ddp_batch(), universal, width_clip)

    ddp_sd, single_sd = torch.load(tmp_path / "ddp.pth"), model.state_dict()
    init = torch.load(weights)
    params = dict(model.named_parameters())
    moved = [k for k in params if not torch.equal(init[k], single_sd[k])]
    if universal:  # one norm shared by every width
        assert any(k.endswith(".norm.weight") for k in moved)
    else:  # each width's own norms
        assert any(".norm.0." in k for k in moved) and any(".norm.3." in k for k in moved)
    for k in params:  # every parameter
        err = (ddp_sd[k] - single_sd[k]).abs().max().item()
        scale = (single_sd[k] - init[k]).abs().max().item()
        rounding = 4 * torch.finfo(torch.float32).eps * init[k].abs().max().item()
        assert err <= 1e-4 * scale + rounding, (k, err, scale)


def test_evaluators_follow_the_datasets_evaluator_type(tiny_data, tmp_path):
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.evaluation import COCOPanopticEvaluator, DatasetEvaluators, SemSegEvaluator

    from slimdet.evaluation import FastCOCOEvaluator as COCOEvaluator

    ids = {1: 0}
    for kind in ("sem_seg", "coco_panoptic_seg", "cityscapes_instance"):
        DatasetCatalog.register(f"fake_{kind}", lambda: [{
            "file_name": "a.png", "sem_seg_file_name": "a_seg.png", "width": 8, "height": 8}])
        MetadataCatalog.get(f"fake_{kind}").set(
            evaluator_type=kind, stuff_classes=["a"], ignore_label=255, thing_classes=["a"],
            thing_dataset_id_to_contiguous_id=ids, stuff_dataset_id_to_contiguous_id=ids)
    build = SlimmableTrainer.build_evaluator
    assert type(build(None, "tiny_instances_val", str(tmp_path))) is COCOEvaluator
    assert type(build(None, "fake_sem_seg", str(tmp_path))) is SemSegEvaluator
    panoptic = build(None, "fake_coco_panoptic_seg", str(tmp_path))
    assert isinstance(panoptic, DatasetEvaluators)
    assert [type(e) for e in panoptic._evaluators] == [SemSegEvaluator, COCOEvaluator,
                                                       COCOPanopticEvaluator]
    with pytest.raises(NotImplementedError, match="evaluator_type 'cityscapes_instance'"):
        build(None, "fake_cityscapes_instance", str(tmp_path))
