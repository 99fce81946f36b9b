//! The `provisio` binary: see [`provisio::cli`].

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = provisio::cli::Cli::parse();
    match provisio::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The cause chain, without repeating a cause the message already
            // quotes; through the redactor like every log line.
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
            eprintln!("error: {text}");
            std::process::ExitCode::FAILURE
        }
    }
}
