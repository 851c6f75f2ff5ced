//! Charts of any size. A chart's data is read out of its frame once (and sorted by x for lines
//! and bars); what is drawn is downsampled to the screen: lines and bars keep, per pixel
//! column, the first, lowest, highest and last point (so a spike survives), scatters are binned
//! into a density image of 2-point cells. The drawn geometry is kept per chart and recomputed
//! only when the view changes (bounds or size), so a frame where nothing changed does no work
//! proportional to the data. A big chart reads its data and makes each view's geometry on a
//! thread of its own, so no frame waits for work that grows with the data: a placeholder
//! stands in until the data is read, and the last geometry stays on screen until the new
//! view's is ready. Every drawn vertex is a real data point, so the value shown on hover is
//! exact.

use std::sync::{Arc, Weak};

use cellar_engine::{ElementKind, Frame};
use egui::{Color32, ColorImage, Id, TextureHandle, TextureOptions, Ui};
use egui_plot::{
    Bar, BarChart, Legend, Line, Plot, PlotBounds, PlotImage, PlotPoint, PlotPoints, PlotTransform,
    Points,
};
use parking_lot::Mutex;
use polars::prelude::{DataType, Float64Chunked, SeriesTrait};

use crate::theme;

/// A line or bar series with at most this many points per pixel column in view is drawn
/// point by point.
const EXACT_PER_COLUMN: usize = 4;
/// A scatter series of at most this many points is drawn point by point.
const SCATTER_EXACT: usize = 20_000;
/// Longer line and bar series with unsorted x are sorted by x once (shorter ones keep the
/// order of their rows, as they always did).
const SORT_ABOVE: usize = 10_000;
/// The side of a scatter density cell, in points.
const CELL: f32 = 2.0;
/// How far from a drawn point the pointer may be for the point to count as hovered, in points.
const HOVER_RADIUS: f32 = 40.0;
/// A chart of more rows than this reads its data, and one of more points than this makes
/// each view's geometry, on a thread of its own: a frame never waits for work that grows
/// with the data (reading is about 10 ms per million rows here).
const BACKGROUND_ROWS: usize = 250_000;
/// The height of a chart's plot, in points.
const PLOT_HEIGHT: f32 = 240.0;

const PALETTE: [Color32; 5] = [
    theme::ACCENT,
    Color32::from_rgb(0xf5, 0x9e, 0x0b),
    Color32::from_rgb(0x10, 0xb9, 0x81),
    Color32::from_rgb(0xef, 0x44, 0x44),
    Color32::from_rgb(0x8b, 0x5c, 0xf6),
];

/// One y column against x: the rows where both are finite numbers.
struct Series {
    name: String,
    xs: Values,
    ys: Values,
    /// Whether `xs` never decreases (so a view's rows are found by binary search).
    sorted: bool,
    /// The lowest and highest rows of aligned blocks of `ys`, for sorted series.
    extremes: Extremes,
}

impl Series {
    /// Row `i`, as a plot point.
    fn point(&self, i: usize) -> [f64; 2] {
        [self.xs[i], self.ys[i]]
    }

    /// The rows of a sorted series to draw in `[x0, x1]` over `columns` pixel columns, and
    /// whether that is fewer than all of them (see [`min_max_rows`]).
    fn rows_in_view(&self, x0: f64, x1: f64, columns: usize, m4: bool) -> (Vec<usize>, bool) {
        min_max_rows(&self.xs, &self.ys, x0, x1, &self.extremes, columns, m4)
    }
}

/// Rows per block of [`Extremes`]' first level; each next level's blocks hold this many of
/// the level below.
const BLOCK_BITS: u32 = 6;
const BLOCK: usize = 1 << BLOCK_BITS;

/// The lowest and highest row of every aligned block of 64, 64², 64³... rows, so the extremes
/// of any range cost at most about `2 × 64` steps per level instead of a step per row: what
/// keeps a view change of a 10M-point line in a few milliseconds.
#[derive(Default)]
pub struct Extremes {
    levels: Vec<Vec<Extreme>>,
}

/// One block's lowest and highest value and their rows.
#[derive(Clone, Copy)]
struct Extreme {
    low: f64,
    high: f64,
    low_row: u32,
    high_row: u32,
}

impl Extreme {
    fn row(ys: &[f64], row: usize) -> Self {
        Self {
            low: ys[row],
            high: ys[row],
            low_row: row as u32,
            high_row: row as u32,
        }
    }

    /// Takes in `other`, which comes after `self` (so the first of equals stays).
    fn add(&mut self, other: &Extreme) {
        if other.low < self.low {
            self.low = other.low;
            self.low_row = other.low_row;
        }
        if other.high > self.high {
            self.high = other.high;
            self.high_row = other.high_row;
        }
    }

    fn of(parts: impl Iterator<Item = Extreme>) -> Self {
        let mut parts = parts;
        let mut all = parts.next().expect("a block is never empty");
        for part in parts {
            all.add(&part);
        }
        all
    }
}

impl Extremes {
    /// Builds the levels over `ys` (one pass over the data, then 1/64 of it per level).
    pub fn new(ys: &[f64]) -> Self {
        let mut levels: Vec<Vec<Extreme>> = Vec::new();
        if ys.len() > BLOCK {
            let first = (0..ys.len())
                .step_by(BLOCK)
                .map(|start| {
                    Extreme::of((start..(start + BLOCK).min(ys.len())).map(|r| Extreme::row(ys, r)))
                })
                .collect();
            levels.push(first);
        }
        while let Some(below) = levels.last().filter(|l| l.len() > BLOCK) {
            let level = below
                .chunks(BLOCK)
                .map(|chunk| Extreme::of(chunk.iter().copied()))
                .collect();
            levels.push(level);
        }
        Self { levels }
    }

