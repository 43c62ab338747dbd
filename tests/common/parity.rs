//! Parity with the Python library on a model folder made at test time: the same texts through
//! `predict` and through `adapters`, with the same adapters, fusion and head.
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{assert_close, bin, floats, ok, run_python, run_reference_script};

pub const TEXTS: [&str; 3] = [
    "the film was fine",
    "a dull and long evening",
    "words the tiny vocabulary may not know: zyxw",
];

/// For each spec `{"dir", "head", "fusion", "adapters"}` of argv[1]: loads `DIR/model` afresh
/// with the library, activates the adapters `DIR/NAME` (a `Fuse` with the fusion `DIR/fusion`,
/// else a `Stack`), loads the head, and prints the logits of argv[2]'s texts: one JSON list of
/// lists. One interpreter serves many setups (its start, importing torch, transformers and
/// adapters, took most of these tests' time).
const PY_LOGITS: &str = r#"
import json, sys, torch
from transformers import AutoTokenizer
from adapters import AutoAdapterModel
from adapters.composition import Fuse, Stack
specs, texts = json.loads(sys.argv[1]), json.loads(sys.argv[2])

def logits(d, head, fusion, adapters):
    tok = AutoTokenizer.from_pretrained(d + "/model")
    m = AutoAdapterModel.from_pretrained(d + "/model")
    names = [m.load_adapter(d + "/" + a) for a in adapters]
    if fusion:
        m.load_adapter_fusion(d + "/fusion")
        m.set_active_adapters(Fuse(*names))
    elif names:
        m.set_active_adapters(Stack(*names))
    m.load_head(head)  # loads and activates it
    m.eval()
    # With a prompt, each text alone: the library lets prompt positions attend padding in some
    # models and attention kernels (README, prompt tuning). Not otherwise: gates average over
    # padded positions too, which we reproduce.
    pt = getattr(m.base_model, "prompt_tuning", None)
    alone = pt is not None and m.active_adapters is not None and m.active_adapters.first() in pt.prompt_tunings
    with torch.no_grad():
        if alone:
            out = torch.cat([m(**tok([t], return_tensors="pt")).logits for t in texts])
        else:
            out = m(**tok(texts, padding=True, return_tensors="pt")).logits
    return out.flatten().tolist()

print(json.dumps([logits(s["dir"], s["head"], s["fusion"], s["adapters"]) for s in specs]))
"#;

/// The library's logits of TEXTS (see PY_LOGITS) for a setup of DIR.
pub fn python_logits(dir: &Path, adapters: &[&str], fusion: bool, head: &Path) -> Vec<f64> {
    python_logits_of(&[(dir, adapters, fusion, head)]).remove(0)
}

/// [`python_logits`] of several setups `(dir, adapters, fusion, head)`, in one interpreter.
pub fn python_logits_of(setups: &[(&Path, &[&str], bool, &Path)]) -> Vec<Vec<f64>> {
    let specs: Vec<Value> = setups
        .iter()
        .map(|(dir, adapters, fusion, head)| {
            serde_json::json!({
                "dir": dir,
                "head": head,
                "fusion": fusion,
                "adapters": adapters,
            })
        })
        .collect();
    let specs = serde_json::to_string(&specs).unwrap();
    let texts = serde_json::to_string(&TEXTS).unwrap();
    let out = run_python(&["-c", PY_LOGITS, &specs, &texts]);
    let all: Vec<Vec<f64>> = serde_json::from_str(out.trim().lines().last().unwrap()).unwrap();
    assert_eq!(all.len(), setups.len());
    all
}

/// `predict --json`'s logits of `texts` on `model` with `args` (adapters, fusion, head), all
/// examples' logits in one list.
pub fn predict_logits(model: &Path, args: &[&std::ffi::OsStr], texts: &[&str]) -> Vec<f64> {
    super::logits_of(&predictions(model, args, texts))
}

/// `predict --json`'s predictions of `texts` on `model` with `args`.
pub fn predictions(model: &Path, args: &[&std::ffi::OsStr], texts: &[&str]) -> Vec<Value> {
    let mut cmd = bin();
    cmd.args(["predict", "--device", "cpu", "--json", "--model"])
        .arg(model)
        .args(args);
    for t in texts {
        cmd.args(["--text", t]);
    }
    let v: Value = serde_json::from_str(&ok(cmd.output().unwrap())).unwrap();
    v["predictions"].as_array().unwrap().clone()
}

