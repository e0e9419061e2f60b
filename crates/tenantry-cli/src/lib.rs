//! The operator command line of a tenantry application, mounted in the application's own
//! binary.
//!
//! ```text
//! APP [--database-url URL] [SERVE OPTIONS]                 serve (the default)
//! APP [--database-url URL] serve [SERVE OPTIONS]
//! APP [--database-url URL] tenants list
//! APP [--database-url URL] tenants create NAME [--display TEXT]
//! APP [--database-url URL] tenants drop NAME --yes
//! APP [--database-url URL] migrate [run|status|plan] [--dry-run] [--retry-failed]
//!                                  [--tenant NAME] [--concurrency N] [--lock-wait SECONDS]
//! APP makemigrations [--check] [--name NAME] [--migrations DIR] [--no-input] [--allow-rewrite]
//!                    [--rename-table OLD=NEW]... [--rename-column TABLE.OLD=NEW]...
//! ```
//!
//! The application brings its own serve options (any [`clap::Args`] type, `S` below) and its
//! own service: [`Cli`] parses the whole line, the application dispatches
//! [`Command::Serve`] itself, hands [`Command::Tenants`] to [`run_tenants`], and routes
//! [`Command::Migrate`] (its [`MigrateArgs`]) to its migration runner.
//!
//! ```no_run
//! use std::process::ExitCode;
//!
//! use tenantry::{contrib, Database, Registry};
//! use tenantry_cli::{Cli, Command};
//!
//! #[derive(clap::Args, Debug, Clone)]
//! struct ServeArgs {
//!     /// The address to listen on.
//!     #[arg(long, default_value = "127.0.0.1:8000")]
//!     bind: std::net::SocketAddr,
//! }
//!
//! #[tokio::main]
//! async fn main() -> ExitCode {
//!     let cli: Cli<ServeArgs> = Cli::parse();
//!     let url = cli.database_url_or("sqlite://app.sqlite?mode=rwc").to_owned();
//!     match cli.into_command() {
//!         Command::Serve(args) => todo!("serve on {}", args.bind),
//!         Command::Tenants(args) => {
//!             let Ok(database) = Database::connect(&url).await else {
//!                 return ExitCode::FAILURE;
//!             };
//!             let registry = contrib::register(Registry::new(database));
//!             let code = tenantry_cli::run_tenants(&registry, args).await;
//!             registry.disconnect().await;
//!             code
//!         }
//!         Command::Migrate(_args) => ExitCode::FAILURE,
//!         Command::Makemigrations(args) => {
//!             let models = [<tenantry::contrib::Tenant as tenantry::Model>::META];
//!             tenantry_cli::run_makemigrations(&models, "migrations".as_ref(), args)
//!         }
//!     }
//! }
//! ```
//!
//! Exit codes: 0 on success; 1 when the operation failed (the tenant exists, the database is
//! unreachable), with one sentence on stderr; 2 for a usage error (clap's code for a command
//! line it cannot parse, kept for the checks clap cannot express, such as `drop` without
//! `--yes`).
//!
//! Progress bars for long runs (migrations, fleet sweeps) will come with the commands that
//! need them; the tenants commands are single statements and print one line.

mod citus;
mod makemigrations;
mod migrate;
mod tenants;

use std::{ffi::OsString, num::NonZeroUsize};

