//! The shapes, not only the cases: every body runs on every backend with pools of 1 and 2
//! connections (`backend_pool_test!`).
//!
//! - several tenants inside ONE task: `tokio::join!`, `tokio::select!` (driving every branch to
//!   the end, and cancelling branches mid-query) and `join_all`, each branch in its own
//!   `with_tenant(Some(schema), ..)` scope, with yields between the queries; each tenant holds
//!   different rows, and no branch may see another's;
//! - a transaction held while other tasks (and its own task, outside the transaction) query:
//!   on a pool of 2 they finish while it is open; on a pool of 1 they finish once it commits;
//!   every wait is bounded and a hang fails loudly;
//! - `drop_schema` and `create_schema` of one name racing reads and writes on it from other
//!   tasks: each query succeeds with that tenant's own rows or fails with
//!   `Error::SchemaNotFound` / `Error::Database`, never with another tenant's rows; no query
//!   succeeds while the schema is dropped; a recreated tenant starts empty; no bystander
//!   tenant notices;
//! - a transaction racing `drop_schema`: the drop waits for it, refuses it, or the commit
//!   fails; a commit acknowledged into a schema already dropped (a silently lost write) fails
//!   the test.
//!
//! Every bound is `BOUND`; nothing here is `#[ignore]`d.
mod common;

use std::{
    collections::BTreeSet,
    future::Future,
    pin::pin,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use common::{models::*, TestDb};
use futures_util::future::join_all;
use tenantry::{
    create_schema, drop_schema, with_tenant, Backend, Error, Registry, SchemaName, Transaction,
};
use tokio::task::yield_now;

/// The longest any single wait may take before the test calls it a hang.
const BOUND: Duration = Duration::from_secs(15);
/// Rows of the default schema: a count no tenant has.
const DEFAULT_ROWS: usize = 13;

/// `n` tenant schemas `s<i>`; tenant `i` holds users `s<i>-base-0..i+2` (a count of its
/// own); the default schema holds `default-0..DEFAULT_ROWS`.
async fn tenants(t: &TestDb, n: usize) -> Vec<SchemaName> {
    let r = &t.registry;
    let mut schemas = Vec::new();
    for i in 0..n {
        let schema = t.schema(&format!("s{i}"));
        create_schema(r, &schema, None, false, true).await.unwrap();
        User::query(r)
            .using(&schema)
            .bulk_create((0..base_rows(i)).map(|k| user(&format!("s{i}-base-{k}"))))
            .await
            .unwrap();
        schemas.push(schema);
    }
    User::query(r)
        .bulk_create((0..DEFAULT_ROWS).map(|k| user(&format!("default-{k}"))))
        .await
        .unwrap();
    schemas
}

fn base_rows(i: usize) -> usize {
    i + 2
}

fn tag(i: usize) -> String {
    format!("s{i}-")
}

/// Fails the test with every problem found, or after `what` if the future exceeds `BOUND`.
async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(BOUND, future).await {
        Ok(value) => value,
        Err(_) => panic!("HANG: {what} did not finish within {BOUND:?}"),
    }
}

/// Fails with every problem: first a count per kind (digits and quoted names folded),
/// then the first few in full.
fn assert_no_problems(problems: &[String], what: &str) {
    const SHOWN: usize = 25;
    if problems.is_empty() {
        return;
    }
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for problem in problems {
        let mut kind = String::new();
        let mut quoted = false;
        for c in problem.chars() {
            match c {
                '"' => {
                    quoted = !quoted;
                    if quoted {
                        kind.push_str("\"…\"");
                    }
                }
                _ if quoted => {}
                '0'..='9' if kind.ends_with('N') => {}
                '0'..='9' => kind.push('N'),
                c => kind.push(c),
            }
        }
        *kinds.entry(kind).or_default() += 1;
    }
    let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} × {k}")).collect();
    let more = match problems.len().saturating_sub(SHOWN) {
        0 => String::new(),
        n => format!("\n  ... and {n} more"),
    };
    panic!(
        "{what}: {} problem(s); by kind:\n  {}\nfirst ones:\n  {}{more}",
        problems.len(),
        kinds.join("\n  "),
        problems[..problems.len().min(SHOWN)].join("\n  ")
    );
}

