"""distill on tiny random models: student kinds, losses, cached teacher outputs, errors."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import char_student, make_rows, tiny_args, write_jsonl
from safetensors.torch import load_file

FILES = {"artifact.json", "config.json", "metrics.json", "settings.json", "history.json",
         "model.safetensors", "training.png", "tokenizer.json", "tokenizer_config.json",
         "special_tokens_map.json", "vocab.txt"}


@pytest.fixture(scope="session")
def tiny_teacher(tiny_backbone, data_dir, tmp_path_factory) -> Path:
    """The tiny BERT fine-tuned on the 3-class toy data (neg, neu, pos)."""
    from edgetransfer.cli import main

    out = tmp_path_factory.mktemp("teacher") / "t"
    try:
        main([str(a) for a in tiny_args(tiny_backbone, data_dir, out)])
    except SystemExit as e:
        assert e.code in (0, None)
    return out


def distill_args(teacher, data: Path, out: Path, *extra):
    return ["-q", "distill", "--teacher", teacher, "--train", data / "train.jsonl",
            "--validation", data / "validation.jsonl", "--out", out, "--epochs", "2",
            "--batch-size", "8", "--lr", "2e-3", "--patience", "0", *extra]


def test_spread_layers_rule():
    from edgetransfer.modeling.students import spread_layers

    assert spread_layers(6, 3) == [0, 2, 5]
    assert spread_layers(6, 2) == [0, 5]
    assert spread_layers(12, 4) == [0, 4, 7, 11]
    assert spread_layers(6, 1) == [5]
    assert spread_layers(6, 6) == list(range(6))


def test_cut_down_student_starts_from_the_chosen_teacher_layers(tiny_teacher):
    from transformers import AutoModelForSequenceClassification

    from edgetransfer.modeling.students import from_teacher_layers

    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher)
    student = from_teacher_layers(teacher, [1])
    assert student.config.num_hidden_layers == 1 and len(student.bert.encoder.layer) == 1
    assert torch.equal(student.bert.encoder.layer[0].attention.self.query.weight,
                       teacher.bert.encoder.layer[1].attention.self.query.weight)
    assert torch.equal(student.classifier.weight, teacher.classifier.weight)
    assert teacher.config.num_hidden_layers == 2  # the teacher is untouched


def test_distill_cut_down_student(cli, tiny_teacher, data_dir, tmp_path):
    out = tmp_path / "student"
    code, err = cli(*distill_args(tiny_teacher, data_dir, out, "--student-layers", "1",
                                  "--test", data_dir / "test.jsonl"))
    assert code == 0, err
    assert {p.name for p in out.iterdir()} == FILES
    from transformers import AutoModelForSequenceClassification

    student = AutoModelForSequenceClassification.from_pretrained(out)
    assert student.config.num_hidden_layers == 1
    assert student.config.id2label == {0: "neg", 1: "neu", 2: "pos"}
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["teacher"]) == {"validation", "test"}
    cmp = m["comparison"]
    assert cmp["student"]["layers"] == 1 and cmp["teacher"]["layers"] == 2
    assert cmp["student"]["parameters"] < cmp["teacher"]["parameters"]
    assert cmp["validation_accuracy_kept"] == pytest.approx(
        m["validation"]["accuracy"] / m["teacher"]["validation"]["accuracy"], abs=1e-4)
    settings = json.loads((out / "settings.json").read_text())
    assert settings["keep_layers"] == [1] and settings["layer_mapping"] == [[0, 0], [1, 2]]


def test_student_of_another_width_trains_with_a_projection(cli, tiny_teacher, data_dir,
                                                           tmp_path):
    from transformers import AutoTokenizer, BertConfig

    folder = tmp_path / "narrow"
    tok = AutoTokenizer.from_pretrained(tiny_teacher)
    BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=32, max_position_embeddings=128).save_pretrained(folder)
    out = tmp_path / "student"
    code, err = cli(*distill_args(tiny_teacher, data_dir, out, "--student", folder,
                                  "--hidden-weight", "1", "--attention-weight", "1"))
    assert code == 0, err
    weights = load_file(out / "model.safetensors")
    assert weights["bert.embeddings.word_embeddings.weight"].shape[1] == 16
    assert not any("distill_projection" in k for k in weights)
    settings = json.loads((out / "settings.json").read_text())
    assert settings["student_kind"] == "model"
    assert settings["layer_mapping"] == [[0, 0], [1, 2]]  # uniform map: 1 of 2 layers
    history = json.loads((out / "history.json").read_text())
    losses = [h["loss"] for h in history if "loss" in h]
    assert losses and all(v == v for v in losses)  # trained, no NaN
    # the same run without the transfer terms logs a smaller loss: they were applied
    plain = tmp_path / "plain"
    code, err = cli(*distill_args(tiny_teacher, data_dir, plain, "--student", folder,
                                  "--hidden-weight", "0", "--attention-weight", "0"))
    assert code == 0, err
    plain_losses = [h["loss"] for h in json.loads((plain / "history.json").read_text())
                    if "loss" in h]
    assert losses[0] > plain_losses[0]


def test_cached_teacher_outputs_equal_recomputed_ones(tiny_teacher):
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from edgetransfer.stages.distill import teacher_outputs
    from edgetransfer.tasks.text import collator

    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher).eval()
    tok = AutoTokenizer.from_pretrained(tiny_teacher)
    # rows of mixed lengths, long and short interleaved: the pass batches them in length
    # order and must put each output back at its own row
    texts = [" ".join(r["text"].split()[: 1 + (i * 7) % 11]) for i, r in
             enumerate(make_rows(30))]
    rows = Dataset.from_dict(dict(tok(texts)))
    assert len({len(ids) for ids in rows["input_ids"]}) > 3
    got = teacher_outputs(teacher, rows, collator(tok), torch.device("cpu"), ("logits",),
                          batch_size=7)["logits"]
    assert len(got) == 30 and all(r.shape == (3,) for r in got)
    with torch.inference_mode():
        for i, text in enumerate(texts):  # one at a time, unpadded
            alone = teacher(**tok(text, return_tensors="pt")).logits[0]
            assert torch.allclose(alone, torch.from_numpy(got[i]), atol=1e-5)


def _batch(tok):
    texts = [r["text"] for r in make_rows(6)]
    enc = tok(texts, ["x " * (i + 1) for i in range(6)], padding=True, return_tensors="pt")
    return dict(enc)


def test_each_loss_switches_on_and_off(tiny_teacher):
    """Student = an exact copy of the teacher: every transfer loss is zero; perturbed, each
    switched-on term adds to the loss, and a switched-off one adds nothing."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from edgetransfer import tasks
    from edgetransfer.modeling.students import from_teacher_layers, layer_mapping
    from edgetransfer.stages.distill import distill_trainer_class
    from edgetransfer.train import losses

    tok = AutoTokenizer.from_pretrained(tiny_teacher)
    teacher = AutoModelForSequenceClassification.from_pretrained(
        tiny_teacher, attn_implementation="eager").eval()
    batch = _batch(tok)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    with torch.no_grad():
        t_logits = teacher(**batch).logits
    Trainer = distill_trainer_class()

    def loss(student, **weights):
        trainer = Trainer.__new__(Trainer)  # only compute_loss is exercised
        Trainer_init = dict(alpha=weights.get("alpha", 0.5), temperature=2.0,
                            hidden_weight=weights.get("hidden", 0.0),
                            attention_weight=weights.get("attention", 0.0))
        trainer.teacher = teacher
        trainer.task = tasks.get("text-classification")
        trainer.mapping = layer_mapping(2, 2, [0, 1])
        for k, v in Trainer_init.items():
            setattr(trainer, k, v)
        with torch.no_grad():
            return float(trainer.compute_loss(
                student, {**batch, "labels": labels, "teacher_logits": t_logits}))

    twin = from_teacher_layers(teacher, [0, 1]).eval()
    ce = float(torch.nn.functional.cross_entropy(t_logits, labels))
    assert loss(twin, alpha=1.0) == pytest.approx(0.0, abs=1e-6)  # soft only, identical
    assert loss(twin, alpha=0.0) == pytest.approx(ce, rel=1e-5)  # hard labels only
    assert loss(twin, alpha=1.0, hidden=1.0, attention=1.0) == pytest.approx(0.0, abs=1e-5)

    with torch.no_grad():
        twin.bert.encoder.layer[0].attention.self.query.weight.add_(0.5)
        twin.bert.encoder.layer[0].intermediate.dense.weight.add_(0.5)
        twin.classifier.weight.mul_(-3.0)  # the tiny teacher's logits barely depend on layer 0
    base = loss(twin, alpha=1.0)
    with_hidden = loss(twin, alpha=1.0, hidden=1.0)
    with_attention = loss(twin, alpha=1.0, attention=1.0)
    assert base > 0 and with_hidden > base and with_attention > base
    assert loss(twin, alpha=1.0, hidden=0.0, attention=0.0) == pytest.approx(base)
    # rows without a gold label (-100) take the soft loss only
    assert losses.hard_label_loss(t_logits, torch.full((6,), -100)).item() == 0.0


