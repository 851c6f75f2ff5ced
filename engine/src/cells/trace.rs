//! The verifying trace of a cell: every input it actually read while it ran (variables of
//! earlier cells, `state`, widgets, local files, shared resources, cached calls), recorded
//! with the value it had, so the next run can check each read against the current value
//! before deciding hit or miss (as build systems such as Shake and Salsa do).

use std::collections::HashSet;

use xxhash_rust::xxh3::Xxh3;

use crate::cache::ResourceHandle;
pub use crate::cache::files::{FileFingerprint, FileRead};
use crate::widgets::WidgetValue;

/// One input a cell read.
#[derive(Clone, Debug)]
pub enum Read {
    /// A variable defined by an earlier cell, with the digest of its value.
    Var {
        /// The variable.
        name: String,
        /// Content digest (identity for a shared resource).
        digest: u128,
    },
    /// The session's `state` map.
    State {
        /// Content digest of the map.
        digest: u128,
    },
    /// A widget's value.
    Widget {
        /// The widget's label.
        label: String,
        /// The value set from outside (`None`: unset, the widget returned its default).
        set: Option<WidgetValue>,
        /// What the widget returned, for explanations.
        shown: String,
    },
    /// A local file: the path as written, where it resolved, and what it looked like (or
    /// that it was missing). Checked by resolving the path again, so a file arriving earlier
    /// in the search order, or another notebook's file of the same name, is a change.
    File(FileRead),
    /// A shared resource used through its handle.
    Resource {
        /// The handle (identity and mutation counter).
        handle: ResourceHandle,
        /// The mutation counter when the cell first touched it.
        mutations: u64,
    },
    /// A call of a cached function that the cell's result relies on.
    CachedCall {
        /// The function.
        function: String,
        /// The key of the entry it was served from (or stored as).
        key: u128,
        /// The key without the code (how the registry remembers why an entry left).
        args_key: u128,
        /// Which value under that key: one computed again later is another.
        generation: u64,
        /// The session the entry belongs to (`scope = "session"`).
        session: Option<u64>,
    },
}

impl Read {
    /// Feeds the read's identity and value into a key.
    fn hash_into(&self, hasher: &mut Xxh3) {
        match self {
            Self::Var { name, digest } => {
                hasher.update(b"v");
                hasher.update(name.as_bytes());
                hasher.update(&digest.to_le_bytes());
            }
            Self::State { digest } => {
                hasher.update(b"s");
                hasher.update(&digest.to_le_bytes());
            }
            Self::Widget { label, set, .. } => {
                hasher.update(b"w");
                hasher.update(label.as_bytes());
                hasher.update(format!("{set:?}").as_bytes());
            }
            Self::File(read) => {
                hasher.update(b"f");
                hasher.update(read.written.as_bytes());
                hasher.update(&[0]);
                hasher.update(read.resolved.to_string_lossy().as_bytes());
                hasher.update(format!("{:?}", read.fingerprint).as_bytes());
            }
            Self::Resource { handle, mutations } => {
                hasher.update(b"r");
                hasher.update(&handle.id().to_le_bytes());
                hasher.update(&mutations.to_le_bytes());
            }
            Self::CachedCall { function, key, .. } => {
                hasher.update(b"c");
                hasher.update(function.as_bytes());
                hasher.update(&key.to_le_bytes());
            }
        }
        hasher.update(&[0xff]);
    }

    /// A short name for the panel's key parts: `df`, `widget Rows`, `file uber.csv`.
    pub fn label(&self) -> String {
        match self {
            Self::Var { name, .. } => name.clone(),
            Self::State { .. } => "state".to_string(),
            Self::Widget { label, .. } => format!("widget {label}"),
            Self::File(read) => format!("file {}", read.resolved.display()),
            Self::Resource { handle, .. } => format!("resource {}", handle.function()),
            Self::CachedCall { function, .. } => format!("{function}(...)"),
        }
    }

    /// A short rendering of the value read, for the panel.
    pub fn summary(&self) -> String {
        match self {
            Self::Var { digest, .. } | Self::State { digest } => {
                crate::cache::registry::short_key(*digest)
            }
            Self::Widget { shown, .. } => shown.clone(),
            Self::File(read) => match read.fingerprint.size {
                Some(size) => format!("{size} bytes"),
                None => "missing".to_string(),
            },
            Self::Resource { mutations, .. } => format!("{mutations} mutations"),
            Self::CachedCall { key, .. } => crate::cache::registry::short_key(*key),
        }
    }