/// The names of the current scope's users (three queries apart by yields: count, all, a
/// filter), checked against tenant `i` (`None`: the default schema): every row carries the
/// tag and the count is `expected` (when known). Returns the problems found.
async fn read_own(
    r: &Registry,
    i: Option<usize>,
    expected: Option<usize>,
    at: &str,
) -> Vec<String> {
    let mut problems = Vec::new();
    let tag = i.map(tag).unwrap_or_else(|| "default-".into());
    yield_now().await;
    let count = match User::query(r).count().await {
        Ok(count) => count as usize,
        Err(e) => return vec![format!("{at}: count in {tag}*: {e:?}")],
    };
    yield_now().await;
    let rows = match User::query(r).all().await {
        Ok(rows) => rows,
        Err(e) => return vec![format!("{at}: all in {tag}*: {e:?}")],
    };
    yield_now().await;
    let filtered = match User::query(r)
        .filter(User::name().startswith(tag.clone()))
        .count()
        .await
    {
        Ok(n) => n as usize,
        Err(e) => return vec![format!("{at}: filter in {tag}*: {e:?}")],
    };
    for row in &rows {
        if !row.name.starts_with(&tag) {
            problems.push(format!(
                "{at}: scope of {tag}* read foreign row {:?}",
                row.name
            ));
        }
    }
    if let Some(expected) = expected {
        if count != expected || rows.len() != expected || filtered != expected {
            problems.push(format!(
                "{at}: scope of {tag}* counted {count}, listed {}, filtered {filtered}; expected {expected}",
                rows.len()
            ));
        }
    }
    problems
}

/// One tenant's branch: `rounds` times read (checked), yield, write a tagged row, yield.
/// Runs inside the caller's scope for tenant `i`; nobody else writes to it.
async fn branch(r: Registry, i: usize, label: &str, rounds: usize) -> Vec<String> {
    let mut problems = Vec::new();
    for round in 0..rounds {
        let at = format!("{label} round {round}");
        problems.extend(read_own(&r, Some(i), Some(base_rows(i) + round), &at).await);
        yield_now().await;
        let name = format!("s{i}-{label}-{round}");
        match User::query(&r).create(user(&name)).await {
            Ok(created) if created.name == name => {}
            Ok(created) => problems.push(format!("{at}: created {:?}", created.name)),
            Err(e) => problems.push(format!("{at}: create {name}: {e:?}")),
        }
        yield_now().await;
    }
    problems.extend(
        read_own(
            &r,
            Some(i),
            Some(base_rows(i) + rounds),
            &format!("{label} end"),
        )
        .await,
    );
    problems
}

/// What every tenant must hold at the end, read with explicit `using` (no context).
async fn assert_final(r: &Registry, schemas: &[SchemaName], extra: impl Fn(usize) -> Vec<String>) {
    for (i, schema) in schemas.iter().enumerate() {
        let seen: BTreeSet<String> = User::query(r)
            .using(schema)
            .all()
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.into_inner().name)
            .collect();
        let mut expected: BTreeSet<String> = (0..base_rows(i))
            .map(|k| format!("s{i}-base-{k}"))
            .collect();
        expected.extend(extra(i));
        assert_eq!(seen, expected, "tenant {schema} at the end");
    }
    let default = User::query(r).count().await.unwrap();
    assert_eq!(
        default as usize, DEFAULT_ROWS,
        "the default schema at the end"
    );
}

// --- several tenants inside one task -------------------------------------------------------

backend_pool_test!(join_macro_in_one_task, |t: TestDb| async move {
    let schemas = tenants(&t, 4).await;
    let r = t.registry.clone();
    // The join runs inside tenant 0's scope: the first branch inherits it, the others
    // open their own. Nothing may leak between siblings or into the outer scope.
    let (a, b, c, d, outer_after) = with_tenant(Some(schemas[0].clone()), async {
        let (a, b, c, d) = tokio::join!(
            branch(r.clone(), 0, "join", 3),
            with_tenant(Some(schemas[1].clone()), branch(r.clone(), 1, "join", 3)),
            with_tenant(Some(schemas[2].clone()), branch(r.clone(), 2, "join", 3)),
            with_tenant(Some(schemas[3].clone()), branch(r.clone(), 3, "join", 3)),
        );
        let outer_after = read_own(
            &r,
            Some(0),
            Some(base_rows(0) + 3),
            "outer scope after join",
        )
        .await;
        (a, b, c, d, outer_after)
    })
    .await;
    let problems: Vec<String> = [a, b, c, d, outer_after].concat();
    assert_no_problems(&problems, "join! over four tenants in one task");
    // A join with a default-scope branch and a tenant branch.
    let (default, tenant) = tokio::join!(
        with_tenant(
            None,
            read_own(&r, None, Some(DEFAULT_ROWS), "default branch")
        ),
        with_tenant(
            Some(schemas[2].clone()),
            read_own(&r, Some(2), Some(base_rows(2) + 3), "tenant branch")
        ),
    );
    assert_no_problems(
        &[default, tenant].concat(),
        "join! of the default scope and a tenant",
    );
    assert_final(&r, &schemas, |i| {
        (0..3).map(|k| format!("s{i}-join-{k}")).collect()
    })
    .await;
});

