"""tools/compare_widths.py: S-Net against I-Nets per width, seeds averaged, mismatches refused."""
from __future__ import annotations

import json

import pytest

from helpers import WIDTHS, synthetic_cfg, tool
from slimdet.data import clutter, clutter_classes
from slimdet.study import TASKS, plan_study, recipes
from slimdet.study.plan import PAPER_SETTING
from slimdet.evaluation.gradient_summary import GRADIENT_PROBE
from slimdet.evaluation.training_curves import TRAINING_CURVES
from slimdet.study.pipeline import restore_study
from slimdet.study.records import (RECORD_FILES, RecordMismatch, config_differences,
                                   restore_records, save_records)
from slimdet.study.report import report_families, write_reports
from slimdet.study.runner import finished, run_config, run_study


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


def test_a_variant_is_paired_with_the_snet_of_its_seed(tmp_path):
    """A variant S-Net (e.g. distilled) against the plain S-Net: at width 1.0 the variant
    gains 1 and 3 box AP in seeds 0 and 1 (mean 2, std sqrt(2), interval 2 ± 12.706); a seed
    the S-Net lacks (2) pairs with nothing. Runs of another schedule are refused."""
    base = [_run(tmp_path / f"s{seed}", {w: 40 * w + seed for w in WIDTHS}, "SEED", seed)
            for seed in (0, 1)]
    variant = [_run(tmp_path / f"v{seed}", {w: 40 * w + seed + (1 + 2 * seed) * (w == 1.0)
                                            for w in WIDTHS}, "SEED", seed) for seed in (0, 1, 2)]
    inets = [_inet(tmp_path / f"i{w}", w, 30.0) for w in WIDTHS]
    out = tmp_path / "out"
    tool("compare_widths").main(["--slimmable", *variant, "--individual", *inets,
                                 "--baseline", *base, "--label", "late", "--output", str(out)])
    report = json.loads((out / "comparison.json").read_text())
    assert report["label"] == "late"  # the plot's name for the variant
    against = report["against_snet"]
    assert all("S-Net GFLOPs" in row for row in against)  # where the plot draws the S-Net
    wide = next(row for row in against if row["width"] == 1.0)["box AP"]
    assert wide["paired"]["mean"] == 2.0 and wide["paired"]["n"] == 2
    assert wide["paired"]["ci95"] == pytest.approx([2 - 12.706, 2 + 12.706])
    assert wide["variant"]["n"] == 3 and wide["S-Net"]["mean"] == 40.5
    report = (out / "comparison.md").read_text()
    assert "| 0.5 | 20.5 ± 0.7 → 21.0 ± 1.0 | +0.0 [+0.0, +0.0] ~ |" in report
    other = _run(tmp_path / "long", {w: 1.0 for w in WIDTHS}, "SOLVER.MAX_ITER", 7)
    with pytest.raises(ValueError, match="SOLVER.MAX_ITER"):
        tool("compare_widths").main(["--slimmable", *variant, "--individual", *inets,
                                     "--baseline", other, "--output", str(out)])


