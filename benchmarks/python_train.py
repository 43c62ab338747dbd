#!/usr/bin/env python3
"""Train a seq_bn adapter with the Python `adapters` library (AdapterTrainer) and time it.

TrainingArguments are the library defaults (AdamW, linear schedule, no warm-up, random
sampler, 0 dataloader workers, fp32) except: learning rate, batch size, epochs / max steps,
seed 42, no evaluation, no saving, no logging or progress bar, and CPU unless --device cuda.
Only trainer.train() is timed (its own `train_runtime`: the loop, after model load and
tokenisation). Prints one JSON line on stdout:

  {"impl": "python", "examples": N, "train_secs": s, "examples_per_sec": x, "steps": n, ...}

where examples = examples actually trained (steps x batch size, a last partial batch of an
epoch counted exactly).

--padding fixed    every example padded to --max-length (identical [batch, 128] batches)
--padding dynamic  DataCollatorWithPadding (pad to the longest in the batch; the default)
"""

import argparse
import contextlib
import csv
import json
import math
import os
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

try:
    import accelerate  # noqa: E402,F401  (Trainer needs it; transformers does not pull it in)
except ImportError:
    sys.exit("python_train.py: the Trainer needs `accelerate` (pip install 'accelerate>=0.26')")
import torch  # noqa: E402
from adapters import AdapterTrainer, AutoAdapterModel, SeqBnConfig  # noqa: E402
from transformers import (  # noqa: E402
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
    set_seed,
)


def load_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    classes = sorted({r["label"] for r in rows})
    ids = {c: i for i, c in enumerate(classes)}
    return [r["text"] for r in rows], [ids[r["label"]] for r in rows], classes


def tokenize(tokenizer, texts, labels, padding, max_length):
    enc = tokenizer(
        texts,
        truncation=True,
        max_length=max_length,
        padding="max_length" if padding == "fixed" else False,
    )
    keys = list(enc.keys())
    return [{**{k: enc[k][i] for k in keys}, "labels": labels[i]} for i in range(len(texts))]


def examples_trained(steps, n_examples, batch_size):
    """Examples seen in `steps` optimiser steps (drop_last=False, no gradient accumulation)."""
    per_epoch = math.ceil(n_examples / batch_size)
    epochs, rest = divmod(steps, per_epoch)
    return epochs * n_examples + rest * batch_size


def run(a):
    texts, labels, classes = load_csv(a.train)
    tokenizer = AutoTokenizer.from_pretrained(a.model)
    train_set = tokenize(tokenizer, texts, labels, a.padding, a.max_length)

    name = "bench"
    set_seed(a.seed)  # adapter and head initialisation (Trainer re-seeds before training)
    model = AutoAdapterModel.from_pretrained(a.model)
    if a.head_only:
        # The paper's head-only baseline: the base frozen, only the head trains.
        model.add_classification_head(name, num_labels=len(classes))
        for p in model.base_model.parameters():
            p.requires_grad = False
    else:
        leave_out = [int(x) for x in a.leave_out.split(",") if x] if a.leave_out else []
        model.add_adapter(name, config=SeqBnConfig(leave_out=leave_out))
        model.add_classification_head(name, num_labels=len(classes))
        model.train_adapter(name)

    args = TrainingArguments(
        output_dir=a.out or os.path.join(tempfile.gettempdir(), "adapters-bench"),
        learning_rate=a.lr,
        per_device_train_batch_size=a.batch_size,
        num_train_epochs=a.epochs,
        max_steps=a.max_steps,
        seed=a.seed,
        eval_strategy="no",
        save_strategy="no",
        logging_strategy="no",
        report_to=[],
        disable_tqdm=True,
        label_names=["labels"],
        use_cpu=a.device == "cpu",
    )
    trainer = (Trainer if a.head_only else AdapterTrainer)(
        model=model,
        args=args,
        train_dataset=train_set,
        # What Trainer picks by default when given a tokenizer; a no-op on pre-padded inputs.
        data_collator=DataCollatorWithPadding(tokenizer),
    )

    t0 = time.perf_counter()
    result = trainer.train()
    call_secs = time.perf_counter() - t0

    secs = result.metrics["train_runtime"]
    examples = examples_trained(result.global_step, len(train_set), a.batch_size)
    return {
        "impl": "python",
        "examples": examples,
        "train_secs": secs,
        "examples_per_sec": examples / secs,
        "steps": result.global_step,
        "train_call_secs": round(call_secs, 4),
        "train_loss": result.training_loss,
        "padding": a.padding,
        "batch_size": a.batch_size,
        "device": a.device,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="Hugging Face model folder")
    p.add_argument("--train", required=True, help="CSV with columns text,label")
    p.add_argument("--padding", choices=("fixed", "dynamic"), default="dynamic")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--max-steps", type=int, default=-1, help="overrides --epochs when > 0")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--out", default=None, help="TrainingArguments.output_dir (nothing is saved)")
    p.add_argument("--leave-out", default="", help="seq_bn's leave_out, e.g. 0,1,2,3 (AdapterDrop)")
    p.add_argument("--head-only", action="store_true", help="no adapter: train the head alone")
    a = p.parse_args()
    # Everything the libraries print (Trainer prints its final metrics dict) goes to stderr:
    # stdout carries only the result line.
    with contextlib.redirect_stdout(sys.stderr):
        result = run(a)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