backend_pool_test!(select_macro_in_one_task, |t: TestDb| async move {
    let schemas = tenants(&t, 4).await;
    let r = t.registry.clone();

    // 1. select! in a loop drives all four branches to their end, polled by one task.
    let mut problems = Vec::new();
    {
        let mut a = pin!(with_tenant(
            Some(schemas[0].clone()),
            branch(r.clone(), 0, "sel", 3)
        ));
        let mut b = pin!(with_tenant(
            Some(schemas[1].clone()),
            branch(r.clone(), 1, "sel", 3)
        ));
        let mut c = pin!(with_tenant(
            Some(schemas[2].clone()),
            branch(r.clone(), 2, "sel", 3)
        ));
        let mut d = pin!(with_tenant(
            Some(schemas[3].clone()),
            branch(r.clone(), 3, "sel", 3)
        ));
        let mut done = [false; 4];
        bounded("the select! loop", async {
            while done.iter().any(|d| !d) {
                tokio::select! {
                    p = &mut a, if !done[0] => { done[0] = true; problems.extend(p); }
                    p = &mut b, if !done[1] => { done[1] = true; problems.extend(p); }
                    p = &mut c, if !done[2] => { done[2] = true; problems.extend(p); }
                    p = &mut d, if !done[3] => { done[3] = true; problems.extend(p); }
                }
            }
        })
        .await;
    }
    assert_no_problems(&problems, "select! loop over four tenants in one task");

    // 2. select! that cancels: a reading branch of one tenant races a short timer and is
    //    dropped mid-query; another tenant's branch runs in the same select!. Afterwards the
    //    connections it left behind serve every tenant correctly.
    let mut cancelled = 0;
    for round in 0..12 {
        let i = round % 4;
        let j = (round + 1) % 4;
        let expected_i = base_rows(i) + 3;
        let expected_j = base_rows(j) + 3;
        let slow = with_tenant(Some(schemas[i].clone()), async {
            let mut problems = Vec::new();
            for k in 0..5 {
                problems.extend(
                    read_own(
                        &r,
                        Some(i),
                        Some(expected_i),
                        &format!("cancel round {round}.{k}"),
                    )
                    .await,
                );
            }
            problems
        });
        let winner = format!("winner round {round}");
        let other = with_tenant(
            Some(schemas[j].clone()),
            read_own(&r, Some(j), Some(expected_j), &winner),
        );
        let timer = tokio::time::sleep(Duration::from_micros(200 * (round as u64 + 1)));
        bounded("a cancelling select!", async {
            tokio::select! {
                p = slow => problems.extend(p),
                p = other => problems.extend(p),
                () = timer => cancelled += 1,
            }
        })
        .await;
    }
    assert_no_problems(&problems, "select! that cancels branches");
    // After the cancellations, one join over every tenant and the default schema.
    let results = bounded(
        "join_all after cancellations",
        join_all(
            (0..4)
                .map(|i| {
                    let r = r.clone();
                    Box::pin(with_tenant(Some(schemas[i].clone()), async move {
                        read_own(&r, Some(i), Some(base_rows(i) + 3), "after cancellations").await
                    }))
                        as std::pin::Pin<Box<dyn Future<Output = Vec<String>> + Send>>
                })
                .chain(std::iter::once(Box::pin(with_tenant(None, {
                    let r = r.clone();
                    async move {
                        read_own(&r, None, Some(DEFAULT_ROWS), "default after cancellations").await
                    }
                })) as _)),
        ),
    )
    .await;
    assert_no_problems(&results.concat(), "reads after select! cancellations");
    eprintln!("select!: {cancelled} of 12 rounds cancelled by the timer");
    assert_final(&r, &schemas, |i| {
        (0..3).map(|k| format!("s{i}-sel-{k}")).collect()
    })
    .await;
});

