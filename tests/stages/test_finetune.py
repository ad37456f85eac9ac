"""finetune end to end on a tiny random BERT: every method, pairs, labels, resume, two processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import make_rows, stop_after_first_save, tiny_args, write_jsonl
from safetensors.torch import load_file

FILES = {"artifact.json", "config.json", "metrics.json", "settings.json", "history.json",
         "model.safetensors", "training.png", "tokenizer.json", "tokenizer_config.json",
         "special_tokens_map.json", "vocab.txt"}


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def _load(folder: Path):
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(folder)


def test_full_writes_a_plain_checkpoint_with_labels_and_metrics(cli, tiny_backbone, data_dir,
                                                                 tmp_path):
    out = tmp_path / "out"
    code, err = cli(*tiny_args(tiny_backbone, data_dir, out, "--test",
                               data_dir / "test.jsonl"))
    assert code == 0, err
    assert _files(out) == FILES
    assert not (tmp_path / ".out.partial").exists()
    model = _load(out)
    assert model.config.id2label == {0: "neg", 1: "neu", 2: "pos"}  # sorted string labels
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["validation"]["per_class"]) == {"neg", "neu", "pos"}
    assert metrics["test"]["n"] == 24
    # the pattern is trivially learnable: a working loop beats chance (1/3) clearly
    assert metrics["validation"]["accuracy"] > 0.6
    manifest = json.loads((out / "artifact.json").read_text())
    assert manifest["kind"] == "finetuned-model"
    assert set(manifest["files"]) == FILES - {"artifact.json"}


def test_lora_merges_into_a_plain_checkpoint_and_keeps_the_adapter(cli, tiny_backbone,
                                                                   data_dir, tmp_path):
    out = tmp_path / "out"
    code, err = cli(*tiny_args(tiny_backbone, data_dir, out, "--method", "lora",
                               "--lr", "1e-2"))
    assert code == 0, err
    assert {"adapter/adapter_model.safetensors", "adapter/adapter_config.json"} <= _files(out)
    weights = load_file(out / "model.safetensors")
    assert not any("lora" in k for k in weights), "merged checkpoint must not need peft"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["merge_check"]["max_abs_logit_diff"] <= 1e-4
    # the merged model reproduces the adapter model on the validation texts
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out)
    texts = [r["text"] for r in make_rows(12, seed=2)]
    batch = tok(texts, padding=True, return_tensors="pt")
    base = AutoModelForSequenceClassification.from_pretrained(
        tiny_backbone, num_labels=3, id2label={0: "neg", 1: "neu", 2: "pos"})
    adapted = PeftModel.from_pretrained(base, out / "adapter").eval()
    merged = _load(out).eval()
    with torch.inference_mode():
        diff = (adapted(**batch).logits - merged(**batch).logits).abs().max()
    assert diff < 1e-4


def test_head_only_changes_only_the_head(cli, tiny_backbone, data_dir, tmp_path):
    out = tmp_path / "out"
    code, err = cli(*tiny_args(tiny_backbone, data_dir, out, "--method", "head"))
    assert code == 0, err
    before = load_file(tiny_backbone / "model.safetensors")
    after = load_file(out / "model.safetensors")
    for name, value in before.items():
        key = "bert." + name
        if name.startswith("pooler."):
            assert not torch.equal(after[key], value), f"{key} should train with the head"
        elif name in ("embeddings.position_ids",):
            continue
        else:
            assert torch.equal(after[key], value), f"{key} changed with --method head"
    assert "classifier.weight" in after


def test_freeze_layers_keeps_the_lowest_layers(cli, tiny_backbone, data_dir, tmp_path):
    out = tmp_path / "out"
    code, err = cli(*tiny_args(tiny_backbone, data_dir, out, "--freeze-layers", "1"))
    assert code == 0, err
    before = load_file(tiny_backbone / "model.safetensors")
    after = load_file(out / "model.safetensors")
    w = "encoder.layer.{}.attention.self.query.weight"
    assert torch.equal(after["bert." + w.format(0)], before[w.format(0)])
    assert torch.equal(after["bert.embeddings.word_embeddings.weight"],
                       before["embeddings.word_embeddings.weight"])
    assert not torch.equal(after["bert." + w.format(1)], before[w.format(1)])


def test_text_pairs_and_integer_labels_with_names(cli, tiny_backbone, tmp_path):
    def pairs(n, seed):
        rows = make_rows(n, seed, classes=("pos", "neg"))
        return [{"sentence1": r["text"], "sentence2": "the other half",
                 "label": int(r["label"] == "pos")} for r in rows]

    write_jsonl(tmp_path / "d/train.jsonl", pairs(40, 1))
    write_jsonl(tmp_path / "d/validation.jsonl", pairs(16, 2))
    out = tmp_path / "out"
    code, err = cli(*tiny_args(tiny_backbone, tmp_path / "d", out, "--label-names",
                               "negative,positive"))
    assert code == 0, err
    settings = json.loads((out / "settings.json").read_text())
    assert settings["columns"] == {"text": "sentence1", "label": "label", "text_pair": "sentence2"}
    assert _load(out).config.id2label == {0: "negative", 1: "positive"}


def test_existing_output_is_refused_without_overwrite(cli, tiny_backbone, data_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, err = cli(*tiny_args(tiny_backbone, data_dir, out, "--overwrite"))
    assert code == 2
    assert "is a non-empty folder that edgetransfer did not write" in err
    assert (out / "keep.txt").read_text() == "mine"
    (out / "artifact.json").write_text("{}")  # an earlier result
    code, err = cli(*tiny_args(tiny_backbone, data_dir, out))
    assert code == 2 and "already holds results; pass --overwrite" in err
    assert (out / "keep.txt").read_text() == "mine"


def test_resume_after_an_interrupted_run(cli, tiny_backbone, data_dir, tmp_path, monkeypatch):
    from edgetransfer.train import training

    out = tmp_path / "out"
    partial = tmp_path / ".out.partial"
    monkeypatch.setattr(training, "progress_callback",
                        stop_after_first_save(training.progress_callback))
    code, err = cli(*tiny_args(tiny_backbone, data_dir, out))
    assert code == 130 and "--resume" in err
    assert not out.exists(), "nothing is left under the final name"
    assert (partial / "checkpoints/checkpoint-15/trainer_state.json").exists()
    monkeypatch.undo()

    code, err = cli(*tiny_args(tiny_backbone, data_dir, out))
    assert code == 2 and "an interrupted run is in" in err

    code, err = cli(*tiny_args(tiny_backbone, data_dir, out, "--lr", "1e-3", "--resume"))
    assert code == 2 and "other settings (lr)" in err

    code, err = cli(*tiny_args(tiny_backbone, data_dir, out, "--resume"))
    assert code == 0, err
    training_metrics = json.loads((out / "metrics.json").read_text())["training"]
    assert training_metrics["resumed_from"] == "checkpoint-15"
    assert training_metrics["steps"] == 60  # 60 rows / batch 4 = 15 steps x 4 epochs
    assert not partial.exists()


def test_a_checkpoint_by_the_clock_between_epochs_resumes_and_is_never_the_best(
        cli, tiny_backbone, data_dir, tmp_path, monkeypatch):
    """Evaluated by epoch (15 steps each), a run saves a checkpoint to resume from once
    --checkpoint-minutes have passed (here at once: step 1); resumed from it, the run ends
    as it would have, the best checkpoint an evaluated one and the clock's rotated away."""
    from edgetransfer.train import training

    out, partial = tmp_path / "out", tmp_path / ".out.partial"
    monkeypatch.setattr(training, "progress_callback",
                        stop_after_first_save(training.progress_callback))
    code, err = cli(*tiny_args(tiny_backbone, data_dir, out, "--checkpoint-minutes", "1e-9"))
    assert code == 130 and "--resume" in err
    assert sorted(p.name for p in (partial / "checkpoints").glob("checkpoint-*")) == [
        "checkpoint-1"]
    monkeypatch.undo()

    # (how often to save is no setting of the result: another value resumes the run)
    code, err = cli(*tiny_args(tiny_backbone, data_dir, out, "--resume", "--keep-checkpoints",
                               "--checkpoint-minutes", "0"))
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())["training"]
    assert metrics["resumed_from"] == "checkpoint-1" and metrics["steps"] == 60
    history = json.loads((out / "history.json").read_text())
    assert [h["step"] for h in history if "eval_loss" in h] == [15, 30, 45, 60]
    kept = sorted(int(p.name.split("-")[1]) for p in (out / "checkpoints").glob("checkpoint-*"))
    assert 1 not in kept and 60 in kept and set(kept) <= {15, 30, 45, 60}


