//! A database of its own on the Citus cluster of `TENANTRY_TEST_CITUS_URL` for each test:
//! created on the coordinator and its workers (`citus.enable_create_database_propagation`),
//! with the extension in each and the workers registered, dropped everywhere afterwards.
//! The cluster is the one `.ci/run` starts with `../shared/citus/cluster.sh`.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{Connection, PgConnection, Row};
use tenantry::Database;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The coordinator's URL, or `None` when Citus is not configured (and not required:
/// `TENANTRY_TEST_REQUIRE_ALL=1` makes a missing URL fail the test).
pub fn url() -> Option<String> {
    match std::env::var("TENANTRY_TEST_CITUS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("TENANTRY_TEST_REQUIRE_ALL").is_ok_and(|v| v == "1") => {
            panic!("TENANTRY_TEST_CITUS_URL is not set but TENANTRY_TEST_REQUIRE_ALL=1")
        }
        _ => None,
    }
}

/// One test's database on the cluster.
pub struct CitusDb {
    /// Its name on every node.
    pub name: String,
    admin_url: String,
    workers: Vec<(String, i32)>,
}

/// `url` with its path (the database) replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("a URL with a database");
    format!("{base}/{name}")
}

impl CitusDb {
    /// A new database on the cluster, or `None` when Citus is not configured.
    pub async fn create(test: &str) -> Option<CitusDb> {
        let admin_url = url()?;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let short: String = test
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(16)
            .collect();
        let name = format!(
            "tc{}_{}_{n}",
            std::process::id() % 100_000,
            short.to_lowercase()
        );
        let mut admin = PgConnection::connect(&admin_url).await.unwrap();
        sqlx::raw_sql("SET citus.enable_create_database_propagation = on")
            .execute(&mut admin)
            .await
            .unwrap();
        sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .unwrap();
        let workers: Vec<(String, i32)> = sqlx::query(
            "SELECT nodename, nodeport FROM pg_dist_node WHERE groupid <> 0 ORDER BY nodeport",
        )
        .fetch_all(&mut admin)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
        let coordinator =
            sqlx::query("SELECT nodename, nodeport FROM pg_dist_node WHERE groupid = 0")
                .fetch_one(&mut admin)
                .await
                .unwrap();
        let (coordinator_host, coordinator_port): (String, i32) =
            (coordinator.get(0), coordinator.get(1));
        admin.close().await.unwrap();
        for (host, port) in &workers {
            let url = format!("postgres://postgres@{host}:{port}/{name}");
            let mut worker = PgConnection::connect(&url).await.unwrap();
            sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS citus")
                .execute(&mut worker)
                .await
                .unwrap();
            worker.close().await.unwrap();
        }
        let mut db = PgConnection::connect(&with_database(&admin_url, &name))
            .await
            .unwrap();
        sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS citus")
            .execute(&mut db)
            .await
            .unwrap();
        sqlx::query("SELECT citus_set_coordinator_host($1, $2)")
            .bind(&coordinator_host)
            .bind(coordinator_port)
            .execute(&mut db)
            .await
            .unwrap();
        // Registering a worker opens a connection to it that the coordinator marks essential;
        // on a loaded machine (other tests moving tenants) it can fail once: it is idempotent,
        // so it is tried again.
        for (host, port) in &workers {
            let mut tries = 0;
            loop {
                let added = sqlx::query("SELECT citus_add_node($1, $2)")
                    .bind(host)
                    .bind(port)
                    .execute(&mut db)
                    .await;
                match added {
                    Ok(_) => break,
                    Err(error) if tries < 10 => {
                        eprintln!("citus_add_node({host}, {port}) failed, trying again: {error}");
                        tries += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    }
                    Err(error) => panic!("citus_add_node({host}, {port}): {error}"),
                }
            }
        }
        db.close().await.unwrap();
        Some(CitusDb {
            name,
            admin_url,
            workers,
        })
    }

    /// The database's URL on the coordinator.
    pub fn url(&self) -> String {
        with_database(&self.admin_url, &self.name)
    }

    /// A tenantry database over it, with a pool of `max_connections`.
    pub async fn connect(&self, max_connections: u32) -> Database {
        Database::options(&self.url())
            .max_connections(max_connections)
            .connect()
            .await
            .unwrap()
    }

    /// A raw connection to it on the coordinator, for the tests' catalog checks.
    pub async fn admin(&self) -> PgConnection {
        PgConnection::connect(&self.url()).await.unwrap()
    }

