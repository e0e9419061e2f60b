//! `makemigrations` end to end, on every backend: generate from models v1, build a fleet of
//! tenants holding different rows, change the models (v2), generate again (with rename
//! flags), migrate the fleet, and prove every row kept its values in its own tenant, the
//! generated renames are renames (no data lost), `--check` fails before generation and passes
//! after, and a tenant migrated from v1 and one built from the v2 models are the same.
mod common;

use std::path::Path;

use common::TestDb;
use tenantry::{
    create_schema,
    migrate::{introspect, MigrationScope, Migrator, Operation, RunOptions},
    with_tenant, Model, Registry, SchemaName,
};
use tenantry_cli::{makemigrations, read_migrations_dir, Made, MakemigrationsArgs};

mod v1 {
    use tenantry::Model;

    /// A shared plan.
    #[derive(Model, Debug, Clone)]
    #[model(shared, table = "plans")]
    pub struct Plan {
        pub id: i64,
        #[model(max_length = 40)]
        pub name: String,
    }

    /// A tenant's customer.
    #[derive(Model, Debug, Clone)]
    #[model(table = "customers")]
    pub struct Customer {
        pub id: i64,
        #[model(max_length = 80)]
        pub name: String,
        #[model(max_length = 80)]
        pub city: Option<String>,
        #[model(default = 0)]
        pub legacy: i32,
    }

    /// A tenant's note.
    #[derive(Model, Debug, Clone)]
    #[model(table = "notes")]
    pub struct Note {
        pub id: i64,
        #[model(text)]
        pub body: String,
    }
}

mod v2 {
    use tenantry::{Decimal, ForeignKey, Model};

    /// v1's plan with a price.
    #[derive(Model, Debug, Clone)]
    #[model(shared, table = "plans")]
    pub struct Plan {
        pub id: i64,
        #[model(max_length = 40)]
        pub name: String,
        #[model(max_digits = 8, decimal_places = 2, default = Decimal::ZERO)]
        pub price: Decimal,
    }

    /// v1's customer: `name` renamed `full_name`, `legacy` dropped, `email` and an indexed
    /// `score` added.
    #[derive(Model, Debug, Clone)]
    #[model(table = "customers")]
    pub struct Customer {
        pub id: i64,
        #[model(max_length = 80)]
        pub full_name: String,
        #[model(max_length = 80)]
        pub city: Option<String>,
        #[model(max_length = 120)]
        pub email: Option<String>,
        #[model(default = 5, index)]
        pub score: i32,
    }

    /// v1's note, its table renamed `memos`.
    #[derive(Model, Debug, Clone)]
    #[model(table = "memos")]
    pub struct Note {
        pub id: i64,
        #[model(text)]
        pub body: String,
    }

    /// A new tenant model, made shared in v3.
    #[derive(Model, Debug, Clone)]
    #[model(table = "labels")]
    pub struct Label {
        pub id: i64,
        #[model(max_length = 20)]
        pub text: String,
    }

    /// A new model pointing at a customer.
    #[derive(Model, Debug, Clone)]
    #[model(table = "orders")]
    pub struct Order {
        pub id: i64,
        #[model(on_delete = "cascade")]
        pub customer: ForeignKey<Customer>,
        pub quantity: i32,
    }
}

mod v3 {
    use tenantry::{Decimal, ForeignKey, Model};

    /// v2's plan, unchanged.
    #[derive(Model, Debug, Clone)]
    #[model(shared, table = "plans")]
    pub struct Plan {
        pub id: i64,
        #[model(max_length = 40)]
        pub name: String,
        #[model(max_digits = 8, decimal_places = 2, default = Decimal::ZERO)]
        pub price: Decimal,
    }