def test_same_seed_differences_get_a_95_percent_interval(tmp_path):
    """S - I is paired by SEED: at width 1.0 the differences 1, 2, 3 over three seeds give
    mean 2, std 1 and 2 ± 4.303/sqrt(3), which spans zero; at 0.5 the differences 1.9, 2.0,
    2.1 do not. I-Nets whose seeds repeat pair with nothing."""
    snets, inets = [], []
    for seed, gain in zip((3, 4, 5), (1.0, 2.0, 3.0)):
        snets.append(_run(tmp_path / f"s{seed}", {0.5: 30.0 + 9 * seed, 1.0: 40.0 + seed + gain},
                          "SEED", seed, "MODEL.SLIMMABLE.WIDTHS", [0.5, 1.0]))
        inets.append(_inet(tmp_path / f"i1_{seed}", 1.0, 40.0 + seed, "SEED", seed,
                           "MODEL.SLIMMABLE.WIDTHS", [0.5, 1.0]))
        inets.append(_inet(tmp_path / f"i05_{seed}", 0.5, 28.0 + 9 * seed - gain / 10 + 0.2,
                           "SEED", seed, "MODEL.SLIMMABLE.WIDTHS", [0.5, 1.0]))
    out = tmp_path / "out"
    table = tool("compare_widths").main(["--slimmable", *snets, "--individual", *inets,
                                         "--output", str(out)])
    wide = table[1]["box AP"]["paired"]
    assert wide["mean"] == pytest.approx(2.0) and wide["std"] == pytest.approx(1.0)
    half = 4.303 / 3 ** 0.5
    assert wide["ci95"] == pytest.approx([2 - half, 2 + half]) and wide["noise"]
    narrow = table[0]["box AP"]["paired"]
    assert narrow["mean"] == pytest.approx(2.0) and not narrow["noise"]
    assert narrow["ci95"][0] > 1.6 and narrow["ci95"][1] < 2.4
    text = (out / "comparison.md").read_text()
    assert "| +2.0 [-0.5, +4.5] ~ |" in text and "| +2.0 [+1.8, +2.2] |" in text

    repeated = [_inet(tmp_path / f"r{k}", 1.0, 40.0, "SEED", 3, "MODEL.SLIMMABLE.WIDTHS",
                      [0.5, 1.0]) for k in range(2)]
    table = tool("compare_widths").main(["--slimmable", *snets, "--individual", *repeated,
                                         *inets[1::2], "--output", str(out)])
    assert table[1]["box AP"]["paired"] is None


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


@pytest.mark.slow
def test_study_trains_every_family_and_continues_where_it_stopped(tmp_path, monkeypatch,
                                                                 capsys):
    """tools/compare_study.py end to end on a tiny clutter dataset: S-Net and I-Nets trained
    by real train_net processes, the report written, and a second call keeps finished runs."""
    monkeypatch.setenv("SLIMDET_DATASETS", str(tmp_path))  # where the child processes look
    clutter.generate(str(tmp_path / "clutter"), num_train=4, num_val=2, seed=0)
    args = ["--seeds", "0", "--recipes", "sum", "mean", "--jobs", "2", "--bootstrap", "20",
            "--output",
            str(tmp_path / "study"), "--progress-every", "1",
            "MODEL.SLIMMABLE.WIDTHS", "[0.5, 1.0]", "SOLVER.MAX_ITER", "2",
            "SOLVER.IMS_PER_BATCH", "2", "DATALOADER.NUM_WORKERS", "0"]
    study = tool("compare_study").main(args)
    assert set(study["runs"]) == {"snet_s0", "inet_w0.5_s0", "inet_w1_s0", "snet_mean_s0"}
    printed = capsys.readouterr().out
    assert "| study " in printed and "ETA" in printed
    for report in ("report", "report_mean"):
        table = json.loads((tmp_path / "study" / report / "comparison.json").read_text())
        assert [row["width"] for row in table["rows"]] == [0.5, 1.0]
        assert table["individual"] == [str(tmp_path / "study" / f"inet_w{w}_s0") for w in (1, 0.5)]
        assert table["rows"][0]["box AP"]["bootstrap"]["per_seed"]["0"]["samples"] == 20
    snet_mean = (tmp_path / "study" / "snet_mean_s0" / "config.yaml").read_text()
    assert "LOSS_REDUCTION: mean" in snet_mean

    records = ["--records", str(tmp_path / "records")]  # options go before the overrides
    args[args.index("--progress-every"):args.index("--progress-every")] = records
    again = tool("compare_study").main(args)
    assert again["runs"] == study["runs"]  # nothing retrained, earlier wall times kept
    assert capsys.readouterr().out.count("finished earlier, kept") == 4
    assert sorted(p.name for p in (tmp_path / "records").iterdir()) == sorted(study["runs"])

    elsewhere = args[:args.index("--output") + 1] + [str(tmp_path / "elsewhere")] + args[
        args.index("--output") + 2:]
    moved = tool("compare_study").main(elsewhere)  # another session, the same records
    assert moved["runs"] == {} and capsys.readouterr().out.count("restored from") == 4
    here, there = (json.loads((tmp_path / d / "report" / "comparison.json").read_text())["rows"]
                   for d in ("study", "elsewhere"))
    assert [r["box AP"]["paired"] for r in there] == [r["box AP"]["paired"] for r in here]
    assert "bootstrap" not in there[0]["box AP"]  # restored runs kept no predictions


