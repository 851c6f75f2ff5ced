//! The bytes of one stored entry: a fixed header, then the payload inline or in chunks.
//!
//! Layout of the value under `cellar:<key>` (integers little-endian):
//!
//! ```text
//! offset  size  field
//!      0     6  magic "CELLAR"
//!      6     1  format version (1)
//!      7     1  flags: bit 0 = signed with the team key
//!      8     8  total length of the payload (u64)
//!     16     8  chunk size (u64), 0 when the payload is inline
//!     24     4  chunk count (u32), 0 when the payload is inline
//!     28    16  write id: names this write's chunk keys
//!     44    32  digest: SHA-256 of bytes 0..44, the caller's key and the payload
//!     76    32  tag: HMAC-SHA256(team key, digest) when signed, zeros otherwise
//!    108     …  the payload, when inline
//! ```
//!
//! A payload up to one chunk follows the header in the same Redis value (one GET reads it).
//! A larger one is split into `chunk count` values of `chunk size` bytes (the last one
//! shorter), stored under keys named after the write id (see [`super::keys`]), so two
//! processes writing the same key never mix each other's chunks.
//!
//! Decoding trusts nothing the header claims: [`Header::decode`] checks the lengths against
//! each other and against a limit before the caller allocates anything for the payload.

/// The first bytes of every entry.
pub const MAGIC: [u8; 6] = *b"CELLAR";
/// The layout version this module writes and reads.
pub const VERSION: u8 = 1;
/// Bytes of the header.
pub const HEADER_LEN: usize = 108;
/// Bytes covered by the digest before the key and the payload (magic to write id).
pub const FIELDS_LEN: usize = 44;
/// Flag bit: the tag is an HMAC with the team key.
pub const FLAG_SIGNED: u8 = 1;
/// The largest chunk written or accepted. Redis refuses bulk strings over 512 MB
/// (`proto-max-bulk-len`); half of that leaves room for any server setting close to it.
pub const MAX_CHUNK_SIZE: u64 = 256 * 1024 * 1024;

/// The decoded header of one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Whether `tag` is an HMAC with the team key.
    pub signed: bool,
    /// Bytes of the payload.
    pub total_len: u64,
    /// Bytes of each chunk but the last; 0 when the payload is inline.
    pub chunk_size: u64,
    /// Number of chunk keys; 0 when the payload is inline.
    pub chunk_count: u32,
    /// Random id of the write that stored this entry; part of the chunk keys' names.
    pub write_id: [u8; 16],
    /// SHA-256 of the header fields, the caller's key and the payload.
    pub digest: [u8; 32],
    /// HMAC-SHA256 of `digest` with the team key, or zeros when unsigned.
    pub tag: [u8; 32],
}

impl Header {
    /// The header of a payload of `total_len` bytes, chunked when it is longer than
    /// `chunk_size`. Digest and tag are left zero for the caller to fill in.
    pub fn plan(total_len: u64, chunk_size: u64, signed: bool, write_id: [u8; 16]) -> Header {
        let (chunk_size, chunk_count) = if total_len > chunk_size {
            // The caller bounds total_len by the entry limit and chunk_size from below by 1,
            // but a count past u32 is still refused by `decode`; saturate rather than wrap.
            let count = total_len.div_ceil(chunk_size);
            (chunk_size, u32::try_from(count).unwrap_or(u32::MAX))
        } else {
            (0, 0)
        };
        Header {
            signed,
            total_len,
            chunk_size,
            chunk_count,
            write_id,
            digest: [0; 32],
            tag: [0; 32],
        }
    }

    /// Whether the payload follows the header in the same value.
    pub fn is_inline(&self) -> bool {
        self.chunk_count == 0
    }

    /// The bytes the digest covers before the key and the payload.
    pub fn fields(&self) -> [u8; FIELDS_LEN] {
        let mut out = [0u8; FIELDS_LEN];
        out[0..6].copy_from_slice(&MAGIC);
        out[6] = VERSION;
        out[7] = if self.signed { FLAG_SIGNED } else { 0 };
        out[8..16].copy_from_slice(&self.total_len.to_le_bytes());
        out[16..24].copy_from_slice(&self.chunk_size.to_le_bytes());
        out[24..28].copy_from_slice(&self.chunk_count.to_le_bytes());
        out[28..44].copy_from_slice(&self.write_id);
        out
    }

