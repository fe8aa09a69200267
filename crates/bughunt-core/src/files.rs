//! Replacing a file whole, so a crash leaves the old content or the new, never half of each.

use std::fs::Permissions;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result};

/// Writes `contents` to `path` through a temporary file in the same folder, synced, then
/// renamed over it, then the folder synced. The file keeps the mode it had (a learner's
/// `0644` stays `0644`); a new file gets the usual mode, `0666` less the umask. Errors name
/// the file.
pub fn replace_file(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = path.parent().context("a file in a folder")?;
    fs_err::create_dir_all(dir)?;
    let mode = std::fs::metadata(path)
        .map(|meta| meta.permissions().mode() & 0o7777)
        .unwrap_or(0o666);
    let mut temporary = tempfile::Builder::new()
        .permissions(Permissions::from_mode(mode))
        .tempfile_in(dir)
        .with_context(|| format!("cannot write {}", path.display()))?;
    temporary
        .write_all(contents)
        .and_then(|()| temporary.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    if mode != 0o666 {
        // An existing file's mode is kept exactly, whatever the umask says.
        temporary
            .as_file()
            .set_permissions(Permissions::from_mode(mode))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    temporary
        .persist(path)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    std::fs::File::open(dir).and_then(|dir| dir.sync_all()).ok();
    Ok(())
}

/// Removes temporary files that an interrupted [`replace_file`] left in `dir` (named
/// `.tmp*`). Call it only while no other writer can be replacing a file there.
pub fn clean_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry.file_name().to_string_lossy().starts_with(".tmp")
            && entry.file_type().is_ok_and(|kind| kind.is_file());
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: rewriting activeContext.md turned its mode from 0644 to 0600 (a temporary
    /// file's default). The mode of the replaced file is kept.
    #[test]
    fn keeps_the_mode_of_the_file_it_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.md");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        replace_file(&path, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        std::fs::set_permissions(&path, Permissions::from_mode(0o640)).unwrap();
        replace_file(&path, b"newer").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }

    /// A file in a folder that cannot be written is an error that names the file.
    #[test]
    fn errors_name_the_file() {
        let error = replace_file(Path::new("/proc/no-such-dir/state.json"), b"x").unwrap_err();
        assert!(
            format!("{error:#}").contains("/proc/no-such-dir"),
            "{error:#}"
        );
    }

    /// Leftover temporaries go; other files stay.
    #[test]
    fn cleans_only_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".tmpAbC12"), "half").unwrap();
        std::fs::write(dir.path().join("state.json"), "{}").unwrap();
        clean_stale_temporaries(dir.path());
        let left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, vec!["state.json"]);
    }
}