use clap::{error::ErrorKind, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use tenantry::SchemaName;

pub use citus::NodeAddress;
pub use makemigrations::{makemigrations, read_migrations_dir, run_makemigrations, Made};
pub use migrate::{migrate, run_migrate};
pub use tenants::{run_tenants, tenants, CommandError};

/// The whole command line: global options, the application's serve options `S`, and the
/// command.
///
/// Parse it with [`Cli::parse`] or [`Cli::try_parse_from`]: they are clap's, plus the checks
/// clap cannot express (serve options given both before and after `serve`, or before another
/// command; `tenants drop` without `--yes`). `<Cli as clap::Parser>::parse()` skips those
/// checks. Then [`Cli::into_command`] gives the command to run.
#[derive(Parser, Debug, Clone)]
#[command(
    about = "Serve the application, migrate its schemas, or manage its tenants.",
    long_about = None,
    subcommand_value_name = "COMMAND",
    disable_help_subcommand = true
)]
pub struct Cli<S: Args = NoServeArgs> {
    /// The database URL (postgres://, mysql://, mariadb:// or sqlite://). Without it,
    /// DATABASE_URL, then the application's default.
    #[arg(long, global = true, value_name = "URL", env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// A server of the tenant directory, ALIAS=URL (repeatable; or
    /// TENANTRY_DIRECTORY_SERVERS, separated by spaces, which a URL never holds unescaped).
    /// With at least one, tenants may live in other databases and on other servers (see
    /// `tenants create --server`). Prefer the environment for URLs with passwords: they are
    /// never printed, not even when malformed.
    #[arg(
        long = "directory-server",
        global = true,
        value_name = "ALIAS=URL",
        env = "TENANTRY_DIRECTORY_SERVERS",
        value_delimiter = ' ',
        hide_env_values = true,
        value_parser = parse_directory_server
    )]
    pub directory_servers: Vec<DirectoryServer>,

    /// The most connections the tenant directory's pools open together.
    #[arg(long, global = true, value_name = "N", default_value_t = 40)]
    pub connection_budget: usize,

    /// The serve options, given before any command (no command is `serve`).
    #[command(flatten, next_help_heading = "Serve options (here or after `serve`)")]
    pub serve: S,

    /// The command; `None` is `serve` with [`serve`](Cli::serve).
    #[command(subcommand)]
    pub command: Option<Command<S>>,
}

/// The serve options of an application that has none.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct NoServeArgs {}

/// A command.
#[derive(Subcommand, Debug, Clone)]
pub enum Command<S: Args = NoServeArgs> {
    /// Run the service (the default command).
    Serve(S),
    /// Migrate the shared schema and every tenant's schema.
    Migrate(MigrateArgs),
    /// List, create and drop tenants.
    Tenants(TenantsArgs),
    /// Write the next migration files from the models (needs no database).
    Makemigrations(MakemigrationsArgs),
}

/// `makemigrations [--check] [--name NAME] [--migrations DIR] [--rename-table OLD=NEW]...
/// [--rename-column TABLE.OLD=NEW]... [--no-input]`.
///
/// A table or column that disappears while another appears is written as a drop plus an
/// add (with a warning) unless the rename is given here or confirmed when asked: a rename
/// is never guessed.
#[derive(Args, Debug, Clone, PartialEq, Eq, Default)]
pub struct MakemigrationsArgs {
    /// Write nothing; exit 1 when the models and the migrations disagree (for CI).
    #[arg(long)]
    pub check: bool,
    /// The last part of the new files' names (`0007_tenant_NAME.json`; default `auto`).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The migrations directory (default: the application's).
    #[arg(long, value_name = "DIR")]
    pub migrations: Option<std::path::PathBuf>,
    /// A table renamed from OLD to NEW (repeatable).
    #[arg(long, value_name = "OLD=NEW", value_parser = parse_table_rename)]
    pub rename_table: Vec<(String, String)>,
    /// A column of TABLE (its new name) renamed from OLD to NEW (repeatable).
    #[arg(long, value_name = "TABLE.OLD=NEW", value_parser = parse_column_rename)]
    pub rename_column: Vec<(String, String, String)>,
    /// Never ask about possible renames (the default when stdin is not a terminal).
    #[arg(long)]
    pub no_input: bool,
    /// Write `"allow_rewrite": true` in the new files: accept operations that rewrite whole
    /// tables (see `migrate plan`); without it the runner refuses such a file.
    #[arg(long)]
    pub allow_rewrite: bool,
}

