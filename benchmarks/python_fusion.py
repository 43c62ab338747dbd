#!/usr/bin/env python3
"""Train AdapterFusion (or one seq_bn adapter) with the Python `adapters` library; evaluate it.

--mode fusion   AutoAdapterModel; every --adapter DIR (an AdapterHub adapter folder:
                adapter_config.json + adapter.safetensors and/or pytorch_adapter.bin) is loaded
                with load_adapter(DIR, load_as=<name of DIR's parent folder>, with_head=False);
                then add_adapter_fusion(Fuse(*names)) (default "dynamic" config),
                set_active_adapters / train_adapter_fusion(Fuse(*names)) and a new
                classification head "target". Only the fusion layers and the head train.
                Defaults: lr 5e-5, 10 epochs.
--mode adapter  one new seq_bn adapter + classification head (add_adapter(name, "seq_bn"),
                train_adapter(name)). Defaults: lr 1e-4, 30 epochs. --save-adapter DIR then
                writes it with model.save_adapter(DIR, name) (usable as a fusion --adapter).

AdapterTrainer with the TrainingArguments defaults (AdamW, linear decay, no warm-up, random
sampler, fp32, dataloader_drop_last=False) except learning rate, batch size (32), epochs,
seed, no evaluation, no saving, no logging or progress bar, CPU. DataCollatorWithPadding,
truncation at --max-length (128). After training the script evaluates itself (model.eval(),
torch.no_grad(), batches of --eval-batch-size): accuracy and mean cross-entropy on
--validation, and on --test when given. Classes are the sorted labels of --train.

Prints one JSON line on stdout (everything the libraries print goes to stderr):

  {"impl": "python", "mode": "fusion", "accuracy": x, "eval_loss": y, "steps": n,
   "train_secs": s, "examples_per_sec": e, "test_accuracy": ..., ...}

train_secs is the Trainer's own train_runtime (the training loop only).
"""

import argparse
import contextlib
import csv
import json
import os
import re
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from python_train import examples_trained, tokenize  # noqa: E402  (checks for accelerate)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from adapters import AdapterTrainer, AutoAdapterModel  # noqa: E402
from adapters.composition import Fuse  # noqa: E402
from transformers import (  # noqa: E402
    AutoTokenizer,
    DataCollatorWithPadding,
    TrainingArguments,
    set_seed,
)

DEFAULT_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".venv", "demo-model")
DEFAULTS = {"fusion": {"lr": 5e-5, "epochs": 10.0}, "adapter": {"lr": 1e-4, "epochs": 30.0}}


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [r["label"] for r in rows]


def encode(tokenizer, path, ids, max_length):
    texts, labels = read_csv(path)
    unknown = sorted(set(labels) - set(ids))
    if unknown:
        sys.exit(f"python_fusion.py: {path}: labels not in the training set: {unknown}")
    return tokenize(tokenizer, texts, [ids[x] for x in labels], "dynamic", max_length)


def safe_name(text):
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "adapter"


def adapter_names(dirs):
    """Name of each adapter: its folder's parent folder (…/<task>/adapter -> <task>), unique."""
    names = []
    for d in dirs:
        d = os.path.abspath(d.rstrip("/"))
        base = safe_name(os.path.basename(os.path.dirname(d)))
        name, i = base, 2
        while name in names:
            name, i = f"{base}_{i}", i + 1
        names.append(name)
    return names


@torch.no_grad()
def evaluate(model, dataset, collator, batch_size):
    model.eval()
    correct, loss_sum = 0, 0.0
    for start in range(0, len(dataset), batch_size):
        batch = collator(dataset[start:start + batch_size])
        labels = batch.pop("labels")
        logits = model(**batch).logits
        loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum").item()
        correct += (logits.argmax(-1) == labels).sum().item()
    return correct / len(dataset), loss_sum / len(dataset)


