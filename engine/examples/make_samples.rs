//! Writes the sample data the notebooks load: `samples/uber.csv` (pickups shaped like the
//! Uber NYC data set: `Date/Time,Lat,Lon,Base`) and `samples/shop.db` (a small shop in
//! SQLite). Deterministic: the same bytes every time.
//!
//! Run from the repository root: `cargo run -p cellar-engine --example make_samples`

use std::fmt::Write as _;

/// A small deterministic generator (SplitMix64), so the samples never change.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly normal (sum of uniforms), mean 0, sd 1.
    fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.unit()).sum::<f64>() - 6.0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all("samples")?;
    std::fs::write("samples/uber.csv", uber_csv(5000))?;
    make_shop("samples/shop.db")?;
    println!("wrote samples/uber.csv and samples/shop.db");
    Ok(())
}

fn uber_csv(rows: usize) -> String {
    let mut rng = Rng(2014);
    // Pickups cluster around Midtown, Downtown, Brooklyn and the airports.
    let hotspots = [
        (40.7549, -73.9840, 0.015, 45),
        (40.7128, -74.0060, 0.012, 20),
        (40.6782, -73.9442, 0.020, 15),
        (40.6413, -73.7781, 0.006, 10),
        (40.7769, -73.8740, 0.005, 10),
    ];
    // Busy evenings and mornings, quiet nights.
    let hour_weights = [
        3, 2, 2, 2, 2, 3, 5, 7, 8, 6, 5, 5, 6, 6, 7, 8, 9, 11, 12, 11, 9, 8, 7, 5,
    ];
    let bases = ["B02512", "B02598", "B02617", "B02682", "B02764"];
    let total_hour: u64 = hour_weights.iter().sum();
    let total_spot: u64 = hotspots.iter().map(|h| h.3).sum();
    let mut out = String::from("Date/Time,Lat,Lon,Base\n");
    for _ in 0..rows {
        let mut h = rng.next() % total_hour;
        let hour = hour_weights
            .iter()
            .position(|w| {
                if h < *w {
                    true
                } else {
                    h -= w;
                    false
                }
            })
            .unwrap_or(0);
        let mut s = rng.next() % total_spot;
        let spot = hotspots
            .iter()
            .find(|spot| {
                if s < spot.3 {
                    true
                } else {
                    s -= spot.3;
                    false
                }
            })
            .unwrap_or(&hotspots[0]);
        let day = 1 + rng.next() % 30;
        let minute = rng.next() % 60;
        let second = rng.next() % 60;
        let lat = spot.0 + rng.normal() * spot.2;
        let lon = spot.1 + rng.normal() * spot.2;
        let base = rng.pick(&bases);
        writeln!(
            out,
            "4/{day}/2014 {hour}:{minute:02}:{second:02},{lat:.4},{lon:.4},{base}"
        )
        .expect("writing to a String cannot fail");
    }
    out
}

fn make_shop(path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let _ = std::fs::remove_file(path);
    let conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT NOT NULL);
         CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, category TEXT NOT NULL, price REAL NOT NULL);
         CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
                              product_id INTEGER NOT NULL REFERENCES products(id), quantity INTEGER NOT NULL,
                              ordered_on TEXT NOT NULL);",
    )?;
    let mut rng = Rng(7);
    let first = [
        "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Ken", "Radia", "Linus", "Margaret",
    ];
    let last = [
        "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Thompson", "Perlman",
        "Torvalds", "Hamilton",
    ];
    let cities = ["New York", "Boston", "Chicago", "Seattle", "Austin"];
    let tx = conn.unchecked_transaction()?;
    for id in 1..=40 {
        let name = format!("{} {}", rng.pick(&first), rng.pick(&last));
        tx.execute(
            "INSERT INTO customers VALUES (?1, ?2, ?3)",
            rusqlite::params![id, name, rng.pick(&cities)],
        )?;
    }
    let products = [
        ("Espresso beans", "coffee", 14.5),
        ("Filter papers", "coffee", 4.0),
        ("Green tea", "tea", 9.75),
        ("Earl Grey", "tea", 8.5),
        ("Ceramic mug", "kitchen", 12.0),
        ("Kettle", "kitchen", 39.9),
        ("Grinder", "kitchen", 59.0),
        ("Oat milk", "dairy-free", 2.8),
    ];
    for (i, (name, category, price)) in products.iter().enumerate() {
        tx.execute(
            "INSERT INTO products VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![i as i64 + 1, name, category, price],
        )?;
    }
    for id in 1..=500 {
        let customer = 1 + rng.next() % 40;
        let product = 1 + rng.next() % products.len() as u64;
        let quantity = 1 + rng.next() % 4;
        let date = format!("2026-{:02}-{:02}", 1 + rng.next() % 10, 1 + rng.next() % 28);
        tx.execute(
            "INSERT INTO orders VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![id, customer as i64, product as i64, quantity as i64, date],
        )?;
    }
    tx.commit()?;
    Ok(())
}