    /// The rows of the lowest and highest `ys` in `i..j` (the first of equals); `j > i`.
    pub fn range(&self, ys: &[f64], i: usize, j: usize) -> (usize, usize) {
        let mut all = Extreme::row(ys, i);
        let mut a = i;
        while a < j {
            // The biggest aligned block that starts at `a` and ends by `j`. Shifts, not
            // divisions, and the blocks hold their values, so no row is read at random: this
            // loop is the whole cost of a view change.
            let mut block = None;
            let mut shift = BLOCK_BITS * self.levels.len() as u32;
            for level in self.levels.iter().rev() {
                let size = 1usize << shift;
                if a & (size - 1) == 0 && a + size <= j {
                    block = Some((level[a >> shift], size));
                    break;
                }
                shift -= BLOCK_BITS;
            }
            match block {
                Some((extreme, size)) => {
                    all.add(&extreme);
                    a += size;
                }
                None => {
                    all.add(&Extreme::row(ys, a));
                    a += 1;
                }
            }
        }
        (all.low_row as usize, all.high_row as usize)
    }
}

/// Which data a chart shows: the kind, the columns, and which column buffers they were.
struct DataKey {
    /// The columns' buffers, held weakly: the chart does not keep its frame alive, and a
    /// buffer's address is not reused while its weak reference lives.
    columns: Vec<Option<Weak<dyn SeriesTrait>>>,
    height: usize,
    kind: ElementKind,
    x: String,
    y: Vec<String>,
}

impl DataKey {
    fn of(frame: &Frame, kind: ElementKind, x: &str, y: &[String]) -> Self {
        Self {
            columns: column_identities(frame, x, y)
                .map(|c| c.as_ref().map(Arc::downgrade))
                .collect(),
            height: frame.height(),
            kind,
            x: x.to_owned(),
            y: y.to_vec(),
        }
    }

    /// Whether a column it was read from is gone (so no chart can show it any more).
    fn is_stale(&self) -> bool {
        self.columns
            .iter()
            .any(|c| c.as_ref().is_some_and(|c| c.strong_count() == 0))
    }

    fn is_for(&self, frame: &Frame, kind: ElementKind, x: &str, y: &[String]) -> bool {
        self.kind == kind
            && self.x == x
            && self.y == y
            && self.height == frame.height()
            && self
                .columns
                .iter()
                .zip(column_identities(frame, x, y))
                .all(
                    |(ours, now)| match (ours.as_ref().and_then(Weak::upgrade), now) {
                        (Some(a), Some(b)) => Arc::ptr_eq(&a, &b),
                        (None, None) => ours.is_none(),
                        _ => false,
                    },
                )
    }
}

/// A chart's data, read out of its frame once.
struct Prepared {
    key: DataKey,
    series: Vec<Series>,
    /// The x labels when x is not numeric (x is then the row's position).
    labels: Option<Arc<Vec<String>>>,
    /// The extents of every series, `[x_min, x_max, y_min, y_max]`.
    extents: [f64; 4],
}

/// The view a geometry was computed for: the bounds drawn and the plot's size in points.
#[derive(Clone, Copy, Debug, PartialEq)]
struct ViewKey {
    bounds: [u64; 4],
    size: [u32; 2],
}

impl ViewKey {
    fn new(bounds: [f64; 4], size: egui::Vec2) -> Self {
        Self {
            bounds: bounds.map(f64::to_bits),
            size: [size.x.to_bits(), size.y.to_bits()],
        }
    }
}

/// What is drawn for one series in one view.
enum Geometry {
    /// Real data points, in x order for lines.
    Points {
        drawn: Vec<[f64; 2]>,
        downsampled: bool,
    },
    /// Bars, one or two per pixel column: `(centre, value, width)`; `drawn` are the true
    /// points they stand for.
    Bars {
        bars: Vec<(f64, f64, f64)>,
        drawn: Vec<[f64; 2]>,
        downsampled: bool,
    },
    /// A density image over `bounds` (`[x0, x1, y0, y1]`), `cols` × `rows` cells; each cell
    /// keeps its count and one of its points (the last).
    Density {
        texture: TextureHandle,
        bounds: [f64; 4],
        cols: usize,
        rows: usize,
        counts: Vec<u32>,
        reps: Vec<u32>,
    },
}

/// A point under the pointer: a real row of the data.
#[derive(Clone, Debug, PartialEq)]
pub struct Hovered {
    /// The series' name (its y column).
    pub series: String,
    /// The row's x, exact (its position when x is not numeric).
    pub x: f64,
    /// The row's y, exact.
    pub y: f64,
    /// The x label when x is not numeric.
    pub label: Option<String>,
    /// How many points share the hovered density cell (scatter), else 1.
    pub count: u32,
}

/// What a chart drew on its last frame, for tests and benches.
#[derive(Clone, Debug)]
pub struct Drawn {
    /// The data points of every series.
    pub points: usize,
    /// The points drawn per series (bars: the points they stand for; density: none).
    pub drawn: Vec<Vec<[f64; 2]>>,
    /// Whether any series was downsampled.
    pub downsampled: bool,
    /// How many times the geometry was computed since the chart's data was read.
    pub recomputed: u64,
    /// Where the plot is, to hover a point.
    pub transform: PlotTransform,
    /// The point under the pointer.
    pub hovered: Option<Hovered>,
    /// Whether work for it is still running on a thread of its own (reading its data, or
    /// making the geometry of the current view).
    pub pending: bool,
}