def test_a_run_resumed_in_a_later_epoch_takes_the_batches_it_would_have(
        cli, tiny_backbone, data_dir, tmp_path, monkeypatch):
    """Cut off at step 20 (epoch 2 of 4, 15 steps each) and resumed, a run ends with the
    model of a run never cut off: the resumed epoch's order is drawn from the seed and the
    epoch, not from torch's generator, which the Trainer restores only after drawing it (the
    other order taught some rows twice and others not at all)."""
    from edgetransfer.train import training

    out, whole = tmp_path / "out", tmp_path / "whole"
    monkeypatch.setattr(training, "progress_callback",
                        stop_after_first_save(training.progress_callback))
    code, err = cli(*tiny_args(tiny_backbone, data_dir, out, "--eval-steps", "20"))
    assert code == 130 and (tmp_path / ".out.partial/checkpoints/checkpoint-20").is_dir()
    monkeypatch.undo()
    code, err = cli(*tiny_args(tiny_backbone, data_dir, out, "--eval-steps", "20", "--resume"))
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())["training"]["resumed_from"] == \
        "checkpoint-20"
    code, err = cli(*tiny_args(tiny_backbone, data_dir, whole, "--eval-steps", "20"))
    assert code == 0, err
    got, want = (load_file(str(f / "model.safetensors")) for f in (out, whole))
    assert all(torch.allclose(got[k], want[k], atol=1e-5) for k in want)


