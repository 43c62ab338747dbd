//! ELECTRA (embedding_size ≠ hidden_size, `embeddings_project`, no pooler): a tiny random
//! model, adapters, a fusion and a head made at test time by transformers and the Python
//! `adapters` library give the same logits through `predict`; an adapter trained here loads
//! in Python with the same logits.
mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

const TEXTS: [&str; 3] = [
    "the film was fine",
    "a dull and long evening",
    "words the tiny vocabulary may not know: zyxw",
];

/// Runs `code` with the project's Python, `args` as sys.argv[1:]; returns its stdout.
fn python(code: &str, args: &[&str]) -> String {
    let mut all = vec!["-c", code];
    all.extend_from_slice(args);
    run_python(&all)
}

/// Loads the folder's model with the library, activates the adapters (a `Fuse` with
/// `fusion`, else a `Stack`) and prints the logits of TEXTS as JSON.
const PY_LOGITS: &str = r#"
import json, sys, torch
from transformers import AutoTokenizer
from adapters import AutoAdapterModel
from adapters.composition import Fuse, Stack
d, head, fusion, texts = sys.argv[1], sys.argv[2], sys.argv[3] == "1", json.loads(sys.argv[4])
adapters = json.loads(sys.argv[5])
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
enc = tok(texts, padding=True, return_tensors="pt")
with torch.no_grad():
    out = m(**enc).logits
print(json.dumps(out.flatten().tolist()))
"#;

fn python_logits(dir: &Path, adapters: &[&str], fusion: bool, head: &Path) -> Vec<f64> {
    let texts = serde_json::to_string(&TEXTS).unwrap();
    let adapters = serde_json::to_string(adapters).unwrap();
    let out = python(
        PY_LOGITS,
        &[
            &dir.to_string_lossy(),
            &head.to_string_lossy(),
            if fusion { "1" } else { "0" },
            &texts,
            &adapters,
        ],
    );
    serde_json::from_str(out.trim().lines().last().unwrap()).unwrap()
}

fn rust_logits(dir: &Path, adapters: &[&str], fusion: bool, head: &Path) -> Vec<f64> {
    let mut cmd = bin();
    cmd.args(["predict", "--device", "cpu", "--json", "--model"])
        .arg(dir.join("model"))
        .arg("--head")
        .arg(head);
    for a in adapters {
        cmd.arg("--adapter").arg(dir.join(a));
    }
    if fusion {
        cmd.arg("--fusion").arg(dir.join("fusion"));
    }
    for t in TEXTS {
        cmd.args(["--text", t]);
    }
    let v: Value = serde_json::from_str(&ok(cmd.output().unwrap())).unwrap();
    v["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| floats(&p["logits"]))
        .collect()
}

/// A tiny ELECTRA (embedding_size 16, hidden 32) with the tiny BERT's WordPiece tokenizer,
/// adapters (two seq_bn, fused; a double_seq_bn), the fusion and a 3-class head, all randomised so that
/// zero-initialised parts cannot hide a bug.
const PY_MAKE: &str = r#"
import shutil, sys, torch
from transformers import ElectraConfig, ElectraModel
from adapters import AutoAdapterModel, SeqBnConfig, DoubleSeqBnConfig
from adapters.composition import Fuse
d, bert = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
cfg = ElectraConfig(vocab_size=133, embedding_size=16, hidden_size=32, num_hidden_layers=2,
                    num_attention_heads=4, intermediate_size=48, max_position_embeddings=64)
ElectraModel(cfg).save_pretrained(d + "/model")
for f in ["vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]:
    shutil.copy(bert + "/" + f, d + "/model/" + f)
m = AutoAdapterModel.from_pretrained(d + "/model")
m.add_adapter("a", config=SeqBnConfig())
m.add_adapter("b", config=SeqBnConfig(reduction_factor=4))
m.add_adapter("c", config=DoubleSeqBnConfig())
m.add_adapter_fusion(Fuse("a", "b"))
m.add_classification_head("cls", num_labels=3)
with torch.no_grad():
    for n, p in m.named_parameters():
        if "adapters" in n or "fusion" in n or n.startswith("heads"):
            p.copy_(torch.randn_like(p) * 0.3)
m.save_adapter(d + "/a", "a")
m.save_adapter(d + "/b", "b")
m.save_adapter(d + "/c", "c")
m.save_adapter_fusion(d + "/fusion", "a,b")
m.save_head(d + "/head", "cls")
"#;

fn make(dir: &Path) {
    let bert = common::fixtures().join("bert_tiny");
    python(PY_MAKE, &[&dir.to_string_lossy(), &bert.to_string_lossy()]);
}

fn made() -> PathBuf {
    static MADE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    MADE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("electra");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        make(&dir);
        dir
    })
    .clone()
}

#[test]
fn electra_with_adapters_a_fusion_and_a_head_from_the_library_gives_its_logits() {
    let d = made();
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("model/config.json")).unwrap())
            .unwrap();
    assert_eq!(config["model_type"], "electra");
    assert_ne!(config["embedding_size"], config["hidden_size"]);
    let head = d.join("head");
    for (adapters, fusion) in [
        (&[][..], false),
        (&["a"][..], false),
        (&["c"][..], false),
        (&["a", "b"][..], true),
    ] {
        let want = python_logits(&d, adapters, fusion, &head);
        let got = rust_logits(&d, adapters, fusion, &head);
        assert_eq!(got.len(), 9);
        assert_close(&format!("{adapters:?} fusion={fusion}"), &got, &want, 1e-4);
    }
}

#[test]
fn an_adapter_trained_on_electra_loads_in_python_with_the_same_logits() {
    let d = made();
    let work = tempfile::tempdir().unwrap();
    let csv = work.path().join("train.csv");
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
    let run = work.path().join("run");
    ok(bin()
        .args(["train", "--device", "cpu", "--json", "--model"])
        .arg(d.join("model"))
        .arg("--train")
        .arg(&csv)
        .arg("--out")
        .arg(&run)
        .args(["--max-steps", "4", "--lr", "1e-2", "--name", "trained"])
        .output()
        .unwrap());
    // The run's adapter and head, beside the model folder as the helpers expect.
    let here = work.path().join("setup");
    std::fs::create_dir_all(&here).unwrap();
    std::os::unix::fs::symlink(d.join("model"), here.join("model")).unwrap();
    std::os::unix::fs::symlink(run.join("adapter"), here.join("adapter")).unwrap();
    let head = run.join("head");
    let want = python_logits(&here, &["adapter"], false, &head);
    let got = rust_logits(&here, &["adapter"], false, &head);
    assert_eq!(got.len(), 6, "two labels for three texts");
    assert_close("trained adapter", &got, &want, 1e-4);
}
