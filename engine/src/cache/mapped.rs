//! Persisted frames read back without copying their numbers: a cache file is mapped into
//! memory, and the value buffers of its numeric and temporal columns point into the mapping
//! (which lives as long as any of them does).
//!
//! What is shared with the mapping and what is copied:
//!
//! - Shared: the values of every top-level column of fixed-width numbers (integers, floats,
//!   dates, datetimes, durations, times, decimals), when they lie aligned for their type (in
//!   Cellar's files they do, except 16-byte decimals at times: those are copied). Every bit
//!   pattern of these is a valid value, so nothing polars checks once and trusts later
//!   depends on the file's bytes.
//! - Copied, through polars' own validating Arrow reader: strings and binaries (their views
//!   and UTF-8 are checked once and trusted afterwards), lists, arrays, structs,
//!   categoricals, booleans, and every validity bitmap (a bit per row: small).
//!
//! The mapping is private and read-only. A mapping stays valid only while its file keeps its
//! size: Cellar never truncates or rewrites a cache file in place (files are written under a
//! temporary name and renamed over the old one; removing one unlinks it, and a mapped file
//! lives on until its mapping goes), and the files are read-only even for their owner (see
//! `persist`), so a shell's `>` or a `cp` over one is refused. What remains is another
//! program that makes a file writable again and truncates it while Cellar holds a frame read
//! from it: the next read of a page past the new end faults (SIGBUS) and ends the process. A
//! file cut short between its size being read and it being mapped is caught (its size is
//! checked again once mapped); a file changed in place (without truncating) changes the
//! numbers a frame shows, never memory safety.

use std::collections::VecDeque;
use std::io::Cursor;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::Arc;

use bytemuck::Pod;
use polars::prelude::*;
use polars_arrow::array::{Array, PrimitiveArray};
use polars_arrow::bitmap::Bitmap;
use polars_arrow::datatypes::{ArrowDataType, ArrowSchemaRef, PhysicalType, PrimitiveType};
use polars_arrow::io::ipc::format::ipc::planus::ReadAsRoot;
use polars_arrow::io::ipc::format::ipc::{
    BufferRef, FieldNodeRef, MessageHeaderRef, MessageRef, RecordBatchRef,
};
use polars_arrow::io::ipc::read::{self as ipc_read, Dictionaries, FileMetadata};
use polars_arrow::record_batch::RecordBatchT;
use polars_arrow::types::NativeType;
use polars_buffer::Buffer;

/// A cache file mapped into memory, private and read-only. (Elsewhere than on Unix, read into
/// memory instead: Windows refuses to remove or replace a mapped file, which Cellar does when
/// an entry is recomputed or cleared while a frame read from it lives.)
pub struct Mapping {
    #[cfg(unix)]
    map: memmap2::Mmap,
    #[cfg(not(unix))]
    map: Vec<u8>,
}

impl Mapping {
    /// Maps the file at `path` (an error of kind `NotFound` when there is none).
    #[cfg(unix)]
    pub fn open(path: &Path) -> std::io::Result<Arc<Mapping>> {
        let file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        let len = usize::try_from(len)
            .map_err(|_| std::io::Error::other("the file is larger than the address space"))?;
        let map = map_private(&file, len)?;
        // A file cut short between reading its size and mapping it would fault when the
        // missing pages are read: its size is read again now that the mapping is made.
        if file.metadata()?.len() != len as u64 {
            return Err(std::io::Error::other(
                "the file changed while it was being mapped",
            ));
        }
        // Page cache in 2 MiB folios is then mapped 2 MiB at a time, and a file not in the
        // page cache is read ahead in such folios: a 320 MB file costs 160 page faults
        // rather than tens of thousands. Only advice: ignored where unsupported.
        #[cfg(target_os = "linux")]
        let _ = map.advise(memmap2::Advice::HugePage);
        Ok(Arc::new(Mapping { map }))
    }