def test_the_clock_of_the_first_process_decides_for_every_process(tmp_path):
    """Two processes, one due to save and one not, both save: the Trainer's save waits for
    every process, so a save in one alone would hang the run."""
    script = tmp_path / "agree.py"
    # (each process writes its own file: two processes' prints may share a line)
    script.write_text(
        "import sys\n"
        "from pathlib import Path\n"
        "import torch.distributed as dist\n"
        "from edgetransfer.train.checkpoints import _agreed\n"
        "dist.init_process_group('gloo')\n"
        "rank = dist.get_rank()\n"
        "said = f'{_agreed(rank == 0, \"cpu\")} {_agreed(rank == 1, \"cpu\")}'\n"
        "Path(sys.argv[1], f'rank-{rank}.txt').write_text(said)\n"
        "dist.destroy_process_group()\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": str(Path(__file__).parents[2])}  # (this checkout's package)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node",
                           "2", "--master_port", "29519", str(script), str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [(tmp_path / f"rank-{r}.txt").read_text() for r in (0, 1)] == ["True False"] * 2


def test_resume_skips_an_incomplete_checkpoint(tmp_path):
    from edgetransfer.train.checkpoints import newest_complete_checkpoint

    for step in (4, 8):
        c = tmp_path / "checkpoints" / f"checkpoint-{step}"
        c.mkdir(parents=True)
        for f in ("model.safetensors", "optimizer.pt", "scheduler.pt", "trainer_state.json"):
            (c / f).write_text("x")
    (tmp_path / "checkpoints/checkpoint-8/trainer_state.json").unlink()  # cut off mid-save
    assert newest_complete_checkpoint(tmp_path).endswith("checkpoint-4")


def test_the_last_step_is_evaluated_where_the_interval_does_not_divide_the_run(
        cli, tiny_backbone, data_dir, tmp_path):
    # 60 rows / batch 4 = 15 steps, evaluated every 4: 4, 8, 12 and the last, 15
    out = tmp_path / "out"
    code, err = cli(*tiny_args(tiny_backbone, data_dir, out, "--epochs", "1",
                               "--eval-steps", "4", "--device", "cpu"))
    assert code == 0, err
    history = json.loads((out / "history.json").read_text())
    assert [h["step"] for h in history if "eval_loss" in h] == [4, 8, 12, 15]


