//! The recent-files list: the last notebooks opened or saved, newest first, kept in a small
//! text file (`<config dir>/cellar/recent.txt`, one path a line) so it survives restarts.

use std::path::{Path, PathBuf};

/// How many notebooks the list remembers.
pub const MAX_RECENT: usize = 10;

/// The recent notebooks, newest first.
#[derive(Clone, Debug, Default)]
pub struct RecentFiles {
    paths: Vec<PathBuf>,
    /// Where the list is stored; `None` keeps it in memory (tests never touch the user's files).
    store: Option<PathBuf>,
}

impl RecentFiles {
    /// A list kept in memory only.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// The list stored in the user's config folder, loaded now.
    pub fn from_config_dir() -> Self {
        let store = dirs::config_dir().map(|d| d.join("cellar").join("recent.txt"));
        let paths = store
            .as_deref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|text| {
                text.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(PathBuf::from)
                    .take(MAX_RECENT)
                    .collect()
            })
            .unwrap_or_default();
        Self { paths, store }
    }

    /// The notebooks, newest first.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Puts `path` at the top (once) and stores the list.
    pub fn touch(&mut self, path: &Path) {
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        self.paths.retain(|p| *p != path);
        self.paths.insert(0, path);
        self.paths.truncate(MAX_RECENT);
        self.store();
    }

    /// Forgets `path` (e.g. it no longer exists).
    pub fn forget(&mut self, path: &Path) {
        self.paths.retain(|p| p != path);
        self.store();
    }

    fn store(&self) {
        let Some(store) = &self.store else { return };
        let text: String = self
            .paths
            .iter()
            .map(|p| format!("{}\n", p.display()))
            .collect();
        // The list is a convenience: failing to write it must never get in the user's way.
        if let Some(dir) = store.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = cellar_engine::notebook::write_atomically(store, text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_first_without_duplicates_and_bounded() {
        let mut recent = RecentFiles::in_memory();
        for i in 0..15 {
            recent.touch(Path::new(&format!("/nowhere/nb{i}.rhai")));
        }
        recent.touch(Path::new("/nowhere/nb10.rhai"));
        assert_eq!(recent.paths().len(), MAX_RECENT);
        assert_eq!(recent.paths()[0], Path::new("/nowhere/nb10.rhai"));
        assert_eq!(recent.paths()[1], Path::new("/nowhere/nb14.rhai"));
        assert_eq!(
            recent
                .paths()
                .iter()
                .filter(|p| p.ends_with("nb10.rhai"))
                .count(),
            1
        );
    }
}