backend_pool_test!(join_all_in_one_task, |t: TestDb| async move {
    const TENANTS: usize = 8;
    const PER_TENANT: usize = 3;
    const ROUNDS: usize = 3;
    let schemas = tenants(&t, TENANTS).await;
    let r = t.registry.clone();
    // 24 tenant futures (three per tenant, writing concurrently) and two default-scope
    // readers, all polled by this one task.
    let mut futures: Vec<std::pin::Pin<Box<dyn Future<Output = Vec<String>> + Send>>> = Vec::new();
    for k in 0..PER_TENANT {
        for (i, schema) in schemas.iter().enumerate() {
            let r = r.clone();
            futures.push(Box::pin(with_tenant(Some(schema.clone()), async move {
                let mut problems = Vec::new();
                let (low, high) = (base_rows(i), base_rows(i) + PER_TENANT * ROUNDS);
                for round in 0..ROUNDS {
                    let at = format!("join_all tenant {i} future {k} round {round}");
                    // The count is not exact (siblings of the same tenant write too), but
                    // it is bounded and every row is the tenant's.
                    let reads = read_own(&r, Some(i), None, &at).await;
                    problems.extend(reads);
                    match User::query(&r).count().await {
                        Ok(n) if (low..=high).contains(&(n as usize)) => {}
                        Ok(n) => problems.push(format!("{at}: count {n} outside {low}..={high}")),
                        Err(e) => problems.push(format!("{at}: count: {e:?}")),
                    }
                    yield_now().await;
                    let name = format!("s{i}-ja{k}-{round}");
                    if let Err(e) = User::query(&r).create(user(&name)).await {
                        problems.push(format!("{at}: create: {e:?}"));
                    }
                    yield_now().await;
                }
                problems
            })));
        }
    }
    for d in 0..2 {
        let r = r.clone();
        futures.push(Box::pin(with_tenant(None, async move {
            let mut problems = Vec::new();
            for round in 0..ROUNDS {
                problems.extend(
                    read_own(
                        &r,
                        None,
                        Some(DEFAULT_ROWS),
                        &format!("default reader {d} round {round}"),
                    )
                    .await,
                );
            }
            problems
        })));
    }
    let results = bounded("join_all over 26 futures", join_all(futures)).await;
    assert_no_problems(&results.concat(), "join_all over eight tenants in one task");
    assert_final(&r, &schemas, |i| {
        (0..PER_TENANT)
            .flat_map(|k| (0..ROUNDS).map(move |round| format!("s{i}-ja{k}-{round}")))
            .collect()
    })
    .await;
});

// --- a transaction held while others query -------------------------------------------------

/// A transaction for tenant `schema`: on SQLite in the tenant's file.
async fn begin(r: &Registry, schema: &SchemaName) -> tenantry::Result<Transaction> {
    match r.database().backend() {
        Backend::Sqlite => r.begin_in(schema).await,
        _ => r.begin().await,
    }
}

backend_pool_test!(
    transaction_held_while_others_query,
    |t: TestDb| async move {
        let schemas = tenants(&t, 3).await;
        let r = t.registry.clone();
        let pool = t.max_connections;

        let tx = bounded("begin", begin(&r, &schemas[0])).await.unwrap();
        bounded(
            "a write in the transaction",
            with_tenant(
                Some(schemas[0].clone()),
                User::query(&tx).create(user("s0-tx")),
            ),
        )
        .await
        .unwrap();

        // Other tasks: tenant 1 reads and writes, tenant 2 reads, tenant 0 reads (on a pool
        // of 2 while the transaction is open: without its uncommitted row), the default schema
        // reads. Each returns its problems and the count it read last.
        let finished = Arc::new(AtomicUsize::new(0));
        let mut others = Vec::new();
        for (task, (i, write)) in [
            (Some(1), true),
            (Some(2), false),
            (Some(0), false),
            (None, false),
            (Some(1), false),
        ]
        .into_iter()
        .enumerate()
        {
            let (r, finished) = (r.clone(), finished.clone());
            let scope = i.map(|i| schemas[i].clone());
            others.push(tokio::spawn(with_tenant(scope, async move {
                let expected = match i {
                    Some(i) => base_rows(i),
                    None => DEFAULT_ROWS,
                };
                // Tenant 0's count depends on the pool (checked below); tenant 1's on the
                // writer's timing.
                let exact = !write && i != Some(0) && i != Some(1);
                let at = format!("task {task}");
                let mut problems = read_own(&r, i, exact.then_some(expected), &at).await;
                if write {
                    if let Err(e) = User::query(&r)
                        .create(user(&format!("s1-other-{task}")))
                        .await
                    {
                        problems.push(format!("{at}: create: {e:?}"));
                    }
                }
                let count = match User::query(&r).count().await {
                    Ok(n) => n as usize,
                    Err(e) => {
                        problems.push(format!("{at}: count: {e:?}"));
                        usize::MAX
                    }
                };
                finished.fetch_add(1, Ordering::SeqCst);
                (problems, count)
            })));
        }

        let mut problems = Vec::new();
        if pool >= 2 {
            // A free connection exists: everything finishes while the transaction is open,
            // including a query of the holder's own task outside the transaction.
            let Ok(results) = tokio::time::timeout(BOUND, join_all(others)).await else {
                panic!(
                    "DEADLOCK: on a pool of {pool}, {} of 5 queries of other tasks finished \
                     within {BOUND:?} while one transaction held one connection",
                    finished.load(Ordering::SeqCst)
                )
            };
            let (p, counts): (Vec<_>, Vec<_>) = results.into_iter().map(|r| r.unwrap()).unzip();
            problems.extend(p.concat());
            // No dirty read: the transaction is still open.
            if counts[2] != base_rows(0) {
                problems.push(format!(
                    "tenant 0 counted {} while its transaction was open; expected {}",
                    counts[2],
                    base_rows(0)
                ));
            }
            let own = tokio::time::timeout(BOUND, User::query(&r).using(&schemas[2]).count());
            match own.await {
                Ok(Ok(n)) if n as usize == base_rows(2) => {}
                Ok(other) => problems.push(format!(
                    "the holder's own query outside the transaction: {other:?}"
                )),
                Err(_) => panic!(
                    "DEADLOCK: on a pool of {pool}, the task holding a transaction could not \
                     run one query outside it within {BOUND:?}"
                ),
            }
            bounded("commit", tx.commit()).await.unwrap();
        } else {
            // One connection: the others wait for the transaction (on SQLite only tenant 0's
            // file is held) and finish once it commits.
            tokio::time::sleep(Duration::from_millis(300)).await;
            bounded("commit", tx.commit()).await.unwrap();
            let Ok(results) = tokio::time::timeout(BOUND, join_all(others)).await else {
                panic!(
                    "HANG: on a pool of 1, {} of 5 queries of other tasks finished within \
                     {BOUND:?} after the transaction committed",
                    finished.load(Ordering::SeqCst)
                )
            };
            let (p, counts): (Vec<_>, Vec<_>) = results.into_iter().map(|r| r.unwrap()).unzip();
            problems.extend(p.concat());
            // Before the commit (SQLite: on another file's pool) or after it.
            if ![base_rows(0), base_rows(0) + 1].contains(&counts[2]) {
                problems.push(format!("tenant 0 counted {}", counts[2]));
            }
        }
        assert_no_problems(
            &problems,
            &format!("queries beside a transaction on a pool of {pool}"),
        );
        assert_final(&r, &schemas, |i| match i {
            0 => vec!["s0-tx".to_owned()],
            1 => vec!["s1-other-0".to_owned()],
            _ => vec![],
        })
        .await;
    }
);

