//! `tenants list | create | drop`, over [`tenantry::contrib`].

use std::{fmt, io::Write, process::ExitCode};

use tenantry::{
    contrib::{self, Tenant},
    Error, Registry, SchemaName,
};

use crate::{TenantsArgs, TenantsCommand};

/// Why a command failed: one sentence for the operator, the exit code it calls for, and the
/// library's error behind it, if any ([`std::error::Error::source`]).
#[derive(Debug)]
pub struct CommandError {
    message: String,
    usage: bool,
    source: Option<Error>,
}

impl CommandError {
    /// An operational failure (exit code 1) saying `message`.
    pub fn failed(message: impl Into<String>) -> Self {
        CommandError {
            message: message.into(),
            usage: false,
            source: None,
        }
    }

    /// A usage error (exit code 2) saying `message`.
    pub fn usage(message: impl Into<String>) -> Self {
        CommandError {
            usage: true,
            ..CommandError::failed(message)
        }
    }

    fn caused_by(mut self, error: Error) -> Self {
        self.source = Some(error);
        self
    }

    /// 2 for a usage error, 1 for a failed operation.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(if self.usage { 2 } else { 1 })
    }

    /// The library's error that caused this one, if any.
    pub fn tenantry_error(&self) -> Option<&Error> {
        self.source.as_ref()
    }
}

/// The sentence, ending with a full stop.
impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = self.message.trim_end();
        f.write_str(message)?;
        if !message.ends_with(['.', '!', '?']) {
            f.write_str(".")?;
        }
        Ok(())
    }
}

impl std::error::Error for CommandError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Runs a tenants command on `registry` (its models registered with
/// [`contrib::register`] and its tables created), printing its output on stdout and, on
/// failure, `error: <one sentence>` on stderr. Returns the exit code: 0, 1 when the
/// operation failed, 2 for a usage error that the parser let through (a `drop` without
/// `yes` built by hand).
pub async fn run_tenants(registry: &Registry, args: TenantsArgs) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match tenants(registry, &args, &mut out).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = out.flush();
            eprintln!("error: {error}");
            error.exit_code()
        }
    }
}

/// Runs a tenants command on `registry`, writing its output to `out`:
///
/// - `list`: the tenant directory's tenants first, if there is a directory, one line each
///   in name order: `name<TAB>server/database` (and `<TAB>suspended`); then one line per
///   tenant of the default database, in name order: `name<TAB>display name`, and
///   `<TAB>suspended` for a suspended tenant;
/// - `create`: [`contrib::create_tenant`] (the display name defaults to the name), then
///   `created tenant NAME (DISPLAY)`;
/// - `drop`: [`contrib::drop_tenant`] with its data, then `dropped tenant NAME and its data`;
/// - on a Citus coordinator, `nodes`, `move` and `rebalance` (see [`tenantry::Citus`]):
///   the workers and their tenants, a tenant moved, the tenants spread by size.
///
/// Names are schema names, validated when the line is parsed. Errors are sentences naming the
/// tenant given on the command line, never another tenant's data.
pub async fn tenants(
    registry: &Registry,
    args: &TenantsArgs,
    out: &mut dyn Write,
) -> Result<(), CommandError> {
    match &args.command {
        TenantsCommand::List => list(registry, out).await,
        TenantsCommand::Create {
            name,
            display,
            server: Some(server),
            database: Some(database),
        } => {
            let _ = display;
            create_in_directory(registry, name, server, database, out).await
        }
        TenantsCommand::Create { name, display, .. } => {
            let display = display.as_deref().unwrap_or(name.as_str());
            create_one(registry, name, display, out).await
        }
        TenantsCommand::Drop { name, yes } => {
            if !yes {
                return Err(CommandError::usage(format!(
                    "dropping tenant {name} deletes its schema and every row in it; add --yes \
                     to confirm"
                )));
            }
            drop_one(registry, name, out).await
        }
        TenantsCommand::Nodes => crate::citus::nodes(registry, out).await,
        TenantsCommand::Move { name, to } => crate::citus::move_one(registry, name, to, out).await,
        TenantsCommand::Rebalance => crate::citus::rebalance(registry, out).await,
    }
}