def test_hidden_loss_ignores_padding():
    from edgetransfer.train.losses import hidden_state_loss

    s = (torch.zeros(1, 4, 8),)
    t = (torch.zeros(1, 4, 8),)
    t[0][0, 3] = 5.0  # differs only at a padded position
    mask = torch.tensor([[1, 1, 1, 0]])
    assert hidden_state_loss(s, t, [(0, 0)], mask).item() == 0.0


def test_unlabeled_text_joins_the_transfer_set(cli, tiny_teacher, data_dir, tmp_path):
    write_jsonl(tmp_path / "u.jsonl", [{"text": r["text"]} for r in make_rows(20, seed=9)])
    out = tmp_path / "student"
    code, err = cli(*distill_args(tiny_teacher, data_dir, out, "--student-layers", "1",
                                  "--unlabeled", tmp_path / "u.jsonl"))
    assert code == 0, err
    settings = json.loads((out / "settings.json").read_text())
    assert settings["transfer_rows"] == {"labelled": 60, "unlabelled": 20}
    steps = json.loads((out / "metrics.json").read_text())["training"]["steps"]
    assert steps == 2 * 10  # 80 transfer rows / batch 8, two epochs


def test_unlabeled_rows_that_a_labelled_split_holds_are_left_out(cli, tiny_teacher,
                                                                    data_dir, tmp_path):
    """Rows train, validation or test holds are left out of --unlabeled's; so the train file can
    be --unlabeled beside a --train-sample of it: the sample labelled, the rest unlabelled,
    none taught twice. An unlabelled file of nothing else is refused."""
    train = [json.loads(line) for line in (data_dir / "train.jsonl").read_text().splitlines()]
    texts = {r["text"] for r in train}
    new = [{"text": r["text"]} for r in make_rows(30, seed=9) if r["text"] not in texts][:12]
    assert len(texts) == 60 and len(new) == 12
    validation = (data_dir / "validation.jsonl").read_text().splitlines()[:3]
    test = [json.loads(line)["text"] for line in
            (data_dir / "test.jsonl").read_text().splitlines()]
    test = [t for t in dict.fromkeys(test) if t not in texts][:4]
    new = [r for r in new if r["text"] not in test]
    write_jsonl(tmp_path / "u.jsonl", new + [{"text": r["text"]} for r in train[:10]]
                + [{"text": json.loads(line)["text"]} for line in validation]
                + [{"text": t} for t in test])
    out = tmp_path / "student"
    code, err = cli(*distill_args(tiny_teacher, data_dir, out, "--student-layers", "1",
                                  "--unlabeled", tmp_path / "u.jsonl", "--epochs", "1",
                                  "--test", data_dir / "test.jsonl"))
    assert code == 0, err
    rows = json.loads((out / "settings.json").read_text())["transfer_rows"]
    # (test's texts too: the teacher's answers on them taught to the student would leak
    # the figure reported)
    assert len(test) == 4 and len(new) >= 8
    assert rows == {"labelled": 60, "unlabelled": len(new),
                    "unlabelled_left_out_as_labelled": 13 + len(test)}

    code, err = cli(*distill_args(tiny_teacher, data_dir, tmp_path / "s2", "--student-layers",
                                  "1", "--unlabeled", data_dir / "train.jsonl", "--epochs",
                                  "1", "--train-sample", "40"))
    assert code == 0, err
    rows = json.loads((tmp_path / "s2" / "settings.json").read_text())["transfer_rows"]
    # (the 60 train texts are distinct: the 40 sampled, labelled; the other 20, not)
    assert rows == {"labelled": 40, "unlabelled": 20, "unlabelled_left_out_as_labelled": 40}

    code, err = cli(*distill_args(tiny_teacher, data_dir, tmp_path / "s3", "--unlabeled",
                                  data_dir / "train.jsonl"))
    assert code == 2 and "every row is one that train, validation or test holds" in err
    assert not (tmp_path / "s3").exists()


