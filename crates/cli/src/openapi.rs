//! `lightning openapi`: prints the collector's OpenAPI document (the one `GET /api/openapi.json`
//! serves) without starting a server or opening a store. `scripts/gen-api-types` generates the
//! TypeScript wire types of the dashboard and the instrumentation from it.

use std::{io::Write, path::PathBuf};

use anyhow::Context;
use clap::Args;

#[derive(Debug, Args)]
pub struct OpenapiArgs {
    /// Write the document to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

pub fn run(args: &OpenapiArgs) -> anyhow::Result<()> {
    let mut json = serde_json::to_string_pretty(&lightning_collector::openapi_document())
        .context("serializing the OpenAPI document")?;
    json.push('\n');
    match &args.out {
        Some(path) => std::fs::write(path, json)
            .with_context(|| format!("writing the OpenAPI document to {}", path.display())),
        None => std::io::stdout()
            .lock()
            .write_all(json.as_bytes())
            .context("writing the OpenAPI document to standard output"),
    }
}
