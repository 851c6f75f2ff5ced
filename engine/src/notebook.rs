//! The notebook file: a plain `.rhai` file split into cells by `// %%` marker lines.
//!
//! Parsing keeps every byte (marker lines, line endings, blank preamble) so that saving an
//! unedited notebook writes the file back byte for byte.
//!
//! A UTF-8 byte order mark (U+FEFF, which some Windows editors put at the start of a file)
//! is not code: parsing sets it aside, so line 1 compiles and columns on it are counted as
//! an editor shows them. Saving writes it back, so a notebook saved unedited stays
//! byte-identical and the file keeps the encoding its editor chose.

use std::io::Write as _;
use std::path::Path;

use crate::error::CellarError;

/// The text that starts a cell marker line.
pub const MARKER: &str = "// %%";

/// The UTF-8 byte order mark.
const BOM: char = '\u{feff}';

/// One cell of a notebook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    /// The raw marker line including its line ending, or `None` for text before the first
    /// marker (cell 0 of a notebook whose first line is code).
    marker: Option<String>,
    /// The cell's title (marker text without options); empty when there is none.
    pub title: String,
    /// Options from a trailing `[key=value, ...]` on the marker line, in order.
    pub options: Vec<(String, String)>,
    /// The code of the cell: every line after the marker up to the next marker, verbatim.
    pub source: String,
    /// 1-based line number in the file of the first line of `source`.
    pub first_line: usize,
}

impl Cell {
    /// A new cell with a title and code, as created by the editor.
    pub fn new(title: impl Into<String>, source: impl Into<String>) -> Self {
        let mut cell = Self {
            marker: None,
            title: title.into(),
            options: Vec::new(),
            source: source.into(),
            first_line: 0,
        };
        cell.marker = Some(cell.render_marker());
        cell
    }

    /// The value of an option such as `cache` in `[cache=off]`.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the cell's marker asks to turn caching off (`[cache=off]`).
    pub fn cache_disabled(&self) -> bool {
        matches!(self.option("cache"), Some("off" | "false" | "no"))
    }

    /// A label for messages: `cell 2 (Load data)` or `cell 2`.
    pub fn label(&self, index: usize) -> String {
        if self.title.is_empty() {
            format!("cell {index}")
        } else {
            format!("cell {index} ({})", self.title)
        }
    }

    /// Number of lines the cell's code spans (a trailing line without newline counts).
    pub fn line_count(&self) -> usize {
        line_count(&self.source)
    }

    /// Renames the cell; the marker line is rewritten on save.
    pub fn set_title(&mut self, title: impl Into<String>) {
        self.title = title.into();
        self.marker = Some(self.render_marker());
    }

    /// Sets or replaces an option; the marker line is rewritten on save.
    pub fn set_option(&mut self, key: &str, value: &str) {
        match self.options.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.to_string(),
            None => self.options.push((key.to_string(), value.to_string())),
        }
        self.marker = Some(self.render_marker());
    }

    fn render_marker(&self) -> String {
        let mut line = String::from(MARKER);
        if !self.title.is_empty() {
            line.push(' ');
            line.push_str(&self.title);
        }
        if !self.options.is_empty() {
            let opts: Vec<String> = self
                .options
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            line.push_str(&format!(" [{}]", opts.join(", ")));
        }
        line.push('\n');
        line
    }
}

/// A parsed notebook: the cells plus whatever blank text stood before the first marker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notebook {
    /// The file started with a byte order mark (written back on save).
    bom: bool,
    /// Blank text before the first marker (kept for byte-stable saving; never run).
    preamble: String,
    /// The cells in file order.
    pub cells: Vec<Cell>,
}