/// A tenant directory server given on the command line: its alias and URL. The URL (which
/// may hold a password) is left out of `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct DirectoryServer {
    /// The alias directory entries name.
    pub alias: String,
    /// The server's URL.
    pub url: String,
}

impl std::fmt::Debug for DirectoryServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectoryServer")
            .field("alias", &self.alias)
            .finish_non_exhaustive()
    }
}

/// Never fails: clap would print the rejected text, which may hold a password. A value
/// that is not ALIAS=URL keeps an empty alias, refused by [`Cli::directory`] without it.
fn parse_directory_server(text: &str) -> Result<DirectoryServer, String> {
    Ok(match text.split_once('=') {
        Some((alias, url)) if !alias.is_empty() && !url.is_empty() => DirectoryServer {
            alias: alias.to_owned(),
            url: url.to_owned(),
        },
        // Nothing (an empty TENANTRY_DIRECTORY_SERVERS): no server.
        _ if text.trim().is_empty() => DirectoryServer {
            alias: String::new(),
            url: String::new(),
        },
        // Malformed: the URL is replaced by a marker, the text is dropped.
        _ => DirectoryServer {
            alias: String::new(),
            url: "?".to_owned(),
        },
    })
}

fn parse_table_rename(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((from, to)) if !from.is_empty() && !to.is_empty() => {
            Ok((from.to_owned(), to.to_owned()))
        }
        _ => Err("expected OLD=NEW, e.g. --rename-table people=users".to_owned()),
    }
}

fn parse_column_rename(text: &str) -> Result<(String, String, String), String> {
    let parts = text
        .split_once('=')
        .and_then(|(left, to)| left.split_once('.').map(|(t, from)| (t, from, to)));
    match parts {
        Some((table, from, to)) if !table.is_empty() && !from.is_empty() && !to.is_empty() => {
            Ok((table.to_owned(), from.to_owned(), to.to_owned()))
        }
        _ => Err("expected TABLE.OLD=NEW, e.g. --rename-column users.name=full_name".to_owned()),
    }
}

/// `migrate [run|status|plan] [--dry-run] [--retry-failed] [--tenant NAME] [--concurrency N]
/// [--drift]`:
/// what to ask of the application's migration runner. The options are given before or after
/// the action; what each means for `status` and `plan` is the runner's to decide.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct MigrateArgs {
    /// What to do.
    #[arg(value_enum, default_value_t = MigrateAction::Run)]
    pub action: MigrateAction,
    /// Show what would run, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Run again the tenants whose last migration failed.
    #[arg(long)]
    pub retry_failed: bool,
    /// Only this tenant (its schema name).
    #[arg(long, value_name = "NAME")]
    pub tenant: Option<SchemaName>,
    /// How many tenants to migrate at once (at least 1; default: the runner's).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<NonZeroUsize>,
    /// How long to wait, in seconds, for a tenant another runner is migrating before
    /// recording it as locked (default: the runner's, 30).
    #[arg(long, value_name = "SECONDS")]
    pub lock_wait: Option<NonZeroUsize>,
    /// With `status`: also compare each up-to-date tenant's live tables with what replaying
    /// the migrations builds, and list the tenants that differ (exit code 1 if any does).
    #[arg(long)]
    pub drift: bool,
}

/// The action of `migrate`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrateAction {
    /// Apply the pending migrations (the default).
    Run,
    /// Show each schema's applied and pending migrations.
    Status,
    /// Show the migrations `run` would apply, per schema, and the hazards of each (a table
    /// rewritten, scanned, copied or rebuilt; a long lock) with the alternative.
    Plan,
}

/// `tenants <list|create|drop|nodes|move|rebalance>`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct TenantsArgs {
    /// The tenants command.
    #[command(subcommand)]
    pub command: TenantsCommand,
}

