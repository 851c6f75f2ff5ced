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
        match dirs::config_dir() {
            Some(dir) => Self::at(&dir.join("cellar").join("recent.txt")),
            None => Self::in_memory(),
        }
    }

    /// The list stored in `store` (one path a line), loaded now. Paths that name the same
    /// file (`dir/nb.rhai`, `dir/./nb.rhai`, a link to it) are listed once.
    pub fn at(store: &Path) -> Self {
        let mut paths: Vec<PathBuf> = Vec::new();
        let text = std::fs::read_to_string(store).unwrap_or_default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let path = canonical(Path::new(line));
            if !paths.contains(&path) && paths.len() < MAX_RECENT {
                paths.push(path);
            }
        }
        Self {
            paths,
            store: Some(store.to_path_buf()),
        }
    }

    /// The notebooks, newest first.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// How the menu names each notebook: its file name, with its folder when another
    /// notebook in the list has the same name.
    pub fn names(&self) -> Vec<String> {
        let name = |p: &PathBuf| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| p.display().to_string())
        };
        self.paths
            .iter()
            .map(|p| {
                let shared = self.paths.iter().filter(|q| name(q) == name(p)).count() > 1;
                match p.parent().and_then(Path::file_name) {
                    Some(folder) if shared => {
                        format!("{} — {}", name(p), folder.to_string_lossy())
                    }
                    _ => name(p),
                }
            })
            .collect()
    }

    /// Puts `path` at the top (once) and stores the list.
    pub fn touch(&mut self, path: &Path) {
        let path = canonical(path);
        self.paths.retain(|p| canonical(p) != path);
        self.paths.insert(0, path);
        self.paths.truncate(MAX_RECENT);
        self.store();
    }

    /// Forgets `path` (e.g. it no longer exists), however it is spelled.
    pub fn forget(&mut self, path: &Path) {
        let path = canonical(path);
        self.paths.retain(|p| canonical(p) != path);
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

/// The file's one true path (links and `.`/`..` resolved), or the path as given when it
/// cannot be resolved (the file is gone).
fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
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

    #[test]
    fn one_file_spelled_three_ways_is_listed_once_and_same_names_show_their_folder() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["a", "b"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
            std::fs::write(dir.path().join(sub).join("nb.rhai"), "").unwrap();
        }
        let a = dir.path().join("a").join("nb.rhai");
        let store = dir.path().join("recent.txt");
        std::fs::write(
            &store,
            format!(
                "{}\n{}/a/./nb.rhai\n{}/b/../a/nb.rhai\n",
                a.display(),
                dir.path().display(),
                dir.path().display()
            ),
        )
        .unwrap();
        let mut recent = RecentFiles::at(&store);
        assert_eq!(recent.paths().len(), 1, "{:?}", recent.paths());
        recent.touch(&dir.path().join("a").join(".").join("nb.rhai"));
        assert_eq!(recent.paths().len(), 1);
        assert_eq!(recent.names(), ["nb.rhai"]);
        recent.touch(&dir.path().join("b").join("nb.rhai"));
        assert_eq!(recent.names(), ["nb.rhai — b", "nb.rhai — a"]);
        recent.forget(&dir.path().join("b").join("..").join("b").join("nb.rhai"));
        assert_eq!(recent.names(), ["nb.rhai"]);
    }
}