def run(a):
    texts, labels = read_csv(a.train)
    classes = sorted(set(labels))
    ids = {c: i for i, c in enumerate(classes)}
    tokenizer = AutoTokenizer.from_pretrained(a.model)
    train_set = tokenize(tokenizer, texts, [ids[x] for x in labels], "dynamic", a.max_length)
    val_set = encode(tokenizer, a.validation, ids, a.max_length)
    test_set = encode(tokenizer, a.test, ids, a.max_length) if a.test else None

    set_seed(a.seed)  # adapter / fusion / head initialisation (Trainer re-seeds before training)
    model = AutoAdapterModel.from_pretrained(a.model)
    info = {}
    if a.mode == "fusion":
        if not a.adapter:
            sys.exit("python_fusion.py: --mode fusion needs at least one --adapter DIR")
        names = []
        for d, name in zip(a.adapter, adapter_names(a.adapter)):
            has_safe = os.path.exists(os.path.join(d, "adapter.safetensors"))
            names.append(model.load_adapter(d, load_as=name, with_head=False,
                                            use_safetensors=has_safe))
        fuse = Fuse(*names)
        model.add_adapter_fusion(fuse)
        model.set_active_adapters(fuse)
        model.train_adapter_fusion(fuse)
        model.add_classification_head("target", num_labels=len(classes))
        info["adapters"] = names
    else:
        name = safe_name(a.name or os.path.basename(os.path.dirname(os.path.abspath(a.train))))
        model.add_adapter(name, config="seq_bn")
        model.add_classification_head(name, num_labels=len(classes))
        model.train_adapter(name)
        info["adapter"] = name
    info["trainable_params"] = sum(p.numel() for p in model.parameters() if p.requires_grad)

    args = TrainingArguments(
        output_dir=a.out or os.path.join(tempfile.gettempdir(), "adapters-fusion-bench"),
        learning_rate=a.lr,
        per_device_train_batch_size=a.batch_size,
        num_train_epochs=a.epochs,
        seed=a.seed,
        eval_strategy="no",
        save_strategy="no",
        logging_strategy="no",
        report_to=[],
        disable_tqdm=True,
        label_names=["labels"],
        dataloader_drop_last=False,
        use_cpu=True,
    )
    collator = DataCollatorWithPadding(tokenizer)
    trainer = AdapterTrainer(model=model, args=args, train_dataset=train_set,
                             data_collator=collator)
    result = trainer.train()
    secs = result.metrics["train_runtime"]
    examples = examples_trained(result.global_step, len(train_set), a.batch_size)

    t0 = time.perf_counter()
    acc, loss = evaluate(model, val_set, collator, a.eval_batch_size)
    out = {
        "impl": "python",
        "mode": a.mode,
        "accuracy": acc,
        "eval_loss": loss,
        "steps": result.global_step,
        "train_secs": secs,
        "examples_per_sec": examples / secs,
        "train_loss": result.training_loss,
    }
    if test_set is not None:
        out["test_accuracy"], out["test_loss"] = evaluate(model, test_set, collator,
                                                          a.eval_batch_size)
    out["eval_secs"] = round(time.perf_counter() - t0, 3)
    if a.mode == "adapter" and a.save_adapter:
        os.makedirs(a.save_adapter, exist_ok=True)
        model.save_adapter(a.save_adapter, info["adapter"],
                           use_safetensors=a.save_format == "safetensors")
        out["saved_adapter"] = a.save_adapter
    out.update(info)
    out.update({
        "classes": classes,
        "train_examples": len(train_set),
        "validation_examples": len(val_set),
        "test_examples": len(test_set) if test_set is not None else 0,
        "examples": examples,
        "epochs": a.epochs,
        "lr": a.lr,
        "batch_size": a.batch_size,
        "max_length": a.max_length,
        "seed": a.seed,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    })
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=("fusion", "adapter"), required=True)
    p.add_argument("--adapter", action="append", default=[], metavar="DIR",
                   help="fusion: an AdapterHub adapter folder (repeat for each)")
    p.add_argument("--model", default=DEFAULT_MODEL, help="Hugging Face model folder")
    p.add_argument("--train", required=True, help="CSV with columns text,label")
    p.add_argument("--validation", required=True, help="CSV with columns text,label")
    p.add_argument("--test", default=None, help="CSV with columns text,label")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--lr", type=float, default=None, help="fusion 5e-5, adapter 1e-4")
    p.add_argument("--epochs", type=float, default=None, help="fusion 10, adapter 30")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--eval-batch-size", type=int, default=64)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--name", default=None,
                   help="adapter mode: adapter name (default: the --train file's folder name)")
    p.add_argument("--save-adapter", default=None, metavar="DIR",
                   help="adapter mode: save the trained adapter there (model.save_adapter)")
    p.add_argument("--save-format", choices=("bin", "safetensors"), default="bin")
    p.add_argument("--out", default=None, help="TrainingArguments.output_dir (nothing is saved)")
    a = p.parse_args()
    for k, v in DEFAULTS[a.mode].items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    with contextlib.redirect_stdout(sys.stderr):
        result = run(a)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
