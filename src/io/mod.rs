//! Files: atomic writes, JSON in AdapterHub's style, and weight files (safetensors and PyTorch `.bin`).
pub mod atomic;
pub mod torch_pickle;
pub mod weights;

pub use atomic::{
    copy_file_synced, create_dir_all, file_on_the_way, is_stale_temp_name, open_regular, read_json,
    recover_dir, remove_dir_quietly, remove_stale_temp_files, replace_dir, special_kind, sync_dir,
    sync_parent, temp_dir_for, write_atomic, write_json_atomic,
};
