//! The `provisio` binary: see [`provisio::cli`].

use clap::Parser;

/// Longest error printed, in bytes of escaped text.
const MAX_ERROR_BYTES: usize = 16 * 1024;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = provisio::cli::Cli::parse();
    match provisio::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The cause chain, without repeating a cause the message already
            // quotes; through the redactor like every log line, then escaped
            // and capped: an error may quote what a connector said.
            let mut text = String::new();
            for cause in e.chain().map(|c| c.to_string()) {
                if !text.contains(&cause) {
                    if !text.is_empty() {
                        text.push_str(": ");
                    }
                    text.push_str(&cause);
                }
            }
            let text = provisio::capabilities::secrets::redact(&text);
            let text = provisio::untrusted::escape_capped(&text, MAX_ERROR_BYTES);
            eprintln!("error: {text}");
            std::process::ExitCode::from(provisio::cli::exit_code(&e))
        }
    }
}