/// `predict`'s arguments for a setup of DIR: the head, the adapters `DIR/NAME`, the fusion.
fn setup_args(dir: &Path, adapters: &[&str], fusion: bool, head: &Path) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec!["--head".into(), head.into()];
    for a in adapters {
        args.extend(["--adapter".into(), dir.join(a).into()]);
    }
    if fusion {
        args.extend(["--fusion".into(), dir.join("fusion").into()]);
    }
    args
}

/// `predict`'s predictions of TEXTS for a setup of DIR.
fn setup_predictions(dir: &Path, adapters: &[&str], fusion: bool, head: &Path) -> Vec<Value> {
    let args = setup_args(dir, adapters, fusion, head);
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    predictions(&dir.join("model"), &args, &TEXTS)
}

/// `predict`'s logits of TEXTS for the same setup.
pub fn rust_logits(dir: &Path, adapters: &[&str], fusion: bool, head: &Path) -> Vec<f64> {
    super::logits_of(&setup_predictions(dir, adapters, fusion, head))
}

/// Adapters `a`, `b` (seq_bn), `c` (double_seq_bn) and `p` (par_bn), the fusion `a,b` and a 3-class head
/// `head`, added by the library to the model in `DIR/model` with every weight randomised (so
/// that zero-initialised parts cannot hide a bug) and saved beside it.
pub const PY_ADAPTERS: &str = r#"
import sys, torch
from adapters import (AutoAdapterModel, SeqBnConfig, DoubleSeqBnConfig, ParBnConfig, LoRAConfig,
                      IA3Config, PrefixTuningConfig, PromptTuningConfig, CompacterConfig,
                      DoRAConfig)
from adapters.composition import Fuse
d = sys.argv[1]
torch.manual_seed(0)
m = AutoAdapterModel.from_pretrained(d + "/model")
m.add_adapter("a", config=SeqBnConfig())
m.add_adapter("b", config=SeqBnConfig(reduction_factor=4))
m.add_adapter("c", config=DoubleSeqBnConfig())
m.add_adapter("p", config=ParBnConfig())
m.add_adapter("s", config="scaled_par_bn")  # its learned scale randomised with the rest
m.add_adapter_fusion(Fuse("a", "b"))
m.add_classification_head("cls", num_labels=3)
with torch.no_grad():
    for n, p in m.named_parameters():
        if "adapters" in n or "fusion" in n or n.startswith("heads"):
            p.copy_(torch.randn_like(p) * 0.3)
# LoRA and (IA)³ after the others, from their own generator (the values above stay as they were).
m.add_adapter("l", config=LoRAConfig(r=4, alpha=16, attn_matrices=["q", "k", "v"],
                                     intermediate_lora=True, output_lora=True))
m.add_adapter("i", config=IA3Config())
m.add_adapter("x", config=PrefixTuningConfig(prefix_length=4, bottleneck_size=8, use_gating=True))
# The library cannot prompt a DeBERTa whose embeddings are projected (its prompt gets the
# unprojected embedding_size and the concatenation fails): no "t" there (README).
can_prompt = not (m.config.model_type == "deberta-v2"
                  and getattr(m.config, "embedding_size", m.config.hidden_size) != m.config.hidden_size)
if can_prompt:
    m.add_adapter("t", config=PromptTuningConfig(prompt_length=3))
m.add_adapter("k", config=CompacterConfig(reduction_factor=4))
m.add_adapter("o", config=DoRAConfig(r=4, alpha=8, intermediate_lora=True))
g = torch.Generator().manual_seed(1)
with torch.no_grad():
    for n, p in m.named_parameters():
        if n.endswith(".loras.o.m.weight"):  # DoRA magnitudes: around the rows' norms
            p.mul_(1 + 0.3 * torch.randn(p.shape, generator=g))
        elif any(s in n for s in (".loras.", ".prefix_tunings.x.", ".prefix_gates.x.", ".prompt_tunings.t.",
                                  ".adapters.k.", ".shared_parameters.k.")):
            r = torch.randn(p.shape, generator=g) * 0.3
            p.copy_(r + 1 if ".loras.i." in n else r)  # (IA)³ scales: around 1
m.save_adapter(d + "/a", "a")
m.save_adapter(d + "/b", "b")
m.save_adapter(d + "/c", "c")
m.save_adapter(d + "/p", "p")
m.save_adapter(d + "/s", "s")
m.save_adapter(d + "/l", "l")
m.save_adapter(d + "/i", "i")
m.save_adapter(d + "/x", "x")
if can_prompt:
    m.save_adapter(d + "/t", "t")
