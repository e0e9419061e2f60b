//! The shared test harness of crates/tenantry/tests/common, with a registry that starts
//! with no models.
#![allow(dead_code)]

#[path = "../../../tenantry/tests/common/harness.rs"]
mod harness;

pub use harness::*;

use tenantry::Registry;

/// The registry as given: these tests register their own models.
pub async fn prepare(registry: Registry) -> Registry {
    registry
}

/// xorshift64*: the kill points of the kill tests, reproducible from the printed seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// The kill tests' seed: `TENANTRY_KILL_SEED`, else the clock.
pub fn seed() -> u64 {
    std::env::var("TENANTRY_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        })
}

/// A fresh directory for a test's migration files.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tenantry-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes migration `id` into `dir`.
pub fn write(dir: &std::path::Path, id: &str, text: &str) {
    std::fs::write(dir.join(format!("{id}.json")), text).unwrap();
}

/// Kills runs of new migrations until `kills` kills landed while the runner was still
/// running: each round writes migration `migration(k)` as `NNNN_<suffix>` into `dir`,
/// spawns `runner()`, and kills it after a random delay between 4/5 of an `idle` run and
/// the end of a `full` one. Returns the number of migrations written (the first, `0002`,
/// was written before). Asserts that `kills` kills landed mid-run.
pub fn kill_rounds(
    dir: &std::path::Path,
    suffix: &str,
    kills: usize,
    (idle, full): (std::time::Duration, std::time::Duration),
    rng: &mut Rng,
    migration: impl Fn(usize) -> String,
    runner: impl Fn() -> std::process::Command,
) -> usize {
    let window = full.saturating_sub(idle * 4 / 5).as_micros().max(1) as u64;
    let (mut killed_mid_run, mut steps) = (0, 1);
    while killed_mid_run < kills && steps < 4 * kills {
        write(
            dir,
            &format!("{:04}_{suffix}", steps + 2),
            &migration(steps),
        );
        steps += 1;
        let delay = idle * 4 / 5 + std::time::Duration::from_micros(rng.next() % window);
        let mut child = runner().spawn().unwrap();
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            killed_mid_run += 1;
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
    eprintln!(
        "{killed_mid_run} kills landed mid-run over {steps} migrations (idle run {idle:?}, one migration {full:?})"
    );
    assert!(
        killed_mid_run >= kills,
        "only {killed_mid_run} kills interrupted a run"
    );
    steps
}