/// Whether the directory has an entry for `name` (`false` without a directory).
async fn in_directory(registry: &Registry, name: &SchemaName) -> Result<bool, CommandError> {
    let Some(directory) = registry.tenant_directory() else {
        return Ok(false);
    };
    let entries = directory
        .entries(registry)
        .await
        .map_err(|error| failed("could not read the tenant directory", error))?;
    Ok(entries
        .iter()
        .any(|entry| entry.schema_name == name.as_str()))
}

/// Whether the default database's `tenants` table has `name`.
async fn in_default(registry: &Registry, name: &SchemaName) -> Result<bool, CommandError> {
    Tenant::find(registry, name)
        .await
        .map(|row| row.is_some())
        .map_err(|error| failed("could not read the tenants", error))
}

/// A name is one tenant's: creating it where it exists already in the other place is
/// refused (a later `drop NAME` could not tell the two apart).
fn refuse_twice(name: &SchemaName, elsewhere: bool) -> Result<(), CommandError> {
    if elsewhere {
        return Err(CommandError::failed(format!(
            "tenant {name} already exists (in the other of the default database and the \
             tenant directory)"
        )));
    }
    Ok(())
}

/// The registry's tenant directory, or the usage error of a command that needs one.
fn directory_of(registry: &Registry) -> Result<&tenantry::Directory, CommandError> {
    registry.tenant_directory().ok_or_else(|| {
        CommandError::usage("--server and --database need a tenant directory: give its servers with --directory-server ALIAS=URL")
    })
}

async fn create_in_directory(
    registry: &Registry,
    name: &SchemaName,
    server: &str,
    database: &str,
    out: &mut dyn Write,
) -> Result<(), CommandError> {
    let directory = directory_of(registry)?;
    refuse_twice(name, in_default(registry, name).await?)?;
    match directory
        .add_tenant(registry, name.as_str(), server, database)
        .await
    {
        Ok(_) => {}
        Err(error @ Error::SchemaAlreadyExists { .. }) => {
            return Err(
                CommandError::failed(format!("tenant {name} already exists")).caused_by(error),
            )
        }
        Err(
            error @ (Error::InvalidSchemaName { .. }
            | Error::InvalidArgument { .. }
            | Error::UnknownDatabase { .. }),
        ) => {
            return Err(
                CommandError::usage(format!("cannot create tenant {name}: {error}"))
                    .caused_by(error),
            )
        }
        Err(error) => return Err(failed(&format!("could not create tenant {name}"), error)),
    }
    writeln!(out, "created tenant {name} on {server}/{database}").map_err(write_failed)?;
    out.flush().map_err(write_failed)
}

/// `list` of the directory's tenants: `name<TAB>server/database`, and `<TAB>suspended`.
async fn list_directory(registry: &Registry, out: &mut dyn Write) -> Result<(), CommandError> {
    let Some(directory) = registry.tenant_directory() else {
        return Ok(());
    };
    let entries = directory
        .entries(registry)
        .await
        .map_err(|error| failed("could not list the directory's tenants", error))?;
    for entry in entries {
        let suspended = if entry.state == "suspended" {
            "\tsuspended"
        } else {
            ""
        };
        writeln!(
            out,
            "{}\t{}/{}{suspended}",
            entry.schema_name, entry.server, entry.database
        )
        .map_err(write_failed)?;
    }
    Ok(())
}

async fn list(registry: &Registry, out: &mut dyn Write) -> Result<(), CommandError> {
    list_directory(registry, out).await?;
    let rows = Tenant::query(registry)
        .order_by([Tenant::schema_name().asc()])
        .all()
        .await
        .map_err(|error| failed("could not list the tenants", error))?;
    for row in rows {
        let tenant = row.into_inner();
        let suspended = if tenant.suspended { "\tsuspended" } else { "" };
        writeln!(
            out,
            "{}\t{}{suspended}",
            tenant.schema_name,
            one_line(&tenant.tenant_name)
        )
        .map_err(write_failed)?;
    }
    out.flush().map_err(write_failed)
}

