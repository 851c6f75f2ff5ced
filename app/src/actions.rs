//! What the user asked for on this frame. Views only draw and collect actions; the app applies
//! them in one place after drawing, so no view needs mutable access to everything.

use std::path::PathBuf;

use crate::outputs::WidgetChange;

/// One request from the toolbar, a cell, a shortcut or a dialog.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Rerun the active session (Rerun button, R, Shift+Enter).
    Run,
    /// Stop the active session's run.
    Stop,
    /// Ask for a notebook to open (Ctrl+O).
    Open,
    /// Open this notebook (recent files, or a confirmed open).
    OpenPath(PathBuf),
    /// Save to the notebook's file (Ctrl+S).
    Save,
    /// Ask where to save, then save there (Ctrl+Shift+S).
    SaveAs,
    /// Ask whether to clear every cache (C).
    AskClearCaches,
    /// Clear every cache (confirmed).
    ClearCaches,
    /// Open a new session tab and run it.
    NewSession,
    /// Show another session's tab.
    SelectSession(usize),
    /// Close a session's tab (never the last one): its session-scoped cache entries go.
    CloseSession(usize),
    /// Show or hide the cache panel.
    ToggleCachePanel,
    /// Cycle system → light → dark theme.
    CycleTheme,
    /// Insert an empty cell at this index.
    AddCell(usize),
    /// Ask whether to delete a cell.
    AskDeleteCell(usize),
    /// Delete a cell (confirmed).
    DeleteCell(usize),
    /// Bring back the cell deleted last (the status bar's Undo, Ctrl+Z).
    UndoDelete,
    /// Show or hide the keyboard shortcuts (F1, the toolbar's `?`).
    ToggleHelp,
    /// Swap a cell with its neighbour above.
    MoveUp(usize),
    /// Swap a cell with its neighbour below.
    MoveDown(usize),
    /// Give a cell a new title.
    RenameCell(usize, String),
    /// A widget changed: rerun with its new value.
    Widget(WidgetChange),
    /// A cell's code changed (it is not rerun until the user asks, as in Jupyter).
    CodeEdited,
}