def test_study_plan_distils_only_the_distilled_runs():
    runs = {r.name: r.opts for r in plan_study(TASKS["mask"].config_file, [0], [],
                                               [recipes()["sum"]], universal=True, distill=True)}
    assert list(runs) == ["snet_s0", "inet_w1_s0", "inet_w0.75_s0", "inet_w0.5_s0",
                          "inet_w0.25_s0", "snet_distill_s0", "usnet_s0", "usnet_distill_s0"]
    distilled = {name for name, opts in runs.items() if "MODEL.SLIMMABLE.DISTILL.ENABLED" in opts}
    assert distilled == {"snet_distill_s0", "usnet_distill_s0"}


def test_recipes_share_the_individual_runs_they_do_not_change():
    """``mean`` trains a single width exactly as ``sum`` does, so its S-Net is compared with the
    I-Nets of ``sum``; ``clip`` clips the I-Nets too, and ``widthclip`` (each width clipped on
    its own) shares them."""
    chosen = [recipes(3.0)[name] for name in ("sum", "mean", "clip", "widthclip")]
    runs = {r.name: r for r in plan_study(TASKS["keypoint"].config_file, [1], [], chosen)}
    assert [name for name in runs if name.startswith("snet")] == [
        "snet_s1", "snet_mean_s1", "snet_clip_s1", "snet_widthclip_s1"]
    assert [name for name in runs if name.startswith("inet_w1")] == ["inet_w1_s1",
                                                                     "inet_w1_clip_s1"]
    clip = ["SOLVER.CLIP_GRADIENTS.CLIP_TYPE", "full_model", "SOLVER.CLIP_GRADIENTS.CLIP_VALUE",
            "3.0"]
    assert " ".join(clip) in " ".join(runs["inet_w0.5_clip_s1"].opts)
    assert " ".join(clip) in " ".join(runs["snet_clip_s1"].opts)
    off = ["SOLVER.CLIP_GRADIENTS.ENABLED", "False"]  # whatever the config's default
    assert runs["snet_mean_s1"].opts[2:] == [*off, "MODEL.SLIMMABLE.LOSS_REDUCTION", "mean"]
    assert runs["inet_w1_s1"].opts[2:4] == off and runs["snet_s1"].opts[2:] == off
    assert "CLIP_TYPE per_width" in " ".join(runs["snet_widthclip_s1"].opts)
    alone = {r.name: r for r in plan_study(TASKS["keypoint"].config_file, [1], [],
                                           [recipes(3.0)["widthclip"]])}
    assert alone["inet_w0.5_clip_s1"].opts == runs["inet_w0.5_clip_s1"].opts


