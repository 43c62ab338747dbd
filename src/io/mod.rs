//! Files: atomic writes, JSON in AdapterHub's style, and weight files (safetensors and PyTorch `.bin`).
pub mod atomic;
pub mod torch_pickle;
pub mod weights;

pub use atomic::{
    open_regular, read_json, recover_dir, remove_dir_quietly, replace_dir, special_kind,
    temp_dir_for, write_atomic, write_json_atomic,
};
