//! Files only their owner may read: the data directory is 0700, the database, its WAL and
//! shared-memory files and the key file 0600 (Unix; elsewhere these are no-ops).

use std::{io, path::Path};

/// Creates `dir` (and its parents) and makes `dir` itself 0700.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)?;
    tighten(dir, 0o700);
    Ok(())
}

/// Creates an empty file with mode 0600 unless it exists (SQLite then gives its WAL and
/// shared-memory files the same mode).
pub fn create_file(path: &Path) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(drop)
}

/// Removes group and other permissions beyond `mode` from an existing path; logs, never fails.
pub fn tighten(path: &Path, mode: u32) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        let current = meta.permissions().mode() & 0o777;
        if current & !mode != 0 {
            match std::fs::set_permissions(path, std::fs::Permissions::from_mode(current & mode)) {
                Ok(()) => tracing::info!(
                    "{}: permissions {current:o} -> {:o}",
                    path.display(),
                    current & mode
                ),
                Err(e) => tracing::warn!("cannot restrict {}: {e}", path.display()),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
}

/// The database file and the journal files SQLite keeps beside it.
pub fn tighten_database(db: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        tighten(Path::new(&name), 0o600);
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn directories_are_0700_and_files_0600() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        create_dir(&dir).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        let file = dir.join("x.db");
        create_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        tighten_database(&file);
        assert_eq!(mode(&file), 0o600);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
    }
}
