//! The grammar, without a database: what each line parses to, and which lines are usage
//! errors (exit code 2).

use std::num::NonZeroUsize;

use clap::error::ErrorKind;
use tenantry::SchemaName;
use tenantry_cli::{Cli, Command, MigrateAction, MigrateArgs, TenantsArgs, TenantsCommand};

/// An application's serve options.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
struct Serve {
    /// The address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8000")]
    bind: String,
    /// Strict mode.
    #[arg(long)]
    strict: bool,
}

fn parse(line: &[&str]) -> Result<Cli<Serve>, clap::Error> {
    Cli::try_parse_from(std::iter::once("app").chain(line.iter().copied()))
}

fn command(line: &[&str]) -> Command<Serve> {
    parse(line)
        .unwrap_or_else(|e| panic!("{line:?}: {e}"))
        .into_command()
}

fn serve(bind: &str, strict: bool) -> Command<Serve> {
    Command::Serve(Serve {
        bind: bind.into(),
        strict,
    })
}

fn usage_error(line: &[&str]) -> clap::Error {
    let error = parse(line).expect_err(&format!("{line:?} parsed"));
    assert_eq!(error.exit_code(), 2, "{line:?}: {error}");
    error
}

fn schema(name: &str) -> SchemaName {
    SchemaName::parse(name).unwrap()
}

fn assert_command(line: &[&str], expected: Command<Serve>) {
    assert_eq!(
        format!("{:?}", command(line)),
        format!("{expected:?}"),
        "{line:?}"
    );
}

#[test]
fn no_command_is_serve() {
    assert_command(&[], serve("127.0.0.1:8000", false));
    assert_command(
        &["--bind", "0.0.0.0:1", "--strict"],
        serve("0.0.0.0:1", true),
    );
}

#[test]
fn serve_options_before_or_after_serve() {
    assert_command(&["serve"], serve("127.0.0.1:8000", false));
    assert_command(&["serve", "--bind", "0.0.0.0:1"], serve("0.0.0.0:1", false));
    assert_command(&["--bind", "0.0.0.0:1", "serve"], serve("0.0.0.0:1", false));
    assert_command(&["--strict", "serve"], serve("127.0.0.1:8000", true));
    let error = usage_error(&["--bind", "0.0.0.0:1", "serve", "--strict"]);
    let text = error.to_string();
    assert!(
        text.contains("both before `serve` (--bind) and after it (--strict)"),
        "{text}"
    );
}

#[test]
fn serve_options_belong_to_serve() {
    let error = usage_error(&["--strict", "tenants", "list"]);
    assert!(error
        .to_string()
        .contains("--strict applies only to `serve`, not to `tenants`"));
    usage_error(&["--bind", "x", "migrate"]);
    usage_error(&["tenants", "list", "--strict"]);
    usage_error(&["migrate", "--bind", "x"]);
}

#[test]
fn database_url_anywhere() {
    for line in [
        &["--database-url", "sqlite::memory:", "tenants", "list"][..],
        &["tenants", "--database-url", "sqlite::memory:", "list"],
        &["tenants", "list", "--database-url", "sqlite::memory:"],
        &["serve", "--database-url", "sqlite::memory:"],
        &["migrate", "status", "--database-url", "sqlite::memory:"],
        &["--database-url=sqlite::memory:"],
    ] {
        let cli = parse(line).unwrap();
        assert_eq!(
            cli.database_url.as_deref(),
            Some("sqlite::memory:"),
            "{line:?}"
        );
        assert_eq!(cli.database_url_or("default"), "sqlite::memory:");
    }
}

#[test]
fn database_url_default() {
    // DATABASE_URL is read by clap; this test only runs without one in the environment.
    if std::env::var_os("DATABASE_URL").is_some() {
        return;
    }
    let cli = parse(&["tenants", "list"]).unwrap();
    assert_eq!(cli.database_url, None);
    assert_eq!(
        cli.database_url_or("sqlite://x.sqlite"),
        "sqlite://x.sqlite"
    );
    let empty = Cli::<Serve> {
        database_url: Some(String::new()),
        ..cli
    };
    assert_eq!(
        empty.database_url_or("sqlite://x.sqlite"),
        "sqlite://x.sqlite"
    );
}

