//! The demo binary's command line: its failures (a sentence saying what failed and what to do,
//! on stderr, and a non-zero exit code; never a Debug dump), and the operator commands of
//! `tenantry-cli` it mounts, run as an operator would, on every backend.

mod common;

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Command, Output},
};

use sqlx::Connection;
use tenantry::{create_schema, Database, Registry};

/// The demo binary, logging warnings only, without the caller's `DATABASE_URL`.
fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tenantry-demo"));
    command
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("DATABASE_URL");
    command
}

fn demo(args: &[&str]) -> Output {
    command(args).output().unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tenantry-demo-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Exit code 1 and a stderr that explains, with a hint, without Rust's Debug syntax.
fn assert_explained(output: &Output, expected: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("tenantry-demo: "), "{stderr}");
    assert!(stderr.contains("\nhint: "), "{stderr}");
    for text in expected {
        assert!(stderr.contains(text), "{text:?} not in {stderr}");
    }
    assert!(!stderr.contains(" { "), "a Debug dump: {stderr}");
    assert!(!stderr.contains("Error: "), "{stderr}");
    stderr
}

#[test]
fn bad_database_url() {
    let output = demo(&[
        "--database-url",
        "nosuch://somewhere",
        "--bind",
        "127.0.0.1:0",
    ]);
    assert_explained(&output, &["could not connect", "--database-url"]);
}

