"""Exact resume: tools/train_net.py killed with SIGKILL (during evaluation, during training) and
resumed ends where the uninterrupted run ends; the data stream and checkpoint writes that make
it so."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from torch import nn

from helpers import REPO, SYNTHETIC_CONFIG
from slimdet.checkpoint import SlimmableCheckpointer
from slimdet.data.resumable import ResumableBatchSampler, SeededMapDataset
from slimdet.data.synthetic import generate
from slimdet.layers import SlimLinear

# 12 images in batches of 2: six different batches per epoch, so a resume that restarted the
# data stream would train on other images. Random flips and ROI sampling stay on.
TRAIN_OPTS = [
    "INPUT.MIN_SIZE_TRAIN", "(64,)", "INPUT.MAX_SIZE_TRAIN", "64", "INPUT.MIN_SIZE_TEST", "64",
    "INPUT.MAX_SIZE_TEST", "64", "SOLVER.IMS_PER_BATCH", "2", "SOLVER.BASE_LR", "0.01",
    "SOLVER.WARMUP_ITERS", "0", "SOLVER.STEPS", "()", "SOLVER.MAX_ITER", "8",
    "SOLVER.CHECKPOINT_PERIOD", "2", "TEST.EVAL_PERIOD", "4", "DATALOADER.NUM_WORKERS", "1",
    "MODEL.FPN.OUT_CHANNELS", "64", "MODEL.ROI_BOX_HEAD.FC_DIM", "64", "SEED", "3",
    # each width clipped at the median of its own norms so far: that history resumes too
    "SOLVER.CLIP_GRADIENTS.ENABLED", "True", "SOLVER.CLIP_GRADIENTS.CLIP_TYPE",
    "per_width_percentile", "SOLVER.CLIP_GRADIENTS.PERCENTILE", "50.0"]


def _train(data_root, output_dir, *extra) -> subprocess.Popen:
    env = dict(os.environ, SLIMDET_DATASETS=str(data_root), OMP_NUM_THREADS="1",
               PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, str(REPO / "tools" / "train_net.py"), "--config-file",
         str(SYNTHETIC_CONFIG), *extra, *TRAIN_OPTS, "OUTPUT_DIR", str(output_dir)],
        env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"training ended (exit {proc.returncode}) before the kill"
        assert time.monotonic() < deadline, "timed out waiting for the kill point"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _last_checkpoint(output_dir) -> str:
    path = output_dir / "last_checkpoint"
    return path.read_text() if path.exists() else ""


@pytest.mark.slow
def test_killed_and_resumed_run_ends_with_the_uninterrupted_runs_weights(tmp_path):
    generate(str(tmp_path / "synthetic"), num_train=12, num_val=2, image_size=64, seed=0)
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert _train(tmp_path, straight).wait() == 0

    # Kill 1: during the evaluation after iteration 3 (checkpoint model_0000003 is complete).
    proc = _train(tmp_path, killed)
    _kill_when(proc, lambda: (killed / "inference").exists())
    assert _last_checkpoint(killed) == "model_0000003.pth"
    # Kill 2: in the iterations after the resumed run's first checkpoint.
    proc = _train(tmp_path, killed, "--resume")
    _kill_when(proc, lambda: _last_checkpoint(killed) == "model_0000005.pth")
    assert _train(tmp_path, killed, "--resume").wait() == 0

    a = torch.load(straight / "model_final.pth", weights_only=True)
    b = torch.load(killed / "model_final.pth", weights_only=True)
    assert a["iteration"] == b["iteration"] == 7 and a["widths"] == b["widths"]
    assert a["model"].keys() == b["model"].keys()
    assert max((a["model"][k].double() - b["model"][k].double()).abs().max().item()
               for k in a["model"]) == 0.0
    optimizers = [c["trainer"]["_trainer"]["optimizer"]["state"] for c in (a, b)]
    momentum = [(s["momentum_buffer"], optimizers[1][i]["momentum_buffer"])
                for i, s in optimizers[0].items()]
    assert momentum and all(torch.equal(x, y) for x, y in momentum)
    histories = [c["trainer"]["_trainer"]["width_clipping"]["history"] for c in (a, b)]
    assert histories[0] == histories[1] and sorted(histories[0]) == ["w0.25", "w0.5", "w0.75", "w1"]
    assert all(len(norms) == 8 for norms in histories[0].values())
    assert a["trainer"]["data"] == b["trainer"]["data"] == {"seed": a["trainer"]["data"]["seed"],
                                                            "next_batch": 8}
    rows = [json.loads((d / "per_width_results.json").read_text())["rows"]
            for d in (straight, killed)]
    assert rows[0] == rows[1] and len(rows[0]) == 4


def _positions(batches) -> list[list[int]]:
    return [[p for p, _ in batch] for batch in batches]


def test_batch_stream_resumes_at_any_batch_with_aspect_grouping():
    groups = [0, 1, 1, 0, 1, 0, 0, 1, 1]
    sampler = ResumableBatchSampler(len(groups), 2, seed=5, groups=groups)
    head = [b for _, b in zip(range(20), sampler)]
    for batch in head:  # every batch is one aspect group, in stream order
        assert len({groups[i] for _, i in batch}) == 1 and batch == sorted(batch)
    sampler.start = 7
    assert [b for _, b in zip(range(13), sampler)] == head[7:]
    other = ResumableBatchSampler(len(groups), 2, seed=6, groups=groups)
    assert [b for _, b in zip(range(20), other)] != head


def test_processes_take_disjoint_slices_of_every_global_batch(monkeypatch):
    from slimdet.data import resumable

    monkeypatch.setattr(resumable.comm, "get_world_size", lambda: 2)
    per_rank = []
    for rank in (0, 1):
        monkeypatch.setattr(resumable.comm, "get_rank", lambda rank=rank: rank)
        sampler = ResumableBatchSampler(9, 4, seed=1)
        sampler.start = 3
        per_rank.append([b for _, b in zip(range(5), sampler)])
    expected = [b for _, b in zip(range(8), sampler.global_batches())][3:]
    assert [a + b for a, b in zip(*per_rank)] == expected
    assert all(len(b) == 2 for b in per_rank[0])


def test_mapping_is_seeded_by_stream_position_only():
    dataset = SeededMapDataset([{"file_name": "a"}, {"file_name": "b"}],
                               lambda d: (d["file_name"], torch.rand(1).item()), seed=1)
    first = [dataset[(p, p % 2)] for p in range(4)]
    torch.manual_seed(123)  # the caller's generator state does not matter
    assert [dataset[(p, p % 2)] for p in reversed(range(4))] == first[::-1]
    state = torch.get_rng_state()
    dataset[(9, 0)]
    assert torch.equal(state, torch.get_rng_state())  # nor does mapping change it


def test_interrupted_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = nn.Sequential(SlimLinear([0.5, 1.0], [2, 4], [2, 4]))
    checkpointer = SlimmableCheckpointer(model, save_dir=str(tmp_path))
    checkpointer.save("model_0000001")

    def killed_while_writing(data, f):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt  # stands for the kill: nothing after this runs

    monkeypatch.setattr(torch, "save", killed_while_writing)
    with pytest.raises(KeyboardInterrupt):
        checkpointer.save("model_0000003")
    monkeypatch.undo()
    assert _last_checkpoint(tmp_path) == "model_0000001.pth"
    assert not (tmp_path / "model_0000003.pth").exists()
    assert checkpointer.resume_or_load("", resume=True)["widths"] == [0.5, 1.0]
