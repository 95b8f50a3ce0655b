//! `apidoc write [DIR]` writes the OpenAPI document to DIR (default `api`); `apidoc check [DIR]`
//! fails, naming the file, when what is there differs from what the code generates.

use std::path::Path;

use anyhow::{Context, bail};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let command = args.next();
    let dir = args.next().unwrap_or_else(|| "api".to_owned());
    let dir = Path::new(&dir);
    match command.as_deref() {
        Some("write") => {
            for (name, content) in apidoc::files() {
                let path = dir.join(name);
                std::fs::write(&path, content)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                println!("wrote {}", path.display());
            }
        }
        Some("check") => {
            let mut stale = Vec::new();
            for (name, content) in apidoc::files() {
                let path = dir.join(name);
                if std::fs::read_to_string(&path).ok().as_deref() != Some(content.as_str()) {
                    stale.push(path.display().to_string());
                }
            }
            if !stale.is_empty() {
                bail!(
                    "out of date: {} (regenerate with: cargo run -p apidoc -- write)",
                    stale.join(", ")
                );
            }
            println!("{} matches the handler code", dir.display());
        }
        _ => bail!("usage: apidoc write|check [DIR]"),
    }
    Ok(())
}