async fn create_one(
    registry: &Registry,
    name: &SchemaName,
    display: &str,
    out: &mut dyn Write,
) -> Result<(), CommandError> {
    refuse_twice(name, in_directory(registry, name).await?)?;
    let tenant = match contrib::create_tenant(registry, name, display).await {
        Ok(tenant) => tenant.into_inner(),
        Err(error) => return Err(create_failed(registry, name, display, error).await),
    };
    writeln!(
        out,
        "created tenant {} ({})",
        tenant.schema_name,
        one_line(&tenant.tenant_name)
    )
    .map_err(write_failed)?;
    out.flush().map_err(write_failed)
}

/// The sentence for a failed `create`.
async fn create_failed(
    registry: &Registry,
    name: &SchemaName,
    display: &str,
    error: Error,
) -> CommandError {
    let message = match &error {
        Error::UniqueViolation { .. } => match Tenant::find(registry, name).await {
            Ok(Some(_)) => format!("tenant {name} already exists"),
            // Then the display name is the one taken (it names no other tenant's schema).
            Ok(None) => format!(
                "another tenant already has the display name {display:?}; choose another \
                 with --display"
            ),
            Err(_) => format!("tenant {name}, or a tenant with its display name, already exists"),
        },
        Error::SchemaAlreadyExists { .. } => format!(
            "a schema named {name} already exists without a tenant row (made by hand or by an \
             interrupted run); drop it or choose another name"
        ),
        Error::InvalidSchemaName { .. } | Error::InvalidTenantName { .. } => {
            return CommandError::usage(format!("cannot create tenant {name}: {error}"))
                .caused_by(error)
        }
        _ => format!("could not create tenant {name}: {error}"),
    };
    CommandError::failed(message).caused_by(error)
}

async fn drop_one(
    registry: &Registry,
    name: &SchemaName,
    out: &mut dyn Write,
) -> Result<(), CommandError> {
    if let Some(directory) = registry.tenant_directory() {
        if in_directory(registry, name).await? && in_default(registry, name).await? {
            return Err(CommandError::usage(format!(
                "tenant {name} is both a directory tenant and a tenant of the default \
                 database; drop one through the library (Directory::remove_tenant or \
                 contrib::drop_tenant), not by name"
            )));
        }
        match directory.remove_tenant(registry, name.as_str(), true).await {
            Ok(()) => {
                writeln!(out, "dropped tenant {name} and its data").map_err(write_failed)?;
                return out.flush().map_err(write_failed);
            }
            // Not a directory tenant: maybe one of the default database.
            Err(Error::TenantNotFound { .. }) => {}
            Err(error) => return Err(failed(&format!("could not drop tenant {name}"), error)),
        }
    }
    match contrib::drop_tenant(registry, name, true).await {
        Ok(_) => {}
        Err(error @ Error::NotFound { .. }) => {
            return Err(CommandError::failed(format!("there is no tenant {name}")).caused_by(error))
        }
        Err(error @ Error::InvalidSchemaName { .. }) => {
            return Err(
                CommandError::usage(format!("cannot drop tenant {name}: {error}")).caused_by(error),
            )
        }
        Err(error) => return Err(drop_failed(registry, name, error).await),
    }
    writeln!(out, "dropped tenant {name} and its data").map_err(write_failed)?;
    out.flush().map_err(write_failed)
}

/// The sentence for a failed `drop`: the row goes first, so a failure after it leaves the
/// schema behind, which the operator has to know.
async fn drop_failed(registry: &Registry, name: &SchemaName, error: Error) -> CommandError {
    match Tenant::find(registry, name).await {
        Ok(None) => CommandError::failed(format!(
            "tenant {name} was removed, but its schema could not be dropped: {error}; drop the \
             schema {name} by hand"
        ))
        .caused_by(error),
        _ => failed(&format!("could not drop tenant {name}"), error),
    }
}

/// `what: error`, exit code 1.
pub(crate) fn failed(what: &str, error: Error) -> CommandError {
    CommandError::failed(format!("{what}: {error}")).caused_by(error)
}

pub(crate) fn write_failed(error: std::io::Error) -> CommandError {
    CommandError::failed(format!("could not write the output: {error}"))
}

/// A display name on one line: control characters (a newline, a tab) escaped, so that each
/// tenant stays one line of `list`.
fn one_line(text: &str) -> String {
    if text.chars().any(char::is_control) {
        text.escape_debug().to_string()
    } else {
        text.to_owned()
    }
}
