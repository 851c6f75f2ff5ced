//! The content digest of one column: every chunk of it, read straight from its Arrow buffers.
//!
//! A column is hashed as a tree of *nodes* that mirrors its Arrow type (a list has a child
//! node, a struct one per field). Each node keeps a few independent byte *streams*: which rows
//! are null, the values (raw little-endian numbers; string bytes), lengths (of strings and
//! lists). Chunks are fed one after the other and each stream is the concatenation of what
//! every chunk puts in it, so the digest depends on the column's logical content only: a
//! column in three chunks hashes like the same column rechunked, and a slice like the same
//! rows built fresh. Long streams are hashed as a two-level tree (xxh3-128 of every 1 MiB
//! block, then of the block digests), so the blocks of one buffer are hashed on every core and
//! straight from polars' memory, never copied; a block that straddles two chunks is hashed
//! incrementally.
//!
//! What counts: the row count, which rows are null (a null never equals a value), and for the
//! rows that are not null their values. Whatever sits in a buffer under a null number, string
//! or binary is ignored (polars leaves garbage there); list lengths and child values under a
//! null list, and struct fields under a null struct, still count (rarely different, and then
//! a needless miss rather than a risk). A categorical hashes by its values, never its codes.

use std::sync::OnceLock;

use polars_arrow::array::{
    Array, BinaryArray, BinaryViewArray, BooleanArray, DictionaryArray, DictionaryKey,
    FixedSizeBinaryArray, FixedSizeListArray, ListArray, MapArray, PrimitiveArray, StructArray,
    Utf8Array, Utf8ViewArray,
};
use polars_arrow::bitmap::Bitmap;
use polars_arrow::bitmap::utils::BitmapIter;
use polars_arrow::datatypes::{ArrowDataType, PhysicalType, PrimitiveType};
use polars_arrow::offset::Offset;
use polars_arrow::types::NativeType;
use xxhash_rust::xxh3::{Xxh3, xxh3_128};

/// The block size of a stream's hash tree.
const BLOCK: usize = 1 << 20;
/// Small pieces (a length, a short string) are gathered up to this size before hashing.
const STAGE: usize = 16 * 1024;
/// Pieces at least this long are hashed where they lie instead of being gathered.
const DIRECT: usize = 256;
/// A piece with at least this many whole blocks is hashed on several threads.
const PARALLEL_BLOCKS: usize = 8;

/// The content digest of a column given as its Arrow chunks (`dtype` is the column's Arrow
/// type, for a column with no chunk). `Err` names what cannot be hashed (a union).
pub fn chunks_digest<'a>(
    dtype: &ArrowDataType,
    chunks: impl IntoIterator<Item = &'a dyn Array>,
) -> Result<u128, String> {
    let mut node = Node::new(dtype)?;
    for chunk in chunks {
        node.feed(chunk)?;
    }
    Ok(node.finish_digest())
}

/// The content digest of one array (its dtype's structure, its rows).
pub fn array_digest(array: &dyn Array) -> Result<u128, String> {
    chunks_digest(array.dtype(), [array])
}

/// Threads to hash a long buffer on.
fn threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 8)
    })
}

/// Digests of whole blocks, in order, appended to `out` (several threads for long input).
fn hash_blocks(bytes: &[u8], out: &mut Vec<u128>) {
    debug_assert_eq!(bytes.len() % BLOCK, 0);
    let blocks = bytes.len() / BLOCK;
    let threads = threads().min(blocks / PARALLEL_BLOCKS).max(1);
    if threads == 1 {
        out.extend(bytes.chunks_exact(BLOCK).map(xxh3_128));
        return;
    }
    let per_thread = blocks.div_ceil(threads) * BLOCK;
    let parts: Vec<Vec<u128>> = std::thread::scope(|scope| {
        let mut pieces = bytes.chunks(per_thread);
        let first = pieces.next().unwrap_or_default();
        let handles: Vec<_> = pieces
            .map(|piece| {
                scope.spawn(move || piece.chunks_exact(BLOCK).map(xxh3_128).collect::<Vec<_>>())
            })
            .collect();
        let mut parts = vec![first.chunks_exact(BLOCK).map(xxh3_128).collect()];
        for handle in handles {
            // A hashing thread cannot panic (no allocation failure aside); if it did, the
            // process is in no state to go on.
            parts.push(handle.join().expect("a hashing thread panicked"));
        }
        parts
    });
    for part in parts {
        out.extend(part);
    }
}

