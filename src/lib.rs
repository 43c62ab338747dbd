//! Adapter Studio: adapters and AdapterFusion on pretrained transformers, compatible with
//! AdapterHub's Python `adapters` library. The library knows nothing of the GUI.
// `a += b` on tch tensors is an in-place add, which would also change every alias of `a`
// (e.g. the adapter's `up`, returned for fusion) and can break autograd: keep `a = a + b`.
#![allow(clippy::assign_op_pattern)]
pub mod activation;
pub mod adapter_model;
pub mod adapters;
pub mod bundle;
pub mod compare;
pub mod data;
pub mod device;
pub mod error;
pub mod export;
pub mod figure;
pub mod fusion;
pub mod heads;
pub mod hf_hub;
pub mod hub;
pub mod inspect;
pub mod io;
pub mod layers;
pub mod library;
pub mod lock;
pub mod metrics;
pub mod model;
pub mod onnx;
pub mod predict;
pub mod prune;
pub mod rng;
pub mod sentencepiece;
pub mod side_worker;
pub mod slurm;
pub mod study;
pub mod tasks;
pub mod tokenizer;
pub mod tracking;
pub mod training;
pub mod worker;
pub mod workspace;

pub use error::{Error, Result};