/// A tenants command.
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum TenantsCommand {
    /// Print every tenant, one per line: its name and display name, tab-separated
    /// (and a third column `suspended` for a suspended tenant).
    List,
    /// Create a tenant: its row, its schema and its tables, all or nothing. With
    /// `--server` and `--database`, in the tenant directory instead: on that server (an
    /// alias of `--directory-server`), in that database (created if missing).
    Create {
        /// The tenant's name: its schema name.
        name: SchemaName,
        /// The display name (default: the name).
        #[arg(long, value_name = "TEXT")]
        display: Option<String>,
        /// The directory server the tenant lives on.
        #[arg(long, value_name = "ALIAS", requires = "database")]
        server: Option<String>,
        /// The database on that server.
        #[arg(long, value_name = "NAME", requires = "server")]
        database: Option<String>,
    },
    /// Drop a tenant: its row, its schema and every row in it.
    Drop {
        /// The tenant's name.
        name: SchemaName,
        /// Confirm: the tenant's data is deleted.
        #[arg(long)]
        yes: bool,
    },
    /// Citus: print each worker (`host:port`, its tenant count and size) and the tenants on
    /// it, largest first.
    Nodes,
    /// Citus: move a tenant to another worker, by logical replication (writes pause only for
    /// the switch; blocking writes if the cluster refuses it), recorded in
    /// `tenantry_tenant_moves`.
    Move {
        /// The tenant's name.
        name: SchemaName,
        /// The worker to move it to, as the coordinator knows it.
        #[arg(long, value_name = "HOST:PORT")]
        to: NodeAddress,
    },
    /// Citus: spread the tenants over the workers by size.
    Rebalance,
}

impl<S: Args> Cli<S> {
    /// Parses the process's arguments; on an error prints it and exits (2 for a usage error,
    /// 0 for `--help`). Shadows [`clap::Parser::parse`] to add the checks clap cannot express
    /// (see [`Cli`]).
    pub fn parse() -> Self {
        match Self::try_parse_from(std::env::args_os()) {
            Ok(cli) => cli,
            Err(error) => error.exit(),
        }
    }