impl Notebook {
    /// Parses notebook text. Never fails: any text is a notebook. A leading byte order
    /// mark is set aside (and written back by [`Notebook::to_text`]).
    pub fn parse(text: &str) -> Self {
        let (bom, text) = match text.strip_prefix(BOM) {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let mut preamble = String::new();
        let mut cells: Vec<Cell> = Vec::new();
        let mut line_no = 0usize;
        for line in text.split_inclusive('\n') {
            line_no += 1;
            if line.starts_with(MARKER) {
                let (title, options) = parse_marker(line);
                cells.push(Cell {
                    marker: Some(line.to_string()),
                    title,
                    options,
                    source: String::new(),
                    first_line: line_no + 1,
                });
            } else if let Some(cell) = cells.last_mut() {
                cell.source.push_str(line);
            } else {
                preamble.push_str(line);
            }
        }
        if !preamble.trim().is_empty() {
            cells.insert(
                0,
                Cell {
                    marker: None,
                    title: String::new(),
                    options: Vec::new(),
                    source: std::mem::take(&mut preamble),
                    first_line: 1,
                },
            );
        }
        Self {
            bom,
            preamble,
            cells,
        }
    }

    /// Reads and parses a notebook file.
    pub fn load(path: &Path) -> Result<Self, CellarError> {
        let text = std::fs::read_to_string(path).map_err(|source| CellarError::Io {
            what: format!("read notebook {}", path.display()),
            source,
        })?;
        Ok(Self::parse(&text))
    }

    /// The notebook as file text. Byte-identical to the parsed text when nothing was edited.
    pub fn to_text(&self) -> String {
        let mut out = self.preamble.clone();
        for (i, cell) in self.cells.iter().enumerate() {
            // A cell added in front of or after code must start on its own line.
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            match &cell.marker {
                Some(marker) => out.push_str(marker),
                None if i == 0 && out.is_empty() => {}
                None => out.push_str(&cell.render_marker()),
            }
            out.push_str(&cell.source);
        }
        if self.bom {
            out.insert(0, BOM);
        }
        out
    }

    /// Recomputes each cell's first line after edits, so errors point at the right line.
    pub fn renumber(&mut self) {
        let mut line = line_count(&self.preamble) + 1;
        for (i, cell) in self.cells.iter_mut().enumerate() {
            if cell.marker.is_some() || i > 0 {
                line += 1;
            }
            cell.first_line = line;
            line += cell.line_count();
        }
    }

    /// Saves atomically: writes a temporary file beside `path`, then renames it over `path`,
    /// so a crash mid-save never leaves a half-written notebook.
    pub fn save(&self, path: &Path) -> Result<(), CellarError> {
        write_atomically(path, self.to_text().as_bytes())
    }

    /// Each cell's identity in the cell cache, in cell order: the name its entries, traces
    /// and counters go by. It never holds the cell's index, so a cell keeps its entries when
    /// cells around it are added, moved or deleted (the index is for display only):
    ///
    /// - a cell whose title no other cell has: `cell "Load data"` (editing its code keeps
    ///   the name, so the edit reads as `code changed`);
    /// - an untitled cell, or one of several with the same title: its title and a digest of
    ///   its code, `cell #1a2b3c4d` or `cell "Plot" #1a2b3c4d`;
    /// - cells that would still share a name (the same title and the same code) are told
    ///   apart by their order among themselves: `cell #1a2b3c4d (2)`.
    ///
    /// A name is only a name: whether an entry may be served is decided by the cell's code
    /// and everything it read, checked again on every run, so two cells that swap names
    /// cause misses, never wrong outputs. Nothing of this is written to the file.
    pub fn cell_keys(&self) -> Vec<String> {
        let mut titles: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for cell in &self.cells {
            *titles.entry(cell.title.as_str()).or_default() += 1;
        }
        let mut given: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        self.cells
            .iter()
            .map(|cell| {
                let unique_title = !cell.title.is_empty() && titles[cell.title.as_str()] == 1;
                let base = if unique_title {
                    format!("cell \"{}\"", cell.title)
                } else {
                    // Blank lines around the code do not make it another cell.
                    let digest = xxhash_rust::xxh3::xxh3_64(cell.source.trim().as_bytes());
                    let short = format!("{:08x}", digest >> 32);
                    if cell.title.is_empty() {
                        format!("cell #{short}")
                    } else {
                        format!("cell \"{}\" #{short}", cell.title)
                    }
                };
                let seen = given.entry(base.clone()).or_default();
                *seen += 1;
                if *seen == 1 {
                    base
                } else {
                    format!("{base} ({seen})")
                }
            })
            .collect()
    }

    /// Index of the cell that holds file line `line` (1-based); a marker line belongs to the
    /// cell it starts.
    pub fn cell_at_line(&self, line: usize) -> Option<usize> {
        self.cells
            .iter()
            .rposition(|c| c.first_line.saturating_sub(1) <= line)
    }
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CellarError> {
    let io_err = |what: &str, source| CellarError::Io {
        what: format!("{what} {}", path.display()),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "notebook".into());
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(source) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err("save", source));
    }
    Ok(())
}

