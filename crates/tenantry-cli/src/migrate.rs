//! `migrate [run|status [--drift]|plan]`: the migration runner, its status (and the tenants
//! whose tables drifted from their migrations) and its plan, with a progress bar on long runs
//! and a summary at the end.

use std::{io::Write, process::ExitCode, sync::Arc, time::Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tenantry::{
    migrate::{FleetStatus, MigrationScope, Migrator, RunOptions, RunReport, TenantDrift},
    Registry,
};

use crate::{CommandError, MigrateAction, MigrateArgs};

/// Runs `migrate` with the application's `migrator` (its registry, migrations and data
/// steps), printing to stdout (errors to stderr). Exit code 0 when every schema is at the
/// last version, 1 when any is behind or failed (for `status` and `plan` too), when
/// `status --drift` finds a tenant whose tables differ from what its migrations build, or
/// when the command failed.
pub async fn run_migrate(migrator: &Migrator, args: MigrateArgs) -> ExitCode {
    let mut out = std::io::stdout();
    match migrate(migrator, &args, &mut out).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error}");
            error.exit_code()
        }
    }
}

/// `migrate`, writing its report to `out`; `Ok(true)` when every schema is (or, for `plan`
/// and `--dry-run`, already was) at the last version.
pub async fn migrate(
    migrator: &Migrator,
    args: &MigrateArgs,
    out: &mut dyn Write,
) -> Result<bool, CommandError> {
    if args.drift && args.action != MigrateAction::Status {
        return Err(CommandError::usage("--drift goes with `migrate status`"));
    }
    match (args.action, args.dry_run) {
        (MigrateAction::Status, _) => status(migrator, args, out).await,
        (MigrateAction::Plan, dry_run) | (MigrateAction::Run, dry_run @ true) => {
            plan(migrator, args, dry_run, out).await
        }
        (MigrateAction::Run, false) => run(migrator.registry(), migrator, args, out).await,
    }
}

fn write_failed(error: std::io::Error) -> CommandError {
    CommandError::failed(format!("could not write the report: {error}"))
}

fn failed(error: tenantry::Error) -> CommandError {
    CommandError::failed(error.to_string())
}

async fn status(
    migrator: &Migrator,
    args: &MigrateArgs,
    out: &mut dyn Write,
) -> Result<bool, CommandError> {
    let status = migrator.status().await.map_err(failed)?;
    print_status(&status, args, out).map_err(write_failed)?;
    let mut current = status.is_current();
    if args.drift {
        let drift = migrator.drift().await.map_err(failed)?;
        current &= print_drift(&drift, args, out).map_err(write_failed)?;
    }
    Ok(current)
}

/// `status --drift`: the tenants (only `--tenant`'s, if given) whose live tables differ from
/// what the migrations build, each difference on a line of its own; `Ok(true)` when none
/// does.
fn print_drift(
    drift: &[TenantDrift],
    args: &MigrateArgs,
    out: &mut dyn Write,
) -> std::io::Result<bool> {
    let drifted: Vec<&TenantDrift> = drift
        .iter()
        .filter(|d| args.tenant.as_ref().is_none_or(|t| *t == d.tenant))
        .collect();
    if drifted.is_empty() {
        writeln!(
            out,
            "drift: none (every up-to-date tenant has the tables its migrations build)"
        )?;
        return Ok(true);
    }
    writeln!(
        out,
        "drift: {} tenant(s) differ from what their migrations build (tenant vs migrations)",
        drifted.len()
    )?;
    for tenant in drifted {
        writeln!(out, "{}:", tenant.tenant.as_str())?;
        for line in &tenant.differences {
            writeln!(out, "    {line}")?;
        }
    }
    Ok(false)
}

fn print_status(
    status: &FleetStatus,
    args: &MigrateArgs,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(
        out,
        "shared schema: {} applied, {} pending{}",
        status.shared_applied.len(),
        status.shared_pending.len(),
        list(&status.shared_pending),
    )?;
    let target = status.tenant_target.as_deref().unwrap_or("-");
    writeln!(
        out,
        "tenants: {} ({} behind), target version {target}",
        status.tenants.len(),
        status.behind().count()
    )?;
    writeln!(
        out,
        "{:<40} {:<32} {:<8} error",
        "TENANT", "VERSION", "STATE"
    )?;
    for tenant in &status.tenants {
        if args.tenant.as_ref().is_some_and(|t| *t != tenant.tenant) {
            continue;
        }
        writeln!(
            out,
            "{:<40} {:<32} {:<8} {}",
            tenant.tenant.as_str(),
            tenant.version.as_deref().unwrap_or("-"),
            match (tenant.state, tenant.behind) {
                (Some(state), false) => state.as_str(),
                (Some(state), true) if state.as_str() != "done" => state.as_str(),
                (_, true) => "behind",
                (None, false) => "-",
            },
            tenant.error.as_deref().unwrap_or(""),
        )?;
    }
    Ok(())
}