    /// v2's customer: `city` longer and required, `email` unique, `score` a big integer
    /// with another default, `full_name` indexed; a composite unique key, a composite
    /// index, a check and a generated junction (customers following customers).
    #[derive(Model, Debug, Clone)]
    #[model(
        table = "customers",
        unique(full_name, city),
        index(city, score),
        check(name = "customers_score_ok", condition = Customer::score().gte(0)),
        many_to_many(followers, to = Customer, table = "customer_followers")
    )]
    pub struct Customer {
        pub id: i64,
        #[model(max_length = 80, index)]
        pub full_name: String,
        #[model(max_length = 120, default = "")]
        pub city: String,
        #[model(max_length = 120, unique)]
        pub email: Option<String>,
        #[model(default = 10, index)]
        pub score: i64,
    }

    /// An order's state: a PostgreSQL enum type in each tenant schema.
    #[derive(tenantry::Enum, Debug, Clone, Copy, PartialEq)]
    #[model(type_name = "order_status")]
    pub enum Status {
        #[model(rename = "open")]
        Open,
        #[model(rename = "shipped")]
        Shipped,
    }

    /// v2's order: its customer key now restricts deletes; a plan key and a status added.
    #[derive(Model, Debug, Clone)]
    #[model(table = "orders")]
    pub struct Order {
        pub id: i64,
        #[model(on_delete = "restrict")]
        pub customer: ForeignKey<Customer>,
        pub quantity: i32,
        #[model(on_delete = "set_null")]
        pub plan: Option<ForeignKey<Plan>>,
        #[model(default = Status::Open)]
        pub status: Status,
    }

    /// v2's tenant label, now shared: dropped from every tenant.
    #[derive(Model, Debug, Clone)]
    #[model(shared, table = "labels")]
    pub struct Label {
        pub id: i64,
        #[model(max_length = 20)]
        pub text: String,
    }
}

mod v4 {
    use tenantry::{ForeignKey, Model};

    pub use super::v3::{Customer, CustomerFollowers, Label, Plan};

    /// v3's status with a label between the two.
    #[derive(tenantry::Enum, Debug, Clone, Copy, PartialEq)]
    #[model(type_name = "order_status")]
    pub enum Status {
        #[model(rename = "open")]
        Open,
        #[model(rename = "packed")]
        Packed,
        #[model(rename = "shipped")]
        Shipped,
    }

    /// v3's order, its status gaining a label.
    #[derive(Model, Debug, Clone)]
    #[model(table = "orders")]
    pub struct Order {
        pub id: i64,
        #[model(on_delete = "restrict")]
        pub customer: ForeignKey<Customer>,
        pub quantity: i32,
        #[model(on_delete = "set_null")]
        pub plan: Option<ForeignKey<Plan>>,
        #[model(default = Status::Open)]
        pub status: Status,
    }
}

fn models_v4() -> Vec<&'static tenantry::ModelMeta> {
    vec![
        v4::Plan::META,
        v4::Customer::META,
        v4::Label::META,
        v4::Order::META,
        v4::CustomerFollowers::META,
    ]
}

fn registry_v4(database: &tenantry::Database, dir: &Path) -> Registry {
    Registry::new(database.clone())
        .register::<v4::Plan>()
        .register::<v4::Customer>()
        .register::<v4::Label>()
        .register::<v4::Order>()
        .migrations(read_migrations_dir(dir).unwrap())
}

/// v4: the order status gains a label; every tenant is migrated, matches one built from
/// the v4 models, and writes the new label in its own schema.
async fn upgrade_to_v4(t: &TestDb, dir: &Path, tenants: &[SchemaName]) {
    assert_eq!(check(&models_v4(), dir), Made::Disagree);
    let (made, out, _) = generate(&models_v4(), dir, named("v4"));
    assert!(matches!(made, Made::Written(_)), "{out}");
    let migrations = read_migrations_dir(dir).unwrap();
    let last = migrations.last(MigrationScope::Tenant).unwrap();
    assert!(
        matches!(last.operations(), [Operation::AddEnumValue { value, after: Some(after), .. }] if value == "packed" && after == "open"),
        "{:?}",
        last.operations()
    );
    let r4 = registry_v4(t.registry.database(), dir);
    let report = Migrator::new(&r4, migrations)
        .run(RunOptions::default())
        .await
        .unwrap();
    assert!(report.is_complete(), "{report:?}");
    let fresh4 = t.schema("fresh4");
    create_schema(&r4, &fresh4, None, false, true)
        .await
        .unwrap();
    let writes = tenants.iter().enumerate().map(|(i, tenant)| {
        let r4 = r4.clone();
        with_tenant(Some(tenant.clone()), async move {
            let customer = v4::Customer::query(&r4)
                .order_by([v4::Customer::id().asc()])
                .all()
                .await
                .unwrap()
                .remove(0);
            v4::Order::query(&r4)
                .create(v4::Order {
                    id: 0,
                    customer: tenantry::ForeignKey::new(customer.id),
                    quantity: i as i32,
                    plan: None,
                    status: v4::Status::Packed,
                })
                .await
                .unwrap();
            v4::Order::query(&r4)
                .filter(v4::Order::status().eq(v4::Status::Packed))
                .values_list(v4::Order::quantity())
                .await
                .unwrap()
        })
    });
    let packed = futures_util::future::join_all(writes).await;
    for (i, (tenant, quantities)) in tenants.iter().zip(packed).enumerate() {
        assert_eq!(quantities, vec![i as i32], "{tenant}: its own order only");
        assert_same_tables(&r4, tenant, &fresh4).await;
    }
}