#[derive(Default)]
struct ChartCache {
    prepared: Option<Arc<Prepared>>,
    /// A big chart's data being read on a thread of its own, and which data it is.
    reading: Option<(DataKey, Slot<Prepared>)>,
    /// The view `geometry` was made for.
    view: Option<ViewKey>,
    geometry: Vec<Geometry>,
    /// A big chart's geometry being made on a thread of its own: for which data and view.
    building: Option<(Weak<Prepared>, ViewKey, Slot<Vec<Geometry>>)>,
    /// Why the last geometry could not be made.
    failed: Option<String>,
    recomputed: u64,
    drawn: Option<Drawn>,
}

/// Where a job on a thread of its own leaves its result (or, if it panicked, what it said).
type Slot<T> = Arc<Mutex<Option<Result<T, String>>>>;

/// Runs `work` on a thread of its own; the window draws again when it is done.
fn in_background<T: Send + 'static>(
    ctx: &egui::Context,
    work: impl FnOnce() -> T + Send + 'static,
) -> Slot<T> {
    let slot: Slot<T> = Arc::new(Mutex::new(None));
    let filled = slot.clone();
    let ctx = ctx.clone();
    let spawned = std::thread::Builder::new()
        .name("cellar chart".into())
        .spawn(move || {
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).map_err(|panic| {
                    let text = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned());
                    format!("the chart failed: {}", text.unwrap_or_default())
                });
            *filled.lock() = Some(result);
            ctx.request_repaint();
        });
    if let Err(err) = spawned {
        *slot.lock() = Some(Err(format!("the chart could not start a thread: {err}")));
    }
    slot
}

/// A chart's data: read now (a small chart), being read, or failed.
enum Reading {
    Ready(Arc<Prepared>),
    Waiting,
    Failed(String),
}

/// The data of `frame` for this chart: what was read before, read now when small, or read
/// on a thread of its own when big (one reading at a time; the latest data wins).
fn read(
    cache: &mut ChartCache,
    ctx: &egui::Context,
    frame: &Frame,
    kind: ElementKind,
    x: &str,
    y: &[String],
) -> Reading {
    if let Some(p) = cache
        .prepared
        .as_ref()
        .filter(|p| p.key.is_for(frame, kind, x, y))
    {
        return Reading::Ready(p.clone());
    }
    if frame.height() <= BACKGROUND_ROWS {
        return Reading::Ready(Arc::new(prepare(frame, kind, x, y)));
    }
    if let Some((key, slot)) = &cache.reading
        && !key.is_for(frame, kind, x, y)
        && slot.lock().is_none()
    {
        // One reading at a time: the one for older data finishes first (its result is
        // dropped), so data changing quickly does not pile up threads and frames.
        return Reading::Waiting;
    }
    if let Some((key, slot)) = &cache.reading
        && key.is_for(frame, kind, x, y)
    {
        let mut slot = slot.lock();
        return match slot.take() {
            None => Reading::Waiting,
            Some(Ok(prepared)) => {
                drop(slot);
                cache.reading = None;
                Reading::Ready(Arc::new(prepared))
            }
            // Kept, so the next frame shows the same failure instead of trying again.
            Some(Err(why)) => {
                *slot = Some(Err(why.clone()));
                Reading::Failed(why)
            }
        };
    }
    // The key first: it materializes the columns it names, so the frame the thread reads
    // has the same buffers and the data it reads is recognised as this frame's.
    let key = DataKey::of(frame, kind, x, y);
    let (data, x_name, y_names) = (frame.clone(), x.to_owned(), y.to_vec());
    let slot = in_background(ctx, move || prepare(&data, kind, &x_name, &y_names));
    cache.reading = Some((key, slot));
    Reading::Waiting
}

/// Takes in the geometry a background job finished, whatever view it was made for: drawn
/// until the current view's is ready (lines sit at their data, an image at its bounds).
fn take_built_geometry(cache: &mut ChartCache) {
    let Some((data, view, slot)) = &cache.building else {
        return;
    };
    let Some(result) = slot.lock().take() else {
        return;
    };
    let (data, view) = (data.clone(), *view);
    cache.building = None;
    // Made for data the chart no longer shows: dropped (the next frame asks for its own).
    if !cache
        .prepared
        .as_ref()
        .is_some_and(|p| std::ptr::eq(Arc::as_ptr(p), data.as_ptr()))
    {
        return;
    }
    cache.view = Some(view);
    cache.recomputed += 1;
    match result {
        Ok(geometry) => {
            cache.geometry = geometry;
            cache.failed = None;
        }
        Err(why) => {
            cache.geometry.clear();
            cache.failed = Some(why);
        }
    }
}

type Shared = Arc<Mutex<ChartCache>>;

fn cache_id(salt: (usize, usize)) -> Id {
    Id::unique(("cellar_chart", salt))
}

/// Every chart's cache, to free the copies of data whose frame is gone.
#[derive(Default)]
struct Registry {
    charts: Vec<Weak<Mutex<ChartCache>>>,
    swept: u64,
}

/// Once per pass: drops what charts read out of frames that no longer exist (a rerun that
/// removed a chart leaves no copy of its data behind). `new` is a chart seen the first time.
fn sweep(ctx: &egui::Context, new: Option<&Shared>) {
    let id = Id::unique("cellar_chart_registry");
    let registry: Arc<Mutex<Registry>> = ctx.data_mut(|d| {
        d.get_temp_mut_or_default::<Arc<Mutex<Registry>>>(id)
            .clone()
    });
    let mut registry = registry.lock();
    if let Some(new) = new {
        registry.charts.push(Arc::downgrade(new));
    }
    let pass = ctx.cumulative_pass_nr();
    if registry.swept == pass {
        return;
    }
    registry.swept = pass;
    registry.charts.retain(|chart| {
        let Some(chart) = chart.upgrade() else {
            return false;
        };
        if let Some(mut cache) = chart.try_lock()
            && (cache.prepared.as_ref().is_some_and(|p| p.key.is_stale())
                || cache
                    .reading
                    .as_ref()
                    .is_some_and(|(key, _)| key.is_stale()))
        {
            *cache = ChartCache::default();
        }
        true
    });
}