/// A stream of bytes hashed as a two-level tree: xxh3-128 of each `BLOCK` bytes (at fixed
/// positions of the stream, wherever its pieces came from), then of the length and the
/// block digests.
#[derive(Default)]
struct ByteStream {
    len: u64,
    /// The block being filled (boxed: an `Xxh3` is half a kilobyte, and most streams of a
    /// node stay empty).
    block: Option<Box<Xxh3>>,
    filled: usize,
    blocks: Vec<u128>,
    stage: Vec<u8>,
}

impl ByteStream {
    /// Adds bytes, hashing long pieces in place.
    fn push(&mut self, bytes: &[u8]) {
        if bytes.len() < DIRECT {
            self.push_small(bytes);
        } else {
            self.flush_stage();
            self.absorb(bytes);
        }
    }

    /// Adds a small piece, gathered with its neighbours.
    fn push_small(&mut self, bytes: &[u8]) {
        if self.stage.len() + bytes.len() > STAGE {
            self.flush_stage();
        }
        if bytes.len() >= STAGE {
            self.absorb(bytes);
        } else {
            if self.stage.capacity() == 0 {
                self.stage.reserve(STAGE);
            }
            self.stage.extend_from_slice(bytes);
        }
    }

    fn flush_stage(&mut self) {
        if !self.stage.is_empty() {
            let stage = std::mem::take(&mut self.stage);
            self.absorb(&stage);
            self.stage = stage;
            self.stage.clear();
        }
    }

    fn absorb(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if self.filled > 0 {
            let take = (BLOCK - self.filled).min(bytes.len());
            self.partial().update(&bytes[..take]);
            self.filled += take;
            bytes = &bytes[take..];
            if self.filled == BLOCK {
                let digest = self.partial().digest128();
                self.blocks.push(digest);
                self.partial().reset();
                self.filled = 0;
            }
        }
        let whole = bytes.len() / BLOCK * BLOCK;
        if whole > 0 {
            hash_blocks(&bytes[..whole], &mut self.blocks);
            bytes = &bytes[whole..];
        }
        if !bytes.is_empty() {
            self.partial().update(bytes);
            self.filled += bytes.len();
        }
    }

    fn partial(&mut self) -> &mut Xxh3 {
        self.block.get_or_insert_with(|| Box::new(Xxh3::new()))
    }

    fn finish(mut self, out: &mut Xxh3) {
        self.flush_stage();
        out.update(&self.len.to_le_bytes());
        out.update(&(self.blocks.len() as u64).to_le_bytes());
        for block in &self.blocks {
            out.update(&block.to_le_bytes());
        }
        if self.filled > 0 {
            out.update(&self.partial().digest128().to_le_bytes());
        }
    }
}

/// A stream of bits, packed 64 to a little-endian word whatever the bit offsets of the
/// bitmaps it is fed from; bits past the end are zero.
#[derive(Default)]
struct BitStream {
    bits: u64,
    word: u64,
    filled: u32,
    bytes: ByteStream,
}

impl BitStream {
    /// Adds the low `n` bits of `word` (1..=64; the bits above `n` must be zero).
    fn push_word(&mut self, word: u64, n: u32) {
        debug_assert!((1..=64).contains(&n));
        debug_assert!(n == 64 || word >> n == 0);
        self.bits += u64::from(n);
        self.word |= word << self.filled;
        let total = self.filled + n;
        if total >= 64 {
            self.bytes.push_small(&self.word.to_le_bytes());
            self.word = if self.filled == 0 {
                0
            } else {
                word >> (64 - self.filled)
            };
            self.filled = total - 64;
        } else {
            self.filled = total;
        }
    }