    /// The digest of this read alone (for the panel's key parts).
    pub fn digest(&self) -> u128 {
        let mut hasher = Xxh3::new();
        self.hash_into(&mut hasher);
        hasher.digest128()
    }
}

/// Hashes a sequence of reads (with a seed: the cell's code hash, or zero).
pub fn hash_reads(seed: u128, reads: &[Read]) -> u128 {
    let mut hasher = Xxh3::new();
    hasher.update(&seed.to_le_bytes());
    for read in reads {
        read.hash_into(&mut hasher);
    }
    hasher.digest128()
}

/// What the running cell has read so far; lives in the run context while the cell runs.
#[derive(Debug, Default)]
pub struct CellRecorder {
    /// The reads, in the order they happened.
    pub reads: Vec<Read>,
    /// Why the cell cannot be cached (the first reason found wins).
    pub uncacheable: Option<String>,
    seen: HashSet<String>,
    /// Cached calls already recorded (by fn and key, see [`Self::first_call`]).
    seen_calls: HashSet<u128, foldhash::fast::RandomState>,
    resources: HashSet<u64>,
    /// The digest of `state` when the cell first read it (to tell a write afterwards).
    pub state_read: Option<u128>,
    /// Frames read from earlier cells, as first seen (a cheap clone): if the same buffers
    /// are there after the cell ran, the frame was not changed and needs no rehash.
    pub frames_read: Vec<(String, crate::data::Frame)>,
}

impl CellRecorder {
    /// [`Self::first_time`] for a call of a cached fn, by the digest of its name, without
    /// building a key string (a hit is a few hundred nanoseconds; formatting a 128-bit key
    /// was a tenth of it).
    pub fn first_call(&mut self, function_digest: u128, key: u128) -> bool {
        let id = function_digest ^ key;
        self.seen_calls.insert(id)
    }

    /// Whether `key` (a variable name, `widget:label`, `file:path`) was recorded already.
    /// Records it when not.
    pub fn first_time(&mut self, key: &str) -> bool {
        if self.seen.contains(key) {
            return false;
        }
        self.seen.insert(key.to_string());
        true
    }

    /// Marks the cell as not cacheable, unless an earlier reason was found.
    pub fn refuse(&mut self, reason: impl Into<String>) {
        if self.uncacheable.is_none() {
            self.uncacheable = Some(reason.into());
        }
    }

    /// Whether `value`, now held by `name`, is the frame the cell first read (same buffers).
    pub fn frame_unchanged(&self, name: &str, value: &rhai::Dynamic) -> bool {
        let Some((_, before)) = self.frames_read.iter().find(|(n, _)| n == name) else {
            return false;
        };
        value
            .read_lock::<crate::data::Frame>()
            .is_some_and(|now| now.same_data(before))
    }

    /// Records the first use of a shared resource in this cell.
    pub fn use_resource(&mut self, handle: &ResourceHandle) {
        if self.resources.insert(handle.id()) {
            self.reads.push(Read::Resource {
                handle: handle.clone(),
                mutations: handle.mutations(),
            });
        }
    }

    /// The resources used whose mutation counter moved while the cell ran.
    pub fn mutated_resources(&self) -> Vec<String> {
        self.reads
            .iter()
            .filter_map(|r| match r {
                Read::Resource { handle, mutations } if handle.mutations() != *mutations => {
                    Some(handle.function().to_string())
                }
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_hash_by_value_and_order() {
        let a = Read::Var {
            name: "df".into(),
            digest: 1,
        };
        let b = Read::Widget {
            label: "Rows".into(),
            set: Some(WidgetValue::Int(5)),
            shown: "5".into(),
        };
        let ab = hash_reads(7, &[a.clone(), b.clone()]);
        assert_eq!(ab, hash_reads(7, &[a.clone(), b.clone()]));
        assert_ne!(ab, hash_reads(7, &[b.clone(), a.clone()]));
        assert_ne!(ab, hash_reads(8, &[a.clone(), b.clone()]));
        let b7 = Read::Widget {
            label: "Rows".into(),
            set: Some(WidgetValue::Int(7)),
            shown: "7".into(),
        };
        assert_ne!(ab, hash_reads(7, &[a, b7]));
    }

    #[test]
    fn a_file_fingerprint_sees_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        std::fs::write(&path, "a\n1\n").unwrap();
        let before = FileFingerprint::of(&path);
        std::fs::write(&path, "a\n1\n2\n").unwrap();
        assert_ne!(before, FileFingerprint::of(&path));
        assert_eq!(FileFingerprint::of(&dir.path().join("gone")).size, None);
    }
}
