//! The tenants commands on an in-memory SQLite database: their output and their error
//! sentences. (The demo's tests run them through a binary on every backend.)

use tenantry::{contrib, Database, Registry, SchemaName};
use tenantry_cli::{tenants, CommandError, TenantsArgs, TenantsCommand};

async fn registry(name: &str) -> Registry {
    let url = format!("sqlite:file:tenantry-cli-{name}?mode=memory&cache=shared");
    let registry = contrib::register(Registry::new(Database::connect(&url).await.unwrap()));
    registry.create_all().await.unwrap();
    registry
}

async fn run(registry: &Registry, command: TenantsCommand) -> Result<String, CommandError> {
    let mut out = Vec::new();
    tenants(registry, &TenantsArgs { command }, &mut out).await?;
    Ok(String::from_utf8(out).unwrap())
}

fn create(name: &str, display: Option<&str>) -> TenantsCommand {
    TenantsCommand::Create {
        name: SchemaName::parse(name).unwrap(),
        display: display.map(str::to_owned),
        server: None,
        database: None,
    }
}

fn drop(name: &str, yes: bool) -> TenantsCommand {
    TenantsCommand::Drop {
        name: SchemaName::parse(name).unwrap(),
        yes,
    }
}

fn code(error: &CommandError) -> String {
    format!("{:?}", error.exit_code())
}

fn assert_sentence(error: &CommandError, text: &str) {
    let message = error.to_string();
    assert!(message.contains(text), "{text:?} not in {message:?}");
    assert!(message.ends_with('.'), "{message:?}");
    assert!(!message.contains('\n'), "{message:?}");
    assert!(!message.contains(" { "), "a Debug dump: {message:?}");
}

#[tokio::test]
async fn list_create_drop() {
    let registry = registry("list").await;
    assert_eq!(run(&registry, TenantsCommand::List).await.unwrap(), "");
    assert_eq!(
        run(&registry, create("b", Some("B Corp"))).await.unwrap(),
        "created tenant b (B Corp)\n"
    );
    assert_eq!(
        run(&registry, create("a", None)).await.unwrap(),
        "created tenant a (a)\n"
    );
    contrib::suspend_tenant(&registry, "b").await.unwrap();
    run(&registry, create("c", Some("line\nbreak")))
        .await
        .unwrap();
    assert_eq!(
        run(&registry, TenantsCommand::List).await.unwrap(),
        "a\ta\nb\tB Corp\tsuspended\nc\tline\\nbreak\n"
    );
    assert_eq!(
        run(&registry, drop("a", true)).await.unwrap(),
        "dropped tenant a and its data\n"
    );
    assert_eq!(
        run(&registry, TenantsCommand::List).await.unwrap(),
        "b\tB Corp\tsuspended\nc\tline\\nbreak\n"
    );
    registry.disconnect().await;
}

#[tokio::test]
async fn failures_are_sentences() {
    let registry = registry("failures").await;
    run(&registry, create("a", Some("Acme"))).await.unwrap();

    let exists = run(&registry, create("a", None)).await.unwrap_err();
    assert_sentence(&exists, "tenant a already exists");
    assert_eq!(code(&exists), code_of(1));
    assert!(exists.tenantry_error().is_some());

    let taken = run(&registry, create("b", Some("Acme"))).await.unwrap_err();
    assert_sentence(
        &taken,
        "another tenant already has the display name \"Acme\"",
    );
    assert_eq!(code(&taken), code_of(1));

    let empty = run(&registry, create("b", Some(" "))).await.unwrap_err();
    assert_sentence(&empty, "cannot create tenant b: invalid tenant name");
    assert_eq!(code(&empty), code_of(2));

    let missing = run(&registry, drop("zzz", true)).await.unwrap_err();
    assert_sentence(&missing, "there is no tenant zzz");
    assert_eq!(code(&missing), code_of(1));

    let unconfirmed = run(&registry, drop("a", false)).await.unwrap_err();
    assert_sentence(&unconfirmed, "add --yes to confirm");
    assert_eq!(code(&unconfirmed), code_of(2));
    assert_eq!(
        run(&registry, TenantsCommand::List).await.unwrap(),
        "a\tAcme\n"
    );

    registry.disconnect().await;
    let closed = run(&registry, TenantsCommand::List).await.unwrap_err();
    assert_sentence(&closed, "could not list the tenants");
    assert_eq!(code(&closed), code_of(1));
}

fn code_of(code: u8) -> String {
    format!("{:?}", std::process::ExitCode::from(code))
}

/// The row goes first: when the schema cannot be dropped after it (here a transaction is open
/// on it), the sentence says the tenant is gone but its schema is left.
#[tokio::test]
async fn drop_that_leaves_the_schema_says_so() {
    let database = Database::options("sqlite:file:tenantry-cli-busy?mode=memory&cache=shared")
        .acquire_timeout(std::time::Duration::from_millis(300))
        .connect()
        .await
        .unwrap();
    let registry = contrib::register(Registry::new(database));
    registry.create_all().await.unwrap();
    run(&registry, create("a", None)).await.unwrap();
    let tx = registry.begin_in("a").await.unwrap();
    let busy = run(&registry, drop("a", true)).await.unwrap_err();
    assert_sentence(
        &busy,
        "tenant a was removed, but its schema could not be dropped",
    );
    assert!(
        busy.to_string().contains("drop the schema a by hand"),
        "{busy}"
    );
    assert_eq!(code(&busy), code_of(1));
    tx.rollback().await.unwrap();
    assert_eq!(run(&registry, TenantsCommand::List).await.unwrap(), "");
    registry.disconnect().await;
}