    fn push_remainder(&mut self, rest: [u64; 2], n: usize) {
        if n > 0 {
            self.push_word(rest[0], n.min(64) as u32);
        }
        if n > 64 {
            self.push_word(rest[1], (n - 64) as u32);
        }
    }

    /// Adds the bits of `bits` from its logical start, and-ed with `mask` when given.
    fn push_bitmap(&mut self, bits: &Bitmap, mask: Option<&Bitmap>) {
        let mut words = bits.fast_iter_u64();
        match mask {
            None => {
                for word in words.by_ref() {
                    self.push_word(word, 64);
                }
                let (rest, n) = words.remainder();
                self.push_remainder(rest, n);
            }
            Some(mask) => {
                debug_assert_eq!(mask.len(), bits.len());
                let mut masks = mask.fast_iter_u64();
                for (word, m) in words.by_ref().zip(masks.by_ref()) {
                    self.push_word(word & m, 64);
                }
                let (rest, n) = words.remainder();
                let (rest_mask, _) = masks.remainder();
                self.push_remainder([rest[0] & rest_mask[0], rest[1] & rest_mask[1]], n);
            }
        }
    }

    fn push_ones(&mut self, mut n: u64) {
        while n >= 64 {
            self.push_word(u64::MAX, 64);
            n -= 64;
        }
        if n > 0 {
            self.push_word((1u64 << n) - 1, n as u32);
        }
    }

    fn finish(mut self, out: &mut Xxh3) {
        if self.filled > 0 {
            self.bytes.push_small(&self.word.to_le_bytes());
        }
        out.update(&self.bits.to_le_bytes());
        self.bytes.finish(out);
    }
}

/// Which rows are null, over every chunk fed: nothing while no chunk had a null (so a column
/// without nulls pays nothing), then a bit per row, the rows before the first null as ones.
#[derive(Default)]
struct Validity {
    rows_before: u64,
    bits: Option<BitStream>,
}

impl Validity {
    fn feed(&mut self, len: usize, nulls: Option<&Bitmap>) {
        match (nulls, &mut self.bits) {
            (None, None) => self.rows_before += len as u64,
            (None, Some(bits)) => bits.push_ones(len as u64),
            (Some(validity), Some(bits)) => bits.push_bitmap(validity, None),
            (Some(validity), None) => {
                let mut bits = BitStream::default();
                bits.push_ones(self.rows_before);
                bits.push_bitmap(validity, None);
                self.bits = Some(bits);
            }
        }
    }

    fn finish(self, out: &mut Xxh3) {
        match self.bits {
            None => out.update(b"v0"),
            Some(bits) => {
                out.update(b"v1");
                bits.finish(out);
            }
        }
    }
}

/// A stable tag per physical type (never an enum's discriminant, which may change).
pub(super) fn physical_tag(physical: PhysicalType) -> u8 {
    use PhysicalType as P;
    use PrimitiveType as N;
    match physical {
        P::Null => 0,
        P::Boolean => 1,
        P::Primitive(primitive) => match primitive {
            N::Int8 => 2,
            N::Int16 => 3,
            N::Int32 => 4,
            N::Int64 => 5,
            N::Int128 => 6,
            N::Int256 => 7,
            N::UInt8 => 8,
            N::UInt16 => 9,
            N::UInt32 => 10,
            N::UInt64 => 11,
            N::UInt128 => 12,
            N::Float16 => 13,
            N::Float32 => 14,
            N::Float64 => 15,
            N::DaysMs => 16,
            N::MonthDayNano => 17,
            N::MonthDayMillis => 18,
        },
        P::Binary => 30,
        P::FixedSizeBinary => 31,
        P::LargeBinary => 32,
        P::Utf8 => 33,
        P::LargeUtf8 => 34,
        P::BinaryView => 35,
        P::Utf8View => 36,
        P::List => 40,
        P::FixedSizeList => 41,
        P::LargeList => 42,
        P::Struct => 43,
        P::Map => 44,
        P::Union => 45,
        P::Dictionary(_) => 46,
    }
}