fn models_v1() -> Vec<&'static tenantry::ModelMeta> {
    vec![v1::Plan::META, v1::Customer::META, v1::Note::META]
}

fn models_v2() -> Vec<&'static tenantry::ModelMeta> {
    vec![
        v2::Plan::META,
        v2::Customer::META,
        v2::Note::META,
        v2::Label::META,
        v2::Order::META,
    ]
}

fn models_v3() -> Vec<&'static tenantry::ModelMeta> {
    vec![
        v3::Plan::META,
        v3::Customer::META,
        v3::Label::META,
        v3::Order::META,
        v3::CustomerFollowers::META,
    ]
}

/// Runs makemigrations for `models` over `dir` with no questions answered.
fn generate(
    models: &[&'static tenantry::ModelMeta],
    dir: &Path,
    args: MakemigrationsArgs,
) -> (Made, String, String) {
    let args = MakemigrationsArgs {
        migrations: Some(dir.to_owned()),
        no_input: true,
        ..args
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let made = makemigrations(models, dir, &args, &mut |_| false, &mut out, &mut err).unwrap();
    (
        made,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn check(models: &[&'static tenantry::ModelMeta], dir: &Path) -> Made {
    let args = MakemigrationsArgs {
        check: true,
        ..MakemigrationsArgs::default()
    };
    generate(models, dir, args).0
}

fn registry_v1(t: &TestDb, dir: &Path) -> Registry {
    Registry::new(t.registry.database().clone())
        .register::<v1::Plan>()
        .register::<v1::Customer>()
        .register::<v1::Note>()
        .migrations(read_migrations_dir(dir).unwrap())
}

fn registry_v2(t: &TestDb, dir: &Path) -> Registry {
    Registry::new(t.registry.database().clone())
        .register::<v2::Plan>()
        .register::<v2::Customer>()
        .register::<v2::Note>()
        .register::<v2::Label>()
        .register::<v2::Order>()
        .migrations(read_migrations_dir(dir).unwrap())
}

fn registry_v3(database: &tenantry::Database, dir: &Path) -> Registry {
    Registry::new(database.clone())
        .register::<v3::Plan>()
        .register::<v3::Customer>()
        .register::<v3::Label>()
        .register::<v3::Order>()
        .migrations(read_migrations_dir(dir).unwrap())
}

/// Tenant `i`'s v1 rows: `i + 2` customers named `t<i>-c<k>` in city `city<i>`, one note.
async fn fill_v1(r: &Registry, tenant: &SchemaName, i: usize) {
    with_tenant(Some(tenant.clone()), async {
        v1::Customer::query(r)
            .bulk_create((0..i + 2).map(|k| v1::Customer {
                id: 0,
                name: format!("t{i}-c{k}"),
                city: Some(format!("city{i}")),
                legacy: 7,
            }))
            .await
            .unwrap();
        v1::Note::query(r)
            .create(v1::Note {
                id: 0,
                body: format!("note of t{i}"),
            })
            .await
            .unwrap();
    })
    .await;
}

/// What tenant `i` must hold after the upgrade, read through the v2 models.
async fn assert_v2_rows(r: &Registry, tenant: &SchemaName, i: usize) {
    let (customers, memos) = with_tenant(Some(tenant.clone()), async {
        let customers = v2::Customer::query(r)
            .order_by([v2::Customer::id().asc()])
            .all()
            .await
            .unwrap();
        let memos = v2::Note::query(r).all().await.unwrap();
        (customers, memos)
    })
    .await;
    let names: Vec<String> = customers.iter().map(|c| c.full_name.clone()).collect();
    let expected: Vec<String> = (0..i + 2).map(|k| format!("t{i}-c{k}")).collect();
    assert_eq!(
        names, expected,
        "tenant {tenant}: the renamed column kept its values"
    );
    for c in &customers {
        assert_eq!(
            c.city.as_deref(),
            Some(format!("city{i}").as_str()),
            "{tenant}"
        );
        assert_eq!(c.score, 5, "{tenant}: the added column took its default");
        assert_eq!(c.email, None, "{tenant}");
    }
    let bodies: Vec<&str> = memos.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(
        bodies,
        [format!("note of t{i}")],
        "{tenant}: the renamed table kept its rows"
    );
}

backend_test!(generate_then_migrate_a_fleet, |t: TestDb| async move {
    let dir = tempdir(&t, "migrations");
    // v1: nothing yet, so --check fails; generation writes a shared and a tenant file.
    assert_eq!(check(&models_v1(), &dir), Made::Disagree);
    let (made, _, _) = generate(&models_v1(), &dir, named("initial"));
    let Made::Written(files) = made else {
        panic!("v1 wrote nothing")
    };
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["0001_shared_initial.json", "0002_tenant_initial.json"]
    );
    assert_eq!(check(&models_v1(), &dir), Made::Nothing);

    // A fleet on v1, each tenant with its own rows.
    let r1 = registry_v1(&t, &dir);
    r1.create_all().await.unwrap();
    let tenants: Vec<SchemaName> = (0..3).map(|i| t.schema(&format!("f{i}"))).collect();
    for (i, tenant) in tenants.iter().enumerate() {
        create_schema(&r1, tenant, None, false, true).await.unwrap();
        fill_v1(&r1, tenant, i).await;
    }

    // v2 without the rename flags: drops and adds, with warnings naming the flags.
    assert_eq!(check(&models_v2(), &dir), Made::Disagree);
    let scratch = tempdir(&t, "scratch");
    for file in std::fs::read_dir(&dir).unwrap() {
        let path = file.unwrap().path();
        std::fs::copy(&path, scratch.join(path.file_name().unwrap())).unwrap();
    }
    let (_, _, warnings) = generate(&models_v2(), &scratch, named("unflagged"));
    assert!(
        warnings.contains("--rename-column customers.name=full_name")
            && warnings.contains("--rename-table notes=memos"),
        "{warnings}"
    );

    // v2 with the flags: renames, not drops.
    let flagged = MakemigrationsArgs {
        rename_table: vec![("notes".into(), "memos".into())],
        rename_column: vec![("customers".into(), "name".into(), "full_name".into())],
        ..named("v2")
    };
    let (made, out, _) = generate(&models_v2(), &dir, flagged);
    assert!(
        matches!(made, Made::Written(ref f) if f.len() == 2),
        "{out}"
    );
    let migrations = read_migrations_dir(&dir).unwrap();
    let tenant_ops = migrations.get("0004_tenant_v2").unwrap().operations();
    assert!(tenant_ops.iter().any(
        |op| matches!(op, Operation::RenameTable { from, to } if from == "notes" && to == "memos")
    ));
    assert!(tenant_ops.iter().any(|op| matches!(op, Operation::RenameColumn { from, to, .. } if from == "name" && to == "full_name")));
    assert!(!tenant_ops
        .iter()
        .any(|op| matches!(op, Operation::DropTable { .. })));
    assert_eq!(check(&models_v2(), &dir), Made::Nothing);

    // The fleet migrates; every tenant keeps its own rows.
    let r2 = registry_v2(&t, &dir);
    let report = Migrator::new(&r2, migrations)
        .run(RunOptions::default())
        .await
        .unwrap();
    assert!(report.is_complete(), "{report:?}");
    let reads = tenants
        .iter()
        .enumerate()
        .map(|(i, tenant)| assert_v2_rows(&r2, tenant, i));
    futures_util::future::join_all(reads).await;

    // A tenant built from the v2 models holds what the migrated ones hold.
    let fresh = t.schema("fresh");
    create_schema(&r2, &fresh, None, false, true).await.unwrap();
    assert_same_tables(&r2, &tenants[0], &fresh).await;

    // v3: every other kind of change (types, null, defaults, lengths, unique, index,
    // foreign keys and their on_delete, a dropped model, a tenant model made shared).
    assert_eq!(check(&models_v3(), &dir), Made::Disagree);
    let scratch3 = tempdir(&t, "scratch3");
    for file in std::fs::read_dir(&dir).unwrap() {
        let path = file.unwrap().path();
        std::fs::copy(&path, scratch3.join(path.file_name().unwrap())).unwrap();
    }
    let (_, _, warned) = generate(&models_v3(), &scratch3, named("v3"));
    assert!(warned.contains("--allow-rewrite"), "{warned}");
    let v3 = MakemigrationsArgs {
        allow_rewrite: true,
        ..named("v3")
    };
    let (made, out, warnings) = generate(&models_v3(), &dir, v3);
    assert!(matches!(made, Made::Written(_)), "{out}");
    assert!(
        warnings.contains("table memos is dropped") && warnings.contains("table labels is dropped"),
        "{warnings}"
    );
    assert_eq!(check(&models_v3(), &dir), Made::Nothing);
    let migrations = read_migrations_dir(&dir).unwrap();
    let r3 = registry_v3(t.registry.database(), &dir);
    let report = Migrator::new(&r3, migrations.clone())
        .run(RunOptions::default())
        .await
        .unwrap();
    assert!(report.is_complete(), "{report:?}");
    for (i, tenant) in tenants.iter().enumerate() {
        let customers = with_tenant(Some(tenant.clone()), async {
            v3::Customer::query(&r3)
                .order_by([v3::Customer::id().asc()])
                .all()
                .await
                .unwrap()
        })
        .await;
        let names: Vec<&str> = customers.iter().map(|c| c.full_name.as_str()).collect();
        let expected: Vec<String> = (0..i + 2).map(|k| format!("t{i}-c{k}")).collect();
        assert_eq!(names, expected, "{tenant}: rows kept through every alter");
        for c in &customers {
            assert_eq!(c.city, format!("city{i}"), "{tenant}");
            assert_eq!(
                c.score, 5,
                "{tenant}: the value kept through the type change"
            );
        }
    }
    let fresh3 = t.schema("fresh3");
    create_schema(&r3, &fresh3, None, false, true)
        .await
        .unwrap();
    for tenant in &tenants {
        assert_same_tables(&r3, tenant, &fresh3).await;
    }
    // The shared schema too: against a database built from the v3 models alone.
    let other = t.other_database("built").await;
    let built = registry_v3(&other, &dir);
    built.create_all().await.unwrap();
    let (ours, theirs) = (
        introspect(t.registry.database(), None).await.unwrap(),
        introspect(&other, None).await.unwrap(),
    );
    assert_eq!(
        ours.differences(&theirs),
        Vec::<String>::new(),
        "shared schema"
    );
    other.disconnect().await;
    upgrade_to_v4(&t, &dir, &tenants).await;
    // r1 and r2 share the test's database, which the harness closes and drops.
    std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
});

fn named(name: &str) -> MakemigrationsArgs {
    MakemigrationsArgs {
        name: Some(name.to_owned()),
        ..MakemigrationsArgs::default()
    }
}

fn tempdir(t: &TestDb, name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tenantry-makemigrations/{}/{name}", t.prefix));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The two schemas' tables are the same: columns, types, defaults, indexes and foreign
/// keys, read from the catalog.
async fn assert_same_tables(r: &Registry, a: &SchemaName, b: &SchemaName) {
    let (left, right) = (
        introspect(r.database(), Some(a)).await.unwrap(),
        introspect(r.database(), Some(b)).await.unwrap(),
    );
    assert_eq!(left.differences(&right), Vec::<String>::new(), "{a} vs {b}");
}

/// Answering "yes" when asked (as on a terminal) gives the same renames as the flags; "no"
/// gives drops and adds. Only drops that may be renames are asked about.
#[test]
fn renames_confirmed_when_asked() {
    let base = std::env::temp_dir().join(format!(
        "tenantry-makemigrations-ask-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&base);
    for (answer, dir) in [(true, base.join("yes")), (false, base.join("no"))] {
        std::fs::create_dir_all(&dir).unwrap();
        generate(&models_v1(), &dir, named("initial"));
        let args = MakemigrationsArgs {
            migrations: Some(dir.clone()),
            ..named("v2")
        };
        let mut asked = Vec::new();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let made = makemigrations(
            &models_v2(),
            &dir,
            &args,
            &mut |question| {
                asked.push(question.clone());
                answer
            },
            &mut out,
            &mut err,
        )
        .unwrap();
        assert!(matches!(made, Made::Written(_)));
        let questions: Vec<String> = asked.iter().map(|q| format!("{q:?}")).collect();
        assert!(
            questions
                .iter()
                .any(|q| q.contains("\"name\"") && q.contains("\"full_name\""))
                && questions
                    .iter()
                    .any(|q| q.contains("\"notes\"") && q.contains("\"memos\"")),
            "{questions:?}"
        );
        assert!(
            !questions
                .iter()
                .any(|q| q.contains("\"legacy\"") && q.contains("\"full_name\"")),
            "an integer column is no rename of a text one: {questions:?}"
        );
        let migrations = read_migrations_dir(&dir).unwrap();
        let ops = migrations.get("0004_tenant_v2").unwrap().operations();
        let renamed = ops
            .iter()
            .any(|op| matches!(op, Operation::RenameColumn { .. }))
            && ops
                .iter()
                .any(|op| matches!(op, Operation::RenameTable { .. }));
        let dropped = ops
            .iter()
            .any(|op| matches!(op, Operation::DropTable { table } if table == "notes"));
        assert_eq!((renamed, dropped), (answer, !answer), "{ops:?}");
    }
    std::fs::remove_dir_all(&base).unwrap();
}

mod tenant_only {
    use tenantry::{ForeignKey, Model};

    /// A tenant-only ledger: no table in the shared schema.
    #[derive(Model, Debug, Clone)]
    #[model(tenant, table = "ledgers")]
    pub struct Ledger {
        pub id: i64,
        #[model(max_length = 40)]
        pub label: String,
        pub customer: Option<ForeignKey<super::v1::Customer>>,
    }
}

/// The tables a scope's migrations create.
fn created(migrations: &tenantry::migrate::Migrations, scope: MigrationScope) -> Vec<String> {
    migrations
        .of(scope)
        .flat_map(|m| m.operations())
        .filter_map(|op| match op {
            Operation::CreateTable { table, .. } => Some(table.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn tenant_only_models_are_in_the_tenant_files_only() {
    let dir = std::env::temp_dir().join(format!(
        "tenantry-makemigrations-tenant-only-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut models = models_v1();
    models.push(tenant_only::Ledger::META);
    let (made, _, _) = generate(&models, &dir, named("initial"));
    assert!(matches!(made, Made::Written(_)), "{made:?}");
    let migrations = read_migrations_dir(&dir).unwrap();
    let shared = created(&migrations, MigrationScope::Shared);
    let tenant = created(&migrations, MigrationScope::Tenant);
    // A tenant-capable model is in both scopes, a shared one in the shared scope only, a
    // tenant-only one in the tenant scope only.
    assert!(shared.iter().any(|t| t == "customers"), "{shared:?}");
    assert!(shared.iter().any(|t| t == "plans"), "{shared:?}");
    assert!(!shared.iter().any(|t| t == "ledgers"), "{shared:?}");
    assert!(tenant.iter().any(|t| t == "customers"), "{tenant:?}");
    assert!(tenant.iter().any(|t| t == "ledgers"), "{tenant:?}");
    assert!(!tenant.iter().any(|t| t == "plans"), "{tenant:?}");
    // The files and the models agree: nothing more to generate for either scope.
    assert!(matches!(check(&models, &dir), Made::Nothing));
    std::fs::remove_dir_all(&dir).unwrap();
}