// --- drops and creates racing queries ----------------------------------------------------

/// One victim operation: when it started and ended, what it wrote (if a write) and whether
/// it succeeded.
struct Op {
    start: Instant,
    end: Instant,
    write: Option<String>,
    ok: bool,
}

/// One drop/create cycle of the dropper.
struct Cycle {
    /// `drop_schema` returned Ok.
    dropped: Instant,
    /// `create_schema` was called.
    create_started: Instant,
    /// The rows found right after `create_schema` returned.
    found_after_create: Vec<String>,
}

/// Victim rows are `v-...`; bystander `j` rows are `b<j>-...`.
fn race_error(e: &Error) -> Option<&'static str> {
    match e {
        Error::SchemaNotFound { .. } => Some("SchemaNotFound"),
        Error::Database(_) => Some("Database"),
        _ => None,
    }
}

/// The value of a bounded read or write of the dropped schema; `None` after counting a
/// typed race error (as `"<what> <kind>"`) or reporting anything else (an untyped error, a
/// hang) as a problem.
fn victim_outcome<T>(
    what: &str,
    outcome: Result<tenantry::Result<T>, tokio::time::error::Elapsed>,
    errors: &Mutex<std::collections::BTreeMap<String, usize>>,
    problem: &impl Fn(String),
) -> Option<T> {
    match outcome {
        Ok(Ok(value)) => Some(value),
        Ok(Err(e)) => {
            match race_error(&e) {
                Some(kind) => {
                    *errors
                        .lock()
                        .unwrap()
                        .entry(format!("{what} {kind}"))
                        .or_default() += 1
                }
                None => problem(format!(
                    "a {what} on the victim failed with an untyped kind: {e:?}"
                )),
            }
            None
        }
        Err(_) => {
            problem(format!("HANG: a {what} on the victim exceeded {BOUND:?}"));
            None
        }
    }
}