def test_universal_runs_add_a_column_and_a_curve(tmp_path):
    snet = _run(tmp_path / "s", {w: 40 * w for w in WIDTHS})
    inets = [_inet(tmp_path / f"i{w}", w, 30.0) for w in WIDTHS]
    every = [0.25 + i / 16 for i in range(13)]
    universal = _run(tmp_path / "u", {w: 38 * w for w in every}, "MODEL.SLIMMABLE.UNIVERSAL",
                     True, "MODEL.SLIMMABLE.TEST_WIDTHS", every)
    out = tmp_path / "out"
    table = tool("compare_widths").main(["--slimmable", snet, "--individual", *inets,
                                         "--universal", universal, "--output", str(out)])
    assert table[1]["box AP"]["US-Net"]["mean"] == 19.0  # width 0.5
    report = json.loads((out / "comparison.json").read_text())
    assert len(report["universal_curve"]) == 13
    assert "| 0.5 | 0.5 | 30.0 → 20.0 (-10.0) | -10.0 (1 seed) | 19.0 |" in (
        out / "comparison.md").read_text()
    with pytest.raises(ValueError, match="runs of MODEL.SLIMMABLE.UNIVERSAL models"):
        tool("compare_widths").main(["--slimmable", snet, "--individual", *inets,
                                     "--universal", snet, "--output", str(out)])


def _planned(folder, run, ap: dict, output, opts=()) -> None:
    """A finished run of a study's plan: its results and the config the plan trains it with
    (``run_config``) as its ``config.yaml``."""
    _run(folder, ap)
    cfg = run_config(TASKS["mask"].config_file, opts, run, str(output))
    (folder / "config.yaml").write_text(cfg.dump())


def test_records_carry_finished_runs_to_another_output_and_are_reported(tmp_path):
    """save_records keeps only runs that finished training, with no path of the machine that
    made them; restored ones count as finished, are not restored over a result, and the report
    reads them."""
    opts = ["MODEL.SLIMMABLE.WIDTHS", "[0.5, 1.0]"]
    trained, fresh = tmp_path / "trained", tmp_path / "fresh"
    runs = plan_study(TASKS["mask"].config_file, [0], opts, [recipes()["sum"]])
    names = [run.name for run in runs]
    assert names == ["snet_s0", "inet_w1_s0", "inet_w0.5_s0"]
    aps = {"snet_s0": {0.5: 30.0, 1.0: 41.0}, "inet_w1_s0": {1.0: 40.0},
           "inet_w0.5_s0": {0.5: 29.0}}
    for run in runs:
        _planned(trained / run.name, run, aps[run.name], trained, opts)
    results = json.loads((trained / "snet_s0" / RECORD_FILES[0]).read_text())
    results["ground_truth"] = {"clutter_instances_val": str(
        tmp_path / "datasets" / "clutter" / "annotations" / "instances_val.json")}
    (trained / "snet_s0" / RECORD_FILES[0]).write_text(json.dumps(results))
    for name in names[:2]:
        (trained / name / "model_final.pth").write_bytes(b"")
    records = tmp_path / "records"
    assert save_records(str(trained), str(records), names) == names[:2]  # 0.5 unfinished
    assert sorted(p.name for p in (records / "snet_s0").iterdir()) == sorted(RECORD_FILES)
    for path in (records / "snet_s0").iterdir():  # portable: no path of this machine
        assert str(tmp_path) not in path.read_text(), path.name
    assert json.loads((records / "snet_s0" / RECORD_FILES[0]).read_text())["ground_truth"] == {
        "clutter_instances_val": "clutter/annotations/instances_val.json"}

    expected = {run.name: run_config(TASKS["mask"].config_file, opts, run, str(fresh))
                for run in runs}
    _planned(fresh / "inet_w1_s0", runs[1], {1.0: 35.0}, fresh, opts)  # wins over the record
    assert restore_records(str(records), str(fresh), expected) == ["snet_s0"]
    assert finished(str(fresh / "snet_s0")) and not finished(str(fresh / "inet_w0.5_s0"))
    _planned(fresh / "inet_w0.5_s0", runs[2], aps["inet_w0.5_s0"], fresh, opts)
    (folder,) = write_reports(runs, [recipes()["sum"]], str(fresh), bootstrap=0)
    table = json.loads((tmp_path / "fresh" / "report" / "comparison.json").read_text())["rows"]
    assert folder.endswith("report") and table[1]["box AP"]["paired"]["mean"] == 6.0