    /// Reads the file at `path` into memory (an error of kind `NotFound` when there is none).
    #[cfg(not(unix))]
    pub fn open(path: &Path) -> std::io::Result<Arc<Mapping>> {
        Ok(Arc::new(Mapping {
            map: std::fs::read(path)?,
        }))
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }
}

/// The one unsafe operation of the cache: mapping a file. Mapping is unsafe because the
/// mapped bytes can change, or vanish, under the process if the file is modified or
/// truncated by anyone while mapped (the module docs say how Cellar avoids both, and what
/// remains). What is built on the mapping is safe code: bounds and alignment are checked, and
/// only buffers whose every bit pattern is valid are shared with it.
#[cfg(unix)]
#[allow(unsafe_code)]
fn map_private(file: &std::fs::File, len: usize) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: see above. The mapping is private (MAP_PRIVATE) and read-only, of the length
    // just read from the open file; Cellar itself never writes to a cache file after
    // renaming it into place.
    unsafe {
        memmap2::MmapOptions::new()
            .len(len)
            .map_copy_read_only(file)
    }
}

/// `len` values of `T` at byte `start` of a mapping: the owner of a buffer that points into
/// the mapping, keeping it alive.
struct MappedValues<T> {
    mapping: Arc<Mapping>,
    start: usize,
    len: usize,
    _values: PhantomData<fn() -> T>,
}

impl<T: Pod> AsRef<[T]> for MappedValues<T> {
    fn as_ref(&self) -> &[T] {
        // In bounds and aligned: checked when it was made (the mapping never moves).
        let end = self.start + self.len * size_of::<T>();
        bytemuck::cast_slice(&self.mapping.bytes()[self.start..end])
    }
}

