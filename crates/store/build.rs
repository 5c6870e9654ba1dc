//! `sqlx::migrate!` embeds the migration files at compile time, but a proc macro's reads are not
//! tracked by Cargo: without this, adding or editing a migration would leave a stale copy in the
//! binary until something else in the crate changed.

fn main() {
    // A directory is checked recursively: a new, removed or edited file under it reruns this.
    println!("cargo:rerun-if-changed=migrations");
}
