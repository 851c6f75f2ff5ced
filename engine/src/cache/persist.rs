//! `persist = "disk"`: cache entries written to the cache dir so a later process finds them.
//!
//! File layout (little-endian):
//!
//! ```text
//! "CELLARC\0"  magic                      8 bytes
//! version      u32                        4
//! endian mark  u32 (0x01020304)           4
//! checksum     u64  xxh3 of all that follows
//! meta length  u64
//! meta         bincode 2: created time, value tree, elements, frame column layouts
//! buffers      raw numeric column values, in the order the layouts list them
//! ```
//!
//! Numeric columns are copied straight between polars buffers and the file (no per-value
//! encoding), which is what makes a disk hit of a large frame cheap. Files are written to a
//! temporary name and renamed, so a reader never sees half a file. Anything unreadable is
//! reported as corrupt; the caller drops the file and recomputes.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bincode::{Decode, Encode};
use polars::prelude::*;
use polars_arrow::bitmap::Bitmap;
use xxhash_rust::xxh3::Xxh3;

use super::CachedValue;
use crate::data::Frame;
use crate::elements::{Element, ElementKind, Payload};

const MAGIC: &[u8; 8] = b"CELLARC\0";
/// Bumped whenever the layout changes; older files are dropped and recomputed.
pub const FORMAT_VERSION: u32 = 1;
const ENDIAN_MARK: u32 = 0x0102_0304;
const HEADER_LEN: usize = 8 + 4 + 4 + 8 + 8;

/// A persisted entry as read back.
#[derive(Clone, Debug)]
pub struct PersistedEntry {
    /// When it was computed (wall clock since the epoch).
    pub created: Duration,
    /// The value.
    pub value: CachedValue,
    /// The elements to replay.
    pub elements: Vec<Element>,
}

/// Why a file could not be used.
#[derive(Debug)]
pub enum ReadError {
    /// There is no file (a plain miss).
    Missing,
    /// The file exists but is damaged or from another format version.
    Corrupt(String),
}

/// The file for one entry: `<dir>/<function>-<code>-<key>.cellar`.
pub fn entry_path(dir: &Path, function: &str, code_hash: u128, key: u128) -> PathBuf {
    dir.join(format!(
        "{}-{:016x}-{key:032x}.cellar",
        sanitize(function),
        code_hash as u64
    ))
}