/// What the chart with this `salt` drew on its last frame.
pub fn drawn(ctx: &egui::Context, salt: (usize, usize)) -> Option<Drawn> {
    let shared: Option<Shared> = ctx.data(|d| d.get_temp(cache_id(salt)));
    shared.and_then(|s| s.lock().drawn.clone())
}

/// The buffers of the x column and each y column (`None` for a column the frame lacks).
fn column_identities<'a>(
    frame: &'a Frame,
    x: &'a str,
    y: &'a [String],
) -> impl Iterator<Item = Option<Arc<dyn SeriesTrait>>> + 'a {
    std::iter::once(x)
        .chain(y.iter().map(String::as_str))
        .map(|name| {
            let column = frame.0.column(name).ok()?;
            Some(column.as_materialized_series().0.clone())
        })
}

fn f64_values(frame: &Frame, name: &str) -> Option<Float64Chunked> {
    let column = frame.0.column(name).ok()?;
    let cast = column.cast(&DataType::Float64).ok()?;
    cast.f64().ok().cloned()
}

/// A series' numbers: the column's own buffer when it can be drawn as it is (one chunk, no
/// nulls, every value finite), else a copy of the rows that can.
enum Values {
    Owned(Vec<f64>),
    Column(Float64Chunked),
}

impl std::ops::Deref for Values {
    type Target = [f64];

    fn deref(&self) -> &[f64] {
        match self {
            Values::Owned(values) => values,
            Values::Column(column) => column.cont_slice().expect("checked when made"),
        }
    }
}

impl Values {
    /// The column itself, when every value can be drawn and its buffer holds nothing else:
    /// no copy of a 10M-row column (the copies and their page faults were most of a big
    /// chart's first frame), and no hold on a big buffer a small slice of it came from.
    fn whole(column: &Float64Chunked) -> Option<Self> {
        let values = column.cont_slice().ok()?;
        let array = column.downcast_iter().next()?;
        if array.values().is_sliced() {
            return None;
        }
        values
            .iter()
            .all(|v| v.is_finite())
            .then(|| Values::Column(column.clone()))
    }
}

/// The rows where `x` (the row number without an x column) and `y` are both finite numbers.
fn finite_pairs(x: Option<&Float64Chunked>, y: &Float64Chunked) -> (Values, Values) {
    if x.is_none_or(|x| x.len() == y.len())
        && let Some(ys) = Values::whole(y)
    {
        match x {
            None => {
                let xs = (0..ys.len()).map(|row| row as f64).collect();
                return (Values::Owned(xs), ys);
            }
            Some(x) => {
                if let Some(xs) = Values::whole(x) {
                    return (xs, ys);
                }
            }
        }
    }
    let mut xs = Vec::with_capacity(y.len());
    let mut ys = Vec::with_capacity(y.len());
    let mut push = |x: f64, y: Option<f64>| {
        if let Some(y) = y.filter(|y| y.is_finite())
            && x.is_finite()
        {
            xs.push(x);
            ys.push(y);
        }
    };
    match x {
        Some(xcol) => {
            for (x, y) in xcol.iter().zip(y.iter()) {
                if let Some(x) = x {
                    push(x, y);
                }
            }
        }
        None => {
            for (row, y) in y.iter().enumerate() {
                push(row as f64, y);
            }
        }
    }
    (Values::Owned(xs), Values::Owned(ys))
}

fn prepare(frame: &Frame, kind: ElementKind, x: &str, y: &[String]) -> Prepared {
    let height = frame.height();
    let numeric_x = f64_values(frame, x).filter(|xs| height == 0 || xs.null_count() < xs.len());
    let index = frame.column_names().iter().position(|n| n == x);
    let labels = match (&numeric_x, index) {
        (None, Some(column)) => Some(Arc::new(
            (0..height)
                .map(|row| frame.cell_text(row, column))
                .collect(),
        )),
        _ => None,
    };
    let mut extents = [
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];
    let mut series = Vec::new();
    for name in y {
        let Some(values) = f64_values(frame, name) else {
            continue;
        };
        let (mut xs, mut ys) = finite_pairs(numeric_x.as_ref(), &values);
        let mut sorted = xs.windows(2).all(|w| w[0] <= w[1]);
        if !sorted && kind != ElementKind::ScatterChart && xs.len() > SORT_ABOVE {
            let mut order: Vec<u32> = (0..xs.len() as u32).collect();
            order.sort_by(|&a, &b| xs[a as usize].total_cmp(&xs[b as usize]));
            xs = Values::Owned(order.iter().map(|&i| xs[i as usize]).collect());
            ys = Values::Owned(order.iter().map(|&i| ys[i as usize]).collect());
            sorted = true;
        }
        for (x, y) in xs.iter().zip(ys.iter()) {
            extents[0] = extents[0].min(*x);
            extents[1] = extents[1].max(*x);
            extents[2] = extents[2].min(*y);
            extents[3] = extents[3].max(*y);
        }
        let extremes = if sorted && kind != ElementKind::ScatterChart {
            Extremes::new(&ys)
        } else {
            Extremes::default()
        };
        series.push(Series {
            name: name.clone(),
            xs,
            ys,
            sorted,
            extremes,
        });
    }
    if extents[0] > extents[1] {
        extents = [0.0, 1.0, 0.0, 1.0];
    }
    Prepared {
        key: DataKey::of(frame, kind, x, y),
        series,
        labels,
        extents,
    }
}

