"""tools/compare_widths.py: S-Net against I-Nets per width, seeds averaged, mismatches refused."""
from __future__ import annotations

import json

import pytest

from conftest import WIDTHS, synthetic_cfg, tool


def _run(folder, ap: dict, *opts):
    """A finished run: config.yaml (as Detectron2 writes it) and per_width_results.json."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(synthetic_cfg(*opts).dump())
    rows = [{"width": w, "GFLOPs": 2 * w * w, "box AP": ap[w], "mask AP": ap[w] - 1}
            for w in ap]
    (folder / "per_width_results.json").write_text(json.dumps({"rows": rows}))
    return str(folder)


def _inet(folder, width: float, ap: float, *opts):
    return _run(folder, {w: ap if w == width else 0.0 for w in WIDTHS},
                "MODEL.SLIMMABLE.TRAIN_WIDTHS", [width], *opts)


def test_comparison_averages_seeds_and_writes_every_file(tmp_path):
    snets = [_run(tmp_path / f"s{seed}", {w: 40 * w + seed for w in WIDTHS}) for seed in (0, 2)]
    inets = [_inet(tmp_path / f"i{w}_{seed}", w, 40 * w - 1 + seed) for w in WIDTHS
             for seed in (0, 1)]
    table = tool("compare_widths").main(["--slimmable", *snets, "--individual", *inets,
                                         "--output", str(tmp_path / "out")])
    row = next(r for r in table if r["width"] == 0.5)
    assert row["box AP"]["S-Net"] == {"mean": 21.0, "std": pytest.approx(2 ** 0.5), "n": 2}
    assert row["box AP"]["I-Net"]["mean"] == 19.5 and row["box AP"]["diff"] == 1.5
    assert row["mask AP"]["diff"] == 1.5 and row["GFLOPs"] == 0.5
    for ext in ("json", "csv", "md", "png"):
        assert (tmp_path / "out" / f"comparison.{ext}").stat().st_size > 0
    assert "| 0.5 | 0.5 | 19.5 ± 0.7 → 21.0 ± 1.4 (+1.5)" in (
        tmp_path / "out" / "comparison.md").read_text()


def test_mismatched_runs_are_refused(tmp_path):
    snet = _run(tmp_path / "s", {w: 40 * w for w in WIDTHS})
    inets = [_inet(tmp_path / f"i{w}", w, 30.0) for w in WIDTHS]
    longer = _inet(tmp_path / "long", 0.25, 30.0, "SOLVER.MAX_ITER", 9000)
    compare = tool("compare_widths").main
    out = ["--output", str(tmp_path / "out")]
    with pytest.raises(ValueError, match=r"runs differ in SOLVER.MAX_ITER"):
        compare(["--slimmable", snet, "--individual", *inets[1:], longer, *out])
    with pytest.raises(ValueError, match=r"no individual run for widths \[1.0\]"):
        compare(["--slimmable", snet, "--individual", *inets[:3], *out])
    with pytest.raises(ValueError, match=r"trained widths \[0.25, 0.5, 0.75, 1.0\]; an individual"):
        compare(["--slimmable", snet, "--individual", snet, *out])
    with pytest.raises(ValueError, match="is not a finished slimdet run: no per_width_results"):
        compare(["--slimmable", str(tmp_path), "--individual", *inets, *out])