def test_two_processes_with_torchrun(tiny_backbone, data_dir, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", "29517", "-m", "edgetransfer",
           *map(str, tiny_args(tiny_backbone, data_dir, out, "--device", "cpu"))]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["training"]["processes"] == 2
    # 60 rows over 2 processes: 30 each, batch 4 -> 8 steps an epoch, 4 epochs
    assert metrics["training"]["steps"] == 32
    assert metrics["validation"]["n"] == 24  # predictions gathered from both processes
    assert _files(out) == FILES


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_without_a_gpu_is_an_error_not_a_cpu_run(cli, tiny_backbone, data_dir, tmp_path):
    code, err = cli(*tiny_args(tiny_backbone, data_dir, tmp_path / "out", "--device", "cuda"))
    assert code == 4
    assert "--device cuda: torch sees no CUDA device" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / ".out.partial").exists()


def test_lora_in_mixed_precision_merges_within_tolerance(cli, tiny_backbone, data_dir,
                                                           tmp_path):
    """The merge check sets the adapter model against the merged one both in fp32: after a
    bf16 run the adapter model's forward is still wrapped in autocast (accelerate's), and
    was compared in bf16 (2.3e-04 apart here, 3.3e-02 on a GPU: the check failed)."""
    import os

    out = tmp_path / "out"
    before = os.environ.get("ACCELERATE_MIXED_PRECISION")
    code, err = cli(*tiny_args(tiny_backbone, data_dir, out, "--device", "cpu",
                               "--precision", "bf16", "--method", "lora"))
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["training"]["device"] == "cpu, bf16"
    assert metrics["merge_check"]["max_abs_logit_diff"] <= 1e-4
    # (transformers carries bf16 to accelerate in the environment: not left for what runs
    # next in this process)
    assert os.environ.get("ACCELERATE_MIXED_PRECISION") == before


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_lora_bf16_on_cuda(cli, tiny_backbone, data_dir, tmp_path):
    out = tmp_path / "out"
    code, err = cli(*tiny_args(tiny_backbone, data_dir, out, "--device", "cuda",
                               "--method", "lora"))
    assert code == 0, err
    training = json.loads((out / "metrics.json").read_text())["training"]
    assert training["device"].startswith("cuda") and training["device"].endswith("bf16")
    assert training["peak_gpu_memory_mb"] > 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_full_fp16_on_cuda_saves_fp32_weights(cli, tiny_backbone, data_dir, tmp_path):
    """fp16 (loss scaling) on the GPU: the checkpoint is saved fp32, and reloaded on the CPU
    it gives finite outputs."""
    from safetensors.torch import load_file

    out = tmp_path / "out"
    code, err = cli(*tiny_args(tiny_backbone, data_dir, out, "--device", "cuda",
                               "--precision", "fp16", "--test", data_dir / "test.jsonl"))
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["training"]["device"].endswith("fp16")
    assert {t.dtype for t in load_file(out / "model.safetensors").values()} == {torch.float32}
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(out)
    batch = AutoTokenizer.from_pretrained(out)(["a good film", "a bad film"], padding=True,
                                               return_tensors="pt")
    with torch.no_grad():
        assert torch.isfinite(model(**batch).logits).all()
    assert 0 <= metrics["test"]["accuracy"] <= 1


def test_a_command_that_succeeds_leaves_its_process_group(tmp_path):
    # (gloo's threads left at exit can abort a process whose work is done, failing torchrun)
    import torch.distributed as dist

    from edgetransfer.cli.main import main

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)
    try:
        main(["validate", str(Path(__file__).parents[2] / "recipes" / "quickstart.yaml")])
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_a_run_that_stops_early_says_so(cli, tiny_backbone, data_dir, tmp_path):
    # (a learning rate too small to move the weights: no evaluation is better than the first)
    out = tmp_path / "out"
    code, err = cli(*tiny_args(tiny_backbone, data_dir, out, "--eval-steps", "2", "--lr",
                               "1e-12", "--patience", "2"))
    assert code == 0, err
    assert "early stopping: no better validation accuracy in 2 evaluations; stopped at " \
           "epoch 0.40 of 4, the best at checkpoint-2" in err
    assert json.loads((out / "metrics.json").read_text())["training"]["epochs_run"] < 1
    code, err = cli(*tiny_args(tiny_backbone, data_dir, tmp_path / "all"))
    assert code == 0 and "early stopping" not in err
