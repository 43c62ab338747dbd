//! Shared helpers for the integration tests: fixture paths and reference cases.
#![allow(dead_code)]
use std::path::{Path, PathBuf};

use serde_json::Value;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures")
}

pub fn cases() -> Vec<Value> {
    let text = std::fs::read_to_string(fixtures().join("cases.json")).expect("cases.json is committed");
    let v: Value = serde_json::from_str(&text).expect("cases.json is valid JSON");
    v["cases"].as_array().expect("cases list").clone()
}

pub fn floats(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(items) => items.iter().flat_map(floats).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap()],
        other => panic!("not a number: {other}"),
    }
}

pub fn assert_close(label: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{label}: length {} vs {}", got.len(), want.len());
    let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(worst <= tol, "{label}: max abs difference {worst:e} > {tol:e}\n got  {:?}\n want {:?}", &got[..got.len().min(8)], &want[..want.len().min(8)]);
}

/// The project's Python (set up by scripts/setup.sh).
pub fn venv_python() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv").join("bin").join("python")
}
