//! Command-line flags.

pub const USAGE: &str = "usage: tenantry-bench --database-url URL [--quick] [--tenants N] \
[--insert-tenants N] [--inserts-per-tenant N] [--bulk N] [--gets N] [--filters N] \
[--concurrent N] [--scale 1,100,1000] [--scale-reads N] [--aggregates N] \
[--aggregate-rows N] [--prefetches N] [--stream-rows N] [--upserts N] [--upsert-batch N]
[--only W3,W4,...]
[--migrate-tenants 1000,10000] [--migrate-concurrency N]

Runs the workloads W1..W7, W9..W11, W13 and W14 against URL (postgres://, mysql://, mariadb://,
sqlite://...) and prints one JSON line per workload. --quick divides every size by ten. W1 and
W2 run whenever one of W1..W7 or W9 does (the later workloads read their data); --only picks
which of the others run as well (W10 and W11 make tenants of their own). W8 (migrations over
--migrate-tenants schemas, one line per size) runs only when --only names it, before the
others; it migrates every schema of the database, so it needs a database of its own (it
refuses one that holds schemas it did not make). W12 (--stream-rows rows streamed, 1,000,000
by default) runs only when --only names it, after the others: it takes long. W15 (a flood of
requests naming unknown tenants through tenantry-axum's layer, about 40 s) runs only when
--only names it, and W16 (directory tenants' reads while another tenant's server is down,
PostgreSQL and MySQL, about 20 s) too.";

/// Every workload `--only` may name.
pub const WORKLOADS: [&str; 16] = [
    "W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9", "W10", "W11", "W12", "W13", "W14", "W15",
    "W16",
];

/// The workloads of a run without `--only`: every one but W8 and W12.
const DEFAULT_RUN: [&str; 12] = [
    "W1", "W2", "W3", "W4", "W5", "W6", "W7", "W9", "W10", "W11", "W13", "W14",
];

/// The workloads that read W2's tenants, so that W1 and W2 run with them.
const ON_BASE: [&str; 9] = ["W1", "W2", "W3", "W4", "W5", "W6", "W7", "W9", "W14"];

/// The sizes of the workloads.
#[derive(Debug, Clone)]
pub struct Args {
    pub database_url: String,
    pub tenants: usize,
    pub insert_tenants: usize,
    pub inserts_per_tenant: usize,
    pub bulk: usize,
    pub gets: usize,
    pub filters: usize,
    pub concurrent: usize,
    /// The tenant counts of W7.
    pub scale: Vec<usize>,
    /// Point reads per W7 size.
    pub scale_reads: usize,
    /// The least number of untimed reads before each W7 size.
    pub scale_warmup: usize,
    /// The tenant counts of W8, one output line each.
    pub migrate_tenants: Vec<usize>,
    /// Tenants W8's runner migrates at once (`RunOptions::concurrency`).
    pub migrate_concurrency: usize,
    /// Grouped aggregates timed by W10.
    pub aggregates: usize,
    /// The products W10 aggregates.
    pub aggregate_rows: usize,
    /// Prefetched loads (100 users with 10 products each) timed by W11.
    pub prefetches: usize,
    /// The rows W12 streams.
    pub stream_rows: usize,
    /// Batches timed by W13.
    pub upserts: usize,
    /// Rows per W13 batch, half of them conflicting.
    pub upsert_batch: usize,
    /// The workloads to run (empty: W1..W7 and W9..W11).
    pub only: Vec<String>,
}

/// W8's runner concurrency when `--migrate-concurrency` is not given: the best of 2, 4 and 8
/// on a 2-core machine with the server on the same machine. Over 10,000 PostgreSQL tenants
/// 8 took 14.3, 14.3, 15.7 s, 4 took 13.6 to 19.3 s and 2 took 19 to 58 s; on MariaDB (1,000)
/// 8 was 2.6 to 2.8 s against 2.8 to 3.5 s; on SQLite a tie (about 1 s).
pub const DEFAULT_MIGRATE_CONCURRENCY: usize = 8;

impl Args {
    pub fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut url = None;
        let mut quick = false;
        let mut sizes: Vec<(String, String)> = Vec::new();
        while let Some(flag) = argv.next() {
            match flag.as_str() {
                "--quick" => quick = true,
                "-h" | "--help" => return Err("help".into()),
                "--database-url" => url = Some(value(&flag, argv.next())?),
                _ if flag.starts_with("--") => {
                    let v = value(&flag, argv.next())?;
                    sizes.push((flag, v));
                }
                _ => return Err(format!("unexpected argument {flag:?}")),
            }
        }
        let q = |n: usize| if quick { (n / 10).max(1) } else { n };
        let mut args = Args {
            database_url: url
                .or_else(|| std::env::var("DATABASE_URL").ok())
                .ok_or("--database-url is required")?,
            tenants: q(50),
            insert_tenants: q(10),
            inserts_per_tenant: q(1000),
            bulk: q(10_000),
            gets: q(5000),
            filters: q(1000),
            concurrent: q(200),
            scale: vec![1, q(100), q(1000)],
            scale_reads: q(5000),
            scale_warmup: q(2000),
            migrate_tenants: vec![q(1000), q(10_000)],
            migrate_concurrency: DEFAULT_MIGRATE_CONCURRENCY,
            aggregates: q(200),
            aggregate_rows: q(10_000),
            prefetches: q(200),
            stream_rows: q(1_000_000),
            upserts: q(200),
            upsert_batch: 1000,
            only: Vec::new(),
        };
        for (flag, v) in sizes {
            let slot = match flag.as_str() {
                "--tenants" => &mut args.tenants,
                "--insert-tenants" => &mut args.insert_tenants,
                "--inserts-per-tenant" => &mut args.inserts_per_tenant,
                "--bulk" => &mut args.bulk,
                "--gets" => &mut args.gets,
                "--filters" => &mut args.filters,
                "--concurrent" => &mut args.concurrent,
                "--scale-reads" => &mut args.scale_reads,
                "--scale-warmup" => &mut args.scale_warmup,
                "--migrate-concurrency" => &mut args.migrate_concurrency,
                "--aggregates" => &mut args.aggregates,
                "--aggregate-rows" => &mut args.aggregate_rows,
                "--prefetches" => &mut args.prefetches,
                "--stream-rows" => &mut args.stream_rows,
                "--upserts" => &mut args.upserts,
                "--upsert-batch" => &mut args.upsert_batch,
                "--scale" => {
                    args.scale = list(&flag, &v)?;
                    continue;
                }
                "--migrate-tenants" => {
                    args.migrate_tenants = list(&flag, &v)?;
                    continue;
                }
                "--only" => {
                    args.only = v.split(',').map(|s| s.trim().to_uppercase()).collect();
                    if let Some(unknown) =
                        args.only.iter().find(|w| !WORKLOADS.contains(&w.as_str()))
                    {
                        return Err(format!(
                            "--only: unknown workload {unknown:?} (known: {})",
                            WORKLOADS.join(",")
                        ));
                    }
                    continue;
                }
                _ => return Err(format!("unknown flag {flag}")),
            };
            *slot = number(&flag, &v)?;
        }
        args.insert_tenants = args.insert_tenants.max(1);
        args.inserts_per_tenant = args.inserts_per_tenant.max(1);
        args.migrate_concurrency = args.migrate_concurrency.max(1);
        Ok(args)
    }
}

fn value(flag: &str, v: Option<String>) -> Result<String, String> {
    v.ok_or_else(|| format!("{flag} needs a value"))
}

fn number(flag: &str, v: &str) -> Result<usize, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("{flag} needs a non-negative integer, got {v:?}"))
}