fn downcast<T: 'static>(array: &dyn Array) -> Result<&T, String> {
    array
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| format!("an unexpected array for {:?}", array.dtype()))
}

/// One level of a column's type, and what its chunks put in its streams.
struct Node {
    tag: u8,
    rows: u64,
    validity: Validity,
    /// Values: numbers, string bytes, dictionary values' digests.
    values: ByteStream,
    /// Lengths of strings and lists.
    lengths: ByteStream,
    /// Booleans.
    bits: BitStream,
    children: Vec<Node>,
}

impl Node {
    fn new(dtype: &ArrowDataType) -> Result<Self, String> {
        use ArrowDataType as A;
        let children = match dtype.to_storage() {
            A::List(child)
            | A::LargeList(child)
            | A::FixedSizeList(child, _)
            | A::Map(child, _) => {
                vec![Node::new(child.dtype())?]
            }
            A::Struct(fields) => fields
                .iter()
                .map(|f| Node::new(f.dtype()))
                .collect::<Result<_, _>>()?,
            A::Union(_) => return Err("a union".to_string()),
            _ => Vec::new(),
        };
        Ok(Self {
            tag: physical_tag(dtype.to_physical_type()),
            rows: 0,
            validity: Validity::default(),
            values: ByteStream::default(),
            lengths: ByteStream::default(),
            bits: BitStream::default(),
            children,
        })
    }

    fn feed(&mut self, array: &dyn Array) -> Result<(), String> {
        let physical = array.dtype().to_physical_type();
        if physical_tag(physical) != self.tag {
            return Err(format!("an unexpected array for {:?}", array.dtype()));
        }
        let len = array.len();
        self.rows += len as u64;
        let nulls = array.validity().filter(|v| v.unset_bits() > 0);
        self.validity.feed(len, nulls);
        match physical {
            PhysicalType::Null => {}
            PhysicalType::Boolean => {
                self.bits
                    .push_bitmap(downcast::<BooleanArray>(array)?.values(), nulls);
            }
            PhysicalType::Primitive(primitive) => self.feed_primitive(array, primitive, nulls)?,
            PhysicalType::Utf8View => {
                let array = downcast::<Utf8ViewArray>(array)?;
                for value in array.iter().flatten() {
                    self.push_bytes(value.as_bytes());
                }
            }
            PhysicalType::BinaryView => {
                let array = downcast::<BinaryViewArray>(array)?;
                for value in array.iter().flatten() {
                    self.push_bytes(value);
                }
            }
            PhysicalType::Utf8 => {
                let array = downcast::<Utf8Array<i32>>(array)?;
                self.feed_offsets(array.offsets().as_slice(), array.values(), nulls);
            }
            PhysicalType::LargeUtf8 => {
                let array = downcast::<Utf8Array<i64>>(array)?;
                self.feed_offsets(array.offsets().as_slice(), array.values(), nulls);
            }
            PhysicalType::Binary => {
                let array = downcast::<BinaryArray<i32>>(array)?;
                self.feed_offsets(array.offsets().as_slice(), array.values(), nulls);
            }
            PhysicalType::LargeBinary => {
                let array = downcast::<BinaryArray<i64>>(array)?;
                self.feed_offsets(array.offsets().as_slice(), array.values(), nulls);
            }
            PhysicalType::FixedSizeBinary => {
                let array = downcast::<FixedSizeBinaryArray>(array)?;
                let size = array.size();
                let values = &array.values()[..(len * size).min(array.values().len())];
                match nulls {
                    None => self.values.push(values),
                    Some(validity) => {
                        for (value, valid) in values.chunks_exact(size.max(1)).zip(validity) {
                            if valid {
                                self.values.push(value);
                            }
                        }
                    }
                }
            }
            PhysicalType::List => {
                let array = downcast::<ListArray<i32>>(array)?;
                self.feed_list(array.offsets().as_slice(), array.values().as_ref())?;
            }
            PhysicalType::LargeList => {
                let array = downcast::<ListArray<i64>>(array)?;
                self.feed_list(array.offsets().as_slice(), array.values().as_ref())?;
            }
            PhysicalType::Map => {
                let array = downcast::<MapArray>(array)?;
                self.feed_list(array.offsets().as_slice(), array.field().as_ref())?;
            }
            PhysicalType::FixedSizeList => {
                let array = downcast::<FixedSizeListArray>(array)?;
                let size = array.size();
                let values = array.values();
                let wanted = len * size;
                let child = self.only_child()?;
                if values.len() == wanted {
                    child.feed(values.as_ref())?;
                } else if values.len() > wanted {
                    child.feed(values.sliced(0, wanted).as_ref())?;
                } else {
                    return Err("a fixed-size list shorter than its length".to_string());
                }
            }
            PhysicalType::Struct => {
                let array = downcast::<StructArray>(array)?;
                if array.values().len() != self.children.len() {
                    return Err(format!("an unexpected array for {:?}", array.dtype()));
                }
                for (child, field) in self.children.iter_mut().zip(array.values()) {
                    if field.len() == len {
                        child.feed(field.as_ref())?;
                    } else if field.len() > len {
                        child.feed(field.sliced(0, len).as_ref())?;
                    } else {
                        return Err("a struct field shorter than its struct".to_string());
                    }
                }
            }
            PhysicalType::Dictionary(key) => {
                polars_arrow::match_integer_type!(key, |$T| self.feed_dictionary::<$T>(array))?;
            }
            PhysicalType::Union => return Err("a union".to_string()),
        }
        Ok(())
    }