fn list(ids: &[String]) -> String {
    if ids.is_empty() {
        String::new()
    } else {
        format!(" ({})", ids.join(", "))
    }
}

/// `plan` (and `run --dry-run`): what `run` would apply, per schema; with `--dry-run` the SQL;
/// then each pending migration's hazards on this backend, with the alternative (lint before
/// harm).
async fn plan(
    migrator: &Migrator,
    args: &MigrateArgs,
    dry_run: bool,
    out: &mut dyn Write,
) -> Result<bool, CommandError> {
    let status = migrator.status().await.map_err(failed)?;
    let mut current = status.shared_pending.is_empty();
    let write = |out: &mut dyn Write, text: String| writeln!(out, "{text}").map_err(write_failed);
    // Every migration pending somewhere, in order, for the hazards at the end.
    let mut pending_ids: Vec<String> = status.shared_pending.clone();
    for id in &status.shared_pending {
        write(out, format!("shared schema: {id}"))?;
        if dry_run {
            let migration = migrator
                .migrations()
                .get(id)
                .ok_or_else(|| CommandError::failed(format!("migration {id} vanished")))?;
            for sql in migrator.plan_sql(migration, None).map_err(failed)? {
                write(out, format!("    {sql};"))?;
            }
        }
    }
    let tenant_migrations: Vec<_> = migrator.migrations().of(MigrationScope::Tenant).collect();
    for tenant in status.behind() {
        if args.tenant.as_ref().is_some_and(|t| *t != tenant.tenant) {
            continue;
        }
        if !args.retry_failed
            && tenant.error.is_some()
            && tenant.state.is_some_and(|s| s.as_str() == "failed")
        {
            write(
                out,
                format!(
                    "{}: failed, skipped without --retry-failed ({})",
                    tenant.tenant,
                    tenant.error.as_deref().unwrap_or("")
                ),
            )?;
            current = false;
            continue;
        }
        current = false;
        let pending: Vec<_> = tenant_migrations
            .iter()
            .filter(|m| tenant.version.as_deref().is_none_or(|v| m.id() > v))
            .collect();
        let ids: Vec<String> = pending.iter().map(|m| m.id().to_owned()).collect();
        write(out, format!("{}: {}", tenant.tenant, ids.join(", ")))?;
        for id in &ids {
            if !pending_ids.contains(id) {
                pending_ids.push(id.clone());
            }
        }
        if dry_run {
            for migration in pending {
                write(out, format!("  {}:", migration.id()))?;
                for sql in migrator
                    .plan_sql(migration, Some(&tenant.tenant))
                    .map_err(failed)?
                {
                    write(out, format!("    {sql};"))?;
                }
            }
        }
    }
    hazards(migrator, &pending_ids, out)?;
    if current {
        write(
            out,
            "nothing to migrate: every schema is at the last version".to_owned(),
        )?;
    }
    Ok(current)
}

/// The hazards of the pending migrations on this backend (lint before harm), once per
/// migration: what each operation does beyond its catalog change, and the alternative.
fn hazards(
    migrator: &Migrator,
    pending: &[String],
    out: &mut dyn Write,
) -> Result<(), CommandError> {
    let mut write = |text: String| writeln!(out, "{text}").map_err(write_failed);
    for id in pending {
        let Some(migration) = migrator.migrations().get(id) else {
            continue;
        };
        for hazard in migrator.hazards(migration) {
            let gate = if !hazard.kind.needs_allow_rewrite() {
                ""
            } else if migration.allows_rewrite() {
                " (allowed by \"allow_rewrite\": true)"
            } else {
                " (refused: the migration needs \"allow_rewrite\": true)"
            };
            write(format!(
                "hazard {id}: {} on {}: {}{gate}: {}",
                hazard.kind,
                hazard.backend.name(),
                hazard.operation,
                hazard.why
            ))?;
            write(format!("    instead: {}", hazard.alternative))?;
        }
    }
    Ok(())
}

