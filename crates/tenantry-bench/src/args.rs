//! Command-line flags.

pub const USAGE: &str = "usage: tenantry-bench --database-url URL [--quick] [--tenants N] \
[--insert-tenants N] [--inserts-per-tenant N] [--bulk N] [--gets N] [--filters N] \
[--concurrent N] [--scale 1,100,1000] [--scale-reads N] [--only W3,W4,...]

Runs the workloads W1..W7 against URL (postgres://, mysql://, mariadb://, sqlite://...) and
prints one JSON line per workload. --quick divides every size by ten. W1 and W2 always run
(the later workloads read their data); --only picks which of W3..W7 run as well.";

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
    /// The workloads to run besides W1 and W2 (empty: all).
    pub only: Vec<String>,
}

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
                "--scale" => {
                    args.scale = v
                        .split(',')
                        .map(|s| number(&flag, s))
                        .collect::<Result<_, _>>()?;
                    continue;
                }
                "--only" => {
                    args.only = v.split(',').map(|s| s.trim().to_uppercase()).collect();
                    continue;
                }
                _ => return Err(format!("unknown flag {flag}")),
            };
            *slot = number(&flag, &v)?;
        }
        args.insert_tenants = args.insert_tenants.max(1);
        args.inserts_per_tenant = args.inserts_per_tenant.max(1);
        Ok(args)
    }
}

fn value(flag: &str, v: Option<String>) -> Result<String, String> {
    v.ok_or_else(|| format!("{flag} needs a value"))
}

fn number(flag: &str, v: &str) -> Result<usize, String> {
    v.parse()
        .map_err(|_| format!("{flag} needs a non-negative integer, got {v:?}"))
}
