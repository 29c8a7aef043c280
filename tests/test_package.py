"""An installed slimdet carries its configs: ``slimdet.model_zoo`` works from any directory."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from helpers import REPO
from slimdet import model_zoo


def test_model_zoo_serves_the_repo_configs_and_names_unknown_ones():
    assert "COCO/slim_mask_rcnn_R50_FPN.yaml" in model_zoo.list_configs()
    cfg = model_zoo.get_config("COCO/slim_keypoint_rcnn_R50_FPN.yaml", ["MODEL.DEVICE", "cpu"])
    assert cfg.MODEL.KEYPOINT_ON and list(cfg.MODEL.SLIMMABLE.WIDTHS) == [0.25, 0.5, 0.75, 1.0]
    with pytest.raises(FileNotFoundError, match="no config 'COCO/nope.yaml'.*slim_mask_rcnn"):
        model_zoo.get_config_file("COCO/nope.yaml")


@pytest.mark.slow
def test_pip_installed_package_has_its_configs(tmp_path):
    # pip builds in the source tree (build/): install from a copy, not from the checkout
    source, target = tmp_path / "source", tmp_path / "site"
    shutil.copytree(REPO, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".*", "build", "output", "datasets", "pretrained", "__pycache__", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(source)], check=True)
    code = ("import slimdet, slimdet.model_zoo as z; "
            f"assert slimdet.__file__.startswith({str(target)!r}), slimdet.__file__; "
            "c = z.get_config('COCO/slim_mask_rcnn_R50_FPN.yaml'); "
            "print(len(z.list_configs()), c.MODEL.MASK_ON)")
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], cwd=tmp_path,
                         env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [str(len(model_zoo.list_configs())), "True"]


def test_importing_slimdet_first_silences_detectron2s_jit_script_warning():
    """Detectron2's ``torch.jit.script`` helpers warn in every process that imports them;
    after ``import slimdet`` they do not (Python's own warnings shown by default)."""
    code = "import {}; import detectron2.evaluation, detectron2.modeling"
    runs = {first: subprocess.run([sys.executable, "-W", "default", "-c", code.format(first)],
                                  capture_output=True, text=True, cwd=REPO, timeout=300)
            for first in ("torch", "slimdet")}
    assert "`torch.jit.script` is deprecated" in runs["torch"].stderr  # what there is to silence
    assert "`torch.jit.script` is deprecated" not in runs["slimdet"].stderr
    assert runs["slimdet"].returncode == 0