#[tokio::test]
async fn schema_left_without_tenant_row() {
    // The seed's tenant schema exists already, without its tenant row.
    let dir = temp_dir("schema");
    let url = format!("sqlite://{}/demo.sqlite?mode=rwc", dir.display());
    let registry = Registry::new(Database::connect(&url).await.unwrap());
    create_schema(&registry, "edgy", None, false, false)
        .await
        .unwrap();
    registry.disconnect().await;

    let output = demo(&["--database-url", &url, "--bind", "127.0.0.1:0"]);
    let stderr = assert_explained(
        &output,
        &[
            "could not create the demo's tables and data",
            "already exists",
            "a schema named \"edgy\"",
        ],
    );
    assert!(!stderr.contains("SchemaAlreadyExists"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn address_in_use() {
    let dir = temp_dir("bind");
    let url = format!("sqlite://{}/demo.sqlite?mode=rwc", dir.display());
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = demo(&["--database-url", &url, "--bind", &addr]);
    assert_explained(&output, &[&format!("could not listen on {addr}"), "--bind"]);
    drop(taken);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The serve options work before `serve` (or with no command) and after it.
#[test]
fn serve_options_before_and_after_serve() {
    let dir = temp_dir("serve");
    let url = format!("sqlite://{}/demo.sqlite?mode=rwc", dir.display());
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let listen = format!("could not listen on {addr}");
    for args in [
        &["serve", "--bind", &addr, "--strict"][..],
        &["--bind", &addr, "serve"],
        &["--strict", "--bind", &addr],
    ] {
        let mut line = vec!["--database-url", &url];
        line.extend_from_slice(args);
        assert_explained(&demo(&line), &[&listen]);
    }
    // Given on both sides of `serve`, or before another command: a usage error.
    let both = demo(&["--bind", &addr, "serve", "--strict"]);
    assert_refused(
        &both,
        2,
        &["both before `serve` (--bind) and after it (--strict)"],
    );
    let elsewhere = demo(&["--database-url", &url, "--strict", "tenants", "list"]);
    assert_refused(&elsewhere, 2, &["--strict applies only to `serve`"]);
    drop(taken);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Without --database-url and DATABASE_URL, the demo's SQLite file in the working directory.
#[test]
fn default_database_url() {
    let dir = temp_dir("default-url");
    let output = command(&["tenants", "create", "acme"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(dir.join("tenantry-demo.sqlite").exists());
    let output = command(&["tenants", "list"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "acme\tacme\n");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Exit code `code` (1: the operation failed; 2: a usage error) and a stderr that says why in
/// words, without Rust's Debug syntax.
fn assert_refused(output: &Output, code: i32, expected: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(code), "{stderr}");
    for text in expected {
        assert!(stderr.contains(text), "{text:?} not in {stderr}");
    }
    assert!(!stderr.contains(" { "), "a Debug dump: {stderr}");
    assert!(!stderr.contains("Error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// Success; returns stdout.
fn assert_ok(output: &Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// On a failed assertion, drops the tenants the test created, so that none is left on a
/// server (the test's database goes with the harness's cleanup).
struct DropOnPanic<'a> {
    url: &'a str,
    tenants: [&'a str; 2],
}

impl Drop for DropOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for tenant in self.tenants {
                let _ = demo(&[
                    "--database-url",
                    self.url,
                    "tenants",
                    "drop",
                    tenant,
                    "--yes",
                ]);
            }
        }
    }
}

backend_test!(tenants_commands, |t: common::TestDb| async move {
    let url = t.url();
    // Unique per run: the prefix has the process id and a counter.
    let (a, b) = (t.schema("a"), t.schema("b"));
    let (a, b) = (a.as_str(), b.as_str());
    let _guard = DropOnPanic {
        url: &url,
        tenants: [a, b],
    };

    let created = assert_ok(&demo(&["--database-url", &url, "tenants", "create", a]));
    assert_eq!(created, format!("created tenant {a} ({a})\n"));
    // --database-url after the subcommand.
    let created = assert_ok(&demo(&[
        "tenants",
        "create",
        b,
        "--display",
        "B Corp",
        "--database-url",
        &url,
    ]));
    assert_eq!(created, format!("created tenant {b} (B Corp)\n"));

    // DATABASE_URL when there is no --database-url.
    let listed = assert_ok(
        &command(&["tenants", "list"])
            .env("DATABASE_URL", &url)
            .output()
            .unwrap(),
    );
    assert_eq!(listed, format!("{a}\t{a}\n{b}\tB Corp\n"));
    // --database-url wins over DATABASE_URL, between the subcommands too.
    let listed = assert_ok(
        &command(&["tenants", "--database-url", &url, "list"])
            .env("DATABASE_URL", "nosuch://elsewhere")
            .output()
            .unwrap(),
    );
    assert_eq!(listed, format!("{a}\t{a}\n{b}\tB Corp\n"));

    let again = demo(&["--database-url", &url, "tenants", "create", a]);
    let stderr = assert_refused(&again, 1, &[&format!("error: tenant {a} already exists.")]);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(again.stdout.is_empty());

    let unconfirmed = demo(&["--database-url", &url, "tenants", "drop", a]);
    assert_refused(&unconfirmed, 2, &["add --yes to confirm"]);
    let dropped = assert_ok(&demo(&[
        "--database-url",
        &url,
        "tenants",
        "drop",
        a,
        "--yes",
    ]));
    assert_eq!(dropped, format!("dropped tenant {a} and its data\n"));
    let listed = assert_ok(&demo(&["tenants", "list", "--database-url", &url]));
    assert_eq!(listed, format!("{b}\tB Corp\n"));
    let gone = demo(&["--database-url", &url, "tenants", "drop", a, "--yes"]);
    assert_refused(&gone, 1, &[&format!("there is no tenant {a}.")]);

    let unknown = demo(&["--database-url", &url, "tenantz", "list"]);
    assert_refused(&unknown, 2, &["unrecognized subcommand 'tenantz'"]);
    // Tenants made by `tenants create` are built from the models and stamped: status finds
    // every schema at the last version (exit 0) and names the tenant as done.
    let status = assert_ok(&demo(&["--database-url", &url, "migrate", "status"]));
    assert!(
        status.contains("shared schema: 4 applied, 0 pending"),
        "{status}"
    );
    let line = status
        .lines()
        .find(|l| l.starts_with(b))
        .unwrap_or_else(|| panic!("{b} not in {status}"));
    assert!(
        line.contains("0005_tenant_product_price_stock") && line.contains("done"),
        "{line}"
    );
    let plan = assert_ok(&demo(&["--database-url", &url, "migrate", "plan"]));
    assert!(plan.contains("nothing to migrate"), "{plan}");

    // Nothing is left behind on the server.
    assert_ok(&demo(&[
        "--database-url",
        &url,
        "tenants",
        "drop",
        b,
        "--yes",
    ]));
    assert_eq!(
        assert_ok(&demo(&["--database-url", &url, "tenants", "list"])),
        ""
    );
});

/// A database that cannot be reached: exit code 1 and a sentence, for an operator command as
/// for `serve`.
#[test]
fn tenants_on_an_unreachable_database() {
    let output = demo(&["--database-url", "nosuch://somewhere", "tenants", "list"]);
    assert_explained(&output, &["could not connect", "--database-url"]);
    // A server that is not there: the port of a listener just closed.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/nothing");
    let output = demo(&["--database-url", &url, "tenants", "list"]);
    assert_explained(&output, &["--database-url"]);
}

/// `migrate status/plan/run` and `--retry-failed` on an empty SQLite database, with the exit
/// codes an operator scripts against, then `serve` on the migrated database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_commands_and_exit_codes() {
    let dir = temp_dir("migrate");
    let url = format!("sqlite://{}/demo.sqlite?mode=rwc", dir.display());
    let run = |args: &[&str]| {
        let mut line = vec!["--database-url", url.as_str()];
        line.extend_from_slice(args);
        demo(&line)
    };
    let out = |o: &Output| String::from_utf8_lossy(&o.stdout).into_owned();

    // An empty database is behind: status and plan say so with exit 1.
    let status = run(&["migrate", "status"]);
    assert_eq!(status.status.code(), Some(1), "{status:?}");
    assert!(
        out(&status).contains("0 applied, 4 pending"),
        "{}",
        out(&status)
    );
    let plan = run(&["migrate", "plan", "--dry-run"]);
    assert_eq!(plan.status.code(), Some(1), "{plan:?}");
    assert!(
        out(&plan).contains("shared schema: 0001_shared_initial"),
        "{}",
        out(&plan)
    );
    assert!(
        out(&plan).contains("CREATE TABLE IF NOT EXISTS \"tenants\""),
        "{}",
        out(&plan)
    );
    // --dry-run changed nothing.
    assert_eq!(run(&["migrate", "status"]).status.code(), Some(1));

    let migrated = assert_ok(&run(&["migrate"]));
    assert!(migrated.contains("shared schema: 4 applied"), "{migrated}");
    assert_ok(&run(&["migrate", "status"]));
    assert_ok(&run(&["tenants", "create", "acme"]));
    assert_ok(&run(&["tenants", "create", "globex"]));

    // globex looks like a tenant a killed runner left running, and another runner holds
    // its file's write lock: this run records it as locked and exits 1.
    let ledger = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("UPDATE tenantry_migration_ledger SET state = 'running' WHERE tenant = 'globex'")
        .execute(&ledger)
        .await
        .unwrap();
    let mut holder =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}/demo.globex.sqlite", dir.display()))
            .await
            .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .unwrap();
    let locked = run(&["migrate", "--lock-wait", "1"]);
    assert_eq!(locked.status.code(), Some(1), "{locked:?}");
    assert!(
        out(&locked).contains("failed: globex stayed locked"),
        "{}",
        out(&locked)
    );
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    drop(holder);

    // Failed tenants are skipped (exit 1, naming --retry-failed) until retried.
    let skipped = run(&["migrate"]);
    assert_eq!(skipped.status.code(), Some(1), "{skipped:?}");
    assert!(
        out(&skipped).contains("run again with --retry-failed"),
        "{}",
        out(&skipped)
    );
    let status = run(&["migrate", "status"]);
    assert_eq!(status.status.code(), Some(1));
    assert!(out(&status).contains("failed"), "{}", out(&status));
    assert_ok(&run(&["migrate", "--retry-failed"]));
    assert_ok(&run(&["migrate", "status"]));
    ledger.close().await;

    // The service starts on the migrated database, and on an empty one, which it builds,
    // stamps and seeds: `migrate status` then finds everything current.
    assert!(serves(&url).contains("listening on http://127.0.0.1:"));
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let fresh = format!("sqlite://{}/demo.sqlite?mode=rwc", empty.display());
    assert!(serves(&fresh).contains("listening on http://127.0.0.1:"));
    let status = assert_ok(&demo(&["--database-url", &fresh, "migrate", "status"]));
    assert!(status.contains("4 applied, 0 pending"), "{status}");
    assert!(
        status.contains("edgy") && status.contains("done"),
        "{status}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts `serve` on `url`, returns its first line of output, and stops it.
fn serves(url: &str) -> String {
    let mut serve = command(&["--database-url", url, "--bind", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(serve.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    let _ = serve.kill();
    let _ = serve.wait();
    line
}

/// The demo's migration files build what its models declare; against a directory missing
/// the last two files, `--check` fails and names what is missing, and generation writes
/// them back (same operations) without touching the source tree.
#[test]
fn makemigrations_check_and_generate() {
    let out = assert_ok(&demo(&["makemigrations", "--check"]));
    assert!(out.contains("no changes"), "{out}");
    let dir = temp_dir("makemigrations");
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for id in [
        "0001_shared_initial",
        "0002_tenant_initial",
        "0003_shared_tenant_control",
    ] {
        let file = format!("{id}.json");
        std::fs::copy(source.join(&file), dir.join(&file)).unwrap();
    }
    let dir_arg = dir.to_str().unwrap();
    let behind = demo(&["makemigrations", "--check", "--migrations", dir_arg]);
    assert_refused(&behind, 1, &[]);
    let listed = String::from_utf8_lossy(&behind.stdout).into_owned();
    assert!(
        listed.contains("add_column products.price")
            && listed.contains("add_column products.stock"),
        "{listed}"
    );
    let made = assert_ok(&demo(&[
        "makemigrations",
        "--migrations",
        dir_arg,
        "--name",
        "price",
    ]));
    assert!(
        made.contains("0004_shared_price.json") && made.contains("0005_tenant_price.json"),
        "{made}"
    );
    let read = |d: &std::path::Path, id: &str| {
        let text = std::fs::read_to_string(d.join(format!("{id}.json"))).unwrap();
        tenantry::migrate::Migration::parse(id, &text).unwrap()
    };
    // The shared file made here holds what the source's 0004 and 0006 (the tenant
    // directory's table) hold, tables first.
    let mut shared = read(&source, "0006_shared_tenant_directory")
        .operations()
        .to_vec();
    shared.extend_from_slice(read(&source, "0004_shared_product_price_stock").operations());
    assert_eq!(read(&dir, "0004_shared_price").operations(), &shared[..]);
    assert_eq!(
        read(&dir, "0005_tenant_price").operations(),
        read(&source, "0005_tenant_product_price_stock").operations()
    );
    assert_ok(&demo(&[
        "makemigrations",
        "--check",
        "--migrations",
        dir_arg,
    ]));
    let bad = demo(&[
        "makemigrations",
        "--migrations",
        dir_arg,
        "--rename-table",
        "x=y",
    ]);
    assert_refused(&bad, 2, &["--rename-table x=y"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

backend_test!(directory_tenants_commands, |t: common::TestDb| async move {
    let url = t.url();
    let servers = format!("home={}", t.server_url());
    let database = format!("{}_dirdb", t.prefix);
    let a = t.schema("da");
    let a = a.as_str();
    let run = |args: &[&str]| {
        command(args)
            .env("DATABASE_URL", &url)
            .env("TENANTRY_DIRECTORY_SERVERS", &servers)
            .output()
            .unwrap()
    };
    let created = assert_ok(&run(&[
        "tenants",
        "create",
        a,
        "--server",
        "home",
        "--database",
        &database,
    ]));
    assert_eq!(created, format!("created tenant {a} on home/{database}\n"));
    let listed = assert_ok(&run(&["tenants", "list"]));
    assert_eq!(listed, format!("{a}\thome/{database}\n"));
    // The runner goes through the directory: the new tenant is current.
    let migrated = assert_ok(&run(&["migrate", "run"]));
    assert!(
        migrated.contains(&format!(
            "directory database home/{database}: 0 migrated, 0 failed"
        )),
        "{migrated}"
    );
    let again = run(&[
        "tenants",
        "create",
        a,
        "--server",
        "home",
        "--database",
        &database,
    ]);
    assert_refused(&again, 1, &[&format!("error: tenant {a} already exists.")]);
    let nowhere = run(&[
        "tenants",
        "create",
        "zz",
        "--server",
        "nowhere",
        "--database",
        &database,
    ]);
    assert_refused(&nowhere, 2, &["cannot create tenant zz"]);
    // Without a directory, --server is a usage error.
    let plain = demo(&[
        "--database-url",
        &url,
        "tenants",
        "create",
        "zz",
        "--server",
        "home",
        "--database",
        &database,
    ]);
    assert_refused(&plain, 2, &["--directory-server"]);
    let dropped = assert_ok(&run(&["tenants", "drop", a, "--yes"]));
    assert_eq!(dropped, format!("dropped tenant {a} and its data\n"));
    assert_eq!(assert_ok(&run(&["tenants", "list"])), "");
});