def test_unlabeled_images_that_a_labelled_split_holds_are_compared_by_content(tmp_path):
    """A picture of train's or test's is left out of --unlabeled's, under its own name or
    copied into another folder (test's pictures taught with the teacher's answers would leak
    the figure reported); a picture of its own is kept."""
    import shutil

    from datasets import Dataset, Image
    from PIL import Image as PILImage

    from edgetransfer.stages.distill import _outside

    files = []
    for i in range(5):
        files.append(tmp_path / f"{i}.png")
        PILImage.new("RGB", (4, 4), (i, 0, 0)).save(files[-1])
    (tmp_path / "elsewhere").mkdir()
    copy = Path(shutil.copy(files[2], tmp_path / "elsewhere" / "copy-of-2.png"))

    def images(paths):
        return Dataset.from_dict({"image": [str(p) for p in paths]}).cast_column("image",
                                                                                  Image())
    kept, left, _ = _outside((images([*files[:2], copy, *files[3:]]),),
                          [images(files[:2]), images(files[2:4])], "--unlabeled", "u")
    assert left == 4 and [Path(r["path"]).name for r in
                          kept[0].cast_column("image", Image(decode=False))["image"]] == ["4.png"]


def test_teacher_without_a_head_is_refused(cli, tiny_backbone, data_dir, tmp_path):
    code, err = cli(*distill_args(tiny_backbone, data_dir, tmp_path / "s"))
    assert code == 2 and "has no text-classification head" in err and "edgetransfer finetune" in err


def test_student_with_another_tokenizer_learns_from_the_teacher_per_example(
        cli, tiny_teacher, data_dir, tmp_path):
    """Another vocabulary, other lengths, another width: each model reads the text its own
    way, the student is saved with its own tokenizer, hidden-state transfer is off by
    default and refused when asked for (the tokens do not line up)."""
    from transformers import AutoTokenizer

    student = char_student(tmp_path / "chars")
    out = tmp_path / "s"
    code, err = cli(*distill_args(tiny_teacher, data_dir, out, "--student", student))
    assert code == 0, err
    settings = json.loads((out / "settings.json").read_text())
    assert settings["tokenizers"].startswith("each its own")
    assert settings["config"]["hidden_weight"] == 0.0
    saved = AutoTokenizer.from_pretrained(out)
    assert saved.get_vocab() == AutoTokenizer.from_pretrained(student).get_vocab()
    assert saved.convert_ids_to_tokens(saved("good")["input_ids"]) == [
        "[CLS]", "g", "##o", "##o", "##d", "[SEP]"]
    metrics = json.loads((out / "metrics.json").read_text())
    own = json.loads((tiny_teacher / "metrics.json").read_text())["validation"]
    assert metrics["teacher"]["validation"]["accuracy"] == own["accuracy"]  # (its own tokens)
    assert "accuracy" in metrics["validation"]

    code, err = cli(*distill_args(tiny_teacher, data_dir, tmp_path / "s2", "--student",
                                  student, "--attention-weight", "1"))
    assert code == 2 and "--attention-weight 1.0: the student tokenizes differently" in err
    assert not (tmp_path / "s2").exists()


