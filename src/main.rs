//! The `adapter-studio` binary: headless commands over the library.
mod cli;
#[cfg(feature = "gui")]
mod gui;

fn main() {
    if let Err(e) = cli::run() {
        // One clear line; the chain gives the context each layer added.
        // Library errors already include their cause in their message: skip repeats.
        // A file error already says what the OS said, in words ("the disk is full"): its OS
        // error (`No space left on device (os error 28)`) is not added again.
        let mut parts: Vec<String> = Vec::new();
        let mut said_by_file_error = false;
        for c in e.chain() {
            let cause = c.to_string();
            let os_error_told = said_by_file_error && c.downcast_ref::<std::io::Error>().is_some();
            if !os_error_told && !parts.last().is_some_and(|prev| prev.contains(&cause)) {
                parts.push(cause);
            }
            said_by_file_error = matches!(
                c.downcast_ref::<adapter_studio::Error>(),
                Some(adapter_studio::Error::Io { .. })
            );
        }
        eprintln!(
            "error: {}",
            adapter_studio::error::clip_message(&parts.join(": "))
        );
        std::process::exit(1);
    }
}
