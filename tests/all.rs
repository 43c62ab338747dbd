//! Every integration test, in one test binary: one link instead of one per file, both test
//! threads busy until the last test ends (17 binaries left a core idle while each one's last
//! test ran alone: ~2.5 of 10 minutes measured), and one Python fork server for all the
//! checks against the Python library (see `common::run_python`). Each file below is still run
//! alone by its module name: `cargo test --test integration methods::`.
mod common;

mod architectures;
mod cli_predict;
mod electra;
mod export;
mod faults;
mod fuzz;
mod hf_datasets;
mod hub;
mod inspect;
mod methods;
mod mlflow;
mod model_loading;
mod onnx;
mod pretrained_parity;
mod prune;
mod python_roundtrip;
mod reference_parity;
mod sentencepiece;
mod study;
mod training;