def test_hidden_states_across_tokenizers_pass_as_each_rows_first_and_mean_states(
        cli, tiny_teacher, data_dir, tmp_path, monkeypatch):
    """--hidden-weight across tokenizers: the teacher's pooled states are computed once
    (cached beside its logits; it does not run while the student trains), and the
    student's projected first-token and mean states learn them."""
    from transformers import BertForSequenceClassification

    forward, calls = BertForSequenceClassification.forward, []

    @functools.wraps(forward)  # (the Trainer reads the label arguments off its signature)
    def counted(model, *a, **k):
        calls.append((model.training, model.config.hidden_size))
        return forward(model, *a, **k)

    monkeypatch.setattr(BertForSequenceClassification, "forward", counted)
    out, cache = tmp_path / "s", tmp_path / "cache"
    code, err = cli(*distill_args(tiny_teacher, data_dir, out, "--student",
                                  char_student(tmp_path / "chars"), "--hidden-weight", "1",
                                  "--alpha", "0", "--epochs", "3", "--teacher-cache", cache))
    assert code == 0, err
    width = json.loads((tiny_teacher / "config.json").read_text())["hidden_size"]
    # the teacher: one batch over the 60 transfer rows, one over validation's 24 (its own
    # figures), none beside the student's 3 x 8 training steps
    assert [c for c in calls if c[1] == width] == [(False, width)] * 2
    assert len(list(cache.glob("teacher-pooled-L*.npz"))) == 1
    settings = json.loads((out / "settings.json").read_text())
    assert settings["config"]["hidden_weight"] == 1.0
    assert settings["tokenizers"].endswith("hidden states as each row's first-token and mean "
                                           "states")
    assert not any("distill_projection" in k for k in load_file(str(out / "model.safetensors")))
    losses = [e["loss"] for e in json.loads((out / "history.json").read_text()) if "loss" in e]
    assert losses[-1] < losses[0]


def test_pooled_state_loss_reads_each_models_own_real_tokens():
    from edgetransfer.train.losses import pooled_state_loss, pooled_states

    s = (torch.zeros(2, 5, 4),)
    t = torch.zeros(2, 3, 4)
    s[0][:, 4] = 9.0  # (the student's padding)
    t[:, 2] = 7.0  # (the teacher's padding)
    s_mask, t_mask = torch.tensor([[1, 1, 1, 1, 0]] * 2), torch.tensor([[1, 1, 0]] * 2)

    def teacher_pooled():  # (batch, one mapped pair, 2 x width)
        return pooled_states(t, t_mask).unsqueeze(1)

    assert pooled_state_loss(s, teacher_pooled(), [(0, 0)], s_mask).item() == 0.0
    t[:, 0] = 1.0  # the first token differs, and so does the mean (1/2 against 0)
    got = pooled_state_loss(s, teacher_pooled(), [(0, 0)], s_mask).item()
    assert got == pytest.approx(1.0 + 0.25)
    projection = torch.nn.Linear(4, 4)
    assert pooled_state_loss(s, teacher_pooled(), [(0, 0)], s_mask, projection).requires_grad
    # a left-padded row's first token is its first real one
    left = torch.tensor([[[9.0, 9.0], [1.0, 2.0], [3.0, 4.0]]])
    assert pooled_states(left, torch.tensor([[0, 1, 1]])).tolist() == [[1.0, 2.0, 2.0, 3.0]]


def test_a_taggers_hidden_states_are_refused_across_tokenizers(cli, tiny_tagger, token_data,
                                                               tmp_path):
    code, err = cli("-q", "distill", "--teacher", tiny_tagger, "--train",
                    token_data / "train.txt", "--out", tmp_path / "s", "--student",
                    char_student(tmp_path / "chars"), "--hidden-weight", "0.5")
    assert code == 2 and "--hidden-weight 0.5: the student tokenizes differently" in err


def test_soft_targets_across_tokenizers_are_the_teachers_on_its_own_tokens(
        tiny_teacher, data_dir, tmp_path):
    """Each transfer row of the student (its own token ids) carries the logits the teacher
    gives the same text read by the teacher's tokenizer."""
    from types import SimpleNamespace

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from edgetransfer.stages import distill
    from edgetransfer.tasks.text import tokenize
    from edgetransfer.tasks.text_classification import TASK
    from edgetransfer.tasks.text_classification import load as load_task

    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher).eval()
    toks = {"teacher": AutoTokenizer.from_pretrained(tiny_teacher),
            "student": AutoTokenizer.from_pretrained(char_student(tmp_path / "chars"))}
    data = load_task(str(data_dir / "train.jsonl"), str(data_dir / "validation.jsonl"))
    rows = {who: tokenize(data.splits, data.sources, tok, 64)[0] for who, tok in toks.items()}
    assert rows["student"]["train"][0]["input_ids"] != rows["teacher"]["train"][0]["input_ids"]
    cfg = SimpleNamespace(teacher_cache=None, teacher_batch_size=16, hidden_weight=0,
                          attention_weight=0)
    transfer, _, evaluations, _ = distill._teacher_targets(cfg, teacher, rows, [], TASK, toks,
                                                           data, torch.device("cpu"))
    assert transfer["input_ids"] == rows["student"]["train"]["input_ids"]
    with torch.inference_mode():
        for i in (0, 31, 59):
            enc = toks["teacher"](data.splits["train"][i]["text"], return_tensors="pt")
            assert np.allclose(transfer[i]["teacher_logits"], teacher(**enc).logits[0],
                               atol=1e-5)
    assert set(evaluations) == {"validation"}