/// The rows to draw of a sorted series in `[x0, x1]` over `columns` pixel columns: every row
/// when there are few, else per column its first, lowest, highest and last row (`m4`), or only
/// its lowest and highest. One row on each side of the view is kept so a line reaches the
/// edges. At most `4 * columns + 2` rows, whatever the data's size.
pub fn min_max_rows(
    xs: &[f64],
    ys: &[f64],
    x0: f64,
    x1: f64,
    extremes: &Extremes,
    columns: usize,
    m4: bool,
) -> (Vec<usize>, bool) {
    let columns = columns.max(1);
    let lo = xs.partition_point(|&x| x < x0);
    let hi = xs.partition_point(|&x| x <= x1);
    let mut out = Vec::new();
    if lo > 0 {
        out.push(lo - 1);
    }
    let downsampled = hi - lo > columns * EXACT_PER_COLUMN;
    if downsampled {
        let dx = (x1 - x0) / columns as f64;
        let mut i = lo;
        for c in 0..columns {
            let edge = if c + 1 == columns {
                f64::INFINITY
            } else {
                x0 + dx * (c + 1) as f64
            };
            let j = i + xs[i..hi].partition_point(|&x| x < edge);
            if j > i {
                let (low, high) = extremes.range(ys, i, j);
                let mut picked = if m4 {
                    [i, low, high, j - 1]
                } else {
                    [low, low, high, high]
                };
                picked.sort_unstable();
                for row in picked {
                    if out.last() != Some(&row) {
                        out.push(row);
                    }
                }
            }
            i = j;
        }
    } else {
        out.extend(lo..hi);
    }
    if hi < xs.len() && hi >= lo {
        out.push(hi);
    }
    (out, downsampled)
}

/// Counts a scatter's points in view per cell (`bounds` = `[x0, x1, y0, y1]`, row 0 at the
/// top) and keeps the last point of each cell (`u32::MAX` when empty).
pub fn density(
    xs: &[f64],
    ys: &[f64],
    bounds: [f64; 4],
    cols: usize,
    rows: usize,
) -> (Vec<u32>, Vec<u32>) {
    let [x0, x1, y0, y1] = bounds;
    let mut counts = vec![0u32; cols * rows];
    let mut reps = vec![u32::MAX; cols * rows];
    let (sx, sy) = (cols as f64 / (x1 - x0), rows as f64 / (y1 - y0));
    for (k, (x, y)) in xs.iter().zip(ys).enumerate() {
        if *x < x0 || *x > x1 || *y < y0 || *y > y1 {
            continue;
        }
        let c = (((x - x0) * sx) as usize).min(cols - 1);
        let r = (((y1 - y) * sy) as usize).min(rows - 1);
        let cell = r * cols + c;
        counts[cell] += 1;
        reps[cell] = k as u32;
    }
    (counts, reps)
}

fn density_image(counts: &[u32], cols: usize, rows: usize, color: Color32) -> ColorImage {
    let most = counts.iter().copied().max().unwrap_or(0).max(1) as f32;
    let scale = (1.0 + most).ln();
    let pixels = counts
        .iter()
        .map(|&n| {
            if n == 0 {
                Color32::TRANSPARENT
            } else {
                let a = 0.5 + 0.5 * (1.0 + n as f32).ln() / scale;
                Color32::from_rgba_unmultiplied(
                    color.r(),
                    color.g(),
                    color.b(),
                    (a.min(1.0) * 255.0) as u8,
                )
            }
        })
        .collect();
    ColorImage::new([cols, rows], pixels)
}

fn geometry(
    ctx: &egui::Context,
    prepared: &Prepared,
    series: &Series,
    index: usize,
    bounds: [f64; 4],
    size: egui::Vec2,
) -> Geometry {
    let [x0, x1, _, _] = bounds;
    let columns = size.x.round().max(1.0) as usize;
    match prepared.key.kind {
        ElementKind::ScatterChart if series.xs.len() > SCATTER_EXACT => {
            let cols = (size.x / CELL).ceil().max(1.0) as usize;
            let rows = (size.y / CELL).ceil().max(1.0) as usize;
            let (counts, reps) = density(&series.xs, &series.ys, bounds, cols, rows);
            let color = PALETTE[index % PALETTE.len()];
            let texture = ctx.load_texture(
                format!("chart density {}", series.name),
                density_image(&counts, cols, rows, color),
                TextureOptions::NEAREST,
            );
            Geometry::Density {
                texture,
                bounds,
                cols,
                rows,
                counts,
                reps,
            }
        }
        ElementKind::BarChart if series.sorted => {
            let (rows, downsampled) = series.rows_in_view(x0, x1, columns, false);
            let point = |i: usize| series.point(i);
            if !downsampled {
                return bars_exact(prepared, index, rows.into_iter().map(point));
            }
            // One bar per side of zero per pixel column: the farthest from zero.
            let dx = (x1 - x0) / columns as f64;
            let mut bars = Vec::new();
            let mut drawn = Vec::new();
            let column_of = |x: f64| ((x - x0) / dx).floor();
            let mut last: Option<(f64, usize, usize)> = None; // column, above, below
            let flush = |last: Option<(f64, usize, usize)>,
                         bars: &mut Vec<(f64, f64, f64)>,
                         drawn: &mut Vec<[f64; 2]>| {
                if let Some((c, above, below)) = last {
                    let centre = x0 + (c + 0.5) * dx;
                    for i in [above, below] {
                        if i != usize::MAX {
                            bars.push((centre, series.ys[i], dx));
                            drawn.push(point(i));
                        }
                    }
                }
            };
            for i in rows {
                let c = column_of(series.xs[i]);
                let y = series.ys[i];
                match &mut last {
                    Some((lc, above, below)) if *lc == c => {
                        if y > 0.0 && (*above == usize::MAX || y > series.ys[*above]) {
                            *above = i;
                        }
                        if y < 0.0 && (*below == usize::MAX || y < series.ys[*below]) {
                            *below = i;
                        }
                    }
                    _ => {
                        flush(last, &mut bars, &mut drawn);
                        last = Some((
                            c,
                            if y >= 0.0 { i } else { usize::MAX },
                            if y < 0.0 { i } else { usize::MAX },
                        ));
                    }
                }
            }
            flush(last, &mut bars, &mut drawn);
            Geometry::Bars {
                bars,
                drawn,
                downsampled: true,
            }
        }
        ElementKind::BarChart => bars_exact(
            prepared,
            index,
            series
                .xs
                .iter()
                .zip(series.ys.iter())
                .map(|(x, y)| [*x, *y]),
        ),
        ElementKind::ScatterChart => Geometry::Points {
            drawn: points_of(series),
            downsampled: false,
        },
        _ if series.sorted => {
            let (rows, downsampled) = series.rows_in_view(x0, x1, columns, true);
            Geometry::Points {
                drawn: rows.into_iter().map(|i| series.point(i)).collect(),
                downsampled,
            }
        }
        _ => Geometry::Points {
            drawn: points_of(series),
            downsampled: false,
        },
    }
}