def test_a_record_of_other_settings_is_refused_naming_the_keys(tmp_path):
    """A record restores only for the run the plan would train: one made under the same name
    with another recipe, or before a default changed, is an error that names every differing
    key, and nothing is copied; a key added to slimdet after the record was made counts only
    where the plan sets it to other than its default."""
    opts = ["MODEL.SLIMMABLE.WIDTHS", "[0.5, 1.0]"]
    records, fresh = tmp_path / "records", tmp_path / "fresh"
    (snet,) = [r for r in plan_study(TASKS["mask"].config_file, [0], opts, [recipes()["sum"]])
               if r.family == "snet"]
    _planned(records / "snet_s0", snet, {0.5: 30.0, 1.0: 41.0}, records, opts)
    clipped = run_config(TASKS["mask"].config_file, opts, snet, str(fresh))
    clipped.merge_from_list(list(recipes()["widthclip"].opts))  # another recipe, same name
    with pytest.raises(RecordMismatch) as error:
        restore_records(str(records), str(fresh), {"snet_s0": clipped})
    message = str(error.value)
    assert "snet_s0" in message and message.count(": record ") == 1  # one key differs
    assert "SOLVER.CLIP_GRADIENTS.ENABLED: record False, plan True" in message
    assert "OUTPUT_DIR" not in message and not (fresh / "snet_s0").exists()

    record = run_config(TASKS["mask"].config_file, opts, snet, str(records))
    universal = ["MODEL.SLIMMABLE.UNIVERSAL", "True"]
    old = run_config(TASKS["mask"].config_file,
                     [*opts, *universal, "MODEL.SLIMMABLE.UNIVERSAL_AFFINE", "shared"], snet, "")
    new = run_config(TASKS["mask"].config_file, [*opts, *universal], snet, "")
    assert config_differences(old, new) == [
        "MODEL.SLIMMABLE.UNIVERSAL_AFFINE: record 'shared', plan 'per_width'"]
    del record.SOLVER.CLIP_GRADIENTS["PERCENTILE"]  # a record made before the key
    assert config_differences(record, run_config(TASKS["mask"].config_file, opts, snet, "")) == []
    percentile = ["SOLVER.CLIP_GRADIENTS.ENABLED", "True", "SOLVER.CLIP_GRADIENTS.CLIP_TYPE",
                  "per_width_percentile", "SOLVER.CLIP_GRADIENTS.PERCENTILE", "90.0"]
    record.merge_from_list(percentile[:4])
    planned = run_config(TASKS["mask"].config_file, opts, snet, "")
    planned.merge_from_list(percentile)
    assert config_differences(record, planned) == [
        "SOLVER.CLIP_GRADIENTS.PERCENTILE: record (none, made before the key), plan 90.0"]


def test_a_pretraining_record_stands_in_only_where_no_run_needs_its_backbone(tmp_path):
    """Restored from records, a pretrained study reports without pretraining again once its
    fine-tuned runs are restored too; a pretraining run whose backbone an unfinished run needs
    is left to train (a record has no weights)."""
    opts = ["MODEL.SLIMMABLE.WIDTHS", "[0.5, 1.0]"]
    fresh = tmp_path / "fresh"
    runs = plan_study(TASKS["mask"].config_file, [0], opts, [recipes()["sum"]], pretrained=True,
                      output=str(fresh))
    records = tmp_path / "records"
    for run in runs:
        _run(records / run.name, {w: 40.0 for w in run.widths}, *opts)
        cfg = run_config(TASKS["mask"].config_file, opts, run, str(fresh))
        (records / run.name / "config.yaml").write_text(cfg.dump())
    missing = "inet_w0.5_pt_s0"
    for path in (records / missing).iterdir():
        path.unlink()
    restored = restore_study(str(records), str(fresh), runs, TASKS["mask"].config_file, opts)
    assert set(restored) == {run.name for run in runs} - {missing, "pretrain_inet_w0.5"}
    assert not finished(str(fresh / "pretrain_inet_w0.5"))
    assert finished(str(fresh / "pretrain_snet"))


