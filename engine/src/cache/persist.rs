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
//! meta         bincode 2: fn name, created time, value tree, elements, byte length of each
//!              frame, the files the entry read
//! frames       one Arrow IPC file per frame, in the order the meta lists them, each after
//!              0 to 63 zero bytes that start it on a multiple of 64 bytes from the file's start
//! ```
//!
//! Frames are stored in polars' own Arrow IPC format, so every dtype (dates, datetimes with
//! their zone, lists, structs, binaries, u64 up to `u64::MAX`, categoricals...) comes back
//! exactly as it was, and numeric buffers are stored as they are in memory, not encoded value
//! by value. Each frame is a whole Arrow IPC file (uncompressed) at a known offset: polars,
//! pyarrow or DuckDB can read it from there.
//!
//! A file is read memory-mapped ([`super::mapped`]): one pass over the mapping checks the
//! checksum, then the values of numeric and temporal columns point into the mapping instead
//! of being copied (the pages the checksum read are then in memory), which the 64-byte start
//! of each frame keeps aligned. Other columns (strings, lists, categoricals...) are copied
//! through polars' validating Arrow reader. The checksum is verified before anything is
//! decoded; anything unreadable is reported as corrupt, and the caller drops the file and
//! recomputes. Files are written to a temporary name and renamed, so a reader never sees half
//! a file, and a file is never changed in place once it has its name: a process that mapped
//! it keeps the very bytes it checked.
//!
//! Files are the user's own: created readable by the user only and writable by no one (0o400
//! on Unix: a mapped file must not be truncated, so a shell's `>` or a `cp` over one is
//! refused; Cellar replaces a file by renaming a new one over it and removes one by unlinking
//! it, which need only the folder's permission), in a folder created for the user only
//! (0o700) when Cellar creates it. Their names are digests only (`<function digest>-<code
//! digest>-<key>.cellar`, all hex): no user text, so no name can reach outside the folder,
//! collide with another function's, or be too long.
//!
//! Decoding trusts no length the file claims: the metadata length is checked against the
//! file's size, and bincode decodes under an allocation limit proportional to the metadata's
//! size (see [`decode_meta`]), so a file claiming a huge string or list is rejected before
//! anything that size is allocated.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bincode::{Decode, Encode};
use polars::prelude::*;
use polars_arrow::datatypes::ArrowSchema;
use polars_arrow::io::ipc::write as ipc_write;
use xxhash_rust::xxh3::Xxh3;

use super::CachedValue;
use super::files::{FileFingerprint, FileRead};
use super::mapped::{self, Mapping};
use crate::data::Frame;
use crate::elements::{Element, ElementKind, Payload};

const MAGIC: &[u8; 8] = b"CELLARC\0";
/// Bumped whenever the layout changes; older files are dropped and recomputed.
/// 2: frames as Arrow IPC; chars and Rhai tags in the value tree. 3: the files an entry
/// read. 4: the fn's name (for `cellar cache ls`). 5: each frame starts on a multiple of 64
/// bytes (frames are read memory-mapped).
pub const FORMAT_VERSION: u32 = 5;
const ENDIAN_MARK: u32 = 0x0102_0304;
const HEADER_LEN: usize = 8 + 4 + 4 + 8 + 8;
/// Where the checksummed part starts: the meta length and all after it.
const CHECKED_FROM: usize = 8 + 4 + 4 + 8;
/// Each frame starts on a multiple of this many bytes from the start of the file (so of a
/// mapping of it): Arrow's buffers are aligned within an IPC file, and stay aligned in memory.
const FRAME_ALIGN: usize = 64;
/// The zero bytes before a frame.
const PADDING: [u8; FRAME_ALIGN] = [0; FRAME_ALIGN];

/// How many zero bytes start a frame on a multiple of [`FRAME_ALIGN`] after `at` bytes.
fn padding(at: usize) -> usize {
    at.next_multiple_of(FRAME_ALIGN) - at
}

/// A persisted entry as read back.
#[derive(Clone, Debug)]
pub struct PersistedEntry {
    /// When it was computed (wall clock since the epoch).
    pub created: Duration,
    /// The value.
    pub value: CachedValue,
    /// The elements to replay.
    pub elements: Vec<Element>,
    /// The local files its computation read (a hit checks them again).
    pub files: Vec<FileRead>,
}

/// Why a file could not be used.
#[derive(Debug)]
pub enum ReadError {
    /// There is no file (a plain miss).
    Missing,
    /// The file exists but is damaged or from another format version.
    Corrupt(String),
}

/// The file for one entry: `<dir>/<function digest>-<code>-<key>.cellar`, hex digits only.
/// The function's name is user text, so only its digest ([`function_digest`]) names the file.
pub fn entry_path(dir: &Path, function: &str, code_hash: u128, key: u128) -> PathBuf {
    dir.join(format!(
        "{}-{:016x}-{key:032x}.cellar",
        function_digest(function),
        code_hash as u64
    ))
}

/// The part of a file name that stands for a function: 16 hex digits of the xxh3 of its name.
pub fn function_digest(function: &str) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(function.as_bytes()))
}

/// Removes a function's files; with `keep_code`, only those of other code versions. Files of
/// the function named the old way (`<name, sanitised>-<code>-<key>.cellar`, before names were
/// digests) are never read again and go too.
pub fn remove_function_files(dir: &Path, function: &str, keep_code: Option<u128>) -> usize {
    let prefix = format!("{}-", function_digest(function));
    let legacy = format!("{}-", sanitize(function));
    let keep = keep_code.map(|c| format!("{prefix}{:016x}-", c as u64));
    let Ok(read) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in read.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(prefix) = [&prefix, &legacy]
            .into_iter()
            .find(|p| name.starts_with(p.as_str()))
        else {
            continue;
        };
        // `load-…` must not match `load_data-…`: the part after the prefix is the hex code.
        let rest = &name[prefix.len()..];
        if !is_code_and_key(rest) {
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

/// Removes every entry file in `dir` (Clear caches): files Cellar named, nothing else.
pub fn remove_all_files(dir: &Path) -> usize {
    let Ok(read) = std::fs::read_dir(dir) else {
        return 0;
    };
    read.flatten()
        .filter(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name.split_once('-')
                .is_some_and(|(_, rest)| is_code_and_key(rest))
        })
        .filter(|entry| std::fs::remove_file(entry.path()).is_ok())
        .count()
}

/// `<16 hex>-<32 hex>.cellar`: the part of a file name after the function.
fn is_code_and_key(rest: &str) -> bool {
    let Some(stem) = rest.strip_suffix(".cellar") else {
        return false;
    };
    let bytes = stem.as_bytes();
    bytes.len() == 16 + 1 + 32
        && bytes.iter().enumerate().all(|(i, b)| {
            if i == 16 {
                *b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        })
}

/// Creates `dir` (and its missing parents) readable by the user only (0o700 on Unix). A
/// folder that exists already is left as it is: the user chose it.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// A new file readable by the user only and writable by no one (0o400 on Unix: see the module
/// docs); the handle returned writes it.
fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o400);
    options.open(path)
}

