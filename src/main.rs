//! The `adapter-studio` binary: headless commands over the library.
mod cli;

fn main() {
    if let Err(e) = cli::run() {
        // One clear line; the chain gives the context each layer added.
        let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
        eprintln!("error: {}", chain.join(": "));
        std::process::exit(1);
    }
}