    /// The header as stored.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..FIELDS_LEN].copy_from_slice(&self.fields());
        out[44..76].copy_from_slice(&self.digest);
        out[76..108].copy_from_slice(&self.tag);
        out
    }

    /// Reads the header at the start of `bytes` and checks that its lengths agree with each
    /// other and stay within `limit` bytes of payload. `bytes` may be the whole value or only
    /// its first [`HEADER_LEN`] bytes; [`Header::check_value_len`] checks the rest.
    /// The error says what is wrong, for the warning the user sees.
    pub fn decode(bytes: &[u8], limit: u64) -> Result<Header, String> {
        if bytes.len() < HEADER_LEN {
            return Err(format!(
                "truncated header ({} bytes, {HEADER_LEN} expected)",
                bytes.len()
            ));
        }
        if bytes[0..6] != MAGIC {
            return Err("not a Cellar entry (bad magic)".into());
        }
        if bytes[6] != VERSION {
            return Err(format!(
                "format version {} (this Cellar reads version {VERSION})",
                bytes[6]
            ));
        }
        let flags = bytes[7];
        if flags & !FLAG_SIGNED != 0 {
            return Err(format!("unknown flags {flags:#04x}"));
        }
        let total_len = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
        let chunk_size = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
        let chunk_count = u32::from_le_bytes(bytes[24..28].try_into().expect("4 bytes"));
        if total_len > limit {
            return Err(format!(
                "claims {total_len} bytes, more than the limit of {limit} bytes"
            ));
        }
        if chunk_count == 0 {
            if chunk_size != 0 {
                return Err(format!(
                    "inline entry with a chunk size of {chunk_size} bytes"
                ));
            }
        } else {
            if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
                return Err(format!("chunk size {chunk_size} out of range"));
            }
            // total_len is at most `limit` here, so this cannot overflow; a chunked entry
            // must need every chunk it names and no more (and is never empty).
            let needed = total_len.div_ceil(chunk_size);
            if needed != u64::from(chunk_count) || needed < 2 {
                return Err(format!(
                    "{chunk_count} chunks of {chunk_size} bytes cannot hold {total_len} bytes"
                ));
            }
        }
        let mut write_id = [0u8; 16];
        write_id.copy_from_slice(&bytes[28..44]);
        let mut digest = [0u8; 32];
        digest.copy_from_slice(&bytes[44..76]);
        let mut tag = [0u8; 32];
        tag.copy_from_slice(&bytes[76..108]);
        Ok(Header {
            signed: flags & FLAG_SIGNED != 0,
            total_len,
            chunk_size,
            chunk_count,
            write_id,
            digest,
            tag,
        })
    }

    /// Checks the length of the whole value under the entry's key: header and payload when
    /// inline, the header alone when chunked.
    pub fn check_value_len(&self, value_len: usize) -> Result<(), String> {
        let expected = if self.is_inline() {
            HEADER_LEN as u64 + self.total_len
        } else {
            HEADER_LEN as u64
        };
        if value_len as u64 == expected {
            Ok(())
        } else {
            Err(format!(
                "value is {value_len} bytes, its header says {expected} (truncated or altered)"
            ))
        }
    }

    /// Bytes of chunk `index` (the last one holds the remainder).
    pub fn chunk_len(&self, index: u32) -> u64 {
        let start = u64::from(index) * self.chunk_size;
        self.chunk_size.min(self.total_len.saturating_sub(start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(total: u64, chunk: u64) -> Header {
        let mut h = Header::plan(total, chunk, true, [7; 16]);
        h.digest = [1; 32];
        h.tag = [2; 32];
        h
    }

    #[test]
    fn roundtrip_inline_and_chunked() {
        for h in [header(10, 64), header(0, 64), header(1000, 64)] {
            let bytes = h.encode();
            assert_eq!(Header::decode(&bytes, u64::MAX).unwrap(), h);
        }
        let h = header(1000, 64);
        assert_eq!(h.chunk_count, 16);
        assert_eq!(h.chunk_len(0), 64);
        assert_eq!(h.chunk_len(15), 1000 - 15 * 64);
        assert!(header(64, 64).is_inline(), "exactly one chunk stays inline");
    }

    #[test]
    fn bounded_and_consistent() {
        let mut h = header(1000, 64);
        h.total_len = 1 << 60;
        h.chunk_count = u32::MAX;
        let err = Header::decode(&h.encode(), 4 << 30).unwrap_err();
        assert!(err.contains("limit"), "{err}");

        let mut h = header(1000, 64);
        h.chunk_count = 3;
        assert!(Header::decode(&h.encode(), u64::MAX).is_err());

        let mut h = header(1000, 64);
        h.chunk_size = MAX_CHUNK_SIZE + 1;
        assert!(Header::decode(&h.encode(), u64::MAX).is_err());

        let mut bytes = header(10, 64).encode();
        bytes[7] = 0x80;
        assert!(Header::decode(&bytes, u64::MAX).is_err());
        bytes[7] = 0;
        bytes[6] = 9;
        assert!(
            Header::decode(&bytes, u64::MAX)
                .unwrap_err()
                .contains("version")
        );
        assert!(Header::decode(&bytes[..50], u64::MAX).is_err());
    }

    #[test]
    fn value_length_is_checked() {
        let h = header(10, 64);
        assert!(h.check_value_len(HEADER_LEN + 10).is_ok());
        assert!(h.check_value_len(HEADER_LEN + 9).is_err());
        let h = header(1000, 64);
        assert!(h.check_value_len(HEADER_LEN).is_ok());
        assert!(h.check_value_len(HEADER_LEN + 1).is_err());
    }
}