/// The old way a function named its files (kept to find and remove them).
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
    /// The cached fn's name, as the notebook wrote it (shown by `cellar cache ls`).
    function: String,
    created_ms: u64,
    value: DiskValue,
    elements: Vec<DiskElement>,
    /// Byte length of each frame's IPC file, in file order.
    frames: Vec<u64>,
    /// The local files the computation read.
    files: Vec<DiskFile>,
}

/// A [`FileRead`] on disk.
#[derive(Encode, Decode)]
struct DiskFile {
    written: String,
    resolved: String,
    size: Option<u64>,
    /// Modification time as (seconds, nanoseconds) since the epoch.
    modified: Option<(u64, u32)>,
    inode: Option<(u64, i64, i64)>,
}

impl DiskFile {
    fn new(file: &FileRead) -> Self {
        let modified = file
            .fingerprint
            .modified
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| (d.as_secs(), d.subsec_nanos()));
        Self {
            written: file.written.clone(),
            resolved: file.resolved.to_string_lossy().into_owned(),
            size: file.fingerprint.size,
            modified,
            inode: file.fingerprint.inode,
        }
    }

    fn into_file_read(self) -> FileRead {
        FileRead {
            written: self.written,
            resolved: std::path::PathBuf::from(self.resolved),
            fingerprint: FileFingerprint {
                size: self.size,
                modified: self
                    .modified
                    .map(|(secs, nanos)| std::time::UNIX_EPOCH + Duration::new(secs, nanos)),
                inode: self.inode,
            },
        }
    }
}

#[derive(Encode, Decode)]
enum DiskValue {
    Unit,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Char(char),
    Blob(Vec<u8>),
    Array(Vec<Nested>),
    Map(Vec<(String, Nested)>),
    Frame(u32),
    Tagged(i32, Box<Nested>),
}

/// How deep values may nest in an entry. Decoding, converting and dropping a value recurse
/// once per level, so a deeper one (only a damaged or forged entry: a file, or the shared
/// store's bytes) is rejected before it can overflow the stack.
const MAX_NESTING: usize = 256;

thread_local! {
    static DECODE_DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A value inside an array, a map or a tag: encoded exactly as the value itself, decoded one
/// level deeper, within [`MAX_NESTING`].
#[derive(Encode)]
struct Nested(DiskValue);

impl<Context> Decode<Context> for Nested {
    fn decode<D: bincode::de::Decoder<Context = Context>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        let depth = DECODE_DEPTH.with(|d| {
            d.set(d.get() + 1);
            d.get()
        });
        let decoded = if depth > MAX_NESTING {
            Err(bincode::error::DecodeError::Other(
                "values nested deeper than 256 levels",
            ))
        } else {
            DiskValue::decode(decoder).map(Nested)
        };
        DECODE_DEPTH.with(|d| d.set(d.get() - 1));
        decoded
    }
}
bincode::impl_borrow_decode!(Nested);

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

/// The frames of one entry as they are written: each as an Arrow IPC file, a frame met twice
/// (a returned frame also shown as a table) stored once.
#[derive(Default)]
struct FrameSink {
    frames: Vec<Frame>,
    files: Vec<Vec<u8>>,
}

impl FrameSink {
    fn push(&mut self, frame: &Frame) -> std::io::Result<u32> {
        if let Some(i) = self.frames.iter().position(|f| f.same_data(frame)) {
            return Ok(i as u32);
        }
        self.files.push(frame_to_ipc(&frame.0).map_err(|e| {
            std::io::Error::other(format!("cannot write a frame as Arrow IPC: {e}"))
        })?);
        self.frames.push(frame.clone());
        Ok((self.files.len() - 1) as u32)
    }
}

/// Whether an entry can be persisted (widgets are live and are not written to disk).
pub fn can_persist(elements: &[Element]) -> bool {
    !elements.iter().any(|e| e.kind.is_widget())
}

/// An entry encoded in the file layout, in parts (the frames are not copied into one buffer
/// to write a file).
pub struct Encoded {
    header: Vec<u8>,
    meta: Vec<u8>,
    /// Each frame's IPC file, and how many zero bytes go before it.
    frames: Vec<(usize, Vec<u8>)>,
}

impl Encoded {
    /// The parts, in order.
    fn parts(&self) -> impl Iterator<Item = &[u8]> {
        [self.header.as_slice(), self.meta.as_slice()]
            .into_iter()
            .chain(
                self.frames
                    .iter()
                    .flat_map(|(pad, file)| [&PADDING[..*pad], file.as_slice()]),
            )
    }

    /// Total bytes.
    fn len(&self) -> usize {
        self.parts().map(<[u8]>::len).sum()
    }

    /// The whole entry as one buffer (for the shared store).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        for part in self.parts() {
            out.extend_from_slice(part);
        }
        out
    }
}

/// Encodes an entry of `function` in the file layout (see the module docs).
pub fn encode(
    function: &str,
    created: Duration,
    value: &CachedValue,
    elements: &[Element],
    files: &[FileRead],
) -> std::io::Result<Encoded> {
    let mut frames = FrameSink::default();
    let value = to_disk_value(value, &mut frames)?;
    let elements = elements
        .iter()
        .map(|e| to_disk_element(e, &mut frames))
        .collect::<std::io::Result<_>>()?;
    let meta = Meta {
        function: function.to_string(),
        created_ms: created.as_millis() as u64,
        value,
        elements,
        frames: frames.files.iter().map(|f| f.len() as u64).collect(),
        files: files.iter().map(DiskFile::new).collect(),
    };
    let meta_bytes = bincode::encode_to_vec(&meta, bincode::config::standard())
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut at = HEADER_LEN + meta_bytes.len();
    let frames: Vec<(usize, Vec<u8>)> = frames
        .files
        .into_iter()
        .map(|file| {
            let pad = padding(at);
            at += pad + file.len();
            (pad, file)
        })
        .collect();
    let mut hasher = Xxh3::new();
    hasher.update(&(meta_bytes.len() as u64).to_le_bytes());
    hasher.update(&meta_bytes);
    for (pad, file) in &frames {
        hasher.update(&PADDING[..*pad]);
        hasher.update(file);
    }
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    header.extend_from_slice(&ENDIAN_MARK.to_ne_bytes());
    header.extend_from_slice(&hasher.digest().to_le_bytes());
    header.extend_from_slice(&(meta_bytes.len() as u64).to_le_bytes());
    Ok(Encoded {
        header,
        meta: meta_bytes,
        frames,
    })
}

/// Writes an entry atomically (the front encodes with the fn's name and writes with
/// [`write_encoded`]; tests write unnamed entries this way).
#[cfg(test)]
pub fn write(
    path: &Path,
    created: Duration,
    value: &CachedValue,
    elements: &[Element],
    files: &[FileRead],
) -> std::io::Result<()> {
    write_encoded(path, &encode("", created, value, elements, files)?)
}

