//! `provisio-conformance`: run the connector conformance kit against one
//! connection of a `provisio.toml` and print the report.
//!
//! Exit status: 0 when no check failed (skipped checks are fine), 1 when a
//! check failed, 2 when the kit could not run (bad config, plugin, option).

use anyhow::Context as _;
use clap::Parser;
use provisio_conformance::{CHECKS, Options};
use std::path::PathBuf;
use std::process::ExitCode;

/// Check a connector against its target: manifest, user and group lifecycle,
/// lost create responses, paging, 429 handling and declared hosts.
#[derive(Debug, Parser)]
#[command(name = "provisio-conformance", version)]
struct Cli {
    /// The Provisio config holding the connection (plugin pinned, settings, secrets, allowed hosts).
    #[arg(long, default_value = "provisio.toml")]
    config: PathBuf,
    /// The connection to check.
    connection: String,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Run only this check (repeatable).
    #[arg(long, value_name = "CHECK", value_parser = clap::builder::PossibleValuesParser::new(CHECKS))]
    only: Vec<String>,
    /// Leave the objects the kit created in the target.
    #[arg(long)]
    keep: bool,
    /// The page size of the paging check.
    #[arg(long, default_value_t = 2)]
    page_size: u32,
    /// How many pages the paging check reads at most.
    #[arg(long, default_value_t = 1000)]
    max_pages: usize,
    /// The domain of the test users' email addresses.
    #[arg(long, default_value = "example.com")]
    email_domain: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    provisio::telemetry::init(provisio::telemetry::LogFormat::Text);
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("provisio-conformance: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<bool> {
    let options = Options {
        only: cli.only,
        keep: cli.keep,
        page_size: cli.page_size,
        paging_users: cli.page_size as usize + 3,
        max_pages: cli.max_pages,
        email_domain: cli.email_domain,
        ..Options::default()
    };
    let report = provisio_conformance::run(&cli.config, &cli.connection, &options)
        .with_context(|| format!("cannot check connection '{}'", cli.connection))?;
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        print!("{}", report.table());
    }
    Ok(report.passed())
}
