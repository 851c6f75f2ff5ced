//! What a cached cell left behind: the variables it defined, restored as copies on a hit.

use rhai::Dynamic;

use crate::cache::value::type_label;
use crate::cache::{CachedValue, ResourceHandle, key};

/// A variable's value as the cell cache keeps it.
#[derive(Clone, Debug)]
pub enum CellVar {
    /// Data: handed back as a copy (frames share their columns, so copies are cheap).
    Data(CachedValue),
    /// A shared resource: handed back as the same handle.
    Resource(ResourceHandle),
}

impl CellVar {
    /// Takes a variable's value; `Err` names its type when it can be neither copied nor shared.
    pub fn capture(value: &Dynamic) -> Result<Self, String> {
        if let Some(handle) = value.read_lock::<ResourceHandle>() {
            return Ok(Self::Resource(handle.clone()));
        }
        CachedValue::from_dynamic(value)
            .map(Self::Data)
            .map_err(|not_data| not_data.type_name)
    }

    /// The value to put back in scope.
    pub fn restore(&self) -> Dynamic {
        match self {
            Self::Data(data) => data.to_dynamic(),
            Self::Resource(handle) => Dynamic::from(handle.clone()),
        }
    }
}

/// The digest later cells compare a variable by: its content, or a resource's identity
/// (a resource's changes are tracked by its mutation counter instead), and whether it is a
/// `const` (a later cell that assigns it fails only then). `Err` names the type of a value
/// with no content to compare (a raw connection, a function pointer).
pub fn var_digest(value: &Dynamic, constant: bool) -> Result<u128, String> {
    let digest = if let Some(handle) = value.read_lock::<ResourceHandle>() {
        xxhash_rust::xxh3::xxh3_128(format!("resource#{}", handle.id()).as_bytes())
    } else {
        key::digest(value).map_err(|_| type_label(value))?
    };
    Ok(if constant {
        xxhash_rust::xxh3::xxh3_128(&[&digest.to_le_bytes()[..], b"const"].concat())
    } else {
        digest
    })
}

/// One variable a cached cell defined.
#[derive(Clone, Debug)]
pub struct SavedVar {
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: CellVar,
    /// What later cells compare it by ([`var_digest`]).
    pub digest: u128,
    /// Declared with `const`: restored as a constant.
    pub constant: bool,
}

/// The variables a cached cell defined, in definition order, with their digests.
#[derive(Clone, Debug, Default)]
pub struct CellOutputs {
    /// The variables, in definition order.
    pub vars: Vec<SavedVar>,
}

impl CellOutputs {
    /// `defines df, rows` or `defines nothing`, for the panel.
    pub fn summary(&self) -> String {
        if self.vars.is_empty() {
            "defines nothing".to_string()
        } else {
            let names: Vec<&str> = self.vars.iter().map(|saved| saved.name.as_str()).collect();
            format!("defines {}", names.join(", "))
        }
    }
}

impl crate::cache::registry::CellPayload for CellOutputs {
    fn summary(&self) -> String {
        CellOutputs::summary(self)
    }

    fn footprint(&self, out: &mut crate::cache::footprint::Footprint) {
        for saved in &self.vars {
            out.own += saved.name.len() as u64;
            // A resource's own entry accounts for it.
            if let CellVar::Data(data) = &saved.value {
                out.add_value(data);
            }
        }
    }

    fn into_any(self: std::sync::Arc<Self>) -> std::sync::Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}