/// Removes a function's files; with `keep_code`, only those of other code versions.
pub fn remove_function_files(dir: &Path, function: &str, keep_code: Option<u128>) -> usize {
    let prefix = format!("{}-", sanitize(function));
    let keep = keep_code.map(|c| format!("{prefix}{:016x}-", c as u64));
    let Ok(read) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in read.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(&prefix) || !name.ends_with(".cellar") {
            continue;
        }
        // `load-…` must not match `load_data-…`: the part after the prefix is the hex code.
        let rest = &name[prefix.len()..];
        if rest.len() != 16 + 1 + 32 + ".cellar".len() {
            continue;
        }
        if keep.as_ref().is_some_and(|k| name.starts_with(k)) {
            continue;
        }
        if std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[derive(Encode, Decode)]
struct Meta {
    created_ms: u64,
    value: DiskValue,
    elements: Vec<DiskElement>,
    frames: Vec<DiskFrame>,
}

#[derive(Encode, Decode)]
enum DiskValue {
    Unit,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Blob(Vec<u8>),
    Array(Vec<DiskValue>),
    Map(Vec<(String, DiskValue)>),
    Frame(u32),
}

#[derive(Encode, Decode)]
struct DiskElement {
    kind: String,
    text: String,
    payload: DiskPayload,
}

#[derive(Encode, Decode)]
enum DiskPayload {
    None,
    Frame(u32),
    Chart {
        frame: u32,
        x: String,
        y: Vec<String>,
    },
    Metric {
        label: String,
        value: String,
    },
    Json(String),
    ErrorAt {
        line: Option<u64>,
        column: Option<u64>,
    },
}

#[derive(Encode, Decode)]
struct DiskFrame {
    height: u64,
    columns: Vec<DiskColumn>,
}

#[derive(Encode, Decode)]
struct DiskColumn {
    name: String,
    data: DiskData,
}

#[derive(Encode, Decode, Clone, Copy, PartialEq, Eq, Debug)]
enum Numeric {
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F32,
    F64,
}

#[derive(Encode, Decode)]
enum DiskData {
    /// Values are in the buffer section: 8 bytes each (i64 or f64), `validity` packed bits.
    Numeric {
        kind: Numeric,
        validity: Option<Vec<u8>>,
    },
    Bool(Vec<Option<bool>>),
    Str(Vec<Option<String>>),
    /// Any other type, as text.
    Text(Vec<Option<String>>),
}

/// What the buffer section holds for one numeric column.
enum Buffer {
    F64(Vec<f64>),
    I64(Vec<i64>),
}

impl Buffer {
    fn bytes(&self) -> &[u8] {
        match self {
            Self::F64(v) => bytemuck::cast_slice(v),
            Self::I64(v) => bytemuck::cast_slice(v),
        }
    }
}

/// Whether an entry can be persisted (widgets are live and are not written to disk).
pub fn can_persist(elements: &[Element]) -> bool {
    !elements.iter().any(|e| e.kind.is_widget())
}

/// Writes an entry atomically.
pub fn write(
    path: &Path,
    created: Duration,
    value: &CachedValue,
    elements: &[Element],
) -> std::io::Result<()> {
    let mut frames = Vec::new();
    let mut buffers = Vec::new();
    let value = to_disk_value(value, &mut frames, &mut buffers);
    let elements = elements
        .iter()
        .map(|e| to_disk_element(e, &mut frames, &mut buffers))
        .collect();
    let meta = Meta {
        created_ms: created.as_millis() as u64,
        value,
        elements,
        frames,
    };
    let meta_bytes = bincode::encode_to_vec(&meta, bincode::config::standard())
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut hasher = Xxh3::new();
    hasher.update(&(meta_bytes.len() as u64).to_le_bytes());
    hasher.update(&meta_bytes);
    for buffer in &buffers {
        hasher.update(buffer.bytes());
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.{:?}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id(),
        std::thread::current().id()
    ));
    let result = (|| {
        let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
        file.write_all(MAGIC)?;
        file.write_all(&FORMAT_VERSION.to_le_bytes())?;
        file.write_all(&ENDIAN_MARK.to_ne_bytes())?;
        file.write_all(&hasher.digest().to_le_bytes())?;
        file.write_all(&(meta_bytes.len() as u64).to_le_bytes())?;
        file.write_all(&meta_bytes)?;
        for buffer in &buffers {
            file.write_all(buffer.bytes())?;
        }
        file.into_inner().map_err(|e| e.into_error())?.sync_data()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Reads an entry back.
pub fn read(path: &Path) -> Result<PersistedEntry, ReadError> {
    let corrupt = |what: &str| ReadError::Corrupt(what.to_string());
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Err(ReadError::Missing);
        }
        Err(e) => return Err(ReadError::Corrupt(format!("cannot open: {e}"))),
    };
    let mut header = [0u8; HEADER_LEN];
    file.read_exact(&mut header)
        .map_err(|_| corrupt("truncated header"))?;
    if &header[..8] != MAGIC {
        return Err(corrupt("not a Cellar cache file"));
    }
    let word = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().expect("4 bytes"));
    let long = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().expect("8 bytes"));
    if word(8) != FORMAT_VERSION {
        return Err(ReadError::Corrupt(format!(
            "format version {} (this Cellar reads {FORMAT_VERSION})",
            word(8)
        )));
    }
    if u32::from_ne_bytes(header[12..16].try_into().expect("4 bytes")) != ENDIAN_MARK {
        return Err(corrupt("written on a machine of other endianness"));
    }
    let checksum = long(16);
    let meta_len = long(24) as usize;
    let file_len = file.metadata().map(|m| m.len() as usize).unwrap_or(0);
    if meta_len > file_len {
        return Err(corrupt("metadata length past the end of the file"));
    }
    let mut meta_bytes = vec![0u8; meta_len];
    file.read_exact(&mut meta_bytes)
        .map_err(|_| corrupt("truncated metadata"))?;
    let mut hasher = Xxh3::new();
    hasher.update(&(meta_len as u64).to_le_bytes());
    hasher.update(&meta_bytes);
    let (meta, _): (Meta, usize) =
        bincode::decode_from_slice(&meta_bytes, bincode::config::standard())
            .map_err(|e| ReadError::Corrupt(format!("metadata: {e}")))?;
    drop(meta_bytes);
    // Numeric columns, in order, straight into their buffers.
    let mut remaining = file_len.saturating_sub(HEADER_LEN + meta_len);
    let mut buffers = Vec::new();
    for frame in &meta.frames {
        for column in &frame.columns {
            if let DiskData::Numeric { kind, .. } = &column.data {
                let height = frame.height as usize;
                if height * 8 > remaining {
                    return Err(corrupt("truncated column data"));
                }
                remaining -= height * 8;
                let buffer = if matches!(kind, Numeric::F32 | Numeric::F64) {
                    let mut v = vec![0f64; height];
                    file.read_exact(bytemuck::cast_slice_mut(&mut v))
                        .map_err(|_| corrupt("truncated column data"))?;
                    Buffer::F64(v)
                } else {
                    let mut v = vec![0i64; height];
                    file.read_exact(bytemuck::cast_slice_mut(&mut v))
                        .map_err(|_| corrupt("truncated column data"))?;
                    Buffer::I64(v)
                };
                hasher.update(buffer.bytes());
                buffers.push(buffer);
            }
        }
    }
    if remaining != 0 {
        return Err(corrupt("trailing bytes"));
    }
    if hasher.digest() != checksum {
        return Err(corrupt("checksum mismatch"));
    }
    let mut buffers = buffers.into_iter();
    let frames = meta
        .frames
        .into_iter()
        .map(|f| from_disk_frame(f, &mut buffers))
        .collect::<Result<Vec<Frame>, String>>()
        .map_err(ReadError::Corrupt)?;
    let value = from_disk_value(meta.value, &frames).map_err(ReadError::Corrupt)?;
    let elements = meta
        .elements
        .into_iter()
        .map(|e| from_disk_element(e, &frames))
        .collect::<Result<_, _>>()
        .map_err(ReadError::Corrupt)?;
    Ok(PersistedEntry {
        created: Duration::from_millis(meta.created_ms),
        value,
        elements,
    })
}