#[test]
fn tenants_commands() {
    let tenants = |command| Command::<Serve>::Tenants(TenantsArgs { command });
    assert_command(&["tenants", "list"], tenants(TenantsCommand::List));
    assert_command(
        &["tenants", "create", "acme"],
        tenants(TenantsCommand::Create {
            name: schema("acme"),
            display: None,
            server: None,
            database: None,
        }),
    );
    assert_command(
        &["tenants", "create", "--display", "Acme Inc.", "acme"],
        tenants(TenantsCommand::Create {
            name: schema("acme"),
            display: Some("Acme Inc.".into()),
            server: None,
            database: None,
        }),
    );
    assert_command(
        &[
            "tenants",
            "create",
            "acme",
            "--server",
            "eu2",
            "--database",
            "customers_a",
        ],
        tenants(TenantsCommand::Create {
            name: schema("acme"),
            display: None,
            server: Some("eu2".into()),
            database: Some("customers_a".into()),
        }),
    );
    // One without the other is a usage error.
    assert!(
        Cli::<Serve>::try_parse_from(["app", "tenants", "create", "acme", "--server", "eu2"])
            .is_err()
    );
    // A directory server's URL is never shown, not even in Debug.
    let cli = Cli::<Serve>::try_parse_from([
        "app",
        "--directory-server",
        "eu2=postgres://app:s3cret@10.0.0.2/postgres",
        "tenants",
        "list",
    ])
    .unwrap();
    assert_eq!(cli.directory_servers[0].alias, "eu2");
    assert!(!format!("{cli:?}").contains("s3cret"));
    assert!(cli.directory().unwrap().is_some());
    let bad = Cli::<Serve>::try_parse_from([
        "app",
        "--directory-server",
        "Bad-Alias=ftp://x:pw@h/",
        "tenants",
        "list",
    ])
    .unwrap()
    .directory()
    .unwrap_err()
    .to_string();
    assert!(bad.contains("Bad-Alias") && !bad.contains("pw@"), "{bad}");
    // Not ALIAS=URL at all: refused without echoing it.
    let malformed = Cli::<Serve>::try_parse_from([
        "app",
        "--directory-server",
        "postgres://app:s3cret@10.0.0.2/postgres",
        "tenants",
        "list",
    ])
    .unwrap()
    .directory()
    .unwrap_err()
    .to_string();
    assert!(!malformed.contains("s3cret"), "{malformed}");
    // Several servers in one value are separated by spaces.
    let two = Cli::<Serve>::try_parse_from([
        "app",
        "--directory-server",
        "a=postgres://h1/x b=postgres://u:p,w@h2/y",
        "tenants",
        "list",
    ])
    .unwrap();
    assert_eq!(two.directory_servers.len(), 2);
    assert_eq!(two.directory_servers[1].url, "postgres://u:p,w@h2/y");
    assert_command(
        &["tenants", "drop", "acme", "--yes"],
        tenants(TenantsCommand::Drop {
            name: schema("acme"),
            yes: true,
        }),
    );
}

#[test]
fn drop_needs_yes() {
    let error = usage_error(&["tenants", "drop", "acme"]);
    assert_eq!(error.kind(), ErrorKind::MissingRequiredArgument);
    let text = error.to_string();
    assert!(text.contains("add --yes to confirm"), "{text}");
    assert!(text.contains("tenant acme"), "{text}");
    assert!(text.contains("Usage: app tenants drop"), "{text}");
    assert!(text.starts_with("error: dropping tenant acme"), "{text}");
    assert!(!text.contains("\n\n\n"), "{text}");
}

