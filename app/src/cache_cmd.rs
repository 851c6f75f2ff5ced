//! `cellar cache ls|stats|clear|prune`: the tiers below memory (the local cache folder and
//! the shared store) managed from a terminal.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cellar_engine::cache::front;
use cellar_engine::cache::store::{SharedStore, StoredEntry};
use clap::{Args, Subcommand};

/// What `cellar cache` does.
#[derive(Subcommand, Debug)]
pub enum CacheCommand {
    /// List the entries of the cache folder and the shared store.
    Ls(TierArgs),
    /// Count entries and bytes per tier.
    Stats(TierArgs),
    /// Remove every entry (of both tiers unless --disk or --shared picks one).
    Clear(ClearArgs),
    /// Remove what no Cellar reads any more: temporaries left by a crash, damaged files,
    /// files of older format versions, and (with --older-than) old entries.
    Prune(PruneArgs),
}

/// Which tiers.
#[derive(Args, Debug)]
pub struct TierArgs {
    /// A notebook whose `__cellar__/cache` folder to use (default: the current folder's).
    pub notebook: Option<PathBuf>,
    /// The cache folder (default: $CELLAR_CACHE_DIR, else `__cellar__/cache` beside the
    /// notebook or in the current folder).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// The shared store (default: $CELLAR_CACHE_STORE; none: the folder only).
    #[arg(long, value_name = "URL")]
    pub cache_store: Option<String>,
}

/// `cellar cache clear`.
#[derive(Args, Debug)]
pub struct ClearArgs {
    #[command(flatten)]
    tiers: TierArgs,
    /// Only the cache folder.
    #[arg(long, conflicts_with = "shared")]
    disk: bool,
    /// Only the shared store (every Cellar entry in it, of every notebook of the team).
    #[arg(long)]
    shared: bool,
}

/// `cellar cache prune`.
#[derive(Args, Debug)]
pub struct PruneArgs {
    #[command(flatten)]
    tiers: TierArgs,
    /// Also remove entries computed longer ago than this (`7d`, `12h`).
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    older_than: Option<Duration>,
}

fn parse_age(text: &str) -> Result<Duration, String> {
    cellar_engine::cache::annotation::parse_duration(text)
        .ok_or_else(|| format!("expected an age such as 7d, 12h or 30m, got {text:?}"))
}

/// Runs `cellar cache ...`.
pub fn run(command: CacheCommand) -> ExitCode {
    let result = match command {
        CacheCommand::Ls(tiers) => ls(&tiers),
        CacheCommand::Stats(tiers) => stats(&tiers),
        CacheCommand::Clear(args) => clear(&args),
        CacheCommand::Prune(args) => prune(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(problem) => {
            eprintln!("cellar cache: {problem}");
            ExitCode::from(2)
        }
    }
}

impl TierArgs {
    /// The cache folder these arguments name.
    fn dir(&self) -> PathBuf {
        if let Some(dir) = &self.cache_dir {
            return dir.clone();
        }
        let beside = self
            .notebook
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        cellar_engine::default_cache_dir(Some(&beside))
            .unwrap_or_else(|| beside.join(cellar_engine::CACHE_DIR_BESIDE_NOTEBOOK))
    }

    /// The shared store, if one is named.
    fn store(&self) -> Result<Option<Arc<dyn SharedStore>>, String> {
        match &self.cache_store {
            Some(url) => cellar_engine::open_store(url).map(Some),
            None => cellar_engine::store_from_env(),
        }
    }
}

/// One disk entry as listed.
struct DiskRow {
    function: String,
    value: String,
    bytes: u64,
    age: Option<Duration>,
    path: PathBuf,
}

fn disk_rows(dir: &Path) -> Vec<DiskRow> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    front::folder_entries(dir)
        .into_iter()
        .map(|entry| match entry.summary {
            Ok(summary) => DiskRow {
                function: if summary.function.is_empty() {
                    "?".to_string()
                } else {
                    summary.function
                },
                value: summary.value,
                bytes: entry.bytes,
                age: Some(now.saturating_sub(summary.created)),
                path: entry.path,
            },
            Err(problem) => DiskRow {
                function: "?".to_string(),
                value: format!("unreadable: {problem}"),
                bytes: entry.bytes,
                age: None,
                path: entry.path,
            },
        })
        .collect()
}

