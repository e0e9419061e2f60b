//! Private database servers that one test owns: a PostgreSQL cluster made with `initdb` and a
//! `mariadbd` with its own data directory, each on a free port of 127.0.0.1, in a temporary
//! directory, never the shared servers on 5432 / 3306. A test may stop and start them at
//! will (a restart keeps the port and the data). Dropping the guard kills the server and
//! removes its directory, also when the test panicked.
//!
//! Run as root, the PostgreSQL tools run as the `postgres` OS user (`runuser -u postgres --`)
//! and mariadbd as `mysql` (`--user=mysql`); run as anyone else, as that user.

use std::{
    net::TcpListener,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use tenantry::Backend;

/// Where the PostgreSQL 15 server binaries live (Debian's layout).
pub const POSTGRES_BIN: &str = "/usr/lib/postgresql/15/bin";
/// The MariaDB server binary.
pub const MARIADBD: &str = "/usr/sbin/mariadbd";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Whether a test should start a private server for `backend`: when the backend is
/// configured for the suite (its `TENANTRY_TEST_*_URL` is set) or every backend is required
/// (`TENANTRY_TEST_REQUIRE_ALL=1`). The URL itself is not used: the server is private.
pub fn wanted(backend: Backend) -> bool {
    let var = match backend {
        Backend::Postgres => "TENANTRY_TEST_POSTGRES_URL",
        Backend::MySql => "TENANTRY_TEST_MYSQL_URL",
        Backend::Sqlite => return true,
    };
    std::env::var(var).is_ok_and(|v| !v.is_empty()) || required()
}

/// `TENANTRY_TEST_REQUIRE_ALL=1`: a server that cannot be started fails the test.
pub fn required() -> bool {
    std::env::var("TENANTRY_TEST_REQUIRE_ALL").is_ok_and(|v| v == "1")
}

/// A free TCP port on 127.0.0.1 (bound and released; the server binds it right after).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().unwrap().port()
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Runs `command` to the end; its output on failure.
fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

enum Kind {
    Postgres,
    MariaDb { child: Option<Child> },
}

/// One private server.
pub struct PrivateServer {
    kind: Kind,
    /// The temporary directory holding everything the server writes.
    dir: PathBuf,
    port: u16,
}

impl PrivateServer {
    /// A new PostgreSQL cluster (`initdb`, trust authentication, user `postgres`), started.
    pub fn postgres() -> Result<PrivateServer, String> {
        let initdb = Path::new(POSTGRES_BIN).join("initdb");
        if !initdb.exists() {
            return Err(format!("{} not found", initdb.display()));
        }
        let mut server = PrivateServer {
            kind: Kind::Postgres,
            dir: Self::make_dir("pg", "postgres")?,
            port: free_port(),
        };
        server.pg_tool(
            "initdb",
            &[
                "-D",
                &server.data().display().to_string(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        server.start_now()?;
        Ok(server)
    }

    /// A new MariaDB data directory (`mariadb-install-db`), its server started with grant
    /// tables skipped (any user, no password).
    pub fn mariadb() -> Result<PrivateServer, String> {
        if !Path::new(MARIADBD).exists() {
            return Err(format!("{MARIADBD} not found"));
        }
        let mut server = PrivateServer {
            kind: Kind::MariaDb { child: None },
            dir: Self::make_dir("my", "mysql")?,
            port: free_port(),
        };
        let mut install = Command::new("mariadb-install-db");
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", server.data().display()))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db");
        if running_as_root() {
            install.arg("--user=mysql");
        }
        run(&mut install)?;
        server.start_now()?;
        Ok(server)
    }

    /// The backend this server speaks.
    pub fn backend(&self) -> Backend {
        match self.kind {
            Kind::Postgres => Backend::Postgres,
            Kind::MariaDb { .. } => Backend::MySql,
        }
    }

    /// The port it listens on (the same after a restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL for database `database` on this server.
    pub fn url(&self, database: &str) -> String {
        match self.kind {
            Kind::Postgres => format!("postgres://postgres@127.0.0.1:{}/{database}", self.port),
            Kind::MariaDb { .. } => format!("mysql://root@127.0.0.1:{}/{database}", self.port),
        }
    }

    /// The URL of the server's own administrative database.
    pub fn admin_url(&self) -> String {
        match self.kind {
            Kind::Postgres => self.url("postgres"),
            Kind::MariaDb { .. } => self.url("mysql"),
        }
    }

    /// Creates database `name` (raw SQL: test set-up).
    pub async fn create_database(&self, name: &str) -> Result<(), String> {
        use sqlx::Connection;
        match self.kind {
            Kind::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.admin_url())
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
                    .execute(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                conn.close().await.map_err(|e| e.to_string())
            }
            Kind::MariaDb { .. } => {
                let mut conn = sqlx::MySqlConnection::connect(&self.admin_url())
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::raw_sql(&format!(
                    "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                ))
                .execute(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
                conn.close().await.map_err(|e| e.to_string())
            }
        }
    }

    /// Stops the server: PostgreSQL `pg_ctl stop -m fast` (clients disconnected, open
    /// transactions rolled back, committed work kept); MariaDB SIGTERM (a clean shutdown).
    /// Waits until it is down.
    pub async fn stop(&mut self) -> Result<(), String> {
        match &mut self.kind {
            Kind::Postgres => {
                let data = self.data().display().to_string();
                let this = &*self;
                tokio::task::block_in_place(|| {
                    this.pg_tool(
                        "pg_ctl",
                        &["-D", &data, "-m", "fast", "-w", "-t", "30", "stop"],
                    )
                })
            }
            Kind::MariaDb { child } => {
                let Some(mut process) = child.take() else {
                    return Ok(());
                };
                run(Command::new("kill")
                    .arg("-TERM")
                    .arg(process.id().to_string()))?;
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    match process.try_wait() {
                        Ok(Some(_)) => return Ok(()),
                        Ok(None) if Instant::now() < deadline => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Ok(None) => {
                            let _ = process.kill();
                            let _ = process.wait();
                            return Err("mariadbd did not stop within 30 s of SIGTERM".into());
                        }
                        Err(e) => return Err(format!("waiting for mariadbd: {e}")),
                    }
                }
            }
        }
    }

    /// Starts the server again on the same port and data, and waits until it answers.
    pub async fn start(&mut self) -> Result<(), String> {
        tokio::task::block_in_place(|| self.start_now())?;
        self.wait_ready(Duration::from_secs(30)).await
    }

    /// Waits until a fresh connection (not through tenantry) runs `SELECT 1`.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), String> {
        use sqlx::Connection;
        let deadline = Instant::now() + timeout;
        let url = self.admin_url();
        loop {
            let attempt = match self.kind {
                Kind::Postgres => match sqlx::PgConnection::connect(&url).await {
                    Ok(mut conn) => {
                        let ok = sqlx::query("SELECT 1").execute(&mut conn).await.map(drop);
                        let _ = conn.close().await;
                        ok
                    }
                    Err(e) => Err(e),
                },
                Kind::MariaDb { .. } => match sqlx::MySqlConnection::connect(&url).await {
                    Ok(mut conn) => {
                        let ok = sqlx::query("SELECT 1").execute(&mut conn).await.map(drop);
                        let _ = conn.close().await;
                        ok
                    }
                    Err(e) => Err(e),
                },
            };
            match attempt {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    return Err(format!(
                        "not ready within {timeout:?}: {e}; log:\n{}",
                        self.log()
                    ))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
            }
        }
    }

    /// The server's log (for failure messages).
    pub fn log(&self) -> String {
        let file = match self.kind {
            Kind::Postgres => self.dir.join("postgres.log"),
            Kind::MariaDb { .. } => self.dir.join("error.log"),
        };
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A fresh directory under the system temp dir, owned by `owner` when running as root.
    fn make_dir(tag: &str, owner: &str) -> Result<PathBuf, String> {
        let dir = std::env::temp_dir().join(format!(
            "tenantry-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if running_as_root() {
            run(Command::new("chown").arg(format!("{owner}:")).arg(&dir))?;
        }
        Ok(dir)
    }

    /// Runs a PostgreSQL tool as the `postgres` user when root.
    fn pg_tool(&self, tool: &str, args: &[&str]) -> Result<(), String> {
        let path = Path::new(POSTGRES_BIN).join(tool);
        let mut command = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        command.args(args);
        run(&mut command)
    }

    fn start_now(&mut self) -> Result<(), String> {
        match &mut self.kind {
            Kind::Postgres => {
                let options = format!(
                    "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
                     -c full_page_writes=off -c max_connections=60 -c shared_buffers=16MB",
                    self.port,
                    self.dir.display()
                );
                let data = self.data().display().to_string();
                let log = self.dir.join("postgres.log").display().to_string();
                let this = &*self;
                this.pg_tool(
                    "pg_ctl",
                    &[
                        "-D", &data, "-l", &log, "-o", &options, "-w", "-t", "30", "start",
                    ],
                )
            }
            Kind::MariaDb { child } => {
                let dir = &self.dir;
                let mut command = Command::new(MARIADBD);
                command
                    .arg("--no-defaults")
                    .arg(format!("--datadir={}", dir.join("data").display()))
                    .arg(format!("--port={}", self.port))
                    .arg("--bind-address=127.0.0.1")
                    .arg(format!("--socket={}", dir.join("mysqld.sock").display()))
                    .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
                    .arg(format!("--log-error={}", dir.join("error.log").display()))
                    .arg("--skip-grant-tables")
                    .arg("--skip-name-resolve")
                    .arg("--skip-log-bin")
                    .arg("--innodb-buffer-pool-size=32M")
                    .arg("--max-connections=200")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                if running_as_root() {
                    command.arg("--user=mysql");
                }
                *child = Some(command.spawn().map_err(|e| format!("{MARIADBD}: {e}"))?);
                Ok(())
            }
        }
    }
}

impl Drop for PrivateServer {
    /// Kills the server (immediately: nothing of it is needed any more) and removes its
    /// directory.
    fn drop(&mut self) {
        match &mut self.kind {
            Kind::Postgres => {
                let data = self.data();
                let stopped = self.pg_tool(
                    "pg_ctl",
                    &[
                        "-D",
                        &data.display().to_string(),
                        "-m",
                        "immediate",
                        "-w",
                        "-t",
                        "10",
                        "stop",
                    ],
                );
                if stopped.is_err() {
                    // Not running, or pg_ctl failed: kill the postmaster named in its pid
                    // file, if any.
                    if let Some(pid) = std::fs::read_to_string(data.join("postmaster.pid"))
                        .ok()
                        .and_then(|s| s.lines().next().map(str::to_owned))
                    {
                        let _ = run(Command::new("kill").arg("-KILL").arg(pid.trim()));
                    }
                }
            }
            Kind::MariaDb { child } => {
                if let Some(mut process) = child.take() {
                    let _ = process.kill();
                    let _ = process.wait();
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Connections the PostgreSQL or MySQL server at `url` reports for databases `dbs`
/// (`pg_stat_activity`, the processlist): the server's own count, for budget checks.
pub async fn connections_on(backend: Backend, url: &str, dbs: &[String]) -> usize {
    match backend {
        Backend::Postgres => {
            let admin = sqlx::PgPool::connect(url).await.unwrap();
            let n: i64 =
                sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = ANY($1)")
                    .bind(dbs)
                    .fetch_one(&admin)
                    .await
                    .unwrap();
            admin.close().await;
            n as usize
        }
        Backend::MySql => {
            let admin = sqlx::MySqlPool::connect(url).await.unwrap();
            let mut n = 0;
            for db in dbs {
                let count: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM information_schema.processlist WHERE db = ?",
                )
                .bind(db)
                .fetch_one(&admin)
                .await
                .unwrap();
                n += count as usize;
            }
            admin.close().await;
            n
        }
        Backend::Sqlite => panic!("SQLite has no server to count connections on"),
    }
}
