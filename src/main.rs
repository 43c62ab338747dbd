//! The `adapter-studio` binary: headless commands over the library.
mod cli;
#[cfg(feature = "gui")]
mod gui;

fn main() {
    if let Err(e) = cli::run() {
        // One clear line; the chain gives the context each layer added.
        // Library errors already include their cause in their message: skip repeats.
        let mut parts: Vec<String> = Vec::new();
        for cause in e.chain().map(|c| c.to_string()) {
            if !parts.last().is_some_and(|prev| prev.contains(&cause)) {
                parts.push(cause);
            }
        }
        eprintln!(
            "error: {}",
            adapter_studio::error::clip_message(&parts.join(": "))
        );
        std::process::exit(1);
    }
}
