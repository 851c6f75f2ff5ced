//! What the window remembers between starts besides the recent files (the cache panel's
//! width), as `key=value` lines in `<config dir>/cellar/settings.txt`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The remembered settings.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    values: BTreeMap<String, String>,
    /// Where they are stored; `None` keeps them in memory (tests never touch the user's files).
    store: Option<PathBuf>,
}

/// The key of the cache panel's width, in points.
pub const CACHE_PANEL_WIDTH: &str = "cache_panel_width";

/// The key of the shared store's URL (`redis://HOST:PORT/DB`), set in the cache panel.
pub const CACHE_STORE: &str = "cache_store";

impl Settings {
    /// Settings kept in memory only.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// The settings stored in the user's config folder, loaded now.
    pub fn from_config_dir() -> Self {
        match dirs::config_dir() {
            Some(dir) => Self::at(&dir.join("cellar").join("settings.txt")),
            None => Self::in_memory(),
        }
    }

    /// The settings stored in `path`, loaded now (none yet when it cannot be read).
    pub fn at(path: &Path) -> Self {
        let values = std::fs::read_to_string(path)
            .map(|text| {
                text.lines()
                    .filter_map(|line| line.split_once('='))
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            values,
            store: Some(path.to_path_buf()),
        }
    }

    /// A number, if it was remembered and reads as one.
    pub fn number(&self, key: &str) -> Option<f32> {
        self.values
            .get(key)?
            .parse()
            .ok()
            .filter(|v: &f32| v.is_finite())
    }

    /// Remembers a number (stored at once).
    pub fn set_number(&mut self, key: &str, value: f32) {
        self.values.insert(key.to_string(), format!("{value:.0}"));
        self.store();
    }

    /// A text, if it was remembered and is not empty.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Remembers a text on one line (stored at once); an empty one forgets the key.
    pub fn set_text(&mut self, key: &str, value: &str) {
        let value = value.lines().next().unwrap_or("").trim();
        if value.is_empty() {
            self.values.remove(key);
        } else {
            self.values.insert(key.to_string(), value.to_string());
        }
        self.store();
    }

    fn store(&self) {
        let Some(store) = &self.store else { return };
        let text: String = self
            .values
            .iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect();
        // A convenience: failing to write it must never get in the user's way.
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
    fn numbers_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cellar").join("settings.txt");
        let mut settings = Settings::at(&path);
        assert_eq!(settings.number(CACHE_PANEL_WIDTH), None);
        settings.set_number(CACHE_PANEL_WIDTH, 512.4);
        assert_eq!(Settings::at(&path).number(CACHE_PANEL_WIDTH), Some(512.0));
        std::fs::write(&path, "cache_panel_width=wide\n").unwrap();
        assert_eq!(Settings::at(&path).number(CACHE_PANEL_WIDTH), None);
    }
}
