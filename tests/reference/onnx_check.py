"""Checks an ONNX export in ONNX Runtime against `adapter-studio predict --json`.

    onnx_check.py DIR PREDICTIONS.json [--tol 1e-4] [--one-batch]

DIR is what `export --format onnx` wrote (model.onnx, tokenizer.json); PREDICTIONS what
`predict --json` printed for some texts (one batch). The model must pass `onnx.checker` (with shape
inference); its `logits` (and `fusion_attention`, when predict reports one) must match
predict's within the tolerance for the texts as one padded batch, one at a time, and in
reversed pairs (other paddings and batch sizes). Prints a JSON summary; exits 1 on a mismatch.
"""
import argparse
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from tokenizers import Tokenizer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("predictions")
    ap.add_argument("--tol", type=float, default=1e-4)
    # A gated adapter averages its gate over every token, padding included (as the library
    # does): its outputs depend on the batch's padding, so only predict's own batch compares.
    ap.add_argument("--one-batch", action="store_true")
    args = ap.parse_args()

    model_path = os.path.join(args.dir, "model.onnx")
    # The path form reads external data beside the model and runs shape inference on it.
    onnx.checker.check_model(model_path, full_check=True)
    model = onnx.load(model_path)
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))

    with open(args.predictions) as f:
        predictions = json.load(f)
    if isinstance(predictions, dict):  # predict --json's object form
        predictions = predictions["predictions"]
    texts = [p["text"] for p in predictions]

    tok = Tokenizer.from_file(os.path.join(args.dir, "tokenizer.json"))
    pad_id = int(dict(
        (p.key, p.value) for p in model.metadata_props
    ).get("pad_id", "0"))
    tok.no_truncation()
    tok.enable_padding(pad_id=pad_id)
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    input_names = [i.name for i in session.get_inputs()]
    output_names = [o.name for o in session.get_outputs()]

    def run(indices):
        enc = tok.encode_batch([texts[i] for i in indices])
        fields = {
            "input_ids": [e.ids for e in enc],
            "attention_mask": [e.attention_mask for e in enc],
            "token_type_ids": [e.type_ids for e in enc],
        }
        feeds = {n: np.array(fields[n], dtype=np.int64) for n in input_names}
        outs = dict(zip(output_names, session.run(None, feeds)))
        lengths = [sum(e.attention_mask) for e in enc]
        return outs, lengths

    n = len(texts)
    batches = [list(range(n))]
    if not args.one_batch:
        batches += [[i] for i in range(n)] + [[i + 1, i] for i in range(n - 1)]
    worst_logits, worst_fusion = 0.0, 0.0
    for batch in batches:
        outs, lengths = run(batch)
        for row, (i, length) in enumerate(zip(batch, lengths)):
            want = np.array(predictions[i]["logits"], dtype=np.float64)
            got = outs["logits"][row].astype(np.float64)
            if want.ndim == 2:  # tagging: predict reports the example's own tokens
                got = got[:length]
            if got.shape != want.shape:
                print(f"logits of text {i}: shape {got.shape} vs predict's {want.shape}")
                sys.exit(1)
            worst_logits = max(worst_logits, float(np.abs(got - want).max()))
            fa = predictions[i].get("fusion_attention")
            if fa is not None:
                if "fusion_attention" not in outs:
                    print("predict reports fusion_attention but the model has no such output")
                    sys.exit(1)
                got = outs["fusion_attention"][row].astype(np.float64)
                want = np.array(fa, dtype=np.float64)
                if got.shape != want.shape:
                    print(f"fusion_attention of text {i}: {got.shape} vs {want.shape}")
                    sys.exit(1)
                worst_fusion = max(worst_fusion, float(np.abs(got - want).max()))
    summary = {
        "opset": opset,
        "inputs": input_names,
        "outputs": output_names,
        "batches": len(batches),
        "max_abs_logits": worst_logits,
        "max_abs_fusion_attention": worst_fusion,
    }
    print(json.dumps(summary))
    if worst_logits > args.tol or worst_fusion > args.tol:
        sys.exit(1)


if __name__ == "__main__":
    main()