/// A comma-separated list of numbers.
fn list(flag: &str, v: &str) -> Result<Vec<usize>, String> {
    v.split(',').map(|s| number(flag, s)).collect()
}

impl Args {
    /// Whether `workload` runs: named by `--only`, or without `--only` one of the default
    /// run (every workload but W8 and W12).
    pub fn wants(&self, workload: &str) -> bool {
        if self.only.is_empty() {
            DEFAULT_RUN.contains(&workload)
        } else {
            self.only.iter().any(|w| w == workload)
        }
    }

    /// Whether W8 runs: only when `--only` names it.
    pub fn wants_w8(&self) -> bool {
        self.wants("W8")
    }

    /// Whether W1 and W2 run: with no `--only`, or when it names one of W1..W7 or W9.
    pub fn runs_base(&self) -> bool {
        ON_BASE.iter().any(|w| self.wants(w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(flags: &[&str]) -> Args {
        let argv = ["--database-url", "sqlite::memory:"]
            .iter()
            .chain(flags)
            .map(|s| s.to_string());
        Args::parse(argv).unwrap()
    }

    #[test]
    fn w8_sizes_and_selection() {
        let args = parse(&[]);
        assert_eq!(args.migrate_tenants, [1000, 10_000]);
        assert_eq!(args.migrate_concurrency, DEFAULT_MIGRATE_CONCURRENCY);
        assert!(!args.wants_w8() && args.runs_base());

        let args = parse(&["--quick", "--only", "w8"]);
        assert_eq!(args.migrate_tenants, [100, 1000]);
        assert!(args.wants_w8() && !args.runs_base());

        let args = parse(&[
            "--only",
            "W8,W4",
            "--migrate-tenants",
            "1000, 10000",
            "--migrate-concurrency",
            "8",
        ]);
        assert_eq!(args.migrate_tenants, [1000, 10_000]);
        assert_eq!(args.migrate_concurrency, 8);
        assert!(args.wants_w8() && args.runs_base());
    }

    #[test]
    fn later_workloads() {
        let args = parse(&[]);
        assert_eq!(
            (
                args.aggregates,
                args.aggregate_rows,
                args.prefetches,
                args.stream_rows
            ),
            (200, 10_000, 200, 1_000_000)
        );
        for w in ["W1", "W7", "W9", "W10", "W11"] {
            assert!(args.wants(w), "{w}");
        }
        assert!(!args.wants("W8") && !args.wants("W12") && !args.wants("W15"));

        let args = parse(&["--quick", "--only", "w12"]);
        assert_eq!(args.stream_rows, 100_000);
        assert!(args.wants("W12") && !args.runs_base() && !args.wants("W9"));

        let args = parse(&["--only", "W10,W11", "--stream-rows", "5000"]);
        assert_eq!(args.stream_rows, 5000);
        assert!(!args.runs_base() && args.wants("W10") && !args.wants("W4"));

        assert!(parse(&["--only", "W9"]).runs_base());
        let argv = ["--database-url", "sqlite::memory:", "--only", "W4,W17"];
        assert!(Args::parse(argv.iter().map(|s| s.to_string())).is_err());
    }
}