def test_pooled_states_across_tokenizers_are_the_teachers_on_its_own_tokens(
        tiny_teacher, data_dir, tmp_path, monkeypatch):
    """Across tokenizers with --hidden-weight, each transfer row's teacher_row finds the
    teacher's first-token and mean states at the mapped layers, over the teacher's own
    tokens; a second run reads them (and the logits) from the cache without a teacher pass,
    and one with the logits alone cached computes the pooled states alone."""
    from types import SimpleNamespace

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from edgetransfer.stages import distill
    from edgetransfer.tasks.text import tokenize
    from edgetransfer.tasks.text_classification import TASK
    from edgetransfer.tasks.text_classification import load as load_task
    from edgetransfer.train.losses import pooled_states

    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher).eval()
    toks = {"teacher": AutoTokenizer.from_pretrained(tiny_teacher),
            "student": AutoTokenizer.from_pretrained(char_student(tmp_path / "chars"))}
    data = load_task(str(data_dir / "train.jsonl"), str(data_dir / "validation.jsonl"))
    rows = {who: tokenize(data.splits, data.sources, tok, 64)[0] for who, tok in toks.items()}
    computed = []
    real = distill.teacher_outputs
    monkeypatch.setattr(distill, "teacher_outputs", lambda model, dataset, dev, c, names, *a:
                        computed.append(names) or real(model, dataset, dev, c, names, *a))
    cfg = SimpleNamespace(teacher_cache=str(tmp_path / "cache"), teacher_batch_size=16,
                          hidden_weight=0, attention_weight=0, teacher=tiny_teacher)
    distill._teacher_targets(cfg, teacher, rows, [], TASK, toks, data, torch.device("cpu"),
                             mapping=[(0, 0), (1, 2)])  # (no hidden weight: logits alone)
    cfg.hidden_weight = 1.0
    targets = distill._teacher_targets(cfg, teacher, rows, [], TASK, toks, data,
                                       torch.device("cpu"), mapping=[(0, 0), (1, 2)])
    again = distill._teacher_targets(cfg, teacher, rows, [], TASK, toks, data,
                                     torch.device("cpu"), mapping=[(0, 0), (1, 2)])
    # logits over train, then validation's; then the pooled states alone; then nothing
    assert computed == [("logits",), ("logits",), (distill.POOLED,)]
    assert targets.transfer["teacher_row"] == list(range(60))
    assert targets.pooled.shape == (60, 2, 2 * teacher.config.hidden_size)
    assert torch.equal(again.pooled, targets.pooled)
    with torch.inference_mode():
        for i in (0, 31, 59):
            enc = toks["teacher"](data.splits["train"][i]["text"], return_tensors="pt")
            states = teacher(**enc, output_hidden_states=True).hidden_states
            want = torch.stack([pooled_states(states[t], enc["attention_mask"])[0]
                                for t in (0, 2)])
            assert torch.allclose(targets.pooled[i].float(), want, atol=2e-3)


def test_an_interrupted_teacher_pass_resumes_from_its_last_piece(
        tiny_teacher, data_dir, tmp_path, monkeypatch):
    """A part of more than PIECE_ROWS rows is computed piece by piece, each piece kept: a
    pass stopped after two of train's four pieces computes only the other two when run
    again (and one found cut short), the part's file then holds every row as one pass gives
    it, the pieces gone."""
    from types import SimpleNamespace

    import numpy as np
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from edgetransfer.stages import distill
    from edgetransfer.tasks.text import tokenize
    from edgetransfer.tasks.text_classification import TASK
    from edgetransfer.tasks.text_classification import load as load_task

    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher).eval()
    tok = AutoTokenizer.from_pretrained(tiny_teacher)
    data = load_task(str(data_dir / "train.jsonl"), str(data_dir / "validation.jsonl"))
    tokenized = tokenize(data.splits, data.sources, tok, 64)[0]
    train = tokenized["train"]  # 60 rows: pieces of 16, 16, 16 and 12
    cache = tmp_path / "cache"
    monkeypatch.setattr(distill, "PIECE_ROWS", 16)
    computed = []
    real = distill.teacher_outputs

    def stopped_after_two(model, dataset, *a, **k):
        if len(computed) == 2:
            raise KeyboardInterrupt  # (Ctrl-C, or the machine gone, mid-pass)
        computed.append(len(dataset))
        return real(model, dataset, *a, **k)

    cfg = SimpleNamespace(teacher_cache=str(cache), teacher_batch_size=8, teacher=tiny_teacher)
    collate = TASK.collator(tok)
    args = (cfg, teacher, train, collate, torch.device("cpu"), ("logits",))
    monkeypatch.setattr(distill, "teacher_outputs", stopped_after_two)
    with pytest.raises(KeyboardInterrupt):
        distill._cached_logits(*args, inputs=TASK.inputs)
    pieces = sorted(p.name.split(".rows-")[1] for p in cache.glob(".teacher-logits-*.npz"))
    assert pieces == ["0-16.npz", "16-32.npz"] and not list(cache.glob("teacher-logits-*"))

    # a piece cut short on disk (a lost machine, before the data reached it) is computed
    # again, not read
    cut = next(cache.glob(".teacher-logits-*.rows-16-32.npz"))
    cut.write_bytes(cut.read_bytes()[:100])
    computed.clear()
    monkeypatch.setattr(distill, "teacher_outputs", lambda model, dataset, *a, **k: (
        computed.append(len(dataset)) or real(model, dataset, *a, **k)))
    resumed = distill._cached_logits(*args, inputs=TASK.inputs)
    assert computed == [16, 16, 12]
    assert len(list(cache.glob("teacher-logits-*.npz"))) == 1 and not list(cache.glob(".*"))
    whole = real(teacher, train, collate, torch.device("cpu"), ("logits",), 8)["logits"]
    assert len(resumed["logits"]) == 60
    np.testing.assert_allclose(np.stack(resumed["logits"]), np.stack(whole), atol=1e-5)
    again = distill._cached_logits(*args, inputs=TASK.inputs)["logits"]
    assert np.array_equal(np.stack(again), np.stack(resumed["logits"]))
    assert computed == [16, 16, 12]  # (the part's file read back: nothing computed)


