//! The demo service: the Edgy tenancy page's practical case.
//!
//! `cargo run --release -p tenantry-demo -- [--database-url URL] [--bind ADDR] [--strict]`

use std::net::SocketAddr;

use tenantry::{Database, Registry};

struct Args {
    database_url: String,
    bind: SocketAddr,
    strict: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        database_url: "sqlite://tenantry-demo.sqlite?mode=rwc".into(),
        bind: SocketAddr::from(([127, 0, 0, 1], 8000)),
        strict: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--database-url" => {
                args.database_url = it.next().ok_or("--database-url needs a URL")?
            }
            "--bind" => {
                let value = it.next().ok_or("--bind needs an address")?;
                args.bind = value.parse().map_err(|e| format!("--bind {value}: {e}"))?;
            }
            "--strict" => args.strict = true,
            "--help" | "-h" => {
                return Err(
                    "usage: tenantry-demo [--database-url URL] [--bind ADDR] [--strict]".into(),
                )
            }
            other => return Err(format!("unknown argument {other:?}; see --help")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let registry =
        tenantry_demo::register(Registry::new(Database::connect(&args.database_url).await?));
    tenantry_demo::seed(&registry).await?;
    let listener = tokio::net::TcpListener::bind(args.bind).await?;
    let url = format!("http://{}", listener.local_addr()?);
    println!(
        "tenantry demo listening on {url}{}",
        if args.strict { " (strict)" } else { "" }
    );
    println!("  curl -H 'tenant: edgy' {url}/products   # 10 products of tenant edgy");
    println!("  curl {url}/products                     # 25 shared products");
    axum::serve(listener, tenantry_demo::app(registry.clone(), args.strict))
        .with_graceful_shutdown(shutdown())
        .await?;
    registry.disconnect().await;
    println!("stopped");
    Ok(())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