fn to_disk_value(
    value: &CachedValue,
    frames: &mut Vec<DiskFrame>,
    buffers: &mut Vec<Buffer>,
) -> DiskValue {
    match value {
        CachedValue::Unit => DiskValue::Unit,
        CachedValue::Bool(b) => DiskValue::Bool(*b),
        CachedValue::Int(i) => DiskValue::Int(*i),
        CachedValue::Float(f) => DiskValue::Float(*f),
        CachedValue::Str(s) => DiskValue::Str(s.clone()),
        CachedValue::Blob(b) => DiskValue::Blob(b.clone()),
        CachedValue::Array(items) => DiskValue::Array(
            items
                .iter()
                .map(|v| to_disk_value(v, frames, buffers))
                .collect(),
        ),
        CachedValue::Map(entries) => DiskValue::Map(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), to_disk_value(v, frames, buffers)))
                .collect(),
        ),
        CachedValue::Frame(frame) => DiskValue::Frame(push_frame(frame, frames, buffers)),
    }
}

fn from_disk_value(value: DiskValue, frames: &[Frame]) -> Result<CachedValue, String> {
    Ok(match value {
        DiskValue::Unit => CachedValue::Unit,
        DiskValue::Bool(b) => CachedValue::Bool(b),
        DiskValue::Int(i) => CachedValue::Int(i),
        DiskValue::Float(f) => CachedValue::Float(f),
        DiskValue::Str(s) => CachedValue::Str(s),
        DiskValue::Blob(b) => CachedValue::Blob(b),
        DiskValue::Array(items) => CachedValue::Array(
            items
                .into_iter()
                .map(|v| from_disk_value(v, frames))
                .collect::<Result<_, _>>()?,
        ),
        DiskValue::Map(entries) => CachedValue::Map(
            entries
                .into_iter()
                .map(|(k, v)| Ok((k, from_disk_value(v, frames)?)))
                .collect::<Result<_, String>>()?,
        ),
        DiskValue::Frame(i) => CachedValue::Frame(frame_at(frames, i)?),
    })
}

fn frame_at(frames: &[Frame], index: u32) -> Result<Frame, String> {
    frames
        .get(index as usize)
        .cloned()
        .ok_or_else(|| format!("frame {index} missing"))
}

fn to_disk_element(
    element: &Element,
    frames: &mut Vec<DiskFrame>,
    buffers: &mut Vec<Buffer>,
) -> DiskElement {
    let payload = match &element.payload {
        Payload::Frame(frame) => DiskPayload::Frame(push_frame(frame, frames, buffers)),
        Payload::Chart { frame, x, y } => DiskPayload::Chart {
            frame: push_frame(frame, frames, buffers),
            x: x.clone(),
            y: y.clone(),
        },
        Payload::Metric { label, value } => DiskPayload::Metric {
            label: label.clone(),
            value: value.clone(),
        },
        Payload::Json(json) => DiskPayload::Json(json.to_string()),
        Payload::ErrorAt { line, column } => DiskPayload::ErrorAt {
            line: line.map(|l| l as u64),
            column: column.map(|c| c as u64),
        },
        Payload::None | Payload::Widget(_) => DiskPayload::None,
    };
    DiskElement {
        kind: element.kind.name().to_string(),
        text: element.text.clone(),
        payload,
    }
}