    fn only_child(&mut self) -> Result<&mut Node, String> {
        match self.children.as_mut_slice() {
            [child] => Ok(child),
            _ => Err("a nested array without its child type".to_string()),
        }
    }

    /// A string or binary value: its length, then its bytes.
    fn push_bytes(&mut self, bytes: &[u8]) {
        self.lengths.push_small(&(bytes.len() as u64).to_le_bytes());
        self.values.push(bytes);
    }

    /// Strings or binaries with offsets: the lengths of the rows that are not null, and their
    /// bytes, in one piece straight from the values buffer when no row is null.
    fn feed_offsets<O: Offset>(&mut self, offsets: &[O], values: &[u8], nulls: Option<&Bitmap>) {
        match nulls {
            None => {
                for pair in offsets.windows(2) {
                    let n = (pair[1].to_usize() - pair[0].to_usize()) as u64;
                    self.lengths.push_small(&n.to_le_bytes());
                }
                if let (Some(first), Some(last)) = (offsets.first(), offsets.last()) {
                    self.values.push(&values[first.to_usize()..last.to_usize()]);
                }
            }
            Some(validity) => {
                for (pair, valid) in offsets.windows(2).zip(validity) {
                    if valid {
                        self.push_bytes(&values[pair[0].to_usize()..pair[1].to_usize()]);
                    }
                }
            }
        }
    }

    /// A list-like array: every row's length (not the raw offsets, so a sliced list hashes
    /// like a fresh one), then the child's values in the range the rows cover.
    fn feed_list<O: Offset>(&mut self, offsets: &[O], child: &dyn Array) -> Result<(), String> {
        for pair in offsets.windows(2) {
            let n = (pair[1].to_usize() - pair[0].to_usize()) as u64;
            self.lengths.push_small(&n.to_le_bytes());
        }
        let start = offsets.first().map_or(0, |o| o.to_usize());
        let end = offsets.last().map_or(0, |o| o.to_usize());
        if end > child.len() || start > end {
            return Err("list offsets past the end of their values".to_string());
        }
        let node = self.only_child()?;
        if start == 0 && end == child.len() {
            node.feed(child)
        } else {
            node.feed(child.sliced(start, end - start).as_ref())
        }
    }

    fn feed_primitive(
        &mut self,
        array: &dyn Array,
        primitive: PrimitiveType,
        nulls: Option<&Bitmap>,
    ) -> Result<(), String> {
        with_native_type!(
            primitive,
            |T| push_native::<T>(&mut self.values, downcast::<PrimitiveArray<T>>(array)?, nulls),
            else return Err(format!("values of type {primitive:?}"))
        );
        Ok(())
    }