m.save_adapter(d + "/k", "k")
m.save_adapter(d + "/o", "o")
m.save_adapter_fusion(d + "/fusion", "a,b")
m.save_head(d + "/head", "cls")
"#;

/// The library's fusion weights of TEXTS for the fusion `a,b` of DIR: per text, per layer (in
/// layer order), per adapter, the mean over the text's tokens at the output location.
const PY_FUSION_WEIGHTS: &str = r#"
import json, sys, torch
from transformers import AutoTokenizer
from adapters import AutoAdapterModel
from adapters.composition import Fuse
d, texts = sys.argv[1], json.loads(sys.argv[2])
tok = AutoTokenizer.from_pretrained(d + "/model")
m = AutoAdapterModel.from_pretrained(d + "/model")
m.load_adapter(d + "/a"); m.load_adapter(d + "/b")
m.load_adapter_fusion(d + "/fusion")
m.set_active_adapters(Fuse("a", "b"))
m.load_head(d + "/head")
m.eval()
enc = tok(texts, padding=True, return_tensors="pt")
with torch.no_grad():
    out = m(**enc, output_adapter_fusion_attentions=True)
mask = enc["attention_mask"].numpy()[:, :, None]
per_layer = out.adapter_fusion_attentions["a,b"]
means = [(per_layer[l]["output_adapter"] * mask).sum(1) / mask.sum(1) for l in sorted(per_layer)]
print(json.dumps([[layer[i].tolist() for layer in means] for i in range(len(texts))]))
"#;

/// `predict`'s fusion weights equal the library's (1e-5). The library keeps one record per
/// layer module (a shared ALBERT layer's last use); we keep one per use, in layer order, so the
/// last use of each layer is compared.
pub fn assert_fusion_weights_match_the_library(dir: &Path, what: &str) {
    let texts = serde_json::to_string(&TEXTS).unwrap();
    let out = run_python(&["-c", PY_FUSION_WEIGHTS, &dir.to_string_lossy(), &texts]);
    let want: Vec<Vec<Vec<f64>>> =
        serde_json::from_str(out.trim().lines().last().unwrap()).unwrap();
    let got = setup_predictions(dir, &["a", "b"], true, &dir.join("head"));
    for (i, (p, want)) in got.iter().zip(&want).enumerate() {
        let rows: Vec<Vec<f64>> = p["fusion_attention"]
            .as_array()
            .unwrap()
            .iter()
            .map(floats)
            .collect();
        assert!(
            !want.is_empty() && rows.len().is_multiple_of(want.len()),
            "{what}: {} rows",
            rows.len()
        );
        let uses = rows.len() / want.len();
        for (l, want_row) in want.iter().enumerate() {
            let got = &rows[l * uses + uses - 1];
            super::assert_close(&format!("{what} text {i} layer {l}"), got, want_row, 1e-5);
        }
    }
}

/// The setups every architecture is checked with: bare, one seq_bn, a double_seq_bn, a
/// par_bn, a Stack of two, a fusion, a LoRA on every linear, (IA)³, a Stack of a LoRA
/// and a bottleneck, gated prefix tuning.
pub const SETUPS: [(&[&str], bool); 15] = [
    (&[], false),
    (&["a"], false),
    (&["c"], false),
    (&["p"], false),
    (&["s"], false),
    (&["c", "a"], false),
    (&["a", "b"], true),
    (&["l"], false),
    (&["i"], false),
    (&["l", "a"], false),
    (&["x"], false),
    (&["t"], false),
    (&["k"], false),
    (&["t", "k"], false),
    (&["o"], false),
];

/// Each of SETUPS gives the library's logits (1e-4) for the folder made with PY_ADAPTERS.
pub fn assert_setups_match_the_library(dir: &Path, what: &str) {
    let head = dir.join("head");
    let mut setups = Vec::new();
    for (adapters, fusion) in SETUPS {
        if adapters.contains(&"t") && !dir.join("t").exists() {
            // Only the library's projected DeBERTa has no prompt (see PY_ADAPTERS).
            let config = std::fs::read_to_string(dir.join("model/config.json")).unwrap();
            assert!(config.contains("deberta-v2") && config.contains("embedding_size"));
            continue;
        }
        setups.push((dir, adapters, fusion, head.as_path()));
    }
    let wanted = python_logits_of(&setups);
    for ((_, adapters, fusion, _), want) in setups.iter().zip(&wanted) {
        let got = rust_logits(dir, adapters, *fusion, &head);
        assert_eq!(got.len(), 9, "{what}: three labels for three texts");
        assert_close_label(what, adapters, *fusion, &got, want);
    }
    assert_fusion_weights_match_the_library(dir, what);
}

