//! # cellar-engine
//!
//! The engine behind Cellar: the notebook file model, the Rhai runtime with Cellar's script
//! API, and the data layer over polars. No GUI code lives here.
//!
//! ```
//! use cellar_engine::{Notebook, Runtime, RunOptions, Session};
//!
//! let notebook = Notebook::parse("// %% Hello\nlet x = 40 + 2;\n// %% Show\nwrite(x);\n");
//! let runtime = Runtime::new();
//! let mut session = Session::new("A");
//! let report = runtime.run(&notebook, &mut session, &RunOptions::default(), &mut |_| {});
//! assert_eq!(report.cells[1].elements[0].text, "42");
//! ```

pub mod cache;
pub mod cells;
pub mod data;
pub mod elements;
pub mod error;
pub mod notebook;
pub mod run;
pub(crate) mod script;
pub mod session;
pub mod widgets;

pub use cells::CellStatus;
pub use data::Frame;
pub use elements::{Element, ElementKind, Payload, WidgetElement};
pub use error::CellarError;
pub use notebook::{Cell, Notebook};
pub use run::{
    CACHE_DIR_BESIDE_NOTEBOOK, CellError, CellReport, RunOptions, RunReport, Runtime,
    default_cache_dir, memory_budget_from_env, open_store, store_from_env,
};
pub use script::build_engine;
pub use script::context::{CallOutcome, CallTrace, SpinnerSink};
pub use script::effects::Effect;
pub use session::Session;
pub use widgets::{WidgetValue, WidgetValues};