fn from_disk_element(element: DiskElement, frames: &[Frame]) -> Result<Element, String> {
    let kind = ElementKind::from_name(&element.kind)
        .ok_or_else(|| format!("unknown element kind {:?}", element.kind))?;
    let payload = match element.payload {
        DiskPayload::None => Payload::None,
        DiskPayload::Frame(i) => Payload::Frame(frame_at(frames, i)?),
        DiskPayload::Chart { frame, x, y } => Payload::Chart {
            frame: frame_at(frames, frame)?,
            x,
            y,
        },
        DiskPayload::Metric { label, value } => Payload::Metric { label, value },
        DiskPayload::Json(text) => {
            Payload::Json(serde_json::from_str(&text).map_err(|e| e.to_string())?)
        }
        DiskPayload::ErrorAt { line, column } => Payload::ErrorAt {
            line: line.map(|l| l as usize),
            column: column.map(|c| c as usize),
        },
    };
    Ok(Element {
        kind,
        text: element.text,
        payload,
    })
}

fn numeric_kind(dtype: &DataType) -> Option<Numeric> {
    Some(match dtype {
        DataType::Int8 => Numeric::I8,
        DataType::Int16 => Numeric::I16,
        DataType::Int32 => Numeric::I32,
        DataType::Int64 => Numeric::I64,
        DataType::UInt8 => Numeric::U8,
        DataType::UInt16 => Numeric::U16,
        DataType::UInt32 => Numeric::U32,
        DataType::UInt64 => Numeric::U64,
        DataType::Float32 => Numeric::F32,
        DataType::Float64 => Numeric::F64,
        _ => return None,
    })
}

fn numeric_dtype(kind: Numeric) -> DataType {
    match kind {
        Numeric::I8 => DataType::Int8,
        Numeric::I16 => DataType::Int16,
        Numeric::I32 => DataType::Int32,
        Numeric::I64 => DataType::Int64,
        Numeric::U8 => DataType::UInt8,
        Numeric::U16 => DataType::UInt16,
        Numeric::U32 => DataType::UInt32,
        Numeric::U64 => DataType::UInt64,
        Numeric::F32 => DataType::Float32,
        Numeric::F64 => DataType::Float64,
    }
}

fn push_frame(frame: &Frame, frames: &mut Vec<DiskFrame>, buffers: &mut Vec<Buffer>) -> u32 {
    let df = &frame.0;
    let columns = df
        .columns()
        .iter()
        .map(|column| {
            let series = column.as_materialized_series();
            let data = match numeric_kind(series.dtype()) {
                Some(kind) => {
                    let validity = (series.null_count() > 0).then(|| {
                        let mask = series.is_not_null();
                        let bits: Bitmap = mask
                            .downcast_iter()
                            .flat_map(|arr| arr.values_iter())
                            .collect();
                        let (bytes, _, _) = bits.as_slice();
                        bytes.to_vec()
                    });
                    let buffer = if matches!(kind, Numeric::F32 | Numeric::F64) {
                        let values = series
                            .cast(&DataType::Float64)
                            .expect("numbers cast to f64");
                        Buffer::F64(raw_values(values.f64().expect("just cast")))
                    } else {
                        let values = series.cast(&DataType::Int64).expect("integers cast to i64");
                        Buffer::I64(raw_values(values.i64().expect("just cast")))
                    };
                    buffers.push(buffer);
                    DiskData::Numeric { kind, validity }
                }
                None => match series.dtype() {
                    DataType::Boolean => DiskData::Bool(
                        series
                            .bool()
                            .expect("dtype checked")
                            .downcast_iter()
                            .flat_map(|arr| arr.iter())
                            .collect(),
                    ),
                    DataType::String => DiskData::Str(
                        series
                            .str()
                            .expect("dtype checked")
                            .downcast_iter()
                            .flat_map(|arr| arr.iter().map(|s| s.map(str::to_string)))
                            .collect(),
                    ),
                    _ => DiskData::Text(
                        (0..series.len())
                            .map(|i| match series.get(i) {
                                Ok(AnyValue::Null) | Err(_) => None,
                                Ok(v) => Some(v.to_string()),
                            })
                            .collect(),
                    ),
                },
            };
            DiskColumn {
                name: column.name().to_string(),
                data,
            }
        })
        .collect();
    frames.push(DiskFrame {
        height: df.height() as u64,
        columns,
    });
    (frames.len() - 1) as u32
}