async fn run(
    registry: &Registry,
    migrator: &Migrator,
    args: &MigrateArgs,
    out: &mut dyn Write,
) -> Result<bool, CommandError> {
    let started = Instant::now();
    // MySQL tenant databases made before tenant namespaces are moved in first, so that the
    // runner finds (and adopts) them.
    let moved = tenantry::contrib::move_legacy_mysql_tenants(registry)
        .await
        .map_err(failed)?;
    if !moved.is_empty() {
        let names: Vec<&str> = moved.iter().map(|s| s.as_str()).collect();
        writeln!(
            out,
            "moved {} tenant database(s) into the namespace: {}",
            moved.len(),
            names.join(", ")
        )
        .map_err(write_failed)?;
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} migrated {pos} tenants ({per_sec}) {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let progress = {
        let bar = bar.clone();
        Arc::new(move |outcome: &tenantry::migrate::TenantOutcome| {
            bar.inc(1);
            if outcome.error.is_some() {
                bar.set_message(format!("last failure: {}", outcome.tenant));
            }
        })
    };
    let mut options = RunOptions {
        retry_failed: args.retry_failed,
        tenant: args.tenant.clone(),
        ..RunOptions::default()
    };
    if let Some(n) = args.concurrency {
        options.concurrency = n.get();
    }
    if let Some(seconds) = args.lock_wait {
        options.lock_wait = std::time::Duration::from_secs(seconds.get() as u64);
    }
    let result = migrator
        .clone()
        .on_progress(progress.clone())
        .run(options.clone())
        .await;
    let report = match result {
        Ok(report) => report,
        Err(error) => {
            bar.finish_and_clear();
            return Err(failed(error));
        }
    };
    let directory = match registry.tenant_directory() {
        Some(directory) => {
            let runner = migrator.clone().on_progress(progress);
            Some(directory.migrate(registry, &runner, options).await)
        }
        None => None,
    };
    bar.finish_and_clear();
    summary(&report, started.elapsed(), out).map_err(write_failed)?;
    let mut complete = report.is_complete();
    if let Some(reports) = directory {
        complete &= directory_summary(reports.map_err(failed)?, out).map_err(write_failed)?;
    }
    Ok(complete)
}

/// One line per directory database: its tenants migrated and failed, or why it could not
/// be migrated; whether all of them are at the last version.
fn directory_summary(
    reports: Vec<(String, tenantry::Result<RunReport>)>,
    out: &mut dyn Write,
) -> std::io::Result<bool> {
    let mut complete = true;
    for (database, report) in reports {
        match report {
            Ok(report) => {
                let failed = report.failed().count();
                complete &= failed == 0;
                writeln!(
                    out,
                    "directory database {database}: {} migrated, {failed} failed",
                    report.tenants.len() - failed
                )?;
                for outcome in report.failed() {
                    if let Some(error) = &outcome.error {
                        writeln!(out, "failed: {error}")?;
                    }
                }
            }
            Err(error) => {
                complete = false;
                writeln!(out, "directory database {database}: not migrated: {error}")?;
            }
        }
    }
    Ok(complete)
}

fn summary(
    report: &RunReport,
    took: std::time::Duration,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let migrated = report
        .tenants
        .iter()
        .filter(|t| t.error.is_none() && !t.skipped)
        .count();
    let failed = report.tenants.iter().filter(|t| t.error.is_some()).count();
    let skipped = report.tenants.iter().filter(|t| t.skipped).count();
    writeln!(
        out,
        "shared schema: {} applied{}",
        report.shared_applied.len(),
        list(&report.shared_applied)
    )?;
    if let Some(id) = &report.shared_adopted {
        writeln!(
            out,
            "shared schema: adopted at {id} (its tables were already what {id} builds)"
        )?;
    }
    let adopted = report
        .tenants
        .iter()
        .filter(|t| t.adopted.is_some())
        .count();
    writeln!(out, "{:<10} {:>8}", "TENANTS", "COUNT")?;
    writeln!(out, "{:<10} {:>8}", "migrated", migrated)?;
    writeln!(out, "{:<10} {:>8}", "adopted", adopted)?;
    writeln!(out, "{:<10} {:>8}", "failed", failed)?;
    writeln!(out, "{:<10} {:>8}", "skipped", skipped)?;
    writeln!(out, "took {:.2} s", took.as_secs_f64())?;
    for outcome in report.failed() {
        match &outcome.error {
            Some(error) => writeln!(out, "failed: {error}")?,
            None => writeln!(
                out,
                "skipped: {} failed before; run again with --retry-failed",
                outcome.tenant
            )?,
        }
    }
    Ok(())
}
