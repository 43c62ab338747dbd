//! Makes built binaries find libtorch without LD_LIBRARY_PATH, and keeps libtorch_cuda linked.
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    // rpath to the exact libtorch we linked against: `target/*/adapter-studio` runs as it is.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    // The linker's --as-needed drops libtorch_cuda because no symbol of it is referenced
    // directly; without it torch reports no CUDA device even on a GPU machine.
    if Path::new(&lib_dir).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
        println!("cargo:rustc-cfg=libtorch_has_cuda");
    }
    println!("cargo::rustc-check-cfg=cfg(libtorch_has_cuda)");
}