/// The values of a numeric column as one vector (null slots hold whatever the buffer had;
/// the validity bitmap says which they are).
fn raw_values<T>(ca: &ChunkedArray<T>) -> Vec<T::Native>
where
    T: PolarsNumericType,
{
    match ca.cont_slice() {
        Ok(slice) => slice.to_vec(),
        Err(_) => ca
            .downcast_iter()
            .flat_map(|arr| arr.values().iter().copied())
            .collect(),
    }
}

fn from_disk_frame(
    frame: DiskFrame,
    buffers: &mut impl Iterator<Item = Buffer>,
) -> Result<Frame, String> {
    let height = frame.height as usize;
    let mut columns = Vec::with_capacity(frame.columns.len());
    for column in frame.columns {
        let name = PlSmallStr::from(column.name.as_str());
        let series = match column.data {
            DiskData::Numeric { kind, validity } => {
                let validity = validity
                    .map(|bytes| Bitmap::try_new(bytes, height).map_err(|e| e.to_string()))
                    .transpose()?;
                let series = match buffers.next().ok_or("missing column buffer")? {
                    Buffer::F64(v) => {
                        Float64Chunked::from_vec_validity(name, v, validity).into_series()
                    }
                    Buffer::I64(v) => {
                        Int64Chunked::from_vec_validity(name, v, validity).into_series()
                    }
                };
                series
                    .cast(&numeric_dtype(kind))
                    .map_err(|e| e.to_string())?
            }
            DiskData::Bool(values) => Series::new(name, values),
            DiskData::Str(values) | DiskData::Text(values) => Series::new(name, values),
        };
        if series.len() != height {
            return Err(format!(
                "column {} has {} rows, expected {height}",
                series.name(),
                series.len()
            ));
        }
        columns.push(series.into_column());
    }
    DataFrame::new(height, columns)
        .map(Frame::new)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_frame() -> Frame {
        Frame(
            df!(
                "f" => [Some(1.5f64), None, Some(-2.0)],
                "i" => [1i64, 2, 3],
                "small" => [1i32, 2, 3],
                "s" => [Some("a"), None, Some("c")],
                "b" => [true, false, true],
            )
            .unwrap(),
        )
    }

    #[test]
    fn entries_round_trip_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = entry_path(dir.path(), "load data", 7, 42);
        assert!(
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("load_data-0000000000000007-")
        );
        let value = CachedValue::Map(vec![
            ("frame".into(), CachedValue::Frame(sample_frame())),
            ("n".into(), CachedValue::Int(3)),
            (
                "list".into(),
                CachedValue::Array(vec![CachedValue::Float(0.5), CachedValue::Str("x".into())]),
            ),
        ]);
        let elements = vec![
            Element::text(ElementKind::Success, "Fetched"),
            Element {
                kind: ElementKind::Dataframe,
                text: "3 rows".into(),
                payload: Payload::Frame(sample_frame()),
            },
        ];
        write(&path, Duration::from_secs(1000), &value, &elements).unwrap();
        let back = read(&path).unwrap();
        assert_eq!(back.value, value);
        assert_eq!(back.created, Duration::from_secs(1000));
        assert_eq!(back.elements.len(), 2);
        assert_eq!(back.elements[1].frame().unwrap(), &sample_frame());
    }

    #[test]
    fn damage_is_reported_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.cellar");
        write(
            &path,
            Duration::ZERO,
            &CachedValue::Frame(sample_frame()),
            &[],
        )
        .unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(read(&path), Err(ReadError::Corrupt(m)) if m == "checksum mismatch"));
        std::fs::write(&path, b"garbage").unwrap();
        assert!(matches!(read(&path), Err(ReadError::Corrupt(_))));
        assert!(matches!(
            read(&dir.path().join("none.cellar")),
            Err(ReadError::Missing)
        ));
    }

    #[test]
    fn removing_files_matches_the_function_exactly() {
        let dir = tempfile::tempdir().unwrap();
        for (name, code) in [("load", 1u128), ("load", 2), ("load_data", 1)] {
            write(
                &entry_path(dir.path(), name, code, 9),
                Duration::ZERO,
                &CachedValue::Int(1),
                &[],
            )
            .unwrap();
        }
        assert_eq!(remove_function_files(dir.path(), "load", Some(2)), 1);
        assert_eq!(remove_function_files(dir.path(), "load", None), 1);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "load_data untouched"
        );
    }
}