#[test]
fn tenant_names_are_schema_names() {
    for bad in ["Acme", "pg_x", "public", "a-b", ""] {
        usage_error(&["tenants", "create", bad]);
        usage_error(&["tenants", "drop", bad, "--yes"]);
        usage_error(&["migrate", "--tenant", bad]);
    }
    usage_error(&["tenants", "create"]);
    usage_error(&["tenants"]);
    usage_error(&["tenants", "rename", "a"]);
}

#[test]
fn migrate_lock_wait() {
    let cli = Cli::<Serve>::try_parse_from(["app", "migrate", "--lock-wait", "5"]).unwrap();
    match cli.into_command() {
        Command::Migrate(args) => assert_eq!(args.lock_wait, NonZeroUsize::new(5)),
        other => panic!("{other:?}"),
    }
    assert!(Cli::<Serve>::try_parse_from(["app", "migrate", "--lock-wait", "0"]).is_err());
}

#[test]
fn migrate_status_drift() {
    for argv in [
        ["app", "migrate", "status", "--drift"],
        ["app", "migrate", "--drift", "status"],
    ] {
        match Cli::<Serve>::try_parse_from(argv).unwrap().into_command() {
            Command::Migrate(args) => {
                assert!(args.drift);
                assert_eq!(args.action, MigrateAction::Status);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn migrate_grammar() {
    let migrate =
        |action, dry_run, retry_failed, tenant: Option<&str>, concurrency: Option<usize>| {
            Command::<Serve>::Migrate(MigrateArgs {
                action,
                dry_run,
                retry_failed,
                tenant: tenant.map(schema),
                concurrency: concurrency.and_then(NonZeroUsize::new),
                lock_wait: None,
                drift: false,
            })
        };
    assert_command(
        &["migrate"],
        migrate(MigrateAction::Run, false, false, None, None),
    );
    assert_command(
        &["migrate", "run"],
        migrate(MigrateAction::Run, false, false, None, None),
    );
    assert_command(
        &["migrate", "status"],
        migrate(MigrateAction::Status, false, false, None, None),
    );
    assert_command(
        &["migrate", "--dry-run", "plan", "--tenant", "acme"],
        migrate(MigrateAction::Plan, true, false, Some("acme"), None),
    );
    assert_command(
        &["migrate", "run", "--retry-failed", "--concurrency", "8"],
        migrate(MigrateAction::Run, false, true, None, Some(8)),
    );
    usage_error(&["migrate", "sideways"]);
    usage_error(&["migrate", "--concurrency", "0"]);
    usage_error(&["migrate", "--concurrency", "-1"]);
    usage_error(&["migrate", "run", "status"]);
}

#[test]
fn unknown_command_or_option() {
    let error = usage_error(&["frobnicate"]);
    assert_eq!(error.kind(), ErrorKind::InvalidSubcommand);
    usage_error(&["--frobnicate"]);
    usage_error(&["--bind"]);
}

#[test]
fn help_is_not_an_error() {
    for line in [&["--help"][..], &["tenants", "--help"], &["migrate", "-h"]] {
        let error = parse(line).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::DisplayHelp, "{line:?}");
        assert_eq!(error.exit_code(), 0);
    }
    let help = parse(&["--help"]).unwrap_err().render().to_string();
    for text in [
        "serve",
        "migrate",
        "tenants",
        "--database-url",
        "DATABASE_URL",
        "--bind",
    ] {
        assert!(help.contains(text), "{text} not in {help}");
    }
}

#[test]
fn app_without_serve_options() {
    let cli: Cli = Cli::try_parse_from(["app", "serve"]).unwrap();
    assert!(matches!(cli.into_command(), Command::Serve(_)));
    let cli: Cli = Cli::try_parse_from(["app"]).unwrap();
    assert!(matches!(cli.into_command(), Command::Serve(_)));
}

#[test]
fn the_command_is_well_formed() {
    use clap::CommandFactory;
    Cli::<Serve>::command().debug_assert();
    Cli::<tenantry_cli::NoServeArgs>::command().debug_assert();
}