/// A frame back from its IPC file, every column with the very dtype it was written with. When
/// the IPC bytes lie in `mapping`, numeric values are shared with it; otherwise everything is
/// copied.
pub fn frame_from_ipc(ipc: &[u8], mapping: Option<&Arc<Mapping>>) -> Result<DataFrame, String> {
    let mut cursor = Cursor::new(ipc);
    let metadata = ipc_read::read_file_metadata(&mut cursor).map_err(|e| e.to_string())?;
    if !metadata.ipc_schema.is_little_endian {
        return Err("big-endian Arrow data".to_string());
    }
    let schema = metadata.schema.clone();
    let shared: Vec<bool> = schema
        .iter_values()
        .map(|field| shared_type(&field.dtype).is_some())
        .collect();
    // The other columns are read by polars' reader, which also reads the dictionaries.
    let others: Vec<usize> = (0..shared.len()).filter(|&i| !shared[i]).collect();
    let dictionaries = if others.is_empty() {
        Dictionaries::default()
    } else {
        ipc_read::read_file_dictionaries(
            &mut cursor,
            &metadata,
            &mut Vec::new(),
            Default::default(),
        )
        .map_err(|e| e.to_string())?
    };
    let reader = BatchReader {
        ipc,
        metadata: &metadata,
        schema: &schema,
        shared: &shared,
        others: &others,
        dictionaries: &dictionaries,
        mapping: mapping.filter(|m| offset_in(m, ipc).is_some()),
    };
    let mut df: Option<DataFrame> = None;
    for index in 0..metadata.blocks.len() {
        let batch = reader.batch(index)?;
        if batch.arrays().len() != schema.len() {
            return Err("a record batch does not match the schema".to_string());
        }
        let part = DataFrame::from(batch);
        match &mut df {
            None => df = Some(part),
            Some(df) => {
                df.vstack_mut_owned(part).map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(match df {
        Some(df) => df,
        None => DataFrame::empty_with_schema(&Schema::from_arrow_schema(&schema)),
    })
}

/// The record batches of one IPC file.
struct BatchReader<'a> {
    ipc: &'a [u8],
    metadata: &'a FileMetadata,
    schema: &'a ArrowSchemaRef,
    /// Which columns are read here (numbers), by position.
    shared: &'a [bool],
    /// The positions of the others (read by polars' reader).
    others: &'a [usize],
    dictionaries: &'a Dictionaries,
    /// The mapping `ipc` lies in, if it does.
    mapping: Option<&'a Arc<Mapping>>,
}

/// Where a record batch's buffers are, and what is left of its field nodes and buffers as
/// the columns are read in order.
struct Batch<'a> {
    body: usize,
    nodes: VecDeque<FieldNodeRef<'a>>,
    buffers: VecDeque<BufferRef<'a>>,
    variadic_counts: VecDeque<usize>,
}

impl<'a> BatchReader<'a> {
    fn batch(&self, index: usize) -> Result<RecordBatchT<Box<dyn Array>>, String> {
        let block = self.metadata.blocks[index];
        let offset = usize::try_from(block.offset).map_err(|_| "negative block offset")?;
        let meta_len =
            usize::try_from(block.meta_data_length).map_err(|_| "negative metadata length")?;
        let message = message_at(self.ipc, offset)?;
        let batch = match message.header() {
            Ok(Some(MessageHeaderRef::RecordBatch(batch))) => batch,
            _ => return Err("expected a record batch".to_string()),
        };
        if !matches!(batch.compression(), Ok(None)) {
            return Err("compressed Arrow data".to_string());
        }
        let length = batch
            .length()
            .ok()
            .and_then(|l| usize::try_from(l).ok())
            .ok_or("bad record batch length")?;
        let mut parts = Batch::new(batch, offset.checked_add(meta_len).ok_or("bad block")?)?;
        let mut columns: Vec<Option<Box<dyn Array>>> = Vec::with_capacity(self.shared.len());
        for (field, &shared) in self.schema.iter_values().zip(self.shared) {
            if shared {
                columns.push(Some(self.primitive(&field.dtype, &mut parts)?));
            } else {
                parts.skip(&field.dtype)?;
                columns.push(None);
            }
        }
        let mut others: VecDeque<Box<dyn Array>> = if self.others.is_empty() {
            VecDeque::new()
        } else {
            ipc_read::read_batch(
                &mut Cursor::new(self.ipc),
                self.dictionaries,
                self.metadata,
                Some(self.others),
                None,
                index,
                false,
                &mut Vec::new(),
                &mut Vec::new(),
                Default::default(),
            )
            .map_err(|e| e.to_string())?
            .into_arrays()
            .into()
        };
        let arrays = columns
            .into_iter()
            .map(|column| column.or_else(|| others.pop_front()))
            .collect::<Option<Vec<_>>>()
            .ok_or("a record batch does not match the schema")?;
        RecordBatchT::try_new(length, self.schema.clone(), arrays).map_err(|e| e.to_string())
    }

    /// A column of fixed-width numbers: its validity copied, its values shared with the
    /// mapping when there is one (copied otherwise, or when they are not aligned for `T`).
    fn primitive(
        &self,
        dtype: &ArrowDataType,
        parts: &mut Batch<'_>,
    ) -> Result<Box<dyn Array>, String> {
        let (length, null_count) = parts.node()?;
        let validity = parts.buffer(self.ipc)?;
        let values = parts.buffer(self.ipc)?;
        let validity = if null_count > 0 {
            let bytes = length.div_ceil(8);
            if bytes > validity.len() {
                return Err("validity buffer too short".to_string());
            }
            let bytes = &self.ipc[validity.start..validity.start + bytes];
            Some(Bitmap::try_new(bytes.to_vec(), length).map_err(|e| e.to_string())?)
        } else {
            None
        };
        macro_rules! values {
            ($t:ty) => {
                self.values::<$t>(dtype, length, values, validity)
            };
        }
        match shared_type(dtype).ok_or("not a numeric column")? {
            PrimitiveType::Int8 => values!(i8),
            PrimitiveType::Int16 => values!(i16),
            PrimitiveType::Int32 => values!(i32),
            PrimitiveType::Int64 => values!(i64),
            PrimitiveType::Int128 => values!(i128),
            PrimitiveType::UInt8 => values!(u8),
            PrimitiveType::UInt16 => values!(u16),
            PrimitiveType::UInt32 => values!(u32),
            PrimitiveType::UInt64 => values!(u64),
            PrimitiveType::Float32 => values!(f32),
            PrimitiveType::Float64 => values!(f64),
            _ => Err("not a numeric column".to_string()),
        }
    }

    fn values<T: NativeType + Pod>(
        &self,
        dtype: &ArrowDataType,
        length: usize,
        values: std::ops::Range<usize>,
        validity: Option<Bitmap>,
    ) -> Result<Box<dyn Array>, String> {
        let bytes = length
            .checked_mul(size_of::<T>())
            .filter(|&n| n <= values.len())
            .ok_or("values buffer too short")?;
        let bytes = &self.ipc[values.start..values.start + bytes];
        let in_mapping = self
            .mapping
            .filter(|_| bytes.as_ptr().cast::<T>().is_aligned())
            .and_then(|mapping| Some((mapping, offset_in(mapping, bytes)?)));
        let buffer: Buffer<T> = match in_mapping {
            Some((mapping, start)) => Buffer::from_owner(MappedValues::<T> {
                mapping: Arc::clone(mapping),
                start,
                len: length,
                _values: PhantomData,
            }),
            None => Buffer::from(bytemuck::pod_collect_to_vec::<u8, T>(bytes)),
        };
        PrimitiveArray::<T>::try_new(dtype.clone(), buffer, validity)
            .map(|array| array.boxed())
            .map_err(|e| e.to_string())
    }
}

impl<'a> Batch<'a> {
    fn new(batch: RecordBatchRef<'a>, body: usize) -> Result<Self, String> {
        let buffers = match batch.buffers() {
            Ok(Some(buffers)) => buffers.iter().collect(),
            _ => return Err("record batch without buffers".to_string()),
        };
        let nodes = match batch.nodes() {
            Ok(Some(nodes)) => nodes.iter().collect(),
            _ => return Err("record batch without field nodes".to_string()),
        };
        let variadic_counts = match batch.variadic_buffer_counts() {
            Ok(Some(counts)) => counts
                .iter()
                .map(|c| usize::try_from(c).map_err(|_| "negative buffer count".to_string()))
                .collect::<Result<_, _>>()?,
            Ok(None) => VecDeque::new(),
            Err(e) => return Err(e.to_string()),
        };
        Ok(Self {
            body,
            nodes,
            buffers,
            variadic_counts,
        })
    }

    /// The next field node: its length and null count.
    fn node(&mut self) -> Result<(usize, usize), String> {
        let node = self.nodes.pop_front().ok_or("missing field node")?;
        let length = usize::try_from(node.length()).map_err(|_| "negative length")?;
        let nulls = usize::try_from(node.null_count()).map_err(|_| "negative null count")?;
        Ok((length, nulls))
    }

    /// The next buffer, as a range of the IPC file (within it).
    fn buffer(&mut self, ipc: &[u8]) -> Result<std::ops::Range<usize>, String> {
        let buffer = self.buffers.pop_front().ok_or("missing buffer")?;
        let offset = usize::try_from(buffer.offset()).map_err(|_| "negative buffer offset")?;
        let length = usize::try_from(buffer.length()).map_err(|_| "negative buffer length")?;
        let start = self
            .body
            .checked_add(offset)
            .ok_or("buffer out of bounds")?;
        let end = start.checked_add(length).ok_or("buffer out of bounds")?;
        if end > ipc.len() {
            return Err("buffer out of bounds".to_string());
        }
        Ok(start..end)
    }

    fn pop_buffers(&mut self, n: usize) -> Result<(), String> {
        for _ in 0..n {
            self.buffers.pop_front().ok_or("missing buffer")?;
        }
        Ok(())
    }

    /// Steps over a column polars' reader reads: the field nodes and buffers it is made of,
    /// counted as polars' reader counts them.
    fn skip(&mut self, dtype: &ArrowDataType) -> Result<(), String> {
        use PhysicalType::*;
        self.nodes.pop_front().ok_or("missing field node")?;
        match dtype.to_physical_type() {
            Null => Ok(()),
            Boolean | Primitive(_) | FixedSizeBinary | Dictionary(_) => self.pop_buffers(2),
            Binary | LargeBinary | Utf8 | LargeUtf8 => self.pop_buffers(3),
            BinaryView | Utf8View => {
                let variadic = self
                    .variadic_counts
                    .pop_front()
                    .ok_or("missing variadic buffer count")?;
                self.pop_buffers(variadic.checked_add(2).ok_or("bad buffer count")?)
            }
            List | LargeList | Map => {
                self.pop_buffers(2)?;
                self.skip(child_type(dtype)?)
            }
            FixedSizeList => {
                self.pop_buffers(1)?;
                self.skip(child_type(dtype)?)
            }
            Struct => {
                self.pop_buffers(1)?;
                match dtype.to_storage() {
                    ArrowDataType::Struct(fields) => {
                        fields.iter().try_for_each(|field| self.skip(&field.dtype))
                    }
                    _ => Err("bad struct type".to_string()),
                }
            }
            Union => Err("union columns are not supported".to_string()),
        }
    }
}

/// The child type of a list, array or map column.
fn child_type(dtype: &ArrowDataType) -> Result<&ArrowDataType, String> {
    match dtype.to_storage() {
        ArrowDataType::List(field)
        | ArrowDataType::LargeList(field)
        | ArrowDataType::FixedSizeList(field, _)
        | ArrowDataType::Map(field, _) => Ok(&field.dtype),
        _ => Err("bad list type".to_string()),
    }
}

/// The number type of a column read here (shared with a mapping), if it is one.
fn shared_type(dtype: &ArrowDataType) -> Option<PrimitiveType> {
    match dtype.to_physical_type() {
        PhysicalType::Primitive(
            p @ (PrimitiveType::Int8
            | PrimitiveType::Int16
            | PrimitiveType::Int32
            | PrimitiveType::Int64
            | PrimitiveType::Int128
            | PrimitiveType::UInt8
            | PrimitiveType::UInt16
            | PrimitiveType::UInt32
            | PrimitiveType::UInt64
            | PrimitiveType::Float32
            | PrimitiveType::Float64),
        ) => Some(p),
        _ => None,
    }
}

/// Where `bytes` start in `mapping`, if they lie in it.
fn offset_in(mapping: &Mapping, bytes: &[u8]) -> Option<usize> {
    let all = mapping.bytes().as_ptr_range();
    let part = bytes.as_ptr_range();
    (all.start <= part.start && part.end <= all.end)
        .then(|| part.start as usize - all.start as usize)
}

/// The IPC message that starts at `offset`: an optional continuation marker, its length, the
/// flatbuffer.
fn message_at(ipc: &[u8], offset: usize) -> Result<MessageRef<'_>, String> {
    let word = |at: usize| -> Result<[u8; 4], String> {
        ipc.get(at..at.checked_add(4).ok_or("bad message offset")?)
            .and_then(|w| w.try_into().ok())
            .ok_or_else(|| "message out of bounds".to_string())
    };
    let mut at = offset;
    let mut len = word(at)?;
    at += 4;
    if len == [0xff; 4] {
        len = word(at)?;
        at += 4;
    }
    let len = usize::try_from(i32::from_le_bytes(len)).map_err(|_| "negative message length")?;
    let bytes = ipc
        .get(at..at.checked_add(len).ok_or("bad message length")?)
        .ok_or("message out of bounds")?;
    MessageRef::read_as_root(bytes).map_err(|e| format!("bad message: {e}"))
}