/// Writes an encoded entry atomically: to a temporary name, then renamed.
pub fn write_encoded(path: &Path, encoded: &Encoded) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.is_dir() {
        create_private_dir(dir)?;
    }
    let tmp = dir.join(format!(
        ".{}.{}.{:?}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id(),
        std::thread::current().id()
    ));
    let result = (|| {
        // A temporary left by a crash of this very thread is replaced, not appended to.
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::io::BufWriter::with_capacity(1 << 20, create_private_file(&tmp)?);
        for part in encoded.parts() {
            file.write_all(part)?;
        }
        // Not synced to the device: this is a cache. The rename makes a file appear whole or
        // not at all for readers; after a power cut a file the kernel had not written out is
        // caught by its checksum, dropped and computed again. Syncing cost a second per
        // 300 MB frame on every write and every back-fill from the shared store.
        file.into_inner().map_err(|e| e.into_error())?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Reads an entry back, memory-mapped: its frames' numbers point into the file's mapping,
/// which lives as long as they do (see the module docs).
pub fn read(path: &Path) -> Result<PersistedEntry, ReadError> {
    let mapping = match Mapping::open(path) {
        Ok(mapping) => mapping,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Err(ReadError::Missing);
        }
        Err(e) => return Err(ReadError::Corrupt(format!("cannot read: {e}"))),
    };
    decode_in(mapping.bytes(), Some(&mapping))
}

/// Decodes an entry from the file layout, trusting no length it claims (the frames are
/// copied out of `bytes`).
pub fn decode(bytes: &[u8]) -> Result<PersistedEntry, ReadError> {
    decode_in(bytes, None)
}

/// [`decode`], the frames' numbers shared with `mapping` when `bytes` are its bytes.
fn decode_in(bytes: &[u8], mapping: Option<&Arc<Mapping>>) -> Result<PersistedEntry, ReadError> {
    let corrupt = |what: &str| ReadError::Corrupt(what.to_string());
    if bytes.len() < HEADER_LEN {
        return Err(corrupt("truncated header"));
    }
    let header = &bytes[..HEADER_LEN];
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
    let meta_len = usize::try_from(long(24)).unwrap_or(usize::MAX);
    let body = &bytes[HEADER_LEN..];
    if meta_len > body.len() {
        return Err(corrupt("truncated metadata"));
    }
    // Nothing is decoded before the checksum holds: a damaged file never reaches a decoder.
    if xxhash_rust::xxh3::xxh3_64(&bytes[CHECKED_FROM..]) != checksum {
        return Err(corrupt("checksum mismatch"));
    }
    let (meta, used) =
        decode_meta(&body[..meta_len]).map_err(|e| ReadError::Corrupt(format!("metadata: {e}")))?;
    if used != meta_len {
        return Err(corrupt("metadata length mismatch"));
    }
    let mut at = HEADER_LEN + meta_len;
    let mut frames = Vec::with_capacity(meta.frames.len());
    for (i, &len) in meta.frames.iter().enumerate() {
        let pad = padding(at);
        let zeros = bytes
            .get(at..at + pad)
            .ok_or_else(|| corrupt("truncated frame data"))?;
        if zeros.iter().any(|&b| b != 0) {
            return Err(corrupt("bytes between frames are not zero"));
        }
        at += pad;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > bytes.len() - at {
            return Err(corrupt("truncated frame data"));
        }
        frames.push(
            frame_from_ipc_guarded(&bytes[at..at + len], mapping)
                .map_err(|e| ReadError::Corrupt(format!("frame {i}: {e}")))?,
        );
        at += len;
    }
    if at != bytes.len() {
        return Err(corrupt("trailing bytes"));
    }
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
        files: meta
            .files
            .into_iter()
            .map(DiskFile::into_file_read)
            .collect(),
    })
}

/// What `cellar cache ls` shows of an entry file, read from its header and metadata only.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The cached fn (empty when the writer did not name it).
    pub function: String,
    /// When it was computed (wall clock since the epoch).
    pub created: Duration,
    /// What the value is.
    pub value: String,
}

/// Reads an entry's header and metadata, not its frames (no checksum is verified: for
/// listing, not for serving).
pub fn peek(bytes: &[u8]) -> Result<Summary, String> {
    if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
        return Err("not a Cellar cache entry".to_string());
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(format!(
            "format version {version} (this Cellar reads {FORMAT_VERSION})"
        ));
    }
    let meta_len = u64::from_le_bytes(bytes[24..32].try_into().expect("8 bytes"));
    let meta_len = usize::try_from(meta_len).unwrap_or(usize::MAX);
    let body = &bytes[HEADER_LEN..];
    if meta_len > body.len() {
        return Err("truncated metadata".to_string());
    }
    let (meta, _) = decode_meta(&body[..meta_len]).map_err(|e| format!("metadata: {e}"))?;
    Ok(Summary {
        function: meta.function,
        created: Duration::from_millis(meta.created_ms),
        value: describe_disk_value(&meta.value),
    })
}

/// A short description of a stored value, without decoding its frames.
fn describe_disk_value(value: &DiskValue) -> String {
    match value {
        DiskValue::Frame(_) => "a DataFrame".to_string(),
        DiskValue::Array(items) => format!("an array of {}", items.len()),
        DiskValue::Map(entries) => format!("a map of {}", entries.len()),
        DiskValue::Str(s) => format!("a string of {} bytes", s.len()),
        DiskValue::Blob(b) => format!("a blob of {} bytes", b.len()),
        DiskValue::Tagged(_, inner) => describe_disk_value(&inner.0),
        DiskValue::Int(_) | DiskValue::Float(_) => "a number".to_string(),
        DiskValue::Bool(_) | DiskValue::Char(_) | DiskValue::Unit => "a value".to_string(),
    }
}

/// Every entry file in `dir`: its path and size.
pub fn entry_files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(PathBuf, u64)> = read
        .flatten()
        .filter(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name.split_once('-')
                .is_some_and(|(_, rest)| is_code_and_key(rest))
        })
        .map(|entry| {
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            (entry.path(), size)
        })
        .collect();
    files.sort();
    files
}

/// Files in `dir` that no Cellar of this version reads: temporaries left by a crash and
/// entries of older format versions or damaged ones (`cellar cache prune`).
pub fn leftover_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    read.flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.starts_with('.') && name.ends_with(".tmp") {
                return true;
            }
            let ours = name
                .split_once('-')
                .is_some_and(|(_, rest)| is_code_and_key(rest));
            ours && self::read(path).is_err()
        })
        .collect()
}

/// How many bytes of memory decoding may claim per byte of metadata. A decoded value is larger
/// in memory than on disk (a one-byte `()` in a list is a 32-byte `DiskValue`; the worst case,
/// an element of a list of elements, is about 35 times its smallest encoding): 64 leaves room.
const META_MEMORY_FACTOR: usize = 64;

/// Decodes the metadata under bincode's allocation limit: every length read (of a string, a
/// list) is claimed against the limit before anything is allocated for it, so a length the
/// bytes cannot hold fails with "limit exceeded" instead of allocating it. The limit is
/// `META_MEMORY_FACTOR` times the metadata's size (plus 64 KiB), rounded up to a power of 16:
/// bincode takes it as a constant, hence the few instances.
fn decode_meta(bytes: &[u8]) -> Result<(Meta, usize), bincode::error::DecodeError> {
    let budget = bytes
        .len()
        .saturating_mul(META_MEMORY_FACTOR)
        .saturating_add(64 * 1024);
    macro_rules! within {
        ($($limit:expr),*) => {$(
            if budget <= $limit {
                let config = bincode::config::standard().with_limit::<{ $limit }>();
                return bincode::decode_from_slice(bytes, config);
            }
        )*};
    }
    within!(1 << 20, 1 << 24, 1 << 28, 1 << 32, 1 << 36);
    let config = bincode::config::standard().with_limit::<{ usize::MAX }>();
    bincode::decode_from_slice(bytes, config)
}

