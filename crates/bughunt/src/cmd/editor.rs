//! Opening the learner's file in their editor (`start --open`, `o` in watch).

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The editor the learner chose: `$VISUAL`, else `$EDITOR` (as git and cargo read them).
fn chosen_editor() -> Option<String> {
    ["VISUAL", "EDITOR"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|value| !value.trim().is_empty())
}

/// Opens `file` in the learner's editor and waits for it to exit: a terminal editor has the
/// terminal until then. The editor's value may carry arguments (`code --wait`), so it runs
/// through `sh` as git runs it, with the file as a separate argument, never spliced in.
pub fn open(file: &Path) -> Result<()> {
    let Some(editor) = chosen_editor() else {
        bail!(
            "neither $VISUAL nor $EDITOR is set; set one (e.g. `export EDITOR=nano`) or open {} yourself",
            file.display()
        );
    };
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(file)
        .status()
        .with_context(|| format!("cannot run the editor `{editor}`"))?;
    if !status.success() {
        bail!(
            "the editor `{editor}` exited with {status}; open {} yourself",
            file.display()
        );
    }
    Ok(())
}