    /// Drops it on every node. The coordinator's cached connections to the workers may
    /// outlive the test's pool for a moment: they are ended on each worker first, and the
    /// drop is tried again while a worker still reports the database in use.
    pub async fn drop(self) {
        let mut last = None;
        for _ in 0..20 {
            for (host, port) in &self.workers {
                let url = format!("postgres://postgres@{host}:{port}/postgres");
                let mut worker = PgConnection::connect(&url).await.unwrap();
                sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                )
                .bind(&self.name)
                .execute(&mut worker)
                .await
                .unwrap();
                worker.close().await.unwrap();
            }
            let mut admin = PgConnection::connect(&self.admin_url).await.unwrap();
            sqlx::raw_sql("SET citus.enable_create_database_propagation = on")
                .execute(&mut admin)
                .await
                .unwrap();
            let dropped = sqlx::raw_sql(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin)
            .await;
            admin.close().await.unwrap();
            match dropped {
                Ok(_) => return,
                // An earlier attempt dropped a worker's copy before failing elsewhere
                // (seen once in CI): the propagated drop can never succeed again.
                Err(error) if missing(&error) => return self.drop_node_by_node().await,
                Err(error) => last = Some(error),
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        panic!("could not drop {}: {last:?}", self.name);
    }

    /// Drops the database on each worker, then on the coordinator without propagation.
    async fn drop_node_by_node(&self) {
        let drop = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        for (host, port) in &self.workers {
            let url = format!("postgres://postgres@{host}:{port}/postgres");
            let mut worker = PgConnection::connect(&url).await.unwrap();
            sqlx::raw_sql(&drop).execute(&mut worker).await.unwrap();
            worker.close().await.unwrap();
        }
        let mut admin = PgConnection::connect(&self.admin_url).await.unwrap();
        sqlx::raw_sql("SET citus.enable_create_database_propagation = off")
            .execute(&mut admin)
            .await
            .unwrap();
        sqlx::raw_sql(&drop).execute(&mut admin).await.unwrap();
        admin.close().await.unwrap();
    }
}

/// Whether `error` says a database does not exist (on a worker, through the coordinator).
fn missing(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "3D000")
}

/// A private Citus cluster for a test that stops a node (never the shared one): started with
/// `cluster.sh start` on three free ports in a directory of its own, stopped and removed
/// when dropped.
pub struct PrivateCluster {
    script: std::path::PathBuf,
    dir: std::path::PathBuf,
    port: u16,
    url: String,
}

impl PrivateCluster {
    /// Starts one, or `None` without the cluster script (`TENANTRY_TEST_CITUS_SCRIPT`, else
    /// `../shared/citus/cluster.sh` beside the repository); a missing script fails the test
    /// when every backend is required.
    pub fn start(name: &str) -> Option<PrivateCluster> {
        use std::path::PathBuf;
        let script = match std::env::var("TENANTRY_TEST_CITUS_SCRIPT") {
            Ok(path) if !path.is_empty() => PathBuf::from(path),
            _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/citus/cluster.sh"),
        };
        if !script.is_file() {
            assert!(
                !std::env::var("TENANTRY_TEST_REQUIRE_ALL").is_ok_and(|v| v == "1"),
                "no Citus cluster script at {} (set TENANTRY_TEST_CITUS_SCRIPT)",
                script.display()
            );
            return None;
        }
        let port = free_ports();
        let dir =
            std::env::temp_dir().join(format!("tenantry-citus-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut cluster = PrivateCluster {
            script,
            dir,
            port,
            url: String::new(),
        };
        cluster.url = run(std::process::Command::new("bash")
            .arg(&cluster.script)
            .arg("start")
            .arg(&cluster.dir)
            .arg(port.to_string()));
        Some(cluster)
    }

    /// The coordinator's URL (database `postgres`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The port of worker `n` (1 or 2).
    pub fn worker_port(&self, n: u16) -> u16 {
        self.port + n
    }

    /// Stops worker `n` (`pg_ctl stop -m fast`): clients cut, committed work kept.
    pub fn stop_worker(&self, n: u16) {
        let node = self.node(n);
        pg_ctl(&["-D", &node, "-m", "fast", "-w", "stop"]);
    }

    /// Starts worker `n` again.
    pub fn start_worker(&self, n: u16) {
        let node = self.node(n);
        let log = format!("{node}.log");
        pg_ctl(&["-D", &node, "-l", &log, "-w", "start"]);
    }

    fn node(&self, n: u16) -> String {
        self.dir
            .join(format!("node-{}", self.worker_port(n)))
            .to_str()
            .unwrap()
            .to_owned()
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(&self.script)
            .arg("stop")
            .arg(&self.dir)
            .stdin(std::process::Stdio::null())
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The first of three consecutive free ports on 127.0.0.1.
fn free_ports() -> u16 {
    let start = 30_000 + (std::process::id() % 500) as u16 * 10;
    for base in (start..40_000)
        .step_by(10)
        .chain((30_000..start).step_by(10))
    {
        let bound: Vec<_> = (base..base + 3)
            .map_while(|p| std::net::TcpListener::bind(("127.0.0.1", p)).ok())
            .collect();
        if bound.len() == 3 {
            return base;
        }
    }
    panic!("no three consecutive free ports");
}

fn run(command: &mut std::process::Command) -> String {
    let output = command.stdin(std::process::Stdio::null()).output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// `pg_ctl`, as the postgres user when run as root (as cluster.sh does).
fn pg_ctl(args: &[&str]) {
    use std::os::unix::fs::MetadataExt;
    let pg_ctl = "/usr/lib/postgresql/15/bin/pg_ctl";
    let mut command = if std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--", pg_ctl]);
        c
    } else {
        std::process::Command::new(pg_ctl)
    };
    run(command.args(args));
}