fn to_disk_value(value: &CachedValue, frames: &mut FrameSink) -> std::io::Result<DiskValue> {
    Ok(match value {
        CachedValue::Unit => DiskValue::Unit,
        CachedValue::Bool(b) => DiskValue::Bool(*b),
        CachedValue::Int(i) => DiskValue::Int(*i),
        CachedValue::Float(f) => DiskValue::Float(*f),
        CachedValue::Str(s) => DiskValue::Str(s.clone()),
        CachedValue::Char(c) => DiskValue::Char(*c),
        CachedValue::Blob(b) => DiskValue::Blob(b.clone()),
        CachedValue::Array(items) => DiskValue::Array(
            items
                .iter()
                .map(|v| to_disk_value(v, frames).map(Nested))
                .collect::<std::io::Result<_>>()?,
        ),
        CachedValue::Map(entries) => DiskValue::Map(
            entries
                .iter()
                .map(|(k, v)| Ok((k.clone(), Nested(to_disk_value(v, frames)?))))
                .collect::<std::io::Result<_>>()?,
        ),
        CachedValue::Frame(frame) => DiskValue::Frame(frames.push(frame)?),
        CachedValue::Tagged(tag, inner) => {
            DiskValue::Tagged(*tag, Box::new(Nested(to_disk_value(inner, frames)?)))
        }
    })
}

fn from_disk_value(value: DiskValue, frames: &[Frame]) -> Result<CachedValue, String> {
    Ok(match value {
        DiskValue::Unit => CachedValue::Unit,
        DiskValue::Bool(b) => CachedValue::Bool(b),
        DiskValue::Int(i) => CachedValue::Int(i),
        DiskValue::Float(f) => CachedValue::Float(f),
        DiskValue::Str(s) => CachedValue::Str(s),
        DiskValue::Char(c) => CachedValue::Char(c),
        DiskValue::Blob(b) => CachedValue::Blob(b),
        DiskValue::Array(items) => CachedValue::Array(
            items
                .into_iter()
                .map(|v| from_disk_value(v.0, frames))
                .collect::<Result<_, _>>()?,
        ),
        DiskValue::Map(entries) => CachedValue::Map(
            entries
                .into_iter()
                .map(|(k, v)| Ok((k, from_disk_value(v.0, frames)?)))
                .collect::<Result<_, String>>()?,
        ),
        DiskValue::Frame(i) => CachedValue::Frame(frame_at(frames, i)?),
        DiskValue::Tagged(tag, inner) => {
            CachedValue::Tagged(tag, Box::new(from_disk_value(inner.0, frames)?))
        }
    })
}

fn frame_at(frames: &[Frame], index: u32) -> Result<Frame, String> {
    frames
        .get(index as usize)
        .cloned()
        .ok_or_else(|| format!("frame {index} missing"))
}

