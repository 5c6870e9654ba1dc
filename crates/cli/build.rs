//! Recompiles the binary when the dashboard build it embeds (`src/dashboard.rs`) changes. The
//! embedded files are tracked by rustc one by one; a file added or removed is not, hence this.

fn main() {
    let dist = std::path::Path::new("../../dashboard/dist");
    if dist.is_dir() {
        println!("cargo:rerun-if-changed=../../dashboard/dist");
    } else {
        // A path that does not exist would rerun this script (and recompile the binary) on
        // every build: watch the dashboard folder instead, which changes when `dist` appears.
        println!("cargo:rerun-if-changed=../../dashboard");
    }
}
