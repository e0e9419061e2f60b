//! The demo service: the Edgy tenancy page's practical case, and the operator commands of
//! `tenantry-cli`.
//!
//! ```text
//! tenantry-demo [--database-url URL] [serve] [--bind ADDR] [--strict]
//! tenantry-demo [--database-url URL] tenants list
//! tenantry-demo [--database-url URL] tenants create NAME [--display TEXT]
//! tenantry-demo [--database-url URL] tenants drop NAME --yes
//! tenantry-demo [--database-url URL] migrate [run|status|plan] [--dry-run] [--retry-failed]
//!                                    [--tenant NAME] [--concurrency N]
//! ```
//!
//! The database is `--database-url`, else `DATABASE_URL`, else [`DEFAULT_DATABASE_URL`].

use std::{net::SocketAddr, process::ExitCode};

use tenantry::{
    migrate::{Migrations, Migrator, SchemaState},
    Database, Registry,
};
use tenantry_cli::{Cli, Command, MakemigrationsArgs, MigrateArgs, TenantsArgs};
use tenantry_demo::BehindTenants;

/// The database without `--database-url` or `DATABASE_URL`: a SQLite file in the working
/// directory.
const DEFAULT_DATABASE_URL: &str = "sqlite://tenantry-demo.sqlite?mode=rwc";

/// The demo's serve options (before any command, or after `serve`).
#[derive(clap::Args, Debug, Clone)]
struct ServeArgs {
    /// The address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8000")]
    bind: SocketAddr,
    /// A `tenant` header that names no tenant gets 404 instead of the shared data.
    #[arg(long)]
    strict: bool,
}

/// Why the demo stopped: what it was doing, the cause, and what to do about it. Printed as
/// sentences (never a Debug dump), with a non-zero exit code.
enum Failure {
    Connect(tenantry::Error),
    /// The binary's own migration files do not parse (a build defect).
    Migrations(tenantry::Error),
    /// The database is not at this binary's schema version.
    NotCurrent(String),
    Seed(tenantry::Error),
    Tables(tenantry::Error),
    Bind(SocketAddr, std::io::Error),
    Serve(std::io::Error),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Connect(error) => write!(
                f,
                "could not connect to the database given by --database-url (or DATABASE_URL): \
                 {error}.\n{}",
                hint(error)
            ),
            Failure::Migrations(error) => write!(
                f,
                "this build's migration files are invalid: {error}.\nhint: fix the files in \
                 crates/tenantry-demo/migrations and rebuild."
            ),
            Failure::NotCurrent(why) => write!(
                f,
                "the database {why}.\nhint: run `tenantry-demo migrate` (with the same \
                 --database-url) to bring it to this release's version, then start again."
            ),
            Failure::Seed(error) => write!(
                f,
                "could not create the demo's tables and data: {error}.\n{}",
                hint(error)
            ),
            Failure::Tables(error) => write!(
                f,
                "could not create the demo's tables: {error}.\n{}",
                hint(error)
            ),
            Failure::Bind(addr, error) => write!(
                f,
                "could not listen on {addr}: {error}.\nhint: is another server using that \
                 address? Choose another one with --bind (for example --bind 127.0.0.1:8001)."
            ),
            Failure::Serve(error) => write!(
                f,
                "the server stopped: {error}.\nhint: check the log above; restart the demo."
            ),
        }
    }
}

/// What to do about `error`, as one sentence.
fn hint(error: &tenantry::Error) -> String {
    use tenantry::Error;
    let hint = match error {
        Error::InvalidUrl { .. } => "check --database-url: it takes postgres://, mysql://, \
             mariadb:// or sqlite:// URLs (for example sqlite://tenantry-demo.sqlite?mode=rwc)"
            .to_owned(),
        Error::SchemaAlreadyExists { schema } => format!(
            "a schema named {schema:?} already exists without a tenant row (made by another \
             application or an interrupted run); drop it, or run the demo on another \
             database with --database-url"
        ),
        Error::UniqueViolation { .. } | Error::SchemaNotFound { .. } => {
            "the demo's data exists only in part in this database; run the demo on a fresh \
             database with --database-url"
                .to_owned()
        }
        Error::PoolTimedOut { .. } | Error::Closed | Error::Database(_) => {
            "check that the database server is running and reachable, and that the user, \
             password and database name in --database-url are right"
                .to_owned()
        }
        _ => "check the log above and the database given with --database-url".to_owned(),
    };
    format!("hint: {hint}.")
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli: Cli<ServeArgs> = Cli::parse();
    let database_url = cli.database_url_or(DEFAULT_DATABASE_URL).to_owned();
    let directory = match cli.directory() {
        Ok(directory) => directory,
        Err(error) => {
            eprintln!("error: {error}");
            return error.exit_code();
        }
    };
    let command = cli.into_command();
    init_tracing(matches!(command, Command::Serve(_)));
    let target = Target {
        database_url: &database_url,
        directory,
    };
    let done = match command {
        Command::Serve(args) => serve(&target, args).await.map(|()| ExitCode::SUCCESS),
        Command::Tenants(args) => tenants(&target, args).await,
        Command::Migrate(args) => migrate(&target, args).await,
        Command::Makemigrations(args) => makemigrations(args).await,
    };
    done.unwrap_or_else(|failure| {
        eprintln!("tenantry-demo: {failure}");
        ExitCode::FAILURE
    })
}