fn line_count(text: &str) -> usize {
    if text.is_empty() {
        0
    } else {
        text.split_inclusive('\n').count()
    }
}

/// Splits the text after `// %%` into a title and `[k=v, ...]` options.
fn parse_marker(line: &str) -> (String, Vec<(String, String)>) {
    let rest = line[MARKER.len()..].trim();
    let (title, options) = match (rest.rfind('['), rest.ends_with(']')) {
        (Some(open), true) => (&rest[..open], &rest[open + 1..rest.len() - 1]),
        _ => (rest, ""),
    };
    let options = options
        .split(',')
        .filter(|o| !o.trim().is_empty())
        .map(|o| match o.split_once('=') {
            Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
            None => (o.trim().to_string(), "true".to_string()),
        })
        .collect();
    (title.trim().to_string(), options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_titles_options_and_line_numbers() {
        let text = "let a = 1;\n// %% Load data [cache=off]\nlet b = 2;\n\n// %%\nwrite(b);";
        let nb = Notebook::parse(text);
        assert_eq!(nb.cells.len(), 3);
        assert_eq!(nb.cells[0].first_line, 1);
        assert_eq!(nb.cells[1].title, "Load data");
        assert!(nb.cells[1].cache_disabled());
        assert_eq!(nb.cells[1].first_line, 3);
        assert_eq!(nb.cells[2].title, "");
        assert_eq!(nb.cells[2].first_line, 6);
        assert_eq!(nb.cells[2].source, "write(b);");
        assert_eq!(nb.to_text(), text);
    }

    #[test]
    fn blank_preamble_is_not_a_cell_and_file_without_markers_is_one_cell() {
        let nb = Notebook::parse("\n\n// %% A\nx");
        assert_eq!(nb.cells.len(), 1);
        assert_eq!(nb.cells[0].first_line, 4);
        let nb = Notebook::parse("write(1);\nwrite(2);\n");
        assert_eq!(nb.cells.len(), 1);
    }

    #[test]
    fn edits_rewrite_the_marker_and_renumber() {
        let mut nb = Notebook::parse("// %% A\nlet x = 1;\n");
        nb.cells[0].set_title("First");
        nb.cells.push(Cell::new("Second", "write(x);\n"));
        nb.renumber();
        assert_eq!(
            nb.to_text(),
            "// %% First\nlet x = 1;\n// %% Second\nwrite(x);\n"
        );
        assert_eq!(nb.cells[1].first_line, 4);
        let reparsed = Notebook::parse(&nb.to_text());
        assert_eq!(reparsed.cells[1].first_line, 4);
    }

    #[test]
    fn save_is_atomic_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nb.rhai");
        let nb = Notebook::parse("// %% A\r\nlet x = 1;\r\n");
        nb.save(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), nb.to_text());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn a_byte_order_mark_is_not_code_and_is_written_back() {
        let text = "\u{feff}// %% A [cache=off]\nlet x = 1;\n";
        let nb = Notebook::parse(text);
        assert_eq!(nb.cells.len(), 1);
        assert_eq!(nb.cells[0].title, "A");
        assert!(nb.cells[0].cache_disabled());
        assert_eq!(nb.cells[0].first_line, 2);
        assert_eq!(nb.to_text(), text);
        let code = Notebook::parse("\u{feff}write(1);\n// %% B\nwrite(2);\n");
        assert_eq!(code.cells[0].source, "write(1);\n");
        assert_eq!(code.cells[1].first_line, 3);
        let mut edited = code.clone();
        edited.cells.insert(0, Cell::new("New", "write(0);\n"));
        assert_eq!(
            edited.to_text(),
            "\u{feff}// %% New\nwrite(0);\n// %%\nwrite(1);\n// %% B\nwrite(2);\n"
        );
        // Only a leading mark is set aside.
        let inner = Notebook::parse("write(1);\n\u{feff}");
        assert!(inner.cells[0].source.ends_with('\u{feff}'));
    }

    #[test]
    fn a_notebook_loaded_with_a_byte_order_mark_saves_byte_identical() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bom.rhai");
        let bytes = b"\xEF\xBB\xBF// %% A\r\nwrite(1);\r\n";
        std::fs::write(&path, bytes).unwrap();
        let nb = Notebook::load(&path).unwrap();
        assert_eq!(nb.cells[0].source, "write(1);\r\n");
        nb.save(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }

    #[test]
    fn cell_keys_stay_when_cells_around_them_change() {
        let nb = Notebook::parse(
            "// %% Load\nlet x = 1;\n// %%\nwrite(x);\n// %% Plot\nwrite(1);\n// %% Plot\nwrite(2);\n",
        );
        let keys = nb.cell_keys();
        assert_eq!(keys[0], "cell \"Load\"");
        assert!(keys[1].starts_with("cell #"), "{keys:?}");
        assert!(keys[2].starts_with("cell \"Plot\" #"), "{keys:?}");
        assert_ne!(keys[2], keys[3]);
        // Insert, move, delete: every other cell keeps its key.
        let mut edited = nb.clone();
        edited.cells.insert(1, Cell::new("", "\n"));
        edited.cells.swap(3, 4);
        edited.cells.remove(0);
        let after = edited.cell_keys();
        assert_eq!(after[1], keys[1]);
        assert_eq!(after[2], keys[3]);
        assert_eq!(after[3], keys[2]);
        // Blank lines around the code (a cell saved last, then read back) keep the key.
        let mut spaced = nb.clone();
        spaced.cells[1].source = "\nwrite(x);\n\n".into();
        assert_eq!(spaced.cell_keys()[1], keys[1]);
        // The same title and code twice: told apart by their order.
        let twins = Notebook::parse("// %%\nwrite(1);\n// %%\nwrite(1);\n").cell_keys();
        assert_eq!(twins[1], format!("{} (2)", twins[0]));
        // Editing a titled cell's code keeps its key.
        let mut recoded = nb.clone();
        recoded.cells[0].source = "let x = 2;\n".into();
        assert_eq!(recoded.cell_keys()[0], keys[0]);
    }

    proptest! {
        #[test]
        fn parse_then_save_round_trips_any_text(text in "(// %%[ a-z\\[\\]=,]*\r?\n|[ a-z;=0-9]*\r?\n|\n){0,12}[ a-z]*") {
            prop_assert_eq!(Notebook::parse(&text).to_text(), text);
        }

        #[test]
        fn round_trips_arbitrary_unicode(text in "\\PC*") {
            prop_assert_eq!(Notebook::parse(&text).to_text(), text);
        }

        #[test]
        fn round_trips_with_a_byte_order_mark(text in "\u{feff}?(// %%[ a-z]*\r?\n|[ a-z;\u{feff}]*\r?\n){0,8}") {
            prop_assert_eq!(Notebook::parse(&text).to_text(), text);
        }

        #[test]
        fn renumber_agrees_with_parse(text in "(// %%[ a-z]*\n|[ a-z;]*\n){0,12}") {
            let parsed = Notebook::parse(&text);
            let mut renumbered = parsed.clone();
            renumbered.renumber();
            prop_assert_eq!(parsed, renumbered);
        }
    }
}