backend_pool_test!(drop_and_create_race_queries, |t: TestDb| async move {
    const READERS: usize = 3;
    const WRITERS: usize = 2;
    const CYCLES: usize = 8;
    let r = t.registry.clone();
    let victim = t.schema("v");
    let bystanders = [t.schema("b0"), t.schema("b1")];
    create_schema(&r, &victim, None, false, true).await.unwrap();
    User::query(&r)
        .using(&victim)
        .bulk_create((0..3).map(|k| user(&format!("v-base-{k}"))))
        .await
        .unwrap();
    for (j, b) in bystanders.iter().enumerate() {
        create_schema(&r, b, None, false, true).await.unwrap();
        User::query(&r)
            .using(b)
            .bulk_create((0..4 + j).map(|k| user(&format!("b{j}-base-{k}"))))
            .await
            .unwrap();
    }
    User::query(&r)
        .bulk_create((0..DEFAULT_ROWS).map(|k| user(&format!("default-{k}"))))
        .await
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    // Set by the dropper after repeated refusals (`SchemaBusy`): the victim's traffic pauses
    // until the drop went through, as an operator would stop it. A drop that waits for its
    // users never needs it.
    let quiet = Arc::new(AtomicBool::new(false));
    let ops: Arc<Mutex<Vec<Op>>> = Arc::default();
    let problems: Arc<Mutex<Vec<String>>> = Arc::default();
    let errors: Arc<Mutex<std::collections::BTreeMap<String, usize>>> = Arc::default();
    let problem = {
        let problems = problems.clone();
        move |p: String| problems.lock().unwrap().push(p)
    };

    let mut tasks = Vec::new();
    // Readers: the victim and both bystanders in turn, each in its own scope.
    for task in 0..READERS {
        let (r, stop, ops, errors, problem) = (
            r.clone(),
            stop.clone(),
            ops.clone(),
            errors.clone(),
            problem.clone(),
        );
        let (victim, bystanders) = (victim.clone(), bystanders.clone());
        let quiet = quiet.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let j = (n + task) % 3;
                if j < 2 {
                    let b = &bystanders[j];
                    let read = tokio::time::timeout(
                        BOUND,
                        with_tenant(Some(b.clone()), User::query(&r).all()),
                    )
                    .await;
                    match read {
                        Ok(Ok(rows)) => {
                            let foreign: Vec<_> = rows
                                .iter()
                                .filter(|u| !u.name.starts_with(&format!("b{j}-")))
                                .map(|u| u.name.clone())
                                .collect();
                            if !foreign.is_empty() || rows.len() != 4 + j {
                                problem(format!(
                                    "bystander b{j} read {} rows, foreign {foreign:?}",
                                    rows.len()
                                ));
                            }
                        }
                        Ok(Err(e)) => problem(format!(
                            "bystander b{j} read failed while another schema was dropped: {e:?}"
                        )),
                        Err(_) => problem(format!("HANG: bystander b{j} read exceeded {BOUND:?}")),
                    }
                    continue;
                }
                if quiet.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                let start = Instant::now();
                let read = tokio::time::timeout(
                    BOUND,
                    with_tenant(Some(victim.clone()), async {
                        let count = User::query(&r).count().await?;
                        yield_now().await;
                        let rows = User::query(&r).all().await?;
                        Ok::<_, Error>((count, rows))
                    }),
                )
                .await;
                let end = Instant::now();
                let ok = match victim_outcome("read", read, &errors, &problem) {
                    Some((_, rows)) => {
                        for u in rows.iter().filter(|u| !u.name.starts_with("v-")) {
                            problem(format!("CROSS: a read of the victim returned {:?}", u.name));
                        }
                        true
                    }
                    None => false,
                };
                ops.lock().unwrap().push(Op {
                    start,
                    end,
                    write: None,
                    ok,
                });
            }
        }));
    }
    // Writers: tagged rows into the victim.
    for task in 0..WRITERS {
        let (r, stop, ops, errors, problem) = (
            r.clone(),
            stop.clone(),
            ops.clone(),
            errors.clone(),
            problem.clone(),
        );
        let victim = victim.clone();
        let quiet = quiet.clone();
        tasks.push(tokio::spawn(async move {
            let mut seq = 0usize;
            while !stop.load(Ordering::Relaxed) {
                if quiet.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                seq += 1;
                let name = format!("v-w{task}-{seq}");
                let start = Instant::now();
                let write = tokio::time::timeout(
                    BOUND,
                    with_tenant(Some(victim.clone()), User::query(&r).create(user(&name))),
                )
                .await;
                let end = Instant::now();
                let ok = match victim_outcome("write", write, &errors, &problem) {
                    Some(created) => {
                        if created.name != name {
                            problem(format!("a write of {name} returned {:?}", created.name));
                        }
                        true
                    }
                    None => false,
                };
                ops.lock().unwrap().push(Op {
                    start,
                    end,
                    write: Some(name),
                    ok,
                });
                yield_now().await;
            }
        }));
    }

    // The dropper: drop (retrying a refusal), check it is gone, create, check it is empty.
    let mut cycles = Vec::new();
    let mut refusals = std::collections::BTreeMap::<String, usize>::new();
    for cycle in 0..CYCLES {
        tokio::time::sleep(Duration::from_millis(30 + 20 * (cycle as u64 % 3))).await;
        let deadline = Instant::now() + BOUND;
        let mut refused = 0;
        loop {
            match tokio::time::timeout(BOUND, drop_schema(&r, &victim, true, false)).await {
                Ok(Ok(())) => break,
                Ok(Err(e @ (Error::SchemaBusy { .. } | Error::Database(_))))
                    if Instant::now() < deadline =>
                {
                    *refusals
                        .entry(format!("{e:?}").chars().take(60).collect())
                        .or_default() += 1;
                    refused += 1;
                    if refused >= 3 {
                        quiet.store(true, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Ok(Err(Error::SchemaNotFound { .. })) => {
                    problem(format!(
                        "cycle {cycle}: drop_schema found no victim, though the previous \
                         create_schema returned Ok (it created nothing a later call can see)"
                    ));
                    break;
                }
                Ok(Err(e)) => panic!("cycle {cycle}: drop_schema failed: {e:?}"),
                Err(_) => panic!("HANG: cycle {cycle}: drop_schema exceeded {BOUND:?}"),
            }
        }
        let dropped = Instant::now();
        quiet.store(false, Ordering::Relaxed);
        // Only this task creates the victim: it must stay gone until then.
        tokio::time::sleep(Duration::from_millis(20)).await;
        match bounded("exists", r.schema().exists(&victim)).await {
            Ok(false) => {}
            Ok(true) => problem(format!("cycle {cycle}: the victim exists again after drop_schema returned Ok, before anyone created it")),
            Err(e) => problem(format!("cycle {cycle}: exists: {e:?}")),
        }
        let create_started = Instant::now();
        match bounded("create_schema", create_schema(&r, &victim, None, false, true)).await {
            Ok(()) => {}
            Err(e) => panic!("cycle {cycle}: create_schema of the dropped name failed (a recreate must succeed): {e:?}"),
        }
        match bounded("exists", r.schema().exists(&victim)).await {
            Ok(true) => {}
            Ok(false) => problem(format!(
                "cycle {cycle}: create_schema returned Ok but the victim does not exist"
            )),
            Err(e) => problem(format!("cycle {cycle}: exists after create: {e:?}")),
        }
        let found_after_create =
            match bounded("a read after create", User::query(&r).using(&victim).all()).await {
                Ok(rows) => rows.into_iter().map(|u| u.into_inner().name).collect(),
                Err(e) => panic!("cycle {cycle}: reading the recreated victim failed: {e:?}"),
            };
        cycles.push(Cycle {
            dropped,
            create_started,
            found_after_create,
        });
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        bounded("a load task", task).await.unwrap();
    }

    let ops = std::mem::take(&mut *ops.lock().unwrap());
    let mut problems = std::mem::take(&mut *problems.lock().unwrap());
    let writes: std::collections::HashMap<&str, &Op> = ops
        .iter()
        .filter_map(|op| op.write.as_deref().map(|w| (w, op)))
        .collect();
    // No query succeeds while the schema is dropped (between drop returning and create
    // starting).
    for (c, cycle) in cycles.iter().enumerate() {
        for op in ops
            .iter()
            .filter(|op| op.ok && op.start > cycle.dropped && op.end < cycle.create_started)
        {
            problems.push(format!(
                "cycle {c}: a {} of the victim succeeded while it was dropped",
                if op.write.is_some() { "write" } else { "read" }
            ));
        }
        // The recreated tenant starts empty: a row found right after create is a write
        // that ended after the create started, never an older one.
        for name in &cycle.found_after_create {
            match writes.get(name.as_str()) {
                Some(op) if op.end >= cycle.create_started => {}
                Some(_) => problems.push(format!(
                    "cycle {c}: the recreated victim inherited {name:?}, written before the drop"
                )),
                None => problems.push(format!(
                    "cycle {c}: the recreated victim inherited {name:?}"
                )),
            }
        }
    }
    // At the end: every write acknowledged after the last create is there; everything
    // there is the victim's, written after the last create started.
    let last = cycles.last().unwrap().create_started;
    let rows: BTreeSet<String> = User::query(&r)
        .using(&victim)
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.into_inner().name)
        .collect();
    for (name, op) in &writes {
        if op.ok && op.start > last && !rows.contains(*name) {
            problems.push(format!(
                "LOST: {name:?}, acknowledged after the last create, is missing"
            ));
        }
    }
    for name in &rows {
        match writes.get(name.as_str()) {
            Some(op) if op.end >= last => {}
            _ => problems.push(format!(
                "the victim holds {name:?} at the end, older than its last create"
            )),
        }
    }
    for (j, b) in bystanders.iter().enumerate() {
        let rows = User::query(&r).using(b).all().await.unwrap();
        let expected: BTreeSet<String> = (0..4 + j).map(|k| format!("b{j}-base-{k}")).collect();
        let seen: BTreeSet<String> = rows.into_iter().map(|u| u.into_inner().name).collect();
        if seen != expected {
            problems.push(format!("bystander b{j} at the end: {seen:?}"));
        }
    }
    assert_eq!(
        User::query(&r).count().await.unwrap() as usize,
        DEFAULT_ROWS,
        "the default schema at the end"
    );
    let (ok, failed) = (
        ops.iter().filter(|o| o.ok).count(),
        ops.iter().filter(|o| !o.ok).count(),
    );
    eprintln!(
        "{} pool {}: {CYCLES} drop/create cycles, victim ops {ok} ok / {failed} failed {:?}, drop refusals {refusals:?}",
        t.backend,
        t.max_connections,
        errors.lock().unwrap()
    );
    assert_no_problems(
        &problems,
        &format!(
            "drops and creates racing queries on a pool of {}",
            t.max_connections
        ),
    );
});

