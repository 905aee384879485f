//! Files only their owner may read: the key and token files, the data directory and the SQLite
//! database. Leaf code (std only), shared by the configuration and the SQLite store.

use std::io::Write as _;
use std::path::Path;

/// Creates `path` (and its missing directories, 0700) readable by the owner only (0600),
/// holding `contents` and a newline. Fails if the file exists.
pub fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    let mut file = create_new_private_file(path)?;
    writeln!(file, "{contents}")
}

/// Creates the file `path`, which must not exist, readable by the owner only (0600).
pub fn create_new_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    private_options().create_new(true).open(path)
}

/// Creates the empty file `path` readable by the owner only (0600) unless it exists. SQLite
/// gives the WAL and shared-memory files it creates beside a database the database file's
/// mode, so a database created this way keeps all three private.
pub fn create_private_file_if_missing(path: &Path) -> std::io::Result<()> {
    match create_new_private_file(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates `dir` and its missing parents, each new one readable by the owner only (0700);
/// directories that exist are left as they are.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn private_options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_directories_and_files_are_private_and_existing_ones_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a").join("b");
        write_private_file(&nested.join("key"), "k").unwrap();
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(mode(&nested), 0o700);
        assert_eq!(mode(&nested.join("key")), 0o600);
        assert!(write_private_file(&nested.join("key"), "again").is_err(), "never overwrites");

        let db = dir.path().join("db");
        create_private_file_if_missing(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        std::fs::write(&db, "data").unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o640)).unwrap();
        create_private_file_if_missing(&db).unwrap();
        assert_eq!((mode(&db), std::fs::read_to_string(&db).unwrap().as_str()), (0o640, "data"));
    }
}