    /// Categoricals: each row that is not null as its dictionary value's digest, so the codes
    /// (which depend on a process's category mapping) never matter. Digests are computed only
    /// for values in use.
    fn feed_dictionary<K: DictionaryKey>(&mut self, array: &dyn Array) -> Result<(), String> {
        let array = downcast::<DictionaryArray<K>>(array)?;
        let values = array.values();
        let mut digests: Vec<Option<u128>> = vec![None; values.len()];
        for key in array.keys_iter().flatten() {
            let digest = match digests.get(key) {
                Some(Some(d)) => *d,
                Some(None) => {
                    let d = array_digest(values.sliced(key, 1).as_ref())?;
                    digests[key] = Some(d);
                    d
                }
                None => return Err("a dictionary key out of range".to_string()),
            };
            self.values.push_small(&digest.to_le_bytes());
        }
        Ok(())
    }

    fn finish(self, out: &mut Xxh3) {
        out.update(&[b'N', self.tag]);
        out.update(&self.rows.to_le_bytes());
        self.validity.finish(out);
        self.values.finish(out);
        self.lengths.finish(out);
        self.bits.finish(out);
        out.update(&(self.children.len() as u64).to_le_bytes());
        for child in self.children {
            // Each child as its own digest, so where one child's part ends is never in doubt.
            let mut one = Xxh3::new();
            child.finish(&mut one);
            out.update(&one.digest128().to_le_bytes());
        }
    }

    fn finish_digest(self) -> u128 {
        let mut out = Xxh3::new();
        self.finish(&mut out);
        out.digest128()
    }
}

/// Numbers: the raw little-endian buffer, straight from polars' memory, except the stretches
/// that hold a null, which are copied with the null slots zeroed.
fn push_native<T: NativeType>(
    stream: &mut ByteStream,
    array: &PrimitiveArray<T>,
    nulls: Option<&Bitmap>,
) {
    let values: &[T] = array.values();
    let Some(validity) = nulls else {
        push_le(stream, values);
        return;
    };
    let (bytes, bit_offset, _) = validity.as_slice();
    let block_len = (STAGE / size_of::<T>().max(1)).max(1);
    let mut zeroed: Vec<T> = Vec::new();
    for (i, block) in values.chunks(block_len).enumerate() {
        let start = i * block_len;
        if validity.null_count_range(start, block.len()) == 0 {
            push_le(stream, block);
            continue;
        }
        zeroed.clear();
        zeroed.extend(
            block
                .iter()
                .zip(BitmapIter::new(bytes, bit_offset + start, block.len()))
                .map(|(v, ok)| if ok { *v } else { T::default() }),
        );
        push_le(stream, &zeroed);
    }
}

fn push_le<T: NativeType>(stream: &mut ByteStream, values: &[T]) {
    if cfg!(target_endian = "little") {
        stream.push(bytemuck::cast_slice(values));
    } else {
        for v in values {
            stream.push_small(v.to_le_bytes().as_ref());
        }
    }
}

#[cfg(test)]
mod tests {
    use polars_arrow::array::{Array, PrimitiveArray, Utf8ViewArray};
    use polars_arrow::bitmap::Bitmap;
    use polars_arrow::datatypes::ArrowDataType;

    use super::{BLOCK, BitStream, ByteStream, array_digest, chunks_digest};

    fn stream_digest(pieces: &[&[u8]]) -> u128 {
        let mut stream = ByteStream::default();
        for piece in pieces {
            stream.push(piece);
        }
        let mut out = xxhash_rust::xxh3::Xxh3::new();
        stream.finish(&mut out);
        out.digest128()
    }

