//! What cells emit: output elements (text, tables, charts, ...) and widgets.

use crate::data::Frame;

/// The kind of an element; its name is what `--format json` prints as `kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ElementKind {
    /// `write(v)`: any value, shown as text (a frame is shown as a table).
    Write,
    /// `markdown(s)`.
    Markdown,
    /// `header(s)`.
    Header,
    /// `subheader(s)`.
    Subheader,
    /// `text(s)`: fixed-width text.
    Text,
    /// `code(s)`: a code block.
    Code,
    /// `success(s)`: a green callout.
    Success,
    /// `info(s)`: a blue callout.
    Info,
    /// `warning(s)` and engine warnings (deprecations, dropped cache files).
    Warning,
    /// `error(s)` and failed cells.
    Error,
    /// `dataframe(df)`: an interactive table.
    Dataframe,
    /// `table(df)`: a static table.
    Table,
    /// `json(v)`: a JSON tree.
    Json,
    /// `metric(label, v)`.
    Metric,
    /// `line_chart(df, x, y)`.
    LineChart,
    /// `bar_chart(df, x, y)`.
    BarChart,
    /// `scatter_chart(df, x, y)`.
    ScatterChart,
    /// A cached function started computing (emitted on a miss when `show_spinner` is set).
    Spinner,
    /// `slider(...)`.
    Slider,
    /// `number_input(...)`.
    NumberInput,
    /// `text_input(...)`.
    TextInput,
    /// `checkbox(...)`.
    Checkbox,
    /// `selectbox(...)`.
    Selectbox,
    /// `button(...)`.
    Button,
}

impl ElementKind {
    /// The stable name used in JSON output and the GUI.
    pub fn name(self) -> &'static str {
        match self {
            Self::Write => "write",
            Self::Markdown => "markdown",
            Self::Header => "header",
            Self::Subheader => "subheader",
            Self::Text => "text",
            Self::Code => "code",
            Self::Success => "success",
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
            Self::Dataframe => "dataframe",
            Self::Table => "table",
            Self::Json => "json",
            Self::Metric => "metric",
            Self::LineChart => "line_chart",
            Self::BarChart => "bar_chart",
            Self::ScatterChart => "scatter_chart",
            Self::Spinner => "spinner",
            Self::Slider => "slider",
            Self::NumberInput => "number_input",
            Self::TextInput => "text_input",
            Self::Checkbox => "checkbox",
            Self::Selectbox => "selectbox",
            Self::Button => "button",
        }
    }

    /// Every kind, in declaration order.
    pub const ALL: [ElementKind; 24] = [
        Self::Write,
        Self::Markdown,
        Self::Header,
        Self::Subheader,
        Self::Text,
        Self::Code,
        Self::Success,
        Self::Info,
        Self::Warning,
        Self::Error,
        Self::Dataframe,
        Self::Table,
        Self::Json,
        Self::Metric,
        Self::LineChart,
        Self::BarChart,
        Self::ScatterChart,
        Self::Spinner,
        Self::Slider,
        Self::NumberInput,
        Self::TextInput,
        Self::Checkbox,
        Self::Selectbox,
        Self::Button,
    ];

    /// The kind with this [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether the element is an input widget.
    pub fn is_widget(self) -> bool {
        matches!(
            self,
            Self::Slider
                | Self::NumberInput
                | Self::TextInput
                | Self::Checkbox
                | Self::Selectbox
                | Self::Button
        )
    }
}

/// What a widget looks like and what it currently holds.
#[derive(Clone, Debug, PartialEq)]
pub struct WidgetElement {
    /// The label, which is also the widget's key.
    pub label: String,
    /// The value the script received on this run.
    pub value: crate::widgets::WidgetValue,
    /// Lower bound (sliders, number inputs).
    pub min: Option<f64>,
    /// Upper bound (sliders, number inputs).
    pub max: Option<f64>,
    /// Whether the value is an integer (sliders, number inputs).
    pub integer: bool,
    /// The choices (selectbox).
    pub options: Vec<String>,
}

/// Extra data carried by rich elements.
#[derive(Clone, Debug)]
pub enum Payload {
    /// No payload: the text says it all.
    None,
    /// A frame to show as a table (`dataframe`, `table`, `write(df)`).
    Frame(Frame),
    /// A chart over a frame.
    Chart {
        /// The data.
        frame: Frame,
        /// The x column.
        x: String,
        /// The y columns.
        y: Vec<String>,
    },
    /// A metric's label and value.
    Metric {
        /// The label.
        label: String,
        /// The value as text.
        value: String,
    },
    /// A JSON document (`json`).
    Json(serde_json::Value),
    /// A widget.
    Widget(WidgetElement),
    /// Where an error happened (file coordinates).
    ErrorAt {
        /// 1-based line in the notebook file.
        line: Option<usize>,
        /// 1-based column.
        column: Option<usize>,
    },
}

/// One output of a cell.
#[derive(Clone, Debug)]
pub struct Element {
    /// What it is.
    pub kind: ElementKind,
    /// Its text (for a table: a summary; for a widget: its label).
    pub text: String,
    /// Rich data, if any.
    pub payload: Payload,
}

impl Element {
    /// A plain text element.
    pub fn text(kind: ElementKind, text: impl Into<String>) -> Self {
        Self {
            kind,
            text: text.into(),
            payload: Payload::None,
        }
    }

    /// The frame this element shows, if any.
    pub fn frame(&self) -> Option<&Frame> {
        match &self.payload {
            Payload::Frame(frame) | Payload::Chart { frame, .. } => Some(frame),
            _ => None,
        }
    }
}
