//! Integrity and authenticity of entries: a SHA-256 digest always, an HMAC with the team key
//! when one is set.
//!
//! The digest covers the header fields, the caller's key and the payload, so a flipped byte
//! anywhere, a truncated value, or an entry copied under another key fails. The tag is
//! HMAC-SHA256(team key, digest): the payload is hashed once whether or not a key is set, and
//! since nobody can find two messages with one SHA-256 digest, forging the tag still needs the
//! key. Without a key every entry is checked by its digest, signed ones included (they stay
//! readable); with a key an unsigned entry or a wrong tag is refused.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::format::{FIELDS_LEN, Header};

type HmacSha256 = Hmac<Sha256>;

/// Signs and checks entries with the team key, if any.
pub struct Sealer {
    // Kept private and out of Debug: it is the team's secret.
    key: Option<Vec<u8>>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("signs", &self.signs())
            .finish()
    }
}

impl Sealer {
    /// A sealer with the team key `secret` (none: entries carry a digest only).
    pub fn new(secret: Option<&[u8]>) -> Sealer {
        Sealer {
            key: secret.map(<[u8]>::to_vec),
        }
    }

    /// Whether entries written are signed (a team key is set).
    pub fn signs(&self) -> bool {
        self.key.is_some()
    }

    /// A hasher fed with the header fields and the caller's key; feed it the payload next.
    pub fn digest_start(fields: &[u8; FIELDS_LEN], key: &str) -> Sha256 {
        let mut hasher = Sha256::new();
        hasher.update(fields);
        // The key's length first, so key and payload cannot trade bytes.
        hasher.update((key.len() as u64).to_le_bytes());
        hasher.update(key.as_bytes());
        hasher
    }

    /// Finishes a digest started by [`Sealer::digest_start`].
    pub fn digest_finish(hasher: Sha256) -> [u8; 32] {
        hasher.finalize().into()
    }

    /// The tag for `digest`: its HMAC with the team key, zeros without one.
    pub fn tag(&self, digest: &[u8; 32]) -> [u8; 32] {
        match &self.key {
            Some(key) => {
                let mut mac = Self::mac(key);
                mac.update(digest);
                mac.finalize().into_bytes().into()
            }
            None => [0; 32],
        }
    }

    /// The checks that need no payload: with a team key, an unsigned entry is refused before
    /// its chunks are fetched.
    pub fn precheck(&self, header: &Header) -> Result<(), String> {
        if self.signs() && !header.signed {
            return Err(
                "it is unsigned but CELLAR_CACHE_KEY is set (written by a Cellar \
                        without the team key, or by someone else)"
                    .into(),
            );
        }
        Ok(())
    }

    /// Checks a whole entry: `digest` is what the reader computed over what it read.
    pub fn verify(&self, header: &Header, digest: &[u8; 32]) -> Result<(), String> {
        self.precheck(header)?;
        if *digest != header.digest {
            return Err("its checksum does not match (altered or truncated)".into());
        }
        if let Some(key) = &self.key {
            let mut mac = Self::mac(key);
            mac.update(digest);
            // verify_slice compares in constant time.
            if mac.verify_slice(&header.tag).is_err() {
                return Err("its signature does not match (signed with another \
                            CELLAR_CACHE_KEY, or altered)"
                    .into());
            }
        }
        Ok(())
    }

    fn mac(key: &[u8]) -> HmacSha256 {
        // HMAC takes keys of any length (long ones are hashed first).
        <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(sealer: &Sealer, key: &str, payload: &[u8]) -> (Header, [u8; 32]) {
        let mut h = Header::plan(payload.len() as u64, 64, sealer.signs(), [3; 16]);
        let mut hasher = Sealer::digest_start(&h.fields(), key);
        hasher.update(payload);
        h.digest = Sealer::digest_finish(hasher);
        h.tag = sealer.tag(&h.digest);
        let digest = h.digest;
        (h, digest)
    }

    #[test]
    fn signed_unsigned_and_wrong_keys() {
        let team = Sealer::new(Some(b"team secret"));
        let other = Sealer::new(Some(b"another secret"));
        let none = Sealer::new(None);

        let (h, d) = sealed(&team, "k", b"payload");
        assert!(team.verify(&h, &d).is_ok());
        assert!(
            none.verify(&h, &d).is_ok(),
            "signed entries stay readable without a key"
        );
        assert!(other.verify(&h, &d).unwrap_err().contains("signature"));

        let (h, d) = sealed(&none, "k", b"payload");
        assert!(none.verify(&h, &d).is_ok());
        assert!(team.precheck(&h).unwrap_err().contains("unsigned"));

        let (h, _) = sealed(&team, "k", b"payload");
        let (_, moved) = sealed(&team, "other key", b"payload");
        assert!(team.verify(&h, &moved).unwrap_err().contains("checksum"));
    }
}