    /// Parses `args` (the first is the binary's name), with the checks of [`Cli::parse`].
    /// Shadows [`clap::Parser::try_parse_from`].
    pub fn try_parse_from<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let mut command = <Self as CommandFactory>::command();
        let matches = command.try_get_matches_from_mut(args)?;
        let mut cli = <Self as FromArgMatches>::from_arg_matches(&matches)
            .map_err(|e| e.format(&mut command))?;
        cli.check(&matches, &mut command)?;
        Ok(cli)
    }

    /// The database URL: `--database-url`, else `DATABASE_URL` (an empty one is unset), else
    /// `default`.
    pub fn database_url_or<'a>(&'a self, default: &'a str) -> &'a str {
        match self.database_url.as_deref() {
            Some(url) if !url.is_empty() => url,
            _ => default,
        }
    }

    /// The tenant directory the options describe: `None` without `--directory-server`.
    /// An alias that is not a valid name or a URL of no known scheme is a usage error
    /// naming the alias, never the URL.
    pub fn directory(&self) -> Result<Option<tenantry::Directory>, CommandError> {
        if self
            .directory_servers
            .iter()
            .all(|s| s.alias.is_empty() && s.url.is_empty())
        {
            return Ok(None);
        }
        let budget = tenantry::ConnectionBudget::new(self.connection_budget);
        let mut directory = tenantry::Directory::new(budget);
        for server in &self.directory_servers {
            if server.alias.is_empty() && server.url.is_empty() {
                continue;
            }
            if server.alias.is_empty() {
                return Err(CommandError::usage(
                    "a --directory-server (or TENANTRY_DIRECTORY_SERVERS) value is not ALIAS=URL; \
                     it is not shown here, as it may hold a password",
                ));
            }
            directory = directory
                .server(&server.alias, &server.url)
                .map_err(|error| {
                    let why = match error {
                        tenantry::Error::InvalidSchemaName { reason, .. } => reason.to_owned(),
                        _ => "its URL is not a postgres://, mysql://, mariadb:// or sqlite:// one"
                            .to_owned(),
                    };
                    CommandError::usage(format!("directory server {:?}: {why}", server.alias))
                })?;
        }
        Ok(Some(directory))
    }

    /// The command to run: no command is [`Command::Serve`] with the serve options given
    /// before it.
    pub fn into_command(self) -> Command<S> {
        self.command.unwrap_or(Command::Serve(self.serve))
    }

    /// The checks clap cannot express. Serve options before the command belong to `serve`:
    /// with another command they are a usage error, and given both before and after `serve`
    /// too; given only before `serve`, they are the ones used.
    fn check(
        &mut self,
        matches: &clap::ArgMatches,
        command: &mut clap::Command,
    ) -> Result<(), clap::Error> {
        let before = given_serve_options::<S>(matches);
        match &self.command {
            Some(Command::Serve(_)) if !before.is_empty() => {
                let after = matches
                    .subcommand_matches("serve")
                    .map(given_serve_options::<S>)
                    .unwrap_or_default();
                if !after.is_empty() {
                    return Err(usage(
                        command,
                        &["serve"],
                        ErrorKind::ArgumentConflict,
                        format!(
                            "serve options were given both before `serve` ({}) and after it \
                             ({}); give them in one place",
                            before.join(", "),
                            after.join(", ")
                        ),
                    ));
                }
                // `APP --bind X serve`: the options before `serve` are the ones.
                self.command = None;
            }
            Some(Command::Tenants(_) | Command::Migrate(_) | Command::Makemigrations(_))
                if !before.is_empty() =>
            {
                let name = matches.subcommand_name().unwrap_or("this command");
                return Err(usage(
                    command,
                    &[],
                    ErrorKind::ArgumentConflict,
                    format!(
                        "{} {} only to `serve`, not to `{name}`",
                        before.join(", "),
                        if before.len() == 1 {
                            "applies"
                        } else {
                            "apply"
                        }
                    ),
                ));
            }
            Some(Command::Tenants(TenantsArgs {
                command: TenantsCommand::Drop { name, yes: false },
            })) => {
                return Err(usage(
                    command,
                    &["tenants", "drop"],
                    ErrorKind::MissingRequiredArgument,
                    format!(
                        "dropping tenant {name} deletes its schema and every row in it; add \
                         --yes to confirm"
                    ),
                ));
            }
            _ => {}
        }
        Ok(())
    }
}

/// The serve options (`S`'s arguments) given on the command line in `matches`, as their
/// flags (`--bind`).
fn given_serve_options<S: Args>(matches: &clap::ArgMatches) -> Vec<String> {
    S::augment_args(clap::Command::new("serve"))
        .get_arguments()
        .filter(|arg| {
            matches!(
                matches.value_source(arg.get_id().as_str()),
                Some(clap::parser::ValueSource::CommandLine)
            )
        })
        .map(|arg| match arg.get_long() {
            Some(long) => format!("--{long}"),
            None => arg.get_id().to_string(),
        })
        .collect()
}

/// A usage error (exit code 2) reported with the usage of the subcommand at `path`.
fn usage(
    command: &mut clap::Command,
    path: &[&str],
    kind: ErrorKind,
    message: String,
) -> clap::Error {
    format_at(clap::Error::raw(kind, message), command, path)
}

/// `error` with the usage of the subcommand of `command` at `path` (or of the deepest one of
/// it that exists).
fn format_at(error: clap::Error, command: &mut clap::Command, path: &[&str]) -> clap::Error {
    if let Some((name, rest)) = path.split_first() {
        if let Some(sub) = command.find_subcommand_mut(name) {
            return format_at(error, sub, rest);
        }
    }
    error.format(command)
}