fn points_of(series: &Series) -> Vec<[f64; 2]> {
    series
        .xs
        .iter()
        .zip(series.ys.iter())
        .map(|(x, y)| [*x, *y])
        .collect()
}

/// Bars as they always were: side by side when there are several series.
fn bars_exact(
    prepared: &Prepared,
    index: usize,
    points: impl Iterator<Item = [f64; 2]>,
) -> Geometry {
    let count = prepared.series.len().max(1) as f64;
    let width = 0.8 / count;
    let shift = (index as f64 - (count - 1.0) / 2.0) * width;
    let drawn: Vec<[f64; 2]> = points.collect();
    let bars = drawn
        .iter()
        .map(|[x, y]| (*x + shift, *y, width * 0.95))
        .collect();
    Geometry::Bars {
        bars,
        drawn,
        downsampled: false,
    }
}

/// The bounds to draw: the data's extents on an axis the plot fits automatically (so the
/// geometry does not depend on the previous frame's bounds), else the plot's bounds.
fn view_bounds(prepared: &Prepared, plot: &PlotBounds, auto: egui::Vec2b) -> [f64; 4] {
    let widen = |lo: f64, hi: f64| {
        if hi > lo {
            (lo, hi)
        } else {
            (lo - 0.5, hi + 0.5)
        }
    };
    let [xmin, xmax, ymin, ymax] = prepared.extents;
    let (x0, x1) = if auto.x {
        widen(xmin, xmax)
    } else {
        (plot.min()[0], plot.max()[0])
    };
    let (y0, y1) = if auto.y {
        widen(ymin, ymax)
    } else {
        (plot.min()[1], plot.max()[1])
    };
    [x0, x1, y0, y1]
}

/// The drawn point nearest to `pointer` (screen), if within reach.
fn hover(
    prepared: &Prepared,
    geometry: &[Geometry],
    transform: &PlotTransform,
    pointer: egui::Pos2,
) -> Option<Hovered> {
    let mut best: Option<(f32, Hovered)> = None;
    let mut consider = |series: &Series, x: f64, y: f64, count: u32| {
        let at = transform.position_from_point(&PlotPoint::new(x, y));
        let distance = at.distance(pointer);
        if distance <= HOVER_RADIUS && best.as_ref().is_none_or(|(d, _)| distance < *d) {
            let label = prepared
                .labels
                .as_ref()
                .and_then(|l| l.get(x as usize).cloned());
            best = Some((
                distance,
                Hovered {
                    series: series.name.clone(),
                    x,
                    y,
                    label,
                    count,
                },
            ));
        }
    };
    for (series, geometry) in prepared.series.iter().zip(geometry) {
        match geometry {
            Geometry::Points { drawn, .. } | Geometry::Bars { drawn, .. } => {
                for [x, y] in drawn {
                    consider(series, *x, *y, 1);
                }
            }
            Geometry::Density {
                bounds,
                cols,
                rows,
                counts,
                reps,
                ..
            } => {
                let value = transform.value_from_position(pointer);
                let [x0, x1, y0, y1] = *bounds;
                let c = ((value.x - x0) / (x1 - x0) * *cols as f64).floor() as i64;
                let r = ((y1 - value.y) / (y1 - y0) * *rows as f64).floor() as i64;
                let reach = (HOVER_RADIUS / CELL / 4.0).ceil() as i64;
                for rr in r - reach..=r + reach {
                    for cc in c - reach..=c + reach {
                        if rr < 0 || cc < 0 || rr >= *rows as i64 || cc >= *cols as i64 {
                            continue;
                        }
                        let cell = rr as usize * cols + cc as usize;
                        if let Some(k) = Some(reps[cell] as usize).filter(|_| counts[cell] > 0) {
                            consider(series, series.xs[k], series.ys[k], counts[cell]);
                        }
                    }
                }
            }
        }
    }
    best.map(|(_, h)| h)
}

