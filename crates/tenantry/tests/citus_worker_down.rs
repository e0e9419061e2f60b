//! A Citus worker stopped under load, on a private cluster this test starts on free ports
//! (`../shared/citus/cluster.sh`, or `TENANTRY_TEST_CITUS_SCRIPT`): the other worker's tenants
//! see no error, the stopped worker's tenants get `Error::NodeUnavailable` within the acquire
//! timeout, and every tenant answers again once the worker is back, with no restart.

mod common;

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use tenantry::{create_schema, Database, Error, ForeignKey, Model, Registry, SchemaName};

#[derive(Model, Debug, Clone, PartialEq)]
#[model(shared)]
struct Plan {
    id: i64,
    #[model(max_length = 50)]
    title: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
struct Account {
    id: i64,
    #[model(max_length = 80)]
    name: String,
    plan: ForeignKey<Plan>,
}

/// The cluster script, or `None` when there is none (a failure when every backend is
/// required).
fn script() -> Option<PathBuf> {
    let path = match std::env::var("TENANTRY_TEST_CITUS_SCRIPT") {
        Ok(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/citus/cluster.sh"),
    };
    if path.is_file() {
        Some(path)
    } else if common::servers::required() {
        panic!(
            "no Citus cluster script at {} (set TENANTRY_TEST_CITUS_SCRIPT)",
            path.display()
        );
    } else {
        None
    }
}

/// The first of three consecutive free ports.
fn free_ports() -> u16 {
    for base in (30_000..40_000).step_by(10) {
        let bound: Vec<_> = (base..base + 3)
            .map_while(|p| TcpListener::bind(("127.0.0.1", p)).ok())
            .collect();
        if bound.len() == 3 {
            return base;
        }
    }
    panic!("no three consecutive free ports");
}

fn run(command: &mut Command) -> String {
    let output = command.stdin(Stdio::null()).output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// `pg_ctl` on one node, as the postgres user when run as root (as cluster.sh does).
fn pg_ctl(args: &[&str]) {
    let pg_ctl = "/usr/lib/postgresql/15/bin/pg_ctl";
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0
    });
    let mut command = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", pg_ctl]);
        c
    } else {
        Command::new(pg_ctl)
    };
    run(command.args(args));
}

struct Cluster {
    script: PathBuf,
    dir: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(&self.script)
            .arg("stop")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn read(r: &Registry, s: &SchemaName) -> tenantry::Result<Vec<String>> {
    let accounts = Account::query(r)
        .using(s)
        .filter(Account::plan().to(Plan::title()).eq("gold"))
        .all()
        .await?;
    Ok(accounts.into_iter().map(|a| a.name.clone()).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_worker_fails_only_its_tenants_and_they_answer_again_when_it_is_back() {
    let Some(script) = script() else {
        return;
    };
    let port = free_ports();
    let dir = std::env::temp_dir().join(format!("tenantry-citus-down-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let cluster = Cluster { script, dir };
    let url = run(Command::new("bash")
        .arg(&cluster.script)
        .arg("start")
        .arg(&cluster.dir)
        .arg(port.to_string()));
    let acquire = Duration::from_secs(5);
    let db = Database::options(&url)
        .max_connections(8)
        .acquire_timeout(acquire)
        .connect()
        .await
        .unwrap();
    let r = Registry::new(db.clone())
        .register::<Plan>()
        .register::<Account>();
    r.create_all().await.unwrap();
    let gold = Plan::query(&r)
        .create(Plan {
            id: 0,
            title: "gold".into(),
        })
        .await
        .unwrap();
    let names: Vec<SchemaName> = (0..8)
        .map(|i| SchemaName::parse(&format!("w{i}")).unwrap())
        .collect();
    for s in &names {
        create_schema(&r, s, None, false, true).await.unwrap();
        Account::query(&r)
            .using(s)
            .create(Account {
                id: 0,
                name: s.to_string(),
                plan: ForeignKey::from(&gold),
            })
            .await
            .unwrap();
    }
    let citus = db.citus().await.unwrap();
    let stopped_port = port + 2;
    let (mut down, mut up) = (Vec::new(), Vec::new());
    for placement in citus.placements().await.unwrap() {
        if placement.port == stopped_port {
            down.push(placement.schema);
        } else {
            up.push(placement.schema);
        }
    }
    assert!(
        !down.is_empty() && !up.is_empty(),
        "tenants on one worker only"
    );

    // Load on every tenant while the worker stops.
    let node = cluster.dir.join(format!("node-{stopped_port}"));
    let node = node.to_str().unwrap().to_owned();
    pg_ctl(&["-D", &node, "-m", "fast", "-w", "stop"]);
    for round in 0..5 {
        let reads = futures_util::future::join_all(names.iter().map(|s| {
            let r = r.clone();
            async move {
                let started = Instant::now();
                (s.clone(), read(&r, s).await, started.elapsed())
            }
        }))
        .await;
        for (s, result, took) in reads {
            if down.contains(&s) {
                assert!(
                    matches!(result, Err(Error::NodeUnavailable { .. })),
                    "round {round}: tenant {s} on the stopped worker: {result:?}"
                );
                assert!(took < acquire, "tenant {s} waited {took:?}");
            } else {
                assert_eq!(
                    result.unwrap(),
                    vec![s.to_string()],
                    "round {round}: tenant {s}"
                );
            }
        }
    }

    // Back: every tenant answers again through the same Database.
    let log = format!("{node}.log");
    pg_ctl(&["-D", &node, "-l", &log, "-w", "start"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    for s in &names {
        loop {
            match read(&r, s).await {
                Ok(names) => {
                    assert_eq!(names, vec![s.to_string()]);
                    break;
                }
                Err(error) if Instant::now() < deadline => {
                    eprintln!("{s} not back yet: {error}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => panic!("tenant {s} did not answer again: {error}"),
            }
        }
    }
    for s in &names {
        assert_eq!(read(&r, s).await.unwrap(), vec![s.to_string()]);
    }
    db.disconnect().await;
    drop(cluster);
}