fn ls(tiers: &TierArgs) -> Result<(), String> {
    let dir = tiers.dir();
    println!("disk  {}", dir.display());
    let rows = disk_rows(&dir);
    if rows.is_empty() {
        println!("  (no entries)");
    }
    for row in &rows {
        let age = row
            .age
            .map_or("?".to_string(), |age| format!("{} ago", format_age(age)));
        let name = row
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        println!(
            "  {:<24} {:>12}  {:<16} {}  {name}",
            row.function,
            format_bytes(row.bytes),
            age,
            row.value
        );
    }
    if let Some(store) = tiers.store()? {
        println!("shared  {}", store.describe());
        let entries = store.list("").map_err(|e| e.to_string())?;
        if entries.is_empty() {
            println!("  (no entries)");
        }
        // Store keys carry the fn's digest: name it when a local file tells which fn it is.
        let names: BTreeMap<String, String> = rows
            .iter()
            .filter_map(|row| {
                let file = row.path.file_name()?.to_string_lossy().into_owned();
                let digest = file.split('-').next()?.to_string();
                Some((digest, row.function.clone()))
            })
            .collect();
        for StoredEntry {
            key,
            bytes,
            ttl_left,
        } in entries
        {
            let function = key
                .split(':')
                .nth(2)
                .and_then(|digest| names.get(digest))
                .cloned()
                .unwrap_or_else(|| "?".to_string());
            let ttl = ttl_left.map_or("no expiry".to_string(), |t| {
                format!("expires in {}", format_age(t))
            });
            println!(
                "  {function:<24} {:>12}  {ttl:<20} {key}",
                format_bytes(bytes)
            );
        }
    }
    Ok(())
}

fn stats(tiers: &TierArgs) -> Result<(), String> {
    let dir = tiers.dir();
    let rows = disk_rows(&dir);
    let mut per_fn: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for row in &rows {
        let slot = per_fn.entry(row.function.as_str()).or_default();
        slot.0 += 1;
        slot.1 += row.bytes;
    }
    println!("tier    entries        bytes  where");
    let total: u64 = rows.iter().map(|r| r.bytes).sum();
    println!(
        "disk    {:>7} {:>12}  {}",
        rows.len(),
        format_bytes(total),
        dir.display()
    );
    for (function, (count, bytes)) in &per_fn {
        println!("  {function:<20} {count:>5} {:>12}", format_bytes(*bytes));
    }
    if let Some(store) = tiers.store()? {
        let entries = store.list("").map_err(|e| e.to_string())?;
        let bytes: u64 = entries.iter().map(|e| e.bytes).sum();
        println!(
            "shared  {:>7} {:>12}  {}",
            entries.len(),
            format_bytes(bytes),
            store.describe()
        );
    }
    Ok(())
}

fn clear(args: &ClearArgs) -> Result<(), String> {
    let both = !args.disk && !args.shared;
    if args.disk || both {
        let dir = args.tiers.dir();
        let removed = front::clear_folder(&dir);
        println!("disk: removed {removed} entries from {}", dir.display());
    }
    if args.shared || both {
        match args.tiers.store()? {
            Some(store) => {
                let removed = store.clear("").map_err(|e| e.to_string())?;
                println!(
                    "shared: removed {removed} entries from {}",
                    store.describe()
                );
            }
            None if args.shared => {
                return Err(
                    "no shared store: pass --cache-store redis://HOST:PORT/DB or set CELLAR_CACHE_STORE"
                        .to_string(),
                );
            }
            None => {}
        }
    }
    Ok(())
}

fn prune(args: &PruneArgs) -> Result<(), String> {
    let dir = args.tiers.dir();
    let mut removed = front::prune_folder(&dir);
    if let Some(limit) = args.older_than {
        for row in disk_rows(&dir) {
            if row.age.is_some_and(|age| age > limit) && std::fs::remove_file(&row.path).is_ok() {
                removed += 1;
            }
        }
    }
    println!("disk: removed {removed} files from {}", dir.display());
    // The shared store needs no pruning: Redis expires entries by their ttl and evicts under
    // its own memory limit; a damaged entry is dropped by the first reader.
    Ok(())
}

/// `12 s`, `5 min`, `3 h`, `2 d`: an age or a time left, to the unit that matters.
fn format_age(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        3600..86_400 => format!("{} h", secs / 3600),
        _ => format!("{} d", secs / 86_400),
    }
}

/// `1.5 MB`.
fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