/// Draws a line, bar or scatter chart of `y` against `x`, downsampled to the screen.
pub fn show_chart(
    ui: &mut Ui,
    salt: (usize, usize),
    kind: ElementKind,
    frame: &Frame,
    x: &str,
    y: &[String],
) {
    let id = cache_id(salt);
    let (shared, new): (Shared, bool) = ui.ctx().data_mut(|d| {
        let new = d.get_temp::<Shared>(id).is_none();
        (d.get_temp_mut_or_default::<Shared>(id).clone(), new)
    });
    sweep(ui.ctx(), new.then_some(&shared));
    let mut cache = shared.lock();
    let prepared = match read(&mut cache, ui.ctx(), frame, kind, x, y) {
        Reading::Ready(p) => {
            if !cache
                .prepared
                .as_ref()
                .is_some_and(|old| Arc::ptr_eq(old, &p))
            {
                cache.prepared = Some(p.clone());
                // A job still making the old data's geometry is left to finish (one at a
                // time); what it makes is dropped.
                cache.view = None;
                cache.geometry.clear();
                cache.failed = None;
                cache.recomputed = 0;
            }
            p
        }
        Reading::Waiting => {
            let rows = frame.height();
            placeholder(ui, &format!("Reading {rows} rows for the chart…"), true);
            cache.drawn = None;
            return;
        }
        Reading::Failed(why) => {
            placeholder(ui, &why, false);
            cache.drawn = None;
            return;
        }
    };
    take_built_geometry(&mut cache);

    let mut plot = Plot::new(("plot", salt))
        .height(PLOT_HEIGHT)
        .x_axis_label(x)
        .allow_scroll(false)
        .legend(Legend::default());
    if y.len() == 1 {
        plot = plot.y_axis_label(y[0].as_str());
    }
    if let Some(labels) = prepared.labels.clone() {
        plot = plot.x_axis_formatter(move |mark, _| {
            let i = mark.value.round();
            if (mark.value - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        });
    }

    let ctx = ui.ctx().clone();
    let marker = ui.visuals().strong_text_color();
    let cache = &mut *cache;
    let response = plot.show(ui, |plot| {
        let transform = *plot.transform();
        let size = transform.frame().size();
        let bounds = view_bounds(&prepared, &plot.plot_bounds(), plot.auto_bounds());
        let key = ViewKey::new(bounds, size);
        // While a density image is dragged it moves with the plot as it is; it is binned
        // again for the new bounds when the drag ends.
        let dragging = plot.response().dragged()
            && cache
                .geometry
                .iter()
                .any(|g| matches!(g, Geometry::Density { .. }));
        if cache.view != Some(key) && !dragging {
            let points: usize = prepared.series.iter().map(|s| s.xs.len()).sum();
            if points > BACKGROUND_ROWS {
                // Made on a thread of its own, one view at a time: the geometry on screen
                // (in data coordinates, so it moves with the plot) stays until the new one
                // is ready.
                if cache.building.is_none() {
                    let (ctx, data) = (ctx.clone(), prepared.clone());
                    let made_for = Arc::downgrade(&data);
                    let slot = in_background(&ctx.clone(), move || {
                        data.series
                            .iter()
                            .enumerate()
                            .map(|(i, s)| geometry(&ctx, &data, s, i, bounds, size))
                            .collect()
                    });
                    cache.building = Some((made_for, key, slot));
                }
            } else {
                cache.geometry = prepared
                    .series
                    .iter()
                    .enumerate()
                    .map(|(i, s)| geometry(&ctx, &prepared, s, i, bounds, size))
                    .collect();
                cache.view = Some(key);
                cache.recomputed += 1;
            }
        }
        for (i, (series, geometry)) in prepared.series.iter().zip(&cache.geometry).enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let name = series.name.clone();
            match geometry {
                Geometry::Points { drawn, .. } if kind == ElementKind::ScatterChart => {
                    plot.points(
                        Points::new(name, PlotPoints::from(drawn.clone()))
                            .radius(2.0)
                            .color(color),
                    );
                }
                Geometry::Points { drawn, .. } => {
                    plot.line(Line::new(name, PlotPoints::from(drawn.clone())).color(color));
                }
                Geometry::Bars { bars, .. } => {
                    let bars = bars
                        .iter()
                        .map(|(x, y, w)| Bar::new(*x, *y).width(*w))
                        .collect();
                    plot.bar_chart(BarChart::new(name, bars).color(color));
                }
                Geometry::Density {
                    texture, bounds, ..
                } => {
                    let [x0, x1, y0, y1] = *bounds;
                    plot.image(PlotImage::new(
                        name,
                        texture.id(),
                        PlotPoint::new((x0 + x1) / 2.0, (y0 + y1) / 2.0),
                        egui::vec2((x1 - x0) as f32, (y1 - y0) as f32),
                    ));
                }
            }
        }
        let pointer = plot
            .response()
            .hover_pos()
            .filter(|_| plot.response().hovered());
        let hovered = pointer.and_then(|p| hover(&prepared, &cache.geometry, &transform, p));
        if let Some(h) = &hovered {
            plot.points(
                Points::new("", PlotPoints::from(vec![[h.x, h.y]]))
                    .radius(4.0)
                    .color(marker),
            );
        }
        (hovered, bounds, plot.auto_bounds())
    });
    let (hovered, bounds, auto) = response.inner;
    // A zoom or a drag moved the bounds after the geometry was made: draw again with them.
    let now = view_bounds(&prepared, response.transform.bounds(), auto);
    if now != bounds || response.transform.frame().size() != size_of(cache) {
        ui.ctx().request_repaint();
    }
    let points: usize = prepared.series.iter().map(|s| s.xs.len()).sum();
    let downsampled = cache.geometry.iter().any(|g| match g {
        Geometry::Points { downsampled, .. } | Geometry::Bars { downsampled, .. } => *downsampled,
        Geometry::Density { .. } => true,
    });
    let drawn: Vec<Vec<[f64; 2]>> = cache
        .geometry
        .iter()
        .map(|g| match g {
            Geometry::Points { drawn, .. } | Geometry::Bars { drawn, .. } => drawn.clone(),
            Geometry::Density { .. } => Vec::new(),
        })
        .collect();
    let pending = cache.building.is_some();
    let line = match &hovered {
        Some(h) => {
            let x = match &h.label {
                Some(label) => label.clone(),
                None => h.x.to_string(),
            };
            let many = if h.count > 1 {
                format!(" (one of {} points here)", h.count)
            } else {
                String::new()
            };
            format!("{}: x = {x}, y = {}{many}", h.series, h.y)
        }
        None if downsampled => {
            let shown: usize = drawn.iter().map(Vec::len).sum();
            if kind == ElementKind::ScatterChart {
                format!("{points} points, drawn as a density image")
            } else {
                format!("{points} points, drawn as {shown} (lowest and highest per pixel column)")
            }
        }
        None => format!("{points} points"),
    };
    let line = match (&cache.failed, pending) {
        (Some(why), _) => why.clone(),
        (None, true) => format!("{line} (updating…)"),
        (None, false) => line,
    };
    ui.label(egui::RichText::new(line).small().weak());
    cache.drawn = Some(Drawn {
        points,
        drawn,
        downsampled,
        recomputed: cache.recomputed,
        transform: response.transform,
        hovered,
        pending,
    });
}