backend_pool_test!(transaction_racing_drop, |t: TestDb| async move {
    let r = t.registry.clone();
    let victim = t.schema("v");
    create_schema(&r, &victim, None, false, true).await.unwrap();
    User::query(&r)
        .using(&victim)
        .bulk_create((0..3).map(|k| user(&format!("v-base-{k}"))))
        .await
        .unwrap();

    let tx = bounded("begin", begin(&r, &victim)).await.unwrap();
    bounded(
        "a write in the transaction",
        with_tenant(Some(victim.clone()), User::query(&tx).create(user("v-tx"))),
    )
    .await
    .unwrap();
    let drop = {
        let (r, victim) = (r.clone(), victim.clone());
        tokio::spawn(async move {
            let result = drop_schema(&r, &victim, true, false).await;
            (result, Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A lost write is a drop that returned Ok before the commit was even sent: the commit's
    // acknowledgement itself may reach this task after the drop returned on a loaded machine
    // (the commit then happened first, and the drop removed its row with the schema).
    let commit_sent_at = Instant::now();
    let commit = tokio::time::timeout(BOUND, tx.commit()).await;
    let commit = match commit {
        Ok(result) => result,
        Err(_) => panic!(
            "HANG: commit with a drop_schema waiting exceeded {BOUND:?} (pool of {})",
            t.max_connections
        ),
    };
    let (drop, dropped_at) = match tokio::time::timeout(BOUND, drop).await {
        Ok(joined) => joined.unwrap(),
        Err(_) => panic!("HANG: drop_schema racing a transaction exceeded {BOUND:?} after the commit (pool of {})", t.max_connections),
    };
    eprintln!(
        "{} pool {}: commit {:?}, drop {:?}, drop returned {} the commit was sent",
        t.backend,
        t.max_connections,
        commit.as_ref().map(|_| ()),
        drop.as_ref().map(|_| ()),
        if dropped_at < commit_sent_at {
            "before"
        } else {
            "after"
        }
    );
    match (&drop, &commit) {
        (Ok(()), Ok(())) if dropped_at < commit_sent_at => panic!(
            "LOST WRITE: drop_schema returned Ok while a transaction was open on the schema, and \
             the transaction's commit was then acknowledged: its write went into a dropped schema"
        ),
        (Ok(()), _) => {
            assert!(
                !r.schema().exists(&victim).await.unwrap(),
                "the victim exists after the drop"
            );
            create_schema(&r, &victim, None, false, true).await.unwrap();
            let rows = User::query(&r).using(&victim).all().await.unwrap();
            assert!(
                rows.is_empty(),
                "the recreated victim inherited {:?}",
                rows.iter().map(|u| &u.name).collect::<Vec<_>>()
            );
        }
        (Err(Error::SchemaBusy { .. }), _) => {
            let names: BTreeSet<String> = User::query(&r)
                .using(&victim)
                .all()
                .await
                .unwrap()
                .into_iter()
                .map(|u| u.into_inner().name)
                .collect();
            assert_eq!(
                names.contains("v-tx"),
                commit.is_ok(),
                "after a refused drop: {names:?}"
            );
        }
        (Err(e), _) => panic!("drop_schema racing a transaction failed with {e:?}"),
    }
    if let Err(e) = &commit {
        assert!(
            matches!(
                e,
                Error::Database(_) | Error::SchemaNotFound { .. } | Error::TransactionDone
            ),
            "the commit failed with an untyped kind: {e:?}"
        );
    }
});