    #[test]
    fn a_byte_stream_hashes_the_same_however_it_is_cut() {
        let bytes: Vec<u8> = (0..(BLOCK * 9 + 12_345))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let whole = stream_digest(&[&bytes]);
        for cut in [
            1,
            255,
            256,
            4096,
            BLOCK - 1,
            BLOCK,
            BLOCK + 3,
            BLOCK * 8 + 1,
        ] {
            let (a, b) = bytes.split_at(cut);
            assert_eq!(stream_digest(&[a, b]), whole, "cut at {cut}");
        }
        let small: Vec<&[u8]> = bytes[..100_000].chunks(7).collect();
        let mut pieces = small.clone();
        pieces.push(&bytes[100_000..]);
        assert_eq!(stream_digest(&pieces), whole);
        let mut other = bytes.clone();
        other[BLOCK * 5 + 17] ^= 1;
        assert_ne!(stream_digest(&[&other]), whole);
        assert_ne!(stream_digest(&[&bytes[1..]]), whole);
    }

    #[test]
    fn a_bit_stream_ignores_bit_offsets() {
        let bits: Vec<bool> = (0..1000).map(|i| i % 3 == 0 || i % 7 == 0).collect();
        let whole = Bitmap::from_iter(bits.iter().copied());
        let digest = |parts: &[Bitmap]| {
            let mut stream = BitStream::default();
            for part in parts {
                stream.push_bitmap(part, None);
            }
            let mut out = xxhash_rust::xxh3::Xxh3::new();
            stream.finish(&mut out);
            out.digest128()
        };
        let expected = digest(std::slice::from_ref(&whole));
        for cut in [1, 5, 63, 64, 65, 130, 999] {
            let a = whole.clone().sliced(0, cut);
            let b = whole.clone().sliced(cut, 1000 - cut);
            assert_eq!(digest(&[a, b]), expected, "cut at {cut}");
        }
        let mut flipped = bits.clone();
        flipped[500] = !flipped[500];
        assert_ne!(digest(&[Bitmap::from_iter(flipped)]), expected);
    }

    #[test]
    fn chunks_hash_like_the_array_they_concatenate() {
        let values: Vec<Option<i64>> = (0..300_000)
            .map(|i| (i % 11 != 0).then_some(i * 3))
            .collect();
        let whole = PrimitiveArray::<i64>::from(values.clone());
        let expected = array_digest(&whole).unwrap();
        for cut in [1, 64, 131_071, 131_072, 250_001] {
            let a = whole.clone().sliced(0, cut);
            let b = whole.clone().sliced(cut, values.len() - cut);
            let digest = chunks_digest(&ArrowDataType::Int64, [&a as &dyn Array, &b]).unwrap();
            assert_eq!(digest, expected, "cut at {cut}");
        }
        // The first null in a later chunk: the rows before it count as valid.
        let valid: Vec<Option<i64>> = (0..1000).map(Some).collect();
        let mut with_null = valid.clone();
        with_null.push(None);
        let all: Vec<Option<i64>> = valid.iter().copied().chain([None]).collect();
        let a = PrimitiveArray::<i64>::from(valid);
        let b = PrimitiveArray::<i64>::from(vec![None]);
        assert_eq!(
            chunks_digest(&ArrowDataType::Int64, [&a as &dyn Array, &b]).unwrap(),
            array_digest(&PrimitiveArray::<i64>::from(all)).unwrap()
        );
    }

    #[test]
    fn strings_hash_by_their_bytes_not_their_views() {
        let words: Vec<String> = (0..5000)
            .map(|i| "x".repeat(i % 40) + i.to_string().as_str())
            .collect();
        let whole =
            Utf8ViewArray::from_slice_values(words.iter().map(String::as_str).collect::<Vec<_>>());
        let expected = array_digest(&whole).unwrap();
        let a = Utf8ViewArray::from_slice_values(
            words[..1234].iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let b = Utf8ViewArray::from_slice_values(
            words[1234..].iter().map(String::as_str).collect::<Vec<_>>(),
        );
        assert_eq!(
            chunks_digest(&ArrowDataType::Utf8View, [&a as &dyn Array, &b]).unwrap(),
            expected
        );
        // Moving a character from one string to the next changes the digest.
        let mut moved = words.clone();
        moved[10].push('y');
        moved[11].remove(0);
        let moved =
            Utf8ViewArray::from_slice_values(moved.iter().map(String::as_str).collect::<Vec<_>>());
        assert_ne!(array_digest(&moved).unwrap(), expected);
    }
}
