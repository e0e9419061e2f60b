//! The command line.

use std::time::Duration;

use clap::{value_parser, Arg, ArgAction, Command};

/// What to run.
#[derive(Debug, Clone)]
pub struct Args {
    pub database_url: String,
    pub duration: Duration,
    pub tenants: usize,
    pub workers: usize,
    pub max_connections: Option<u32>,
    pub seed: u64,
    pub prefix: String,
    pub keep: bool,
    pub self_test: bool,
}

fn command() -> Command {
    Command::new("soak")
        .about(
            "Mixed reads, writes, provisioning and drops over many tenants, through the demo's \
             HTTP API (served in-process on a free port) and the library, for a set time; then \
             every acknowledged write is verified. Prints one PASS/FAIL line per check and exits \
             1 if any check failed.",
        )
        .arg(
            Arg::new("database-url")
                .long("database-url")
                .value_name("URL")
                .required(true)
                .help(
                    "postgres://, mysql:// / mariadb:// or sqlite://FILE?mode=rwc; use a database \
                     of its own (the run creates tables and tenants there)",
                ),
        )
        .arg(
            Arg::new("seconds")
                .long("seconds")
                .value_name("N")
                .value_parser(value_parser!(u64))
                .conflicts_with("minutes")
                .help("run the load for N seconds [default: 60]"),
        )
        .arg(
            Arg::new("minutes")
                .long("minutes")
                .value_name("N")
                .value_parser(value_parser!(u64))
                .help("run the load for N minutes"),
        )
        .arg(
            Arg::new("tenants")
                .long("tenants")
                .value_name("N")
                .value_parser(value_parser!(u64).range(2..=500))
                .default_value("20")
                .help("tenants provisioned at the start (half more are provisioned during the run)"),
        )
        .arg(
            Arg::new("workers")
                .long("workers")
                .value_name("N")
                .value_parser(value_parser!(u64).range(1..=256))
                .default_value("8")
                .help("concurrent request loops"),
        )
        .arg(
            Arg::new("max-connections")
                .long("max-connections")
                .value_name("N")
                .value_parser(value_parser!(u32).range(1..))
                .help("the pool size (default: the library's)"),
        )
        .arg(
            Arg::new("seed")
                .long("seed")
                .value_name("N")
                .value_parser(value_parser!(u64))
                .help("seed of the operation mix (default: from the clock; printed)"),
        )
        .arg(
            Arg::new("prefix")
                .long("prefix")
                .value_name("NAME")
                .help("tenant schema names start with this (default: sk<pid>)"),
        )
        .arg(
            Arg::new("keep")
                .long("keep")
                .action(ArgAction::SetTrue)
                .help("leave the tenants in place at the end (default: drop them)"),
        )
        .arg(Arg::new("self-test").long("self-test").action(ArgAction::SetTrue).help(
            "after the load, write one row tagged with tenant A into tenant B and delete one \
             acknowledged row, behind the checker's back; the run then expects exactly those \
             two checks to fail and exits 0 only if both were detected",
        ))
}

/// Parses the process's arguments (exits with clap's message on a bad one).
pub fn parse() -> Args {
    let matches = command().get_matches();
    let duration = match (
        matches.get_one::<u64>("seconds"),
        matches.get_one::<u64>("minutes"),
    ) {
        (Some(s), _) => Duration::from_secs(*s),
        (None, Some(m)) => Duration::from_secs(m * 60),
        (None, None) => Duration::from_secs(60),
    };
    let seed = matches.get_one::<u64>("seed").copied().unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    Args {
        database_url: matches
            .get_one::<String>("database-url")
            .cloned()
            .unwrap_or_default(),
        duration,
        tenants: matches.get_one::<u64>("tenants").copied().unwrap_or(20) as usize,
        workers: matches.get_one::<u64>("workers").copied().unwrap_or(8) as usize,
        max_connections: matches.get_one::<u32>("max-connections").copied(),
        seed,
        prefix: matches
            .get_one::<String>("prefix")
            .cloned()
            .unwrap_or_else(|| format!("sk{}", std::process::id() % 100_000)),
        keep: matches.get_flag("keep"),
        self_test: matches.get_flag("self-test"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_is_well_formed() {
        super::command().debug_assert();
    }
}