fn assert_close_label(what: &str, adapters: &[&str], fusion: bool, got: &[f64], want: &[f64]) {
    super::assert_close(
        &format!("{what} {adapters:?} fusion={fusion}"),
        got,
        want,
        1e-4,
    );
}

/// Trains a seq_bn, a LoRA, an (IA)³ and a scaled_par_bn adapter with a head on the model `DIR/model` for a few
/// steps from the CLI, then checks that the library, loading each with its plain calls, gives
/// the same logits.
pub fn assert_a_trained_adapter_loads_in_python(dir: &Path) {
    let work = tempfile::tempdir().unwrap();
    let methods = ["seq_bn", "lora", "ia3", "scaled_par_bn"];
    let setups: Vec<PathBuf> = methods
        .iter()
        .map(|method| trained_setup(dir, &work.path().join(method), method))
        .collect();
    let heads: Vec<PathBuf> = setups.iter().map(|s| s.join("run-head")).collect();
    let specs: Vec<(&Path, &[&str], bool, &Path)> = setups
        .iter()
        .zip(&heads)
        .map(|(here, head)| (here.as_path(), &["adapter"][..], false, head.as_path()))
        .collect();
    let wanted = python_logits_of(&specs);
    for ((method, here), want) in methods.iter().zip(&setups).zip(&wanted) {
        let got = rust_logits(here, &["adapter"], false, &here.join("run-head"));
        assert_eq!(got.len(), 6, "two labels for three texts");
        super::assert_close(&format!("trained {method} adapter"), &got, want, 1e-4);
    }
}

/// Trains METHOD for a few steps from the CLI into `work`; the folder of the model, the run's
/// adapter and its head (`run-head`) side by side, as the helpers expect.
fn trained_setup(dir: &Path, work: &Path, method: &str) -> PathBuf {
    std::fs::create_dir_all(work).unwrap();
    let csv = work.join("train.csv");
    let mut text = String::from("text,label\n");
    for i in 0..40 {
        let (t, l) = if i % 2 == 0 {
            ("a fine film", "pos")
        } else {
            ("a dull film", "neg")
        };
        text.push_str(&format!("{t} {i},{l}\n"));
    }
    std::fs::write(&csv, text).unwrap();
    let run = work.join("run");
    ok(bin()
        .args(["train", "--device", "cpu", "--json", "--model"])
        .arg(dir.join("model"))
        .arg("--train")
        .arg(&csv)
        .arg("--out")
        .arg(&run)
        .args([
            "--max-steps",
            "4",
            "--lr",
            "1e-2",
            "--name",
            "trained",
            "--method",
            method,
        ])
        .output()
        .unwrap());
    // The run's adapter and head, beside the model folder as the helpers expect.
    let here = work.join("setup");
    std::fs::create_dir_all(&here).unwrap();
    std::os::unix::fs::symlink(dir.join("model"), here.join("model")).unwrap();
    std::os::unix::fs::symlink(run.join("adapter"), here.join("adapter")).unwrap();
    std::os::unix::fs::symlink(run.join("head"), here.join("run-head")).unwrap();
    here
}

/// The library, loading each of `specs` (make_fixtures.py --check-load) in one start-up,
/// reports no problem and gives the `expected` logits (1e-4).
pub fn assert_python_loads_with_the_same_logits(
    work: &Path,
    specs: &[Value],
    expected: &[Vec<f64>],
) {
    let spec_path = work.join("spec.json");
    std::fs::write(&spec_path, Value::Array(specs.to_vec()).to_string()).unwrap();
    let stdout = run_reference_script(&["--check-load".as_ref(), spec_path.as_os_str()]);
    let results: Vec<Value> = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(results.len(), specs.len());
    for ((spec, want), r) in specs.iter().zip(expected).zip(&results) {
        let label = format!("{} {}", spec["model"], spec["setup"]);
        assert!(
            r["load_warnings"].as_array().is_none_or(|w| w.is_empty()),
            "{label}: Python reported {}",
            r["load_warnings"]
        );
        assert_close(&label, want, &floats(&r["logits"]), 1e-4);
    }
}