def _log_losses(folder, losses) -> None:
    """``metrics.json`` as Detectron2's writer leaves it: a row per 20 iterations whose
    per-width losses are ``losses(width, iteration)``, rows without them between (evaluation)."""
    rows = []
    for it in range(19, 1000, 20):
        row = {"iteration": it, "total_loss": 9.0, "lr": 0.01}
        for w in WIDTHS:
            row.update({f"w{w:g}/loss_cls": losses(w, it), f"w{w:g}/total_loss": 2 * losses(w, it),
                        f"w{w:g}/fast_rcnn/cls_accuracy": 0.5, f"w{w:g}/grad_norm": w})
        rows.append(row)
    rows.append({"iteration": 999, "w1/bbox/AP": 40.0})
    (folder / "metrics.json").write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def test_training_losses_of_the_tail_are_compared_per_width_and_kept_in_records(tmp_path):
    """The tail (last 10%: iterations 919-999) means of every per-width loss, S-Net against
    the I-Nets of that width averaged over seeds; records keep the curves compactly."""
    snet = _run(tmp_path / "s0", {w: 40.0 for w in WIDTHS})
    _log_losses(tmp_path / "s0", lambda w, it: w + (it >= 899))  # 1 + w in the tail
    inets = []
    for w in WIDTHS:
        for seed in (0, 1):
            inets.append(_inet(tmp_path / f"i{w}_{seed}", w, 39.0, "SEED", seed))
            _log_losses(tmp_path / f"i{w}_{seed}", lambda _, it, s=seed: 0.5 + s)
    out = tmp_path / "out"
    tool("compare_widths").main(["--slimmable", snet, "--individual", *inets,
                                 "--output", str(out)])
    training = json.loads((out / "comparison.json").read_text())["training"]
    assert [row["width"] for row in training] == sorted(WIDTHS, reverse=True)
    narrow = training[-1]["losses"]
    assert sorted(narrow) == ["loss_cls", "total_loss"]  # no accuracy, no unprefixed key
    assert narrow["loss_cls"] == {"I-Net": pytest.approx(1.0), "S-Net": pytest.approx(1.25)}
    assert narrow["total_loss"]["S-Net"] == pytest.approx(2.5)
    assert "| 0.25 | 2.000 → 2.500 | 1.000 → 1.250 |" in (out / "comparison.md").read_text()
    assert (out / "comparison_training.png").stat().st_size > 0

    (tmp_path / "s0" / "model_final.pth").write_bytes(b"")
    save_records(str(tmp_path), str(tmp_path / "records"), ["s0"])
    kept = json.loads((tmp_path / "records" / "s0" / TRAINING_CURVES).read_text())
    assert kept["w0.25/loss_cls"][-1] == [999, 1.25]
    probe = json.loads((tmp_path / "records" / "s0" / GRADIENT_PROBE).read_text())
    assert sorted(probe) == [f"w{w:g}/grad_norm" for w in sorted(WIDTHS)]
    assert restore_records(str(tmp_path / "records"), str(tmp_path / "fresh"),
                           {"s0": synthetic_cfg()}) == ["s0"]
    assert (tmp_path / "fresh" / "s0" / TRAINING_CURVES).read_text() == json.dumps(
        kept, separators=(",", ":"))