/// What stands in the chart's place while its data is read (`busy`), or why it cannot be
/// drawn: the plot's own size, so nothing below moves when it appears.
fn placeholder(ui: &mut Ui, text: &str, busy: bool) {
    let size = egui::vec2(ui.available_width(), PLOT_HEIGHT);
    let (rect, _) = ui.allocate_exact_size(size, egui::Sense::hover());
    ui.painter()
        .rect_filled(rect, 4.0, ui.visuals().extreme_bg_color);
    let mut inner = ui.new_child(egui::UiBuilder::new().max_rect(rect).layout(
        egui::Layout::centered_and_justified(egui::Direction::TopDown),
    ));
    inner.horizontal_centered(|ui| {
        if busy {
            ui.spinner();
        }
        ui.label(egui::RichText::new(text).weak());
    });
    // Where the chart's caption goes.
    ui.label(egui::RichText::new(" ").small());
}

fn size_of(cache: &ChartCache) -> egui::Vec2 {
    cache.view.map_or(egui::Vec2::ZERO, |v| {
        egui::vec2(f32::from_bits(v.size[0]), f32::from_bits(v.size[1]))
    })
}

#[cfg(test)]
mod tests {
    use polars::prelude::*;

    use super::{Values, finite_pairs};

    fn column(values: &[Option<f64>]) -> Float64Chunked {
        Float64Chunked::new("v".into(), values)
    }

    #[test]
    fn drawable_columns_are_used_as_they_are_and_others_keep_their_finite_rows() {
        let x = Float64Chunked::from_vec("x".into(), vec![1.0, 2.0, 3.0]);
        let y = Float64Chunked::from_vec("y".into(), vec![4.0, 5.0, 6.0]);
        let (xs, ys) = finite_pairs(Some(&x), &y);
        assert!(matches!((&xs, &ys), (Values::Column(_), Values::Column(_))));
        // The column's own buffer, not a copy.
        assert_eq!(ys.as_ptr(), y.cont_slice().unwrap().as_ptr());
        assert_eq!(
            (&xs[..], &ys[..]),
            (&[1.0, 2.0, 3.0][..], &[4.0, 5.0, 6.0][..])
        );

        // Without an x column, x is the row number.
        let (xs, ys) = finite_pairs(None, &y);
        assert_eq!(
            (&xs[..], &ys[..]),
            (&[0.0, 1.0, 2.0][..], &[4.0, 5.0, 6.0][..])
        );

        // Nulls, NaN and infinities in either column drop their rows.
        let x = column(&[Some(1.0), None, Some(3.0), Some(f64::INFINITY), Some(5.0)]);
        let y = column(&[Some(1.0), Some(2.0), Some(f64::NAN), Some(4.0), Some(5.0)]);
        let (xs, ys) = finite_pairs(Some(&x), &y);
        assert!(matches!(ys, Values::Owned(_)));
        assert_eq!((&xs[..], &ys[..]), (&[1.0, 5.0][..], &[1.0, 5.0][..]));
        let y = Float64Chunked::from_vec("y".into(), vec![1.0, f64::NAN, 3.0]);
        let (xs, ys) = finite_pairs(None, &y);
        assert_eq!((&xs[..], &ys[..]), (&[0.0, 2.0][..], &[1.0, 3.0][..]));

        // A slice of a bigger column is copied: the chart holds only what it draws.
        let big = Float64Chunked::from_vec("y".into(), vec![1.0, 2.0, 3.0, 4.0]);
        let (_, ys) = finite_pairs(None, &big.slice(1, 2));
        assert!(matches!(ys, Values::Owned(_)));
        assert_eq!(&ys[..], &[2.0, 3.0][..]);

        // Several chunks are copied.
        let mut y = Float64Chunked::from_vec("y".into(), vec![1.0]);
        y.append(&Float64Chunked::from_vec("y".into(), vec![2.0]))
            .unwrap();
        let (xs, ys) = finite_pairs(None, &y);
        assert!(matches!(ys, Values::Owned(_)));
        assert_eq!((&xs[..], &ys[..]), (&[0.0, 1.0][..], &[1.0, 2.0][..]));
    }
}
