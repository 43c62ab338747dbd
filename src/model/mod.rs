//! Pretrained base models: config, encoder, and loading from a Hugging Face folder.
pub mod config;
pub mod encoder;
pub mod loading;

pub use config::{Architecture, ModelConfig};
pub use encoder::{location_path, Encoder};
pub use loading::{
    demo_model_dir, describe, resolve_model_dir, weights_file, weights_files, BaseModel,
    ModelSummary,
};
