//! The inspector's heatmaps hold the numbers `adapter-studio predict --json` reports for the
//! same input, computed on the side worker thread as the app does.
use crate::common;

use std::process::Command;
use std::time::Duration;

use adapter_studio::inspect::Heatmap;
use adapter_studio::predict::PredictSpec;
use adapter_studio::side_worker::{Probe, SideCommand, SideEvent, SideWorker};
use common::*;
use serde_json::Value;

fn parts() -> PredictSpec {
    let d = fixtures().join("bert_tiny_adapters");
    PredictSpec {
        model: fixtures().join("bert_tiny"),
        adapters: vec![d.join("a"), d.join("b"), d.join("c")],
        fusion: Some(d.join("fusion_abc")),
        head: d.join("head_cls"),
        device: tch::Device::Cpu,
    }
}

#[test]
fn heatmap_numbers_equal_predict_json_for_the_same_input() {
    let text = "the dog ran to the park";
    let worker = SideWorker::spawn(|| {}).unwrap();
    worker
        .send(SideCommand::Predict {
            id: 7,
            probes: vec![Probe {
                label: "fusion".into(),
                spec: parts(),
            }],
            texts: vec![(text.into(), None)],
        })
        .unwrap();
    let SideEvent::Predictions { id, mut results } = worker
        .events
        .recv_timeout(Duration::from_secs(120))
        .unwrap()
    else {
        panic!("expected predictions")
    };
    assert_eq!(id, 7);
    let (label, result) = results.remove(0);
    assert_eq!(label, "fusion");
    let pred = result.unwrap().remove(0);
    let map = Heatmap::of_prediction(&pred).unwrap();
    assert_eq!(map.cols, ["a", "b", "c"]);

    let p = parts();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_adapter-studio"));
    cmd.args([
        "predict", "--json", "--device", "cpu", "--text", text, "--model",
    ])
    .arg(&p.model);
    for a in &p.adapters {
        cmd.arg("--adapter").arg(a);
    }
    cmd.arg("--fusion").arg(p.fusion.as_ref().unwrap());
    cmd.arg("--head").arg(&p.head);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cli = &json["predictions"][0]["fusion_attention"];
    assert_eq!(cli.as_array().unwrap().len(), map.rows.len());
    assert_close(
        "heatmap vs predict --json",
        &map.values.concat(),
        &floats(cli),
        1e-12,
    );

    // The token view of each layer averages (over the input's tokens) to that layer's row.
    for row in 0..map.rows.len() {
        let tokens = Heatmap::of_tokens(&pred, row).unwrap();
        assert_eq!(tokens.rows, pred.tokens);
        assert!(tokens.rows.len() > 2, "[CLS] … [SEP]");
        let mean: Vec<f64> = (0..3)
            .map(|c| tokens.values.iter().map(|r| r[c]).sum::<f64>() / tokens.rows.len() as f64)
            .collect();
        assert_close(&format!("layer row {row}"), &mean, &map.values[row], 1e-6);
        for r in &tokens.values {
            assert!(
                (r.iter().sum::<f64>() - 1.0).abs() < 1e-5,
                "softmax rows sum to 1"
            );
        }
    }
}
