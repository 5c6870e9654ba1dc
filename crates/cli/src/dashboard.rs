//! The built dashboard (`dashboard/dist`), compiled into the binary so that `lightning serve`
//! shows the UI from any working directory. A binary compiled before `npm run build` carries
//! nothing and serves the collector's "not built" page; `build.rs` recompiles this crate when
//! the build appears or changes. `--dashboard-dir` overrides it (for development).

use lightning_collector::{Dashboard, EmbeddedFile};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "../../dashboard/dist"]
#[allow_missing = true]
struct Dist;

fn lookup(path: &str) -> Option<EmbeddedFile> {
    let file = Dist::get(path)?;
    Some(EmbeddedFile {
        content_type: file.metadata.mimetype().to_string().into(),
        data: file.data,
    })
}

/// The embedded dashboard, or the "not built" page when the binary carries none.
pub fn embedded() -> Dashboard {
    Dashboard::embedded_or_not_built(lookup)
}
