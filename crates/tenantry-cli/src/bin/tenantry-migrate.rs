//! `tenantry-migrate`: the migration runner on its own, for migrations kept as files beside
//! a deployment rather than embedded in the application (which mounts `migrate` through
//! [`tenantry_cli`] instead).
//!
//! ```text
//! tenantry-migrate --database-url URL --migrations DIR [run|status|plan] [--dry-run]
//!                  [--retry-failed] [--tenant NAME] [--concurrency N]
//! ```
//!
//! The migrations are the `*.json` files of `DIR`, read when the command starts. Exit codes
//! as `migrate`'s: 0 when every schema is at the last version, 1 when any is behind or failed
//! or the command failed, 2 for a usage error.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use tenantry::{Database, Registry};
use tenantry_cli::MigrateArgs;

/// Run, inspect or plan migrations kept as files.
#[derive(Parser, Debug)]
#[command(about, long_about = None)]
struct Args {
    /// The database URL (postgres://, mysql://, mariadb:// or sqlite://).
    #[arg(long, value_name = "URL", env = "DATABASE_URL")]
    database_url: String,
    /// The directory of the migration files (`*.json`, run in the order of their names).
    #[arg(long, value_name = "DIR")]
    migrations: PathBuf,
    #[command(flatten)]
    migrate: MigrateArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let migrations = match tenantry_cli::read_migrations_dir(&args.migrations) {
        Ok(migrations) => migrations,
        Err(error) => {
            eprintln!("error: {error}");
            return error.exit_code();
        }
    };
    let database = match Database::connect(&args.database_url).await {
        Ok(database) => database,
        Err(error) => {
            eprintln!("error: could not connect to --database-url: {error}.");
            return ExitCode::FAILURE;
        }
    };
    let registry = Registry::new(database);
    let migrator = tenantry::migrate::Migrator::new(&registry, migrations);
    let code = tenantry_cli::run_migrate(&migrator, args.migrate).await;
    registry.disconnect().await;
    code
}