def test_the_teacher_cache_is_kept_per_part_and_shared_parts_are_reused(
        tiny_teacher, data_dir, tmp_path, monkeypatch):
    """Train alone, then train + extra rows: the second run reads train's outputs and the
    teacher's evaluation outputs from the first's cache and computes only the extra's; the
    outputs and the teacher's figures are the same either way."""
    from types import SimpleNamespace

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from edgetransfer.stages import distill
    from edgetransfer.tasks.text import tokenize
    from edgetransfer.tasks.text_classification import TASK
    from edgetransfer.tasks.text_classification import load as load_task

    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher).eval()
    tok = AutoTokenizer.from_pretrained(tiny_teacher)
    data = load_task(str(data_dir / "train.jsonl"), str(data_dir / "validation.jsonl"))
    tokenized = tokenize(data.splits, data.sources, tok, 64)[0]
    rows = {"student": tokenized, "teacher": tokenized}
    computed = []
    real = distill.teacher_outputs
    monkeypatch.setattr(distill, "teacher_outputs", lambda model, dataset, *a, **k: (
        computed.append(len(dataset)) or real(model, dataset, *a, **k)))
    cfg = SimpleNamespace(teacher_cache=str(tmp_path / "cache"), teacher_batch_size=16,
                          hidden_weight=0, attention_weight=0, teacher=tiny_teacher)
    alone, _, first, _ = distill._teacher_targets(cfg, teacher, rows, [], TASK,
                                            {"teacher": tok, "student": tok}, data,
                                            torch.device("cpu"))
    extra = tokenized["train"].select(range(10))
    both, _, again, _ = distill._teacher_targets(cfg, teacher, rows, [(extra, extra)], TASK,
                                              {"teacher": tok, "student": tok}, data,
                                              torch.device("cpu"))
    # first run: train's outputs, then the teacher's own on validation (its evaluation);
    # second: only the extra rows' (train's and validation's read back)
    assert computed == [60, len(tokenized["validation"]), 10]
    assert len(list((tmp_path / "cache").glob("teacher-logits-*.npz"))) == 3
    assert len(both) == 70
    assert both["teacher_logits"][:60] == alone["teacher_logits"]
    assert again == first


def _word_positions(rows) -> list:
    """Per row, each position's word number where the row scores it, else -1."""
    return [list(w) for w in rows["word_index"]]


def test_a_taggers_outputs_reach_each_word_across_tokenizers(tiny_tagger, token_data,
                                                             tmp_path):
    """Per-word alignment: an output that names each word (the word's number, at the
    teacher's first sub-token of it) lands on the student's first sub-token of the same
    word, through windows that differ between the two tokenizers."""
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    from edgetransfer.stages import distill
    from edgetransfer.tasks import token_classification

    task = token_classification.TASK
    teacher_tok = AutoTokenizer.from_pretrained(tiny_tagger)
    student_tok = AutoTokenizer.from_pretrained(char_student(tmp_path / "chars"))
    data = token_classification.load(str(token_data / "train.txt"),
                                     str(token_data / "validation.txt"))
    opts = SimpleNamespace(max_length=24, label_all_subtokens=False, refuse_long=False)
    parts = {}
    for who, tok in (("teacher", teacher_tok), ("student", student_tok)):
        rows, record = task.prepare(data, tok, opts)
        parts[who] = [rows["train"]]
        if who == "student":  # (letters: most sentences run in several windows)
            assert record.counts["train"] > 30
    t_rows = parts["teacher"][0]
    named = [np.array([[float(w)] for w in words]) for words in _word_positions(t_rows)]
    got = distill._onto_student_rows(task, {"logits": named}, parts)["logits"]
    s_rows = parts["student"][0]
    assert len(got) == len(s_rows) > len(t_rows)
    for values, words, ids in zip(got, _word_positions(s_rows), s_rows["input_ids"]):
        assert len(values) == len(ids)
        for value, word in zip(values[:, 0], words):
            assert value == (word if word >= 0 else 0.0)


def test_different_word_counts_across_tokenizers_are_refused():
    from edgetransfer.errors import DataError
    from edgetransfer.tasks import words

    per_word = [np.ones((3, 2)), np.ones((2, 2))]
    rows = words.to_rows(per_word, {"word_index": [[-1, 0, 1, -1], [2, -1], [-1, 0, 1]],
                                    "example": [0, 0, 1]})
    assert [r.shape for r in rows] == [(4, 2), (2, 2), (3, 2)]
    assert rows[1][0].tolist() == [1.0, 1.0] and rows[1][1].tolist() == [0.0, 0.0]
    with pytest.raises(DataError, match="sentence 2 of the transfer set: the teacher's "
                                        "tokenizer reads 2 words in it, the student's 3"):
        words.to_rows(per_word, {"word_index": [[0, 1, 2], [0, 1, 2]], "example": [0, 1]})


def test_sentences_are_matched_in_order_of_their_numbers_whatever_the_numbering():
    # (unlabelled sentences with some left out keep their numbers: 3 and 7 here)
    from edgetransfer.tasks import words

    per_word = [np.full((2, 1), 1.0), np.full((1, 1), 2.0)]
    rows = words.to_rows(per_word, {"word_index": [[-1, 0], [1, -1], [0]],
                                    "example": [3, 3, 7]})
    assert [r[:, 0].tolist() for r in rows] == [[0.0, 1.0], [1.0, 0.0], [2.0]]


def test_a_tagger_distils_into_a_student_with_another_tokenizer(cli, tiny_tagger, token_data,
                                                                tmp_path):
    out = tmp_path / "student"
    code, err = cli("-q", "distill", "--teacher", tiny_tagger, "--train",
                    token_data / "train.txt", "--validation", token_data / "validation.txt",
                    "--out", out, "--epochs", "1", "--batch-size", "8", "--patience", "0",
                    "--student", char_student(tmp_path / "chars"), "--augment", "ner")
    assert code == 0, err
    settings = json.loads((out / "settings.json").read_text())
    assert settings["tokenizers"].startswith("each its own")
    # (4 copies of 60 sentences, less those alike or a training row: short sentences of a
    # small vocabulary)
    assert 120 < settings["transfer_rows"]["augmented"] <= 4 * 60
    assert "entity_f1" in json.loads((out / "metrics.json").read_text())["validation"]


