//! Pretrained base models: config, the architectures behind one [`Backbone`] trait (one file
//! each), and loading from a Hugging Face folder.
pub mod albert;
pub mod backbone;
pub mod bert;
pub mod config;
pub mod deberta_v2;
pub mod distilbert;
pub mod hooks;
mod layer;
pub mod loading;

pub use backbone::{
    attention_path, layer_sites, linear_path, location_path, module_name, prefix_pool_path,
    prompt_path, Backbone, BackboneKind, Encoder, LayerSites,
};
pub use config::{ArchOptions, Architecture, ModelConfig};
pub use loading::{
    demo_model_dir, describe, is_demo_model, resolve_model_dir, weights_file, weights_files,
    BaseModel, ModelSummary,
};
