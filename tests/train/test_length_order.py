"""Evaluation takes rows in length order (train/length_order.py) and every figure is read
back against the right row."""

from __future__ import annotations

import numpy as np
from conftest import make_rows


def test_an_order_and_its_undoing_round_trip():
    from datasets import Dataset

    from edgetransfer.train.length_order import in_row_order, length_order

    ds = Dataset.from_dict({"input_ids": [[1] * n for n in (5, 2, 9, 2, 1)]})
    order = length_order(ds)
    assert order == [4, 1, 3, 0, 2]  # (ties keep the set's order)
    values = np.array([10, 20, 30, 40, 50])
    taken = values[order]
    assert in_row_order(taken, order).tolist() == values.tolist()
    both = in_row_order((taken, taken * 2), order)
    assert isinstance(both, tuple) and both[1].tolist() == (values * 2).tolist()
    heads = in_row_order({"intent": taken, "slots": taken[:, None]}, order)  # (a joint's)
    assert heads["intent"].tolist() == values.tolist()
    assert heads["slots"][:, 0].tolist() == values.tolist()
    assert length_order(Dataset.from_dict({"pixel_values": [[0.0]] * 3})) is None
    assert in_row_order(taken, None) is taken


def test_evaluation_by_length_reads_predictions_and_labels_back_in_row_order(
        tiny_classifier, tmp_path):
    import torch
    from datasets import Dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        Trainer,
        TrainingArguments,
    )

    from edgetransfer import tasks
    from edgetransfer.train import training
    from edgetransfer.train.length_order import in_row_order

    model = AutoModelForSequenceClassification.from_pretrained(tiny_classifier).eval()
    tok = AutoTokenizer.from_pretrained(tiny_classifier)
    task = tasks.get("text-classification")
    # long and short rows interleaved, labels alternating: a row read back at another's
    # place shows as a wrong label
    texts = [" ".join(r["text"].split()[: 1 + (i * 7) % 11] * (1 + i % 4)) for i, r in
             enumerate(make_rows(24))]
    labels = [i % 2 for i in range(24)]
    ds = Dataset.from_dict(dict(tok(texts)) | {"label": labels})
    names = ["negative", "positive"]
    trainer = Trainer(model=model, args=TrainingArguments(
        tmp_path, per_device_eval_batch_size=5, report_to=[], use_cpu=True),
        data_collator=task.collator(tok),
        compute_metrics=training.compute_metrics(task, names, ds))
    training.evaluate_in_eval_order(trainer)
    taken = list(trainer._get_eval_sampler(ds))
    assert taken != list(range(24)) and sorted(taken) == list(range(24))
    lengths = [len(ds[i]["input_ids"]) for i in taken]
    assert lengths == sorted(lengths)

    with torch.inference_mode():  # one row at a time, unpadded
        alone = np.stack([model(**tok(t, return_tensors="pt")).logits[0].numpy()
                          for t in texts])
    raw = trainer.predict(ds).predictions  # (as the rows were taken)
    assert not np.allclose(raw, alone, atol=1e-5)
    back = in_row_order(raw, training.eval_order(ds))
    assert np.allclose(back, alone, atol=1e-5)
    got_labels, got = training.predicted(trainer, task, ds, "test")
    assert np.asarray(got_labels).tolist() == labels
    assert np.asarray(got).tolist() == alone.argmax(-1).tolist()
    accuracy = trainer.evaluate(ds)["eval_accuracy"]
    assert accuracy == np.mean(alone.argmax(-1) == np.asarray(labels))