def test_a_tagger_across_tokenizers_takes_the_rest_of_its_train_file_as_unlabelled(
        cli, tiny_tagger, token_data, tmp_path):
    """recipes/conll2003-strong.yaml's way: --unlabeled the train file beside a
    --train-sample of it, a student with another tokenizer. The sampled sentences are left
    out by sentence, whatever windows each tokenizer cuts them into (letters: most run in
    several at 24), and the teacher's tags reach the student's rows of the same sentences."""
    out = tmp_path / "student"
    code, err = cli("-q", "distill", "--teacher", tiny_tagger, "--train",
                    token_data / "train.txt", "--validation", token_data / "validation.txt",
                    "--train-sample", "40", "--unlabeled", token_data / "train.txt",
                    "--max-length", "24", "--out", out, "--epochs", "1", "--batch-size", "8",
                    "--patience", "0", "--student", char_student(tmp_path / "chars"))
    assert code == 0, err
    rows = json.loads((out / "settings.json").read_text())["transfer_rows"]
    # (sentences, not the student's windows: the 40 sampled run in 64 of them, the other 20
    # in 35)
    assert rows == {"labelled": 40, "unlabelled": 20, "unlabelled_left_out_as_labelled": 40}


def test_a_student_model_cut_to_some_of_its_layers(cli, tiny_teacher, tiny_backbone, data_dir,
                                                  tmp_path):
    """--student with --student-layers: that model (a pretrained encoder, not the fine-tuned
    teacher) cut to N layers, its head new; a depth it does not have is refused up front."""
    out = tmp_path / "s"
    code, err = cli(*distill_args(tiny_teacher, data_dir, out, "--student", tiny_backbone,
                                  "--student-layers", "1", "--epochs", "1"))
    assert code == 0, err
    settings = json.loads((out / "settings.json").read_text())
    assert settings["student_kind"] == "model-layers" and settings["keep_layers"] == [1]
    assert settings["layer_mapping"] == [[0, 0], [1, 2]]
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 1
    saved, base = load_file(str(out / "model.safetensors")), load_file(
        str(tiny_backbone / "model.safetensors"))
    # (one epoch at a tiny rate has not moved the embeddings far from the encoder's own)
    key = next(k for k in saved if k.endswith("word_embeddings.weight"))
    assert torch.allclose(saved[key], base[key.removeprefix("bert.")], atol=0.05)
    code, err = cli(*distill_args(tiny_teacher, data_dir, tmp_path / "s2", "--student",
                                  tiny_backbone, "--student-layers", "5"))
    assert code == 2 and f"choose between 1 and 2 (--student {tiny_backbone}'s depth)" in err


def test_student_with_other_classes_is_refused(cli, tiny_teacher, tiny_classifier, data_dir,
                                               tmp_path):
    code, err = cli(*distill_args(tiny_teacher, data_dir, tmp_path / "s", "--student",
                                  tiny_classifier))
    assert code == 2
    assert "its labels ['negative', 'positive'] differ from the teacher's ['neg', 'neu', " \
        "'pos']" in err


def test_two_ways_of_choosing_the_student_is_an_error(cli, tiny_teacher, data_dir, tmp_path):
    code, err = cli(*distill_args(tiny_teacher, data_dir, tmp_path / "s", "--student-layers",
                                  "1", "--keep-layers", "0"))
    assert code == 2 and "both choose the student; give one" in err
    code, err = cli(*distill_args(tiny_teacher, data_dir, tmp_path / "s", "--keep-layers",
                                  "0,7"))
    assert code == 2 and "--keep-layers 0,7: the teacher has layers 0..1" in err


