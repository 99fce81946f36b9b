//! The `provisio` binary: see [`provisio::cli`].

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = provisio::cli::Cli::parse();
    match provisio::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Errors pass through the redactor like every log line.
            let text = provisio::capabilities::secrets::redact(&format!("{e:#}"));
            eprintln!("error: {text}");
            std::process::ExitCode::FAILURE
        }
    }
}
