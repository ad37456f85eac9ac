"""bench/strong_teacher.py: the labelled/unlabelled split it writes, and the goal verdicts
read from the arms' records."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest
from conftest import make_sentences, write_conll

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import strong_teacher  # noqa: E402


def test_text_rows_split_into_a_labelled_sample_and_unlabelled_others(tmp_path):
    data = tmp_path / "sst2"
    data.mkdir()
    rows = [f"sentence {i}\t{i % 2}" for i in range(50)]
    (data / "train.tsv").write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    paths, counts = strong_teacher._split_rows(strong_teacher.TASKS["sst2"], data, 20, 10,
                                               tmp_path / "out")
    header, *train = paths["train"].read_text().splitlines()
    unlabelled = [json.loads(line)["text"] for line in paths["unlabelled"].open()]
    assert header == "sentence\tlabel" and len(train) == 20 and len(unlabelled) == 10
    assert not {r.split("\t")[0] for r in train} & set(unlabelled)  # (disjoint)
    assert counts == {"labelled": 20, "unlabelled": 10}
    again, _ = strong_teacher._split_rows(strong_teacher.TASKS["sst2"], data, 20, 10,
                                          tmp_path / "out")
    assert again["train"].read_text().splitlines()[1:] == train  # (written once, seeded)
    # None: every row outside the sample, in a fresh folder; the same seeded sample
    rest, counts = strong_teacher._split_rows(strong_teacher.TASKS["sst2"], data, 20, None,
                                              tmp_path / "rest")
    assert counts == {"labelled": 20, "unlabelled": 30}
    assert rest["train"].read_text().splitlines()[1:] == train
    with pytest.raises(SystemExit, match="split as 20 labelled and 10 unlabelled rows, not 25"):
        strong_teacher._split_rows(strong_teacher.TASKS["sst2"], data, 25, 10, tmp_path / "out")


def test_sentences_split_as_words_without_tags(tmp_path):
    data = tmp_path / "conll"
    write_conll(data / "train.txt", make_sentences(30, seed=4))
    paths, counts = strong_teacher._split_rows(strong_teacher.TASKS["conll2003"], data, 12,
                                               18, tmp_path / "out")
    assert counts == {"labelled": 12, "unlabelled": 18}
    blocks = [b for b in paths["train"].read_text().split("\n\n") if b.strip()]
    words = [json.loads(line)["tokens"] for line in paths["unlabelled"].open()]
    assert len(blocks) == 12 and len(words) == 18 and all(len(w) == 6 for w in words)
    assert all(len(line.split()) == 3 for b in blocks for line in b.splitlines())


def _arm(teacher: str, arm: str, accuracy: float, teacher_accuracy: float, ratio: float,
         layers: int = 3, student_from: str | None = None):
    return {"teacher": teacher, "arm": arm, "layers": layers, "student_from": student_from,
            "walls": {"distill_s": 600.0},
            "flags": strong_teacher._student_flags(strong_teacher.TASKS["sst2"], teacher,
                                                   layers),
            "transfer_rows": {"labelled": 100, "unlabelled": 50},
            "hidden_weight": 0.0, "speedup": {
                "int8_accuracy": accuracy, "teacher_accuracy": teacher_accuracy,
                "kept": accuracy / teacher_accuracy,
                "p50": {"ratio": ratio, "bounds": [ratio - 5, ratio + 5],
                        "teacher_ms": 40.0, "int8_ms": 40.0 / ratio}}}


def test_goals_are_judged_from_the_best_strong_teacher_student():
    result = {"task": "sst2", "date": "2026-12-02", "labelled": 8000, "unlabelled": 16000,
              "augment": "eda", "metric": "accuracy",
              "goals": strong_teacher.TASKS["sst2"]["goals"],
              "teachers": {"strong": {"flags": ["--model", "mpnet-base", "--epochs", "2"],
                                      "test": 0.925,
                                      "wall_s": 3600}},
              "students": {"strong-labelled": _arm("strong", "labelled", 0.89, 0.925, 70),
                           "strong-both": _arm("strong", "both", 0.895, 0.925, 65)
                           | {"transfer_rows": {"labelled": 100, "unlabelled": 450,
                                                "augmented": 400}},  # (augmented among them)
                           # (cut from the fine-tuned small teacher: a student at the
                           # task's depth, so it counts for the goals)
                           "strong-both-from-small": _arm("strong", "both", 0.905, 0.925, 55,
                                                          student_from="small"),
                           # (shallower: judged only by the 2-layer goal)
                           "strong-both-L2": _arm("strong", "both", 0.95, 0.925, 90, 2),
                           "small-both-L2": _arm("small", "both", 0.88, 0.89, 30, 2)}}
    text = strong_teacher.render(result)
    # (its test figure as finetune reports it, then as verify's bundle scoring gives it)
    assert "| strong: mpnet-base, 2 epochs | 0.9250 | 0.9250 | 40.00 | 60.0 |" in text
    assert "gold word the runtime splits" not in text  # (a tagger's note)
    assert "| teacher (strong), test accuracy | >= 0.92 | 0.9250 | **yes** |" in text
    assert ("| int8 student (strong, both, cut from the small teacher), test accuracy | "
            ">= 0.9 | "
            "0.9050 | **yes** |") in text
    assert "| speed-up over the teacher, p50 | >= 60.0 | 55.0000 | no |" in text
    assert ("| strong | labelled | raw minilm-l6 | 3 | 150 | 0.0 | 0.8900 | 96.2% | "
            "70.0x [65, 75] |  | 10.0 |") in text  # (no bundle size recorded)
    assert "| strong | both | the small teacher | 3 | 150 |" in text
    assert "| strong | both | raw minilm-l6 | 3 | 550 |" in text
    assert "| small | both | itself | 2 | 150 |" in text
    assert ("| int8 2-layer student (strong, both), test accuracy | >= 0.885 | 0.9500 | "
            "**yes** |") in text


def test_a_strong_teacher_trained_otherwise_is_judged_beside_the_first(tmp_path):
    spec = strong_teacher.TASKS["fashion-mnist"]
    # (its students are the strong teacher's: the same flags, named by the teacher)
    assert (strong_teacher._student_flags(spec, "strong-pad-crop", None)
            == spec["students"]["strong"])
    assert strong_teacher._key(spec, "strong-pad-crop", "labelled", None) \
        == "strong-pad-crop-labelled"
    result = {"task": "fashion-mnist", "date": "2026-12-03", "labelled": 500,
              "unlabelled": 100, "augment": "pad-crop", "metric": "accuracy",
              "goals": spec["goals"],
              "teachers": {"strong": {"flags": ["--model", "efficientnet-lite2"],
                                      "test": 0.947, "wall_s": 60},
                           "strong-pad-crop": {"flags": spec["teachers"]["strong-pad-crop"],
                                               "test": 0.956, "wall_s": 60}},
              "students": {"strong-labelled": _arm("strong", "labelled", 0.937, 0.947, 25),
                           "strong-pad-crop-labelled": _arm("strong-pad-crop", "labelled",
                                                            0.951, 0.956, 25, 8)
                           | {"bundle_mb": 1.78}}}
    text = strong_teacher.render(result)
    assert ("| strong-pad-crop: efficientnet-lite2, 6 epochs, 64 px, --augment pad-crop | 0.9560 |"
            in text)
    assert ("| teacher (strong-pad-crop), test accuracy | >= 0.955 | 0.9560 | **yes** |"
            in text)
    assert ("| int8 student (strong-pad-crop, labelled), test accuracy | >= 0.95 | 0.9510 | "
            "**yes** |") in text
    assert "| the int8 student's bundle archive, MB | <= 2.0 | 1.7800 | **yes** |" in text
    strong_teacher.plot(result, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 0


def test_a_student_of_another_depth_is_named_apart():
    spec = strong_teacher.TASKS["sst2"]
    assert strong_teacher._key(spec, "strong", "both", None) == "strong-both"
    assert strong_teacher._key(spec, "strong", "both", 3) == "strong-both"  # (the task's)
    assert strong_teacher._key(spec, "strong", "both", 2) == "strong-both-L2"
    assert strong_teacher._student_flags(spec, "strong", 2)[-2:] == ["--student-layers", "2"]


def test_a_student_with_a_hidden_weight_is_named_and_flagged_apart():
    spec = strong_teacher.TASKS["sst2"]
    assert strong_teacher._key(spec, "strong", "both", None, "small", 1.0) == \
        "strong-both-h1-from-small"
    assert strong_teacher._key(spec, "strong", "both", None, None, 0.5) == "strong-both-h0.5"
    assert strong_teacher._student_flags(spec, "strong", None, None, 1.0)[-2:] == [
        "--hidden-weight", "1"]
    assert strong_teacher._student_flags(spec, "strong", None) == spec["students"]["strong"]


def test_a_student_cut_from_the_small_teacher_is_named_and_flagged_apart(tmp_path):
    spec = strong_teacher.TASKS["sst2"]
    small = tmp_path / "teachers" / "small"
    assert strong_teacher._student_flags(spec, "strong", None, small) == [
        "--student", str(small), "--student-layers", "3"]
    assert strong_teacher._key(spec, "strong", "both", None, "small") == "strong-both-from-small"
    assert strong_teacher._key(spec, "strong", "both", 2, "small") == "strong-both-L2-from-small"
    with pytest.raises(SystemExit, match="cut from itself"):  # (the small one has no --student)
        strong_teacher._student_flags(spec, "small", None, small)
    with pytest.raises(SystemExit, match="not trained yet"):
        strong_teacher.student("sst2", "strong", "both", {}, tmp_path, tmp_path, False,
                               init="small")


def test_the_bundle_goal_is_met_from_below():
    spec = strong_teacher.TASKS["fashion-mnist"]
    result = {"task": "fashion-mnist", "date": "2026-12-03", "labelled": 50000,
              "unlabelled": 10000, "augment": "flip-crop", "metric": "accuracy",
              "goals": spec["goals"],
              "teachers": {"strong": {"flags": ["--model", "efficientnet-lite2"],
                                      "test": 0.956, "wall_s": 3600}},
              "students": {"strong-labelled": _arm("strong", "labelled", 0.951, 0.956, 4)
                           | {"bundle_mb": 1.77, "layers": 8},
                           "strong-both": _arm("strong", "both", 0.949, 0.956, 4)
                           | {"bundle_mb": 2.31, "layers": 8}}}
    text = strong_teacher.render(result)
    # (judged on the best student at the task's depth: the labelled arm's 0.951)
    assert "| 1.77 |" in text and "| 2.31 |" in text
    assert "| the int8 student's bundle archive, MB | <= 2.0 | 1.7700 | **yes** |" in text
    result["students"]["strong-labelled"]["bundle_mb"] = 2.5
    assert ("| the int8 student's bundle archive, MB | <= 2.0 | 2.5000 | no |"
            in strong_teacher.render(result))


def test_the_small_model_counts_for_the_goals_only_trained_with_augmentation():
    # (the Fashion-MNIST teacher goal: "Lite2, or Lite0 with augmentation")
    spec = strong_teacher.TASKS["fashion-mnist"]
    assert spec["students"]["small"] == strong_teacher._student_flags(spec, "small-pad-crop",
                                                                      None)
    result = {"task": "fashion-mnist", "date": "2026-12-05", "labelled": 500,
              "unlabelled": 100, "augment": "pad-crop", "metric": "accuracy",
              "goals": spec["goals"],
              "teachers": {"strong": {"flags": spec["teachers"]["strong"], "test": 0.947,
                                      "wall_s": 60},
                           # (plain Lite0, better than Lite2 here: not a teacher of the goal)
                           "small": {"flags": spec["teachers"]["small"], "test": 0.958,
                                     "wall_s": 60},
                           "small-pad-crop": {"flags": spec["teachers"]["small-pad-crop"],
                                              "test": 0.952, "wall_s": 60}},
              "students": {"small-unlabelled": _arm("small", "unlabelled", 0.96, 0.958, 30, 8),
                           "small-pad-crop-unlabelled": _arm("small-pad-crop", "unlabelled",
                                                             0.945, 0.952, 30, 8),
                           "strong-unlabelled": _arm("strong", "unlabelled", 0.939, 0.947,
                                                     25, 8)}}
    text = strong_teacher.render(result)
    assert "| small-pad-crop: efficientnet-lite0, 10 epochs, 64 px, --augment pad-crop |" in text
    assert "| teacher (small-pad-crop), test accuracy | >= 0.955 | 0.9520 | no |" in text
    assert ("| int8 student (small-pad-crop, unlabelled), test accuracy | >= 0.95 | 0.9450 | "
            "no |") in text
    result["teachers"]["small-pad-crop"]["test"] = 0.94  # (now Lite2 is the best of the two)
    assert "| teacher (strong), test accuracy | >= 0.955 | 0.9470 | no |" in \
        strong_teacher.render(result)


def test_a_record_written_on_two_machines_says_which_ran_each_row():
    spec = strong_teacher.TASKS["fashion-mnist"]
    xeon = {"cpu": "Intel Xeon", "logical_cpus": 2, "isa": ["avx2", "avx512_vnni"]}
    epyc = {"cpu": "AMD EPYC", "logical_cpus": 2, "isa": ["avx2"]}
    result = {"task": "fashion-mnist", "date": "2026-12-05", "labelled": 500,
              "unlabelled": 100, "augment": "pad-crop", "metric": "accuracy",
              "goals": spec["goals"], "environment": {"machine": xeon | {"os": "Linux"}},
              # (an entry from before machines were recorded: the record's environment's)
              "teachers": {"strong": {"flags": spec["teachers"]["strong"], "test": 0.947,
                                      "wall_s": 60},
                           "strong-lite1": {"flags": spec["teachers"]["strong-lite1"],
                                            "test": 0.945, "wall_s": 60, "machine": epyc}},
              "students": {"strong-unlabelled": _arm("strong", "unlabelled", 0.939, 0.947, 25,
                                                     8),
                           "strong-lite1-unlabelled": _arm("strong-lite1", "unlabelled", 0.94,
                                                           0.945, 20, 8) | {"machine": epyc}}}
    text = strong_teacher.render(result)
    assert ("Machines (the column says which): Intel Xeon (2 cores, avx2/avx512_vnni), "
            "AMD EPYC (2 cores, avx2).") in text
    assert "| strong: efficientnet-lite2, 5 epochs, 64 px | 0.9470 | 0.9470 | 40.00 | 1.0 | " \
        "Intel Xeon |" in text
    assert "| strong-lite1: efficientnet-lite1, 5 epochs, 64 px | 0.9450 | 0.9450 | 40.00 | " \
        "1.0 | AMD EPYC |" in text
    assert "|  | 10.0 | AMD EPYC |" in text and "|  | 10.0 | Intel Xeon |" in text
    # (one machine: named once above the tables, no column)
    del result["teachers"]["strong-lite1"], result["students"]["strong-lite1-unlabelled"]
    text = strong_teacher.render(result)
    assert "Machine: Intel Xeon (2 cores, avx2/avx512_vnni)." in text
    assert "| Intel Xeon |" not in text


def test_arms_are_named_ones_and_none_leaves_the_teachers_alone():
    assert strong_teacher._arms("") == []
    assert strong_teacher._arms("labelled,both") == ["labelled", "both"]
    with pytest.raises(argparse.ArgumentTypeError, match="lablled: not an arm"):
        strong_teacher._arms("lablled")


def test_an_int8_that_export_refuses_is_the_arm_s_finding_and_the_run_goes_on(tmp_path,
                                                                               monkeypatch):
    """export's parity gate (exit 3) refusing a student's int8 is recorded with the fp32
    student's test figure, and neither verify nor package runs; any other failure stops."""
    spec = strong_teacher.TASKS["fashion-mnist"]
    out = tmp_path / "out"
    model = out / "students" / strong_teacher._key(spec, "small", "unlabelled", None) / "student"
    model.mkdir(parents=True)
    (model / "artifact.json").write_text("{}")
    (model / "metrics.json").write_text(json.dumps(
        {"test": {"accuracy": 0.9427}, "training": {"wall_time_s": 940.0}}))
    (model / "settings.json").write_text(json.dumps(
        {"transfer_rows": {"labelled": 47500, "unlabelled": 10000},
         "config": {"hidden_weight": 0.0}}))
    line = ("error: parity with PyTorch failed for int8-static (int8): logits: top-1 "
            "agreement 0.890 < 0.95 (int8) over 264 outputs; nothing was written to X")
    ran = []

    def refuse(rc):
        def run(log, command, *args):
            ran.append(command)
            raise strong_teacher.Failed(rc, ["edgetransfer", command], line)
        return run

    monkeypatch.setattr(strong_teacher, "_edgetransfer", refuse(3))
    paths = {"train": tmp_path / "train", "unlabelled": tmp_path / "unlabelled"}
    arm = strong_teacher.student("fashion-mnist", "small", "unlabelled", paths, tmp_path, out,
                                 False)
    assert ran == ["export"]  # (no verify, no package)
    assert arm["int8_refused"] == line.removeprefix("error: ") and arm["fp32_test"] == 0.9427
    assert arm["walls"]["distill_s"] == 940.0 and "speedup" not in arm
    assert arm["transfer_rows"] == {"labelled": 47500, "unlabelled": 10000}

    result = {"task": "fashion-mnist", "date": "2026-12-06", "labelled": 50000,
              "unlabelled": 10000, "augment": "pad-crop", "metric": "accuracy",
              "goals": spec["goals"],
              "teachers": {"small": {"flags": ["--model", "efficientnet-lite0"],
                                     "test": 0.9413, "wall_s": 3600}},
              "students": {"small-unlabelled": arm,
                           "small-labelled": _arm("small", "labelled", 0.94, 0.9413, 20, 8)}}
    text = strong_teacher.render(result)
    assert ("| small | unlabelled | itself | 8 | 57,500 | 0.0 | no int8 (fp32 0.9427) |  |  "
            "|  | 15.7 |") in text  # (no kept share, speed-up or bundle: no int8 to measure)
    assert ("No int8 where export's parity gate refused it (the student's fp32 test figure "
            "in its place): small-unlabelled: parity with PyTorch failed for int8-static "
            "(int8): logits: top-1 agreement 0.890 < 0.95 (int8) over 264 outputs.") in text
    assert "| small | labelled | itself | 8 | 150 | 0.0 | 0.9400 | 99.9% | 20.0x [15, 25] |" in text
    assert "0.9427" not in text.split("| goal | target |")[1]  # (no goal judged on fp32)
    strong_teacher.plot(result, tmp_path / "plot.png")  # (a refused arm draws no bar)
    assert (tmp_path / "plot.png").stat().st_size > 0

    ran.clear()
    monkeypatch.setattr(strong_teacher, "_edgetransfer", refuse(1))  # (not the gate)
    with pytest.raises(SystemExit, match="failed \\(1\\)"):
        strong_teacher.student("fashion-mnist", "small", "unlabelled", paths, tmp_path, out,
                               False)