def test_augmented_rows_join_the_transfer_set_recorded_and_seeded(cli, tiny_teacher, data_dir,
                                                                  tmp_path, monkeypatch):
    """--augment light: two new sentences per training row for the teacher to label, beside
    the rows and --unlabeled's; the artifact records the preset and its parameters. Cached
    with the teacher's outputs: the same run again computes nothing, another --seed only
    its own new sentences."""
    from edgetransfer.stages import distill

    write_jsonl(tmp_path / "u.jsonl", [{"text": r["text"]} for r in make_rows(20, seed=9)])
    computed = []
    real = distill.teacher_outputs
    monkeypatch.setattr(distill, "teacher_outputs", lambda model, dataset, *a, **k: (
        computed.append(len(dataset)) or real(model, dataset, *a, **k)))
    runs, passes = [], []
    for name, seed in (("a", "42"), ("b", "42"), ("c", "43")):
        out = tmp_path / name
        computed.clear()
        code, err = cli(*distill_args(tiny_teacher, data_dir, out, "--student-layers", "1",
                                      "--epochs", "1", "--unlabeled", tmp_path / "u.jsonl",
                                      "--augment", "light", "--seed", seed,
                                      "--teacher-cache", tmp_path / "cache"))
        assert code == 0, err
        runs.append(json.loads((out / "settings.json").read_text()))
        passes.append(list(computed))
    # (a: train's 60, the unlabelled 20, the new sentences and validation's; b: none; c: its
    # own new sentences alone)
    assert passes[0][:2] == [60, 20] and len(passes[0]) == 4 and passes[1] == []
    assert passes[2] == [runs[2]["transfer_rows"]["augmented"]]
    assert runs[2]["augment"]["seed"] == 43
    settings = runs[0]
    made = settings["transfer_rows"]["augmented"]
    # (2 copies of each of 60 rows, less those alike or a training row: 5-word rows of a
    # small vocabulary repeat often)
    assert 60 < made <= 120 and settings["augment"]["rows"] == made
    assert settings["transfer_rows"] == {"labelled": 60, "unlabelled": 20 + made,
                                         "augmented": made}
    assert settings["augment"]["preset"] == "light" and settings["augment"]["copies"] == 2
    assert settings["augment"]["replace"] == 0.15 and settings["augment"]["seed"] == 42
    steps = json.loads((tmp_path / "a" / "metrics.json").read_text())["training"]["steps"]
    assert steps == -(-(80 + made) // 8)  # the transfer rows / batch 8, one epoch
    assert runs[1]["augment"] == runs[0]["augment"]
    assert {k: v for k, v in runs[2]["augment"].items() if k not in ("seed", "rows")} == \
        {k: v for k, v in runs[0]["augment"].items() if k not in ("seed", "rows")}


def test_augment_unlabeled_copies_the_unlabelled_rows_it_keeps(cli, tiny_teacher, data_dir,
                                                              tmp_path, monkeypatch):
    """--augment long --augment-unlabeled: train's 5-word rows are too short to copy, the
    unlabelled sentences of 15 words are copied; those validation holds are left out
    before any is copied (a copy of a held-out sentence would leak it)."""
    from edgetransfer.data import augment_text

    held = [json.loads(line)["text"] for line in
            (data_dir / "validation.jsonl").read_text().splitlines()][:5]
    rows = [r["text"] for r in make_rows(60, seed=9)]
    new = [" ".join(rows[i:i + 3]) for i in range(0, 60, 3)]  # 20 sentences of 15 words
    write_jsonl(tmp_path / "u.jsonl", [{"text": t} for t in held + new])
    seen = []
    real = augment_text.make_rows
    monkeypatch.setattr(augment_text, "make_rows", lambda *a, **k: (
        seen.append(list(a[-1])) or real(*a, **k)))
    out = tmp_path / "s"
    code, err = cli(*distill_args(tiny_teacher, data_dir, out, "--student-layers", "1",
                                  "--epochs", "1", "--unlabeled", tmp_path / "u.jsonl",
                                  "--augment", "long", "--augment-unlabeled"))
    assert code == 0, err
    assert seen == [new]
    settings = json.loads((out / "settings.json").read_text())
    made = settings["transfer_rows"]["augmented"]
    assert 0 < made <= 8 * 20 and settings["augment"]["unlabeled"] is True
    assert settings["transfer_rows"] == {"labelled": 60, "unlabelled": 20 + made,
                                         "augmented": made,
                                         "unlabelled_left_out_as_labelled": 5}

    code, err = cli(*distill_args(tiny_teacher, data_dir, tmp_path / "s2", "--augment",
                                  "light", "--augment-unlabeled"))
    assert code == 2 and "--augment-unlabeled: copies --unlabeled's rows with --augment's " \
        "preset; give both" in err
    assert not (tmp_path / "s2").exists()


def test_an_unknown_augment_preset_is_refused_before_loading(cli, tiny_teacher, data_dir,
                                                             tmp_path):
    code, err = cli(*distill_args(tiny_teacher, data_dir, tmp_path / "s", "--augment", "x"))
    assert code == 2 and "--augment x: not a text preset; use one of tinybert" in err
    assert not (tmp_path / "s").exists()


def test_a_preset_that_finds_no_row_long_enough_says_so(cli, tiny_teacher, data_dir,
                                                        tmp_path):
    """--augment long copies rows of 15 words or more; data_dir's have 5: one line, exit 2,
    nothing written."""
    code, err = cli(*distill_args(tiny_teacher, data_dir, tmp_path / "s", "--augment", "long"))
    assert code == 2, err
    assert (f"--augment long: no row of {data_dir / 'train.jsonl'} has 15 words or more to "
            f"copy; choose another preset (tinybert, eda" in err)
    assert "Traceback" not in err and not (tmp_path / "s").exists()


def test_a_tagger_distils_with_augmented_sentences(cli, tiny_tagger, token_data, tmp_path):
    """--augment ner: O words replaced and mentions swapped within their type; the teacher
    tags the new sentences word by word."""
    out = tmp_path / "student"
    code, err = cli("-q", "distill", "--teacher", tiny_tagger, "--train",
                    token_data / "train.txt", "--validation", token_data / "validation.txt",
                    "--out", out, "--epochs", "1", "--batch-size", "8", "--patience", "0",
                    "--student-layers", "1", "--augment", "ner")
    assert code == 0, err
    settings = json.loads((out / "settings.json").read_text())
    assert 120 < settings["transfer_rows"]["augmented"] <= 4 * 60
    assert settings["augment"]["mention_swap"] == 0.5


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_tagger_distils_across_tokenizers_on_cuda_in_bf16(cli, tiny_tagger, token_data,
                                                             tmp_path):
    """The teacher's per-word outputs computed on the GPU, the student trained there in
    mixed precision, and both back on the CPU in the files written."""
    out = tmp_path / "student"
    code, err = cli("-q", "distill", "--teacher", tiny_tagger, "--train",
                    token_data / "train.txt", "--validation", token_data / "validation.txt",
                    "--out", out, "--epochs", "1", "--batch-size", "8", "--patience", "0",
                    "--student", char_student(tmp_path / "chars"), "--device", "cuda",
                    "--precision", "bf16")
    assert code == 0, err
    training = json.loads((out / "metrics.json").read_text())["training"]
    assert training["device"].startswith("cuda") and training["device"].endswith("bf16")
    assert training["peak_gpu_memory_mb"] > 0
    weights = load_file(out / "model.safetensors")
    assert {t.device.type for t in weights.values()} == {"cpu"}
    assert {t.dtype for t in weights.values()} == {torch.float32}  # (bf16 only in autocast)