/// The service logs requests (info) on stdout; the operator commands log only warnings, on
/// stderr, so that their output is theirs. `RUST_LOG` overrides the level.
fn init_tracing(serve: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| if serve { "info" } else { "warn" }.into());
    let subscriber = tracing_subscriber::fmt().with_env_filter(filter);
    if serve {
        subscriber.init();
    } else {
        subscriber.with_writer(std::io::stderr).init();
    }
}

/// Where the demo's data is: the default database and, optionally, a tenant directory.
struct Target<'a> {
    database_url: &'a str,
    directory: Option<tenantry::Directory>,
}

/// The demo's registry over the target, with its models, migrations and directory.
async fn connect(target: &Target<'_>) -> Result<(Registry, Migrations), Failure> {
    let migrations = tenantry_demo::migrations().map_err(Failure::Migrations)?;
    let database = Database::connect(target.database_url)
        .await
        .map_err(Failure::Connect)?;
    let mut registry =
        tenantry_demo::register(Registry::new(database)).migrations(migrations.clone());
    if let Some(directory) = &target.directory {
        registry = registry.directory(directory.clone());
    }
    Ok((registry, migrations))
}

/// Refuses a database whose shared schema is not at this binary's version: one with the
/// demo's tables but no migration history (made before migrations), or one whose history
/// is behind. An empty database passes (`create_all` builds and stamps it).
async fn check_current(migrator: &Migrator) -> Result<(), Failure> {
    let state = migrator.shared_state().await.map_err(Failure::Seed)?;
    match state {
        SchemaState::Unbuilt => Ok(()),
        SchemaState::Unversioned => Err(Failure::NotCurrent(
            "has the demo's tables but no migration history (it was made by an older release)"
                .to_owned(),
        )),
        SchemaState::Versioned => {
            let status = migrator.status().await.map_err(Failure::Seed)?;
            match status.shared_pending.len() {
                0 => Ok(()),
                n => Err(Failure::NotCurrent(format!(
                    "is behind this release: {n} shared migration(s) not applied ({})",
                    status.shared_pending.join(", ")
                ))),
            }
        }
    }
}

/// `migrate ...`: the migration runner, through `tenantry-cli`.
async fn migrate(target: &Target<'_>, args: MigrateArgs) -> Result<ExitCode, Failure> {
    let (registry, migrations) = connect(target).await?;
    let code = tenantry_cli::run_migrate(&Migrator::new(&registry, migrations), args).await;
    registry.disconnect().await;
    Ok(code)
}

/// `makemigrations ...`: compares the demo's models with its migration files (by default
/// the `migrations` directory of its source tree, where this command is meant to run) and
/// writes the next ones. It reads no database: the registry is over an in-memory one.
async fn makemigrations(args: MakemigrationsArgs) -> Result<ExitCode, Failure> {
    let database = Database::connect("sqlite::memory:")
        .await
        .map_err(Failure::Connect)?;
    let registry = tenantry_demo::register(Registry::new(database));
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let code = tenantry_cli::run_makemigrations(registry.models(), &dir, args);
    registry.disconnect().await;
    Ok(code)
}

/// `tenants ...`: on a database at this release's version (an empty one gets the demo's
/// tables, not its data), the command runs through `tenantry-cli`.
async fn tenants(target: &Target<'_>, args: TenantsArgs) -> Result<ExitCode, Failure> {
    let (registry, migrations) = connect(target).await?;
    let migrator = Migrator::new(&registry, migrations);
    let ready = match check_current(&migrator).await {
        Ok(()) => registry.create_all().await.map_err(Failure::Tables),
        Err(failure) => Err(failure),
    };
    let code = match ready {
        Ok(()) => Ok(tenantry_cli::run_tenants(&registry, args).await),
        Err(failure) => Err(failure),
    };
    registry.disconnect().await;
    code
}

/// `serve`: seeds the data once and serves the API until ctrl-c or SIGTERM.
async fn serve(target: &Target<'_>, args: ServeArgs) -> Result<(), Failure> {
    let (registry, migrations) = connect(target).await?;
    let migrator = Migrator::new(&registry, migrations);
    if let Err(failure) = check_current(&migrator).await {
        registry.disconnect().await;
        return Err(failure);
    }
    if let Err(error) = tenantry_demo::seed(&registry).await {
        registry.disconnect().await;
        return Err(Failure::Seed(error));
    }
    let behind = match BehindTenants::watch(migrator).await {
        Ok(behind) => behind,
        Err(error) => {
            registry.disconnect().await;
            return Err(Failure::Seed(error));
        }
    };
    let listener = match tokio::net::TcpListener::bind(args.bind).await {
        Ok(listener) => listener,
        Err(error) => {
            registry.disconnect().await;
            return Err(Failure::Bind(args.bind, error));
        }
    };
    let url = match listener.local_addr() {
        Ok(addr) => format!("http://{addr}"),
        Err(_) => format!("http://{}", args.bind),
    };
    println!(
        "tenantry demo listening on {url}{}",
        if args.strict { " (strict)" } else { "" }
    );
    println!("  curl -H 'tenant: edgy' {url}/products   # 10 products of tenant edgy");
    println!("  curl {url}/products                     # 25 shared products");
    let app = tenantry_demo::app_with(registry.clone(), args.strict, behind);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await;
    registry.disconnect().await;
    served.map_err(Failure::Serve)?;
    println!("stopped");
    Ok(())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