fn to_disk_element(element: &Element, frames: &mut FrameSink) -> std::io::Result<DiskElement> {
    let payload = match &element.payload {
        Payload::Frame(frame) => DiskPayload::Frame(frames.push(frame)?),
        Payload::Chart { frame, x, y } => DiskPayload::Chart {
            frame: frames.push(frame)?,
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
    Ok(DiskElement {
        kind: element.kind.name().to_string(),
        text: element.text.clone(),
        payload,
    })
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

/// A frame as one Arrow IPC file (uncompressed), one record batch per chunk, written the way
/// polars' own `IpcWriter` writes it.
fn frame_to_ipc(df: &DataFrame) -> PolarsResult<Vec<u8>> {
    let mut df = df.clone();
    if df.height() == 0 {
        // No rows: one empty batch, whatever chunks the columns had.
        df = df.clear();
    }
    df.align_chunks();
    let schema: ArrowSchema = df
        .schema()
        .iter_fields()
        .map(|field| {
            let field = field
                .dtype()
                .to_arrow_field(field.name().clone(), CompatLevel::newest());
            (field.name.clone(), field)
        })
        .collect();
    let mut writer = ipc_write::FileWriter::try_new(
        Vec::new(),
        Arc::new(schema),
        None,
        ipc_write::WriteOptions { compression: None },
    )?;
    for batch in df.iter_chunks(CompatLevel::newest(), false) {
        writer.write(&batch, None)?;
    }
    writer.finish()?;
    Ok(writer.into_inner())
}

/// A frame back from its IPC file ([`mapped::frame_from_ipc`]: its numbers shared with
/// `mapping` when the bytes lie in it), with a panic in the Arrow reader (bytes it did not
/// expect: a damaged or forged entry) reported as a damaged entry, which the caller drops and
/// recomputes.
fn frame_from_ipc_guarded(bytes: &[u8], mapping: Option<&Arc<Mapping>>) -> Result<Frame, String> {
    std::panic::catch_unwind(|| mapped::frame_from_ipc(bytes, mapping))
        .unwrap_or_else(|_| Err("the Arrow reader could not make sense of it".to_string()))
        .map(Frame::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replaces a file's content with `bytes`: a new file (cache files are read-only, and a
    /// file a test read may still be mapped).
    fn overwrite(path: &Path, bytes: &[u8]) {
        let _ = std::fs::remove_file(path);
        std::fs::write(path, bytes).unwrap();
    }

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
        assert_eq!(
            path.file_name().unwrap().to_string_lossy(),
            format!(
                "{}-0000000000000007-{:032x}.cellar",
                function_digest("load data"),
                42
            )
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
        write(&path, Duration::from_secs(1000), &value, &elements, &[]).unwrap();
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
            &[],
        )
        .unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0xff;
        overwrite(&path, &bytes);
        assert!(matches!(read(&path), Err(ReadError::Corrupt(m)) if m == "checksum mismatch"));
        overwrite(&path, b"garbage");
        assert!(matches!(read(&path), Err(ReadError::Corrupt(_))));
        assert!(matches!(
            read(&dir.path().join("none.cellar")),
            Err(ReadError::Missing)
        ));
    }

    fn list_of<T>(name: &str, lists: Vec<Option<Vec<T>>>) -> Column
    where
        Series: NamedFrom<Vec<T>, [T]>,
    {
        let ca: ListChunked = lists
            .into_iter()
            .map(|l| l.map(|l| Series::new("".into(), l)))
            .collect();
        ca.with_name(name.into()).into_series().into_column()
    }

    /// One column of every dtype this build of polars has, with nulls and extremes. (u8 and
    /// u16 columns cannot exist: polars' dtype-u8/u16 features are off in this workspace.)
    fn every_dtype_frame() -> DataFrame {
        let cast = |s: Series, dtype: DataType| s.cast(&dtype).unwrap().into_column();
        let ids = Series::new("id".into(), [Some(1i64), Some(2), None]);
        let names = Series::new("name".into(), [Some("a"), None, Some("c")]);
        let structs = StructChunked::from_series("struct".into(), 3, [ids, names].iter())
            .unwrap()
            .into_series()
            .into_column();
        let columns = vec![
            Series::new("i8".into(), [Some(i8::MIN), None, Some(i8::MAX)]).into_column(),
            Series::new("i16".into(), [Some(i16::MIN), None, Some(i16::MAX)]).into_column(),
            Series::new("i32".into(), [Some(i32::MIN), None, Some(i32::MAX)]).into_column(),
            Series::new("i64".into(), [Some(i64::MIN), None, Some(i64::MAX)]).into_column(),
            Series::new("u32".into(), [Some(0u32), None, Some(u32::MAX)]).into_column(),
            Series::new("u64".into(), [Some(u64::MAX), None, Some(0)]).into_column(),
            Series::new("f32".into(), [Some(1.5f32), None, Some(f32::MIN_POSITIVE)]).into_column(),
            Series::new("f64".into(), [Some(-0.1f64), None, Some(f64::MAX)]).into_column(),
            Series::new("bool".into(), [Some(true), None, Some(false)]).into_column(),
            Series::new(
                "str".into(),
                [Some("x"), None, Some("a string longer than twelve bytes")],
            )
            .into_column(),
            cast(
                Series::new("date".into(), [Some(19_000i32), None, Some(-1)]),
                DataType::Date,
            ),
            cast(
                Series::new(
                    "datetime".into(),
                    [Some(1_700_000_000_000_000i64), None, Some(0)],
                ),
                DataType::Datetime(TimeUnit::Microseconds, None),
            ),
            cast(
                Series::new(
                    "datetime_utc".into(),
                    [Some(1_700_000_000_000i64), None, Some(1)],
                ),
                DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC)),
            ),
            cast(
                Series::new("duration".into(), [Some(5i64), None, Some(-5)]),
                DataType::Duration(TimeUnit::Nanoseconds),
            ),
            cast(
                Series::new("time".into(), [Some(3_600_000_000_000i64), None, Some(0)]),
                DataType::Time,
            ),
            list_of("list_i64", vec![Some(vec![1i64, 2, 3]), None, Some(vec![])]),
            list_of("list_str", vec![Some(vec!["a", "b"]), Some(vec![]), None]),
            structs,
            Series::new(
                "binary".into(),
                [Some(b"\x00\xff".as_slice()), None, Some(b"".as_slice())],
            )
            .into_column(),
            Series::full_null("null".into(), 3, &DataType::Null).into_column(),
            Series::new("i128".into(), [Some(i128::MIN), None, Some(i128::MAX)]).into_column(),
            cast(
                Series::new("decimal".into(), [Some(1i64), None, Some(-3)]),
                DataType::Decimal(10, 2),
            ),
            cast(
                list_of("array", vec![Some(vec![1i64, 2]), None, Some(vec![3, 4])])
                    .take_materialized_series(),
                DataType::Array(Box::new(DataType::Int64), 2),
            ),
            cast(
                Series::new("categorical".into(), [Some("x"), None, Some("y")]),
                DataType::from_categories(Categories::global()),
            ),
            cast(
                Series::new("enum".into(), [Some("b"), None, Some("a")]),
                DataType::from_frozen_categories(FrozenCategories::new(["a", "b", "c"]).unwrap()),
            ),
            {
                let inner = |lists: Vec<Vec<i64>>| {
                    list_of("", lists.into_iter().map(Some).collect()).take_materialized_series()
                };
                let ca: ListChunked = [
                    Some(inner(vec![vec![1], vec![2, 3]])),
                    None,
                    Some(inner(vec![vec![]])),
                ]
                .into_iter()
                .collect();
                ca.with_name("list_list".into()).into_series().into_column()
            },
        ];
        DataFrame::new(3, columns).unwrap()
    }

    fn assert_same_frame(back: &DataFrame, original: &DataFrame) {
        assert_eq!(back.width(), original.width());
        assert_eq!(back.height(), original.height());
        for (b, o) in back.columns().iter().zip(original.columns()) {
            assert_eq!(b.name(), o.name());
            assert_eq!(b.dtype(), o.dtype(), "dtype of column {}", o.name());
        }
        assert!(
            back.equals_missing(original),
            "{back:?}\nis not\n{original:?}"
        );
    }

    fn round_trip(value: &CachedValue) -> CachedValue {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.cellar");
        write(&path, Duration::from_millis(1234), value, &[], &[]).unwrap();
        let back = read(&path).unwrap();
        assert_eq!(back.created, Duration::from_millis(1234));
        back.value
    }

    fn frame_of(value: CachedValue) -> DataFrame {
        match value {
            CachedValue::Frame(frame) => frame.0,
            other => panic!("not a frame: {other:?}"),
        }
    }

    #[test]
    fn every_dtype_round_trips_exactly() {
        let df = every_dtype_frame();
        let back = frame_of(round_trip(&CachedValue::Frame(Frame::new(df.clone()))));
        assert_same_frame(&back, &df);
        let u64s = back.column("u64").unwrap().u64().unwrap().get(0);
        assert_eq!(u64s, Some(u64::MAX));
        // And the digest, the cache key, is that of the original.
        assert_eq!(
            super::super::key::digest(&rhai::Dynamic::from(Frame::new(back))).unwrap(),
            super::super::key::digest(&rhai::Dynamic::from(Frame::new(df))).unwrap()
        );
    }

    #[test]
    fn frames_of_many_chunks_no_rows_or_no_columns_round_trip() {
        let mut chunked = every_dtype_frame();
        chunked.vstack_mut(&every_dtype_frame()).unwrap();
        assert!(chunked.first_col_n_chunks() > 1);
        let back = frame_of(round_trip(&CachedValue::Frame(Frame::new(chunked.clone()))));
        assert_same_frame(&back, &chunked);
        let empty = every_dtype_frame().clear();
        let back = frame_of(round_trip(&CachedValue::Frame(Frame::new(empty.clone()))));
        assert_same_frame(&back, &empty);
        let sliced = every_dtype_frame().slice(1, 2);
        let back = frame_of(round_trip(&CachedValue::Frame(Frame::new(sliced.clone()))));
        assert_same_frame(&back, &sliced);
        let no_columns = DataFrame::empty_with_height(5);
        let back = frame_of(round_trip(&CachedValue::Frame(Frame::new(no_columns))));
        assert_eq!((back.height(), back.width()), (5, 0));
    }

    #[test]
    fn chars_and_tags_round_trip() {
        let value = CachedValue::Array(vec![
            CachedValue::Char('a'),
            CachedValue::Str("a".into()),
            CachedValue::Tagged(42, Box::new(CachedValue::Int(5))),
            CachedValue::Tagged(
                -1,
                Box::new(CachedValue::Map(vec![(
                    "c".into(),
                    CachedValue::Tagged(7, Box::new(CachedValue::Char('é'))),
                )])),
            ),
            CachedValue::Tagged(3, Box::new(CachedValue::Frame(sample_frame()))),
        ]);
        assert_eq!(round_trip(&value), value);
    }

    #[test]
    fn the_files_an_entry_read_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data.csv");
        std::fs::write(&data, "a\n1\n").unwrap();
        let file = FileRead::now("data.csv", &data);
        assert!(file.fingerprint.modified.is_some());
        let path = dir.path().join("entry.cellar");
        write(
            &path,
            Duration::from_secs(5),
            &CachedValue::Int(1),
            &[],
            std::slice::from_ref(&file),
        )
        .unwrap();
        let back = read(&path).unwrap();
        assert_eq!(back.files, [file]);
        assert_eq!(back.created, Duration::from_secs(5));
    }

    #[test]
    fn a_frame_met_twice_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let once = dir.path().join("once.cellar");
        let twice = dir.path().join("twice.cellar");
        let frame = Frame::new(every_dtype_frame());
        write(
            &once,
            Duration::ZERO,
            &CachedValue::Frame(frame.clone()),
            &[],
            &[],
        )
        .unwrap();
        let shown = Element {
            kind: ElementKind::Dataframe,
            text: String::new(),
            payload: Payload::Frame(frame.clone()),
        };
        write(
            &twice,
            Duration::ZERO,
            &CachedValue::Frame(frame.clone()),
            &[shown],
            &[],
        )
        .unwrap();
        let size = |p: &Path| std::fs::metadata(p).unwrap().len();
        assert!(
            size(&twice) < size(&once) + 100,
            "{} vs {}",
            size(&twice),
            size(&once)
        );
        let back = read(&twice).unwrap();
        assert_same_frame(&frame_of(back.value), &frame.0);
        assert_same_frame(&back.elements[0].frame().unwrap().0, &frame.0);
    }

    #[test]
    fn truncated_and_garbled_files_are_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.cellar");
        write(
            &path,
            Duration::ZERO,
            &CachedValue::Frame(Frame::new(every_dtype_frame())),
            &[],
            &[],
        )
        .unwrap();
        let good = std::fs::read(&path).unwrap();
        let corrupt = |bytes: &[u8]| {
            overwrite(&path, bytes);
            match read(&path) {
                Err(ReadError::Corrupt(why)) => why,
                Err(ReadError::Missing) => panic!("missing"),
                Ok(_) => panic!("damaged file read as good"),
            }
        };
        // Truncated anywhere: in the header, the metadata, the frame.
        for len in [
            0,
            10,
            HEADER_LEN,
            HEADER_LEN + 5,
            good.len() / 2,
            good.len() - 1,
        ] {
            corrupt(&good[..len]);
        }
        // Garbled: one bit anywhere after the header, or a byte appended.
        for at in [HEADER_LEN + 1, good.len() / 2, good.len() - 2] {
            let mut bytes = good.clone();
            bytes[at] ^= 0x10;
            assert_eq!(corrupt(&bytes), "checksum mismatch");
        }
        let mut longer = good.clone();
        longer.push(0);
        corrupt(&longer);
        // Damage that a valid checksum covers (a bug, not a disk) still fails cleanly: the IPC
        // footer magic broken, checksum recomputed.
        let mut bytes = good.clone();
        let last = bytes.len() - 1;
        bytes[last] = b'X';
        let checksum = xxhash_rust::xxh3::xxh3_64(&bytes[CHECKED_FROM..]);
        bytes[16..24].copy_from_slice(&checksum.to_le_bytes());
        assert!(corrupt(&bytes).starts_with("frame 0:"));
        // Another version's file is dropped too.
        let mut bytes = good.clone();
        bytes[8..12].copy_from_slice(&(FORMAT_VERSION - 1).to_le_bytes());
        assert!(corrupt(&bytes).starts_with("format version"));
        overwrite(&path, &good);
        assert!(read(&path).is_ok());
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

    /// A file with a valid header and checksum around `meta` (and nothing after): what a
    /// forger, or a bug, could write. It reaches the metadata decoder.
    fn forged(meta: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&ENDIAN_MARK.to_ne_bytes());
        bytes.extend_from_slice(&[0; 8]);
        bytes.extend_from_slice(&(meta.len() as u64).to_le_bytes());
        bytes.extend_from_slice(meta);
        let checksum = xxhash_rust::xxh3::xxh3_64(&bytes[CHECKED_FROM..]);
        bytes[16..24].copy_from_slice(&checksum.to_le_bytes());
        bytes
    }

    /// Reads `bytes` as a file: anything but a good entry must be `Corrupt` (the file exists).
    fn read_bytes(dir: &Path, bytes: &[u8]) -> Result<PersistedEntry, String> {
        let path = dir.join("x.cellar");
        overwrite(&path, bytes);
        match read(&path) {
            Ok(entry) => Ok(entry),
            Err(ReadError::Corrupt(why)) => Err(why),
            Err(ReadError::Missing) => panic!("an existing file read as missing"),
        }
    }

    #[test]
    fn every_truncation_of_a_good_file_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("good.cellar");
        let value = CachedValue::Map(vec![
            ("frame".into(), CachedValue::Frame(sample_frame())),
            ("s".into(), CachedValue::Str("text".into())),
        ]);
        let shown = Element::text(ElementKind::Success, "done");
        write(&path, Duration::from_secs(9), &value, &[shown], &[]).unwrap();
        let good = std::fs::read(&path).unwrap();
        for len in 0..good.len() {
            assert!(
                read_bytes(dir.path(), &good[..len]).is_err(),
                "cut at {len} of {} read as good",
                good.len()
            );
        }
        assert_eq!(read_bytes(dir.path(), &good).unwrap().value, value);
    }

    #[test]
    fn claimed_lengths_beyond_the_file_are_rejected_before_allocating() {
        let dir = tempfile::tempdir().unwrap();
        // The header claims more metadata than the file holds.
        for claim in [u64::MAX, 1 << 40, 100] {
            let mut bytes = forged(&[0; 10]);
            bytes[24..32].copy_from_slice(&claim.to_le_bytes());
            assert_eq!(
                read_bytes(dir.path(), &bytes).unwrap_err(),
                "truncated metadata"
            );
        }
        // The metadata claims a string of 2^40 bytes, a list of 2^40 values, a list of 2^60
        // elements, with the checksum right: bincode's limit refuses them before allocating
        // (allocating them would abort the process).
        let huge = |n: u64| {
            let mut varint = vec![0xfd];
            varint.extend_from_slice(&n.to_le_bytes());
            varint
        };
        // created_ms = 0, then a DiskValue: variant 4 is Str, 7 is Array.
        for meta in [
            [&[0u8, 4][..], &huge(1 << 40)].concat(),
            [&[0u8, 7][..], &huge(1 << 40)].concat(),
            [&[0u8, 7][..], &huge(u64::MAX)].concat(),
            [&[0u8, 0][..], &huge(1 << 60)].concat(),
        ] {
            let why = read_bytes(dir.path(), &forged(&meta)).unwrap_err();
            assert!(why.starts_with("metadata:"), "{why}");
        }
    }

    #[test]
    fn a_long_list_of_small_values_is_within_the_limit() {
        // The worst ratio of memory to bytes on disk: `()` is one byte, and 32 in memory.
        let units = CachedValue::Array(vec![CachedValue::Unit; 200_000]);
        assert_eq!(round_trip(&units), units);
        let pairs = CachedValue::Map(
            (0..50_000)
                .map(|_| (String::new(), CachedValue::Unit))
                .collect(),
        );
        assert_eq!(round_trip(&pairs), pairs);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.cellar");
        let elements = vec![Element::text(ElementKind::Text, ""); 50_000];
        write(&path, Duration::ZERO, &CachedValue::Unit, &elements, &[]).unwrap();
        assert_eq!(read(&path).unwrap().elements.len(), 50_000);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn random_bytes_are_corrupt(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let dir = tempfile::tempdir().unwrap();
            proptest::prop_assert!(read_bytes(dir.path(), &bytes).is_err());
            // The same bytes after a good magic and version: still corrupt, never a panic.
            let mut headed = forged(&[]);
            headed.truncate(16);
            headed.extend_from_slice(&bytes);
            proptest::prop_assert!(read_bytes(dir.path(), &headed).is_err());
        }

        /// Random metadata with a valid checksum reaches the decoder: it may decode (a tiny
        /// valid entry), but never panics or allocates what it claims.
        #[test]
        fn random_metadata_never_panics(
            meta in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::num::u8::ANY,
                    proptest::sample::select(vec![0u8, 1, 4, 7, 8, 0xfb, 0xfc, 0xfd, 0xff]),
                ],
                0..256,
            )
        ) {
            let dir = tempfile::tempdir().unwrap();
            let _ = read_bytes(dir.path(), &forged(&meta));
        }
    }

    #[test]
    fn names_are_digests_whatever_the_function_is_called() {
        let dir = tempfile::tempdir().unwrap();
        let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
        let long = "x".repeat(10_000);
        let names = [
            "load",
            "load data",
            "load_data",
            "../../etc/passwd",
            "a/b\\c",
            "",
            "\0",
            "é🙂",
            ".hidden",
            long.as_str(),
        ];
        let mut seen = std::collections::HashSet::new();
        for name in names {
            let path = entry_path(dir.path(), name, u128::MAX, 1);
            assert_eq!(path.parent(), Some(dir.path()), "{name:?}");
            let file = path.file_name().unwrap().to_str().unwrap().to_string();
            let stem = file.strip_suffix(".cellar").unwrap();
            let parts: Vec<&str> = stem.split('-').collect();
            assert_eq!(parts.len(), 3, "{file}");
            assert_eq!(
                parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
                [16, 16, 32],
                "{file}"
            );
            assert!(parts.iter().all(|p| hex(p)), "{file}");
            assert!(seen.insert(file), "{name:?} shares a name");
        }
    }

    #[test]
    fn old_files_named_after_the_function_are_removed_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir
            .path()
            .join(format!("load_data-{:016x}-{:032x}.cellar", 1, 2));
        let unrelated = dir.path().join("load_data-notes.cellar");
        std::fs::write(&old, b"old").unwrap();
        std::fs::write(&unrelated, b"mine").unwrap();
        let new = entry_path(dir.path(), "load data", 1, 2);
        write(&new, Duration::ZERO, &CachedValue::Int(1), &[], &[]).unwrap();
        assert_eq!(remove_function_files(dir.path(), "load data", Some(1)), 1);
        assert!(!old.exists() && new.exists() && unrelated.exists());
        assert_eq!(remove_function_files(dir.path(), "load data", None), 1);
        assert!(!new.exists() && unrelated.exists());
    }

    #[cfg(unix)]
    #[test]
    fn files_and_the_folder_cellar_creates_are_the_users_only() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let cache = dir.path().join("cache").join("cellar");
        let path = entry_path(&cache, "f", 1, 2);
        write(&path, Duration::ZERO, &CachedValue::Int(1), &[], &[]).unwrap();
        assert_eq!(mode(&path), 0o400);
        assert_eq!(mode(&cache), 0o700);
        assert_eq!(mode(&dir.path().join("cache")), 0o700);
        // A folder the user made is left as it is.
        assert_eq!(mode(dir.path()), 0o755);
        // A file that was readable by others (an older Cellar) is replaced by a private one.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write(&path, Duration::ZERO, &CachedValue::Int(2), &[], &[]).unwrap();
        assert_eq!(mode(&path), 0o400);
        assert_eq!(read(&path).unwrap().value, CachedValue::Int(2));
        // No temporary is left behind.
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);
    }

    /// An entry (a forged file, or bytes from the shared store) whose value nests far deeper
    /// than any notebook makes: rejected while decoding, before anything recurses that deep.
    #[test]
    fn values_nested_too_deep_are_rejected_not_a_stack_overflow() {
        let mut meta = vec![0u8, 0u8]; // no fn name, created at 0
        for _ in 0..100_000 {
            meta.extend_from_slice(&[7, 1]); // an array of one item...
        }
        meta.push(0); // ... and, at the bottom, ().
        meta.extend_from_slice(&[0, 0, 0]); // no elements, frames or files
        let mut checked = (meta.len() as u64).to_le_bytes().to_vec();
        checked.extend_from_slice(&meta);
        let mut bytes = Vec::new();
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&ENDIAN_MARK.to_ne_bytes());
        bytes.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&checked).to_le_bytes());
        bytes.extend_from_slice(&checked);
        match decode(&bytes) {
            Err(ReadError::Corrupt(why)) => assert!(why.contains("nested deeper"), "{why}"),
            other => panic!("expected a corrupt entry, got {other:?}"),
        }
        // Nesting a notebook makes still round-trips.
        let mut value = CachedValue::Int(1);
        for _ in 0..200 {
            value = CachedValue::Array(vec![value]);
        }
        let encoded = encode("deep", Duration::ZERO, &value, &[], &[]).unwrap();
        assert_eq!(decode(&encoded.to_bytes()).unwrap().value, value);
    }

    /// Bytes that pass the checksum (a forged entry: whoever wrote it computed it) but whose
    /// Arrow data is garbled: every one decodes to a value or to a damaged entry, never to a
    /// panic that would fail the cell.
    #[test]
    fn garbled_arrow_data_with_a_valid_checksum_never_panics() {
        let value = CachedValue::Frame(sample_frame());
        let good = encode("f", Duration::ZERO, &value, &[], &[])
            .unwrap()
            .to_bytes();
        let meta_len = u64::from_le_bytes(good[24..32].try_into().unwrap()) as usize;
        let frames_at = HEADER_LEN + meta_len;
        for at in frames_at..good.len() {
            for flip in [0x01u8, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff] {
                let mut bytes = good.clone();
                bytes[at] ^= flip;
                let sum = xxhash_rust::xxh3::xxh3_64(&bytes[CHECKED_FROM..]);
                bytes[16..24].copy_from_slice(&sum.to_le_bytes());
                let outcome = std::panic::catch_unwind(|| decode(&bytes).map(|_| ()));
                assert!(outcome.is_ok(), "byte {at} ^ {flip:#x} panicked");
            }
        }
    }

    /// The same, read from a file: the numbers of a mapped file are read in place, by a
    /// reader of Cellar's own, which must be as robust as polars'.
    #[test]
    fn garbled_arrow_data_in_a_mapped_file_never_panics() {
        let dir = tempfile::tempdir().unwrap();
        let value = CachedValue::Frame(sample_frame());
        let good = encode("f", Duration::ZERO, &value, &[], &[])
            .unwrap()
            .to_bytes();
        let meta_len = u64::from_le_bytes(good[24..32].try_into().unwrap()) as usize;
        let mut read_back = 0;
        for at in HEADER_LEN + meta_len..good.len() {
            for flip in [0x01u8, 0x10, 0x80, 0xff] {
                let mut bytes = good.clone();
                bytes[at] ^= flip;
                let sum = xxhash_rust::xxh3::xxh3_64(&bytes[CHECKED_FROM..]);
                bytes[16..24].copy_from_slice(&sum.to_le_bytes());
                let outcome = std::panic::catch_unwind(|| read_bytes(dir.path(), &bytes).is_ok());
                assert!(outcome.is_ok(), "byte {at} ^ {flip:#x} panicked");
                read_back += usize::from(outcome.unwrap());
            }
        }
        // Some garbling only changes a value: those files read back (a forged entry cannot be
        // told from a good one), the rest are damaged.
        assert!(read_back > 0);
    }

    /// Where a frame's IPC file starts in an entry's bytes, and its length.
    fn first_frame(bytes: &[u8]) -> (usize, usize) {
        let meta_len = u64::from_le_bytes(bytes[24..32].try_into().unwrap()) as usize;
        let (meta, _) = decode_meta(&bytes[HEADER_LEN..HEADER_LEN + meta_len]).unwrap();
        let at = HEADER_LEN + meta_len;
        (at + padding(at), meta.frames[0] as usize)
    }

    #[test]
    fn each_frame_is_an_arrow_ipc_file_on_a_64_byte_boundary() {
        let df = every_dtype_frame();
        let shown = Element {
            kind: ElementKind::Dataframe,
            text: String::new(),
            payload: Payload::Frame(sample_frame()),
        };
        let encoded = encode(
            "f",
            Duration::ZERO,
            &CachedValue::Frame(Frame::new(df.clone())),
            &[shown],
            &[],
        )
        .unwrap();
        let bytes = encoded.to_bytes();
        let (at, len) = first_frame(&bytes);
        assert_eq!(at % 64, 0);
        // Any Arrow reader reads it from there: polars' own, here.
        let mut cursor = std::io::Cursor::new(&bytes[at..at + len]);
        let metadata = polars_arrow::io::ipc::read::read_file_metadata(&mut cursor).unwrap();
        let batches: Vec<_> =
            polars_arrow::io::ipc::read::FileReader::new(cursor, metadata, None, None)
                .collect::<Result<_, _>>()
                .unwrap();
        assert_eq!(batches.len(), 1);
        assert_same_frame(&DataFrame::from(batches.into_iter().next().unwrap()), &df);
        // The second frame starts on a boundary too.
        let second = at + len + padding(at + len);
        assert_eq!(second % 64, 0);
        assert_eq!(&bytes[second..second + 6], b"ARROW1");
        // The bytes before a frame are zeros, checked: one set, the checksum made right.
        if at > HEADER_LEN {
            let mut bytes = bytes.clone();
            bytes[at - 1] = 1;
            let sum = xxhash_rust::xxh3::xxh3_64(&bytes[CHECKED_FROM..]);
            bytes[16..24].copy_from_slice(&sum.to_le_bytes());
            assert!(matches!(
                decode(&bytes),
                Err(ReadError::Corrupt(why)) if why == "bytes between frames are not zero"
            ));
        }
    }

    /// The address ranges at which this process maps `path` (from `/proc/self/maps`).
    #[cfg(target_os = "linux")]
    fn mapped_ranges(path: &Path) -> Vec<std::ops::Range<usize>> {
        let path = std::fs::canonicalize(path).unwrap();
        let path = path.to_str().unwrap();
        std::fs::read_to_string("/proc/self/maps")
            .unwrap()
            .lines()
            .filter(|line| line.ends_with(path))
            .map(|line| {
                let (start, rest) = line.split_once('-').unwrap();
                let end = rest.split_once(' ').unwrap().0;
                let hex = |s: &str| usize::from_str_radix(s, 16).unwrap();
                hex(start)..hex(end)
            })
            .collect()
    }

    /// A hit from disk does not copy a frame's numbers: their buffers lie in the mapping of
    /// the cache file, which goes when the last of them does.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_disk_hit_s_numbers_point_into_the_mapped_file() {
        let n: i32 = 100_000;
        let floats: Vec<f64> = (0..n).map(|i| f64::from(i) * 0.5).collect();
        let ints: Vec<Option<i64>> = (0..i64::from(n))
            .map(|i| (i % 7 != 0).then_some(i))
            .collect();
        let mut df = df!(
            "f64" => floats,
            "i64" => ints,
            "str" => (0..n).map(|i| format!("row {i}")).collect::<Vec<_>>(),
        )
        .unwrap();
        df.with_column(
            Series::new("date".into(), (0..n).collect::<Vec<_>>())
                .cast(&DataType::Date)
                .unwrap()
                .into_column(),
        )
        .unwrap();
        let mut chunked = df.clone();
        chunked.vstack_mut(&df).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("entry.cellar");
        write(
            &path,
            Duration::ZERO,
            &CachedValue::Frame(Frame::new(chunked.clone())),
            &[],
            &[],
        )
        .unwrap();
        assert!(mapped_ranges(&path).is_empty());

        let back = frame_of(read(&path).unwrap().value);
        assert_same_frame(&back, &chunked);
        let mapped = mapped_ranges(&path);
        assert!(!mapped.is_empty(), "the file is not mapped");
        let in_mapping = |at: usize| mapped.iter().any(|r| r.contains(&at));
        let column = |name: &str| back.column(name).unwrap().as_materialized_series().clone();
        let f64s = column("f64");
        let i64s = column("i64");
        let dates = column("date");
        let mut pointers: Vec<usize> = Vec::new();
        pointers.extend(
            f64s.f64()
                .unwrap()
                .downcast_iter()
                .map(|a| a.values().as_ptr() as usize),
        );
        pointers.extend(
            i64s.i64()
                .unwrap()
                .downcast_iter()
                .map(|a| a.values().as_ptr() as usize),
        );
        pointers.extend(
            dates
                .date()
                .unwrap()
                .physical()
                .downcast_iter()
                .map(|a| a.values().as_ptr() as usize),
        );
        // Two chunks of three number columns, none copied.
        assert_eq!(pointers.len(), 6);
        for at in pointers {
            assert!(in_mapping(at), "{at:#x} is not in the mapping {mapped:x?}");
        }
        // Strings are copied (checked once by polars' reader, they must not change after).
        let strings = column("str");
        assert!(strings.chunks().iter().all(|chunk| {
            let array = chunk
                .as_any()
                .downcast_ref::<polars_arrow::array::Utf8ViewArray>()
                .unwrap();
            !in_mapping(array.views().as_ptr() as usize)
        }));

        // The mapping lives as long as a buffer does, and no longer.
        drop((back, strings, dates, i64s));
        assert!(!mapped_ranges(&path).is_empty());
        drop(f64s);
        assert!(
            mapped_ranges(&path).is_empty(),
            "the mapping outlived its frames"
        );
    }
}