def test_only_trains_the_runs_that_match_and_leaves_the_others(tmp_path, capsys):
    """With ``only``, a run that does not match is neither trained nor an error: here the
    I-Nets are finished and the S-Net is left for later, so nothing trains at all."""
    opts = ["MODEL.SLIMMABLE.WIDTHS", "[0.5, 1.0]"]
    runs = plan_study(TASKS["mask"].config_file, [0], opts, [recipes()["sum"]])
    _inet(tmp_path / "inet_w1_s0", 1.0, 40.0, *opts)
    _inet(tmp_path / "inet_w0.5_s0", 0.5, 29.0, *opts)
    for name in ("inet_w1_s0", "inet_w0.5_s0"):
        (tmp_path / name / "model_final.pth").write_bytes(b"")
    study = run_study(runs, TASKS["mask"].config_file, opts, str(tmp_path), only=["inet_*"])
    assert study["runs"] == {} and not (tmp_path / "snet_s0").exists()
    printed = capsys.readouterr().out
    assert "snet_s0: not in --only, left for later" in printed
    assert printed.count("finished earlier, kept") == 2


def test_pretrained_plan_pretrains_once_and_starts_each_family_from_its_own_backbone():
    runs = {r.name: r for r in plan_study(TASKS["mask"].config_file, [0, 1], [],
                                           [recipes()["sum"]], pretrained=True, output="out")}
    assert list(runs)[:2] == ["pretrain_snet", "pretrain_inet_w1"]
    assert runs["pretrain_snet"].opts[-1] == "[0.25, 0.5, 0.75, 1.0]"  # the detector's order
    snet, inet = runs["snet_pt_s1"], runs["inet_w0.5_pt_s0"]
    assert snet.after == ("pretrain_snet",) and inet.after == ("pretrain_inet_w0.5",)
    assert "out/pretrain_inet_w0.5/backbone.pth" in inet.opts and inet.family == "inet_pt"
    assert " ".join(PAPER_SETTING) in " ".join(snet.opts)
    assert runs["pretrain_inet_w0.25"].tool == "pretrain_backbone" and snet.tool == "train_net"
    scratch = runs["snet_s1"]  # what the pretrained S-Net is paired with: same seed, no backbone
    assert scratch.after == () and scratch.family == "snet" and "MODEL.WEIGHTS" not in scratch.opts
    assert [n for n in runs if n.endswith("_s0")] == [
        "snet_pt_s0", "snet_s0", *(f"inet_w{w}{pt}_s0" for w in ("1", "0.75", "0.5", "0.25")
                                   for pt in ("_pt", ""))]
    with pytest.raises(ValueError, match="no universally slimmable backbone"):
        plan_study(TASKS["mask"].config_file, [0], [], [recipes()["sum"]], universal=True,
                   pretrained=True)


def test_pretrained_variants_start_from_the_slimmable_backbone_and_pair_with_its_s_net():
    runs = plan_study(TASKS["mask"].config_file, [0], [], [recipes()["sum"]], distill=True,
                      pretrained=True, output="out", variants={"late": ["SOLVER.MAX_ITER", "9"]})
    by_name = {run.name: run for run in runs}
    assert "snet_distill_s0" not in by_name and "snet_late_s0" not in by_name
    for name in ("snet_distill_pt_s0", "snet_late_pt_s0"):
        assert by_name[name].after == ("pretrain_snet",)
        assert "out/pretrain_snet/backbone.pth" in by_name[name].opts
    assert [(family, suffix, paired) for family, _, suffix, paired in report_families(runs)] == [
        ("snet", "", ""), ("snet_distill_pt", "_distill_pretrained", "snet_pt"),
        ("snet_late_pt", "_late_pretrained", "snet_pt"), ("snet_pt", "_pretrained", "snet")]


@pytest.mark.slow
def test_pretrained_study_pretrains_then_fine_tunes_and_reports(tmp_path, monkeypatch):
    monkeypatch.setenv("SLIMDET_DATASETS", str(tmp_path))  # where the child processes look
    clutter.generate(str(tmp_path / "clutter"), num_train=4, num_val=2, seed=0)
    clutter_classes.generate(str(tmp_path / "clutter_classes"), num_train=18, num_val=9)
    study = tool("compare_study").main([
        "--pretrained", "--recipes", "sum", "--pretrain-opts",
        "SOLVER.MAX_ITER 2 SOLVER.IMS_PER_BATCH 4 "
        "DATALOADER.NUM_WORKERS 0", "--jobs", "2", "--bootstrap", "0", "--output",
        str(tmp_path / "study"), "--progress-every", "1", "MODEL.SLIMMABLE.WIDTHS", "[0.5, 1.0]",
        "SOLVER.MAX_ITER", "2", "SOLVER.IMS_PER_BATCH", "2", "DATALOADER.NUM_WORKERS", "0"])
    assert set(study["runs"]) == {"pretrain_snet", "pretrain_inet_w1", "pretrain_inet_w0.5",
                                  "snet_pt_s0", "inet_w1_pt_s0", "inet_w0.5_pt_s0",
                                  "snet_s0", "inet_w1_s0", "inet_w0.5_s0"}
    report = tmp_path / "study" / "report_pretrained"
    comparison = json.loads((report / "comparison.json").read_text())
    assert [row["width"] for row in comparison["rows"]] == [0.5, 1.0]
    assert comparison["baseline"] == [str(tmp_path / "study" / "snet_s0")]  # from scratch
    assert [row["width"] for row in comparison["against_snet"]] == [0.5, 1.0]
    assert (report / "pretraining.md").read_text().count("\n| ") == 2  # one row per width
    config = (tmp_path / "study" / "snet_pt_s0" / "config.yaml").read_text()
    assert "NORM: FrozenBN" in config and "pretrain_snet/backbone.pth" in config


def test_variants_are_more_s_nets_compared_with_the_same_i_nets(tmp_path):
    opts = ["MODEL.SLIMMABLE.WIDTHS", "[0.5, 1.0]"]
    bounded = ["MODEL.SLIMMABLE.DISTILL.ENABLED", "True",
               "MODEL.SLIMMABLE.DISTILL.ROI_LOC_MODE", "bounded"]
    runs = plan_study(TASKS["mask"].config_file, [0], opts, [recipes()["sum"]],
                      variants={"bounded": bounded})
    assert [r.name for r in runs] == ["snet_s0", "inet_w1_s0", "inet_w0.5_s0", "snet_bounded_s0"]
    assert runs[-1].opts[4:] == bounded and runs[-1].family == "snet_bounded"
    _run(tmp_path / "snet_s0", {0.5: 30.0, 1.0: 41.0}, *opts)
    _run(tmp_path / "snet_bounded_s0", {0.5: 31.0, 1.0: 42.5}, *opts)
    _inet(tmp_path / "inet_w1_s0", 1.0, 40.0, *opts)
    _inet(tmp_path / "inet_w0.5_s0", 0.5, 29.0, *opts)
    folders = write_reports(runs, [recipes()["sum"]], str(tmp_path))
    assert [f.rsplit("/", 1)[-1] for f in folders] == ["report", "report_bounded"]
    report = json.loads((tmp_path / "report_bounded" / "comparison.json").read_text())
    assert report["rows"][1]["box AP"]["paired"]["mean"] == 2.5
    assert report["label"] == "snet_bounded"
    assert json.loads((tmp_path / "report" / "comparison.json").read_text())["label"] == "S-Net"
    assert report["against_snet"][1]["box AP"]["paired"]["mean"] == 1.5  # 42.5 - 41.0
    markdown = (tmp_path / "report_bounded" / "comparison.md").read_text()
    assert "Against the S-Net (snet_s0)" in markdown
    plain = json.loads((tmp_path / "report" / "comparison.json").read_text())
    assert plain["against_snet"] == []  # the S-Net's own report
    with pytest.raises(ValueError, match="variant name 'pt'"):
        plan_study(TASKS["mask"].config_file, [0], opts, [recipes()["sum"]], variants={"pt": []})
