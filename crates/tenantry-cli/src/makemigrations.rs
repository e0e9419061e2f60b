//! `makemigrations`: compares the application's models with what its migration files build
//! and writes the next migration files (one for the shared schema, one for the tenants, as
//! needed). `--check` writes nothing and fails when they disagree.

use std::{
    io::{BufRead, IsTerminal, Write},
    path::{Path, PathBuf},
    process::ExitCode,
};

use tenantry::{
    migrate::{
        diff, Changes, Migration, MigrationScope, Migrations, PossibleRename, Renames, Snapshot,
    },
    Backend, ModelMeta,
};

use crate::{CommandError, MakemigrationsArgs};

/// Runs `makemigrations` for `models` over the migration directory `--migrations` (default
/// `default_dir`, the application's), reporting on stdout and stderr. Asks about possible
/// renames when stdin is a terminal (and `--no-input` is not given).
///
/// Exit code 0 when the files were written or nothing changed; 1 with `--check` when the
/// models and the migrations disagree, or when the command failed; 2 for a usage error (a
/// rename that fits no table).
pub fn run_makemigrations(
    models: &[&'static ModelMeta],
    default_dir: &Path,
    args: MakemigrationsArgs,
) -> ExitCode {
    let interactive = !args.no_input && std::io::stdin().is_terminal();
    let mut ask = |question: &PossibleRename| interactive && ask_on_terminal(question);
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    match makemigrations(models, default_dir, &args, &mut ask, &mut out, &mut err) {
        Ok(Made::Nothing | Made::Written(_)) => ExitCode::SUCCESS,
        Ok(Made::Disagree) => ExitCode::FAILURE,
        Err(error) => {
            let _ = writeln!(err, "error: {error}");
            error.exit_code()
        }
    }
}

/// What `makemigrations` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Made {
    /// The models and the migrations agree.
    Nothing,
    /// `--check`: they disagree; nothing was written.
    Disagree,
    /// These files were written.
    Written(Vec<PathBuf>),
}

/// `makemigrations`, answering rename questions with `ask` and writing its report to `out`
/// and warnings to `err`.
pub fn makemigrations(
    models: &[&'static ModelMeta],
    default_dir: &Path,
    args: &MakemigrationsArgs,
    ask: &mut dyn FnMut(&PossibleRename) -> bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Made, CommandError> {
    let dir = args.migrations.as_deref().unwrap_or(default_dir);
    let files = read_files(dir)?;
    let migrations = parse_files(&files)?;
    let mut renames = Renames {
        tables: args.rename_table.clone(),
        columns: args.rename_column.clone(),
    };
    let mut plans = Vec::new();
    for scope in [MigrationScope::Shared, MigrationScope::Tenant] {
        let old = Snapshot::of_migrations(&migrations, scope).map_err(CommandError::failed)?;
        let new = Snapshot::of_models(models, scope).map_err(CommandError::failed)?;
        plans.push((scope, old, new));
    }
    check_renames_fit(&renames, &plans)?;
    let changes = loop {
        let changes = plans
            .iter()
            .map(|(scope, old, new)| {
                let fitting = fitting(&renames, old, new);
                diff(old, new, &fitting).map(|c| (*scope, c))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(CommandError::failed)?;
        let asked = changes
            .iter()
            .flat_map(|(_, c)| &c.possible_renames)
            .find(|question| !answered(&renames, question) && ask(question))
            .cloned();
        match asked {
            Some(yes) => add_rename(&mut renames, yes),
            None => break changes,
        }
    };
    report(&changes, args.check, out, err)?;
    if changes.iter().all(|(_, c)| c.is_empty()) {
        return Ok(Made::Nothing);
    }
    if args.check {
        return Ok(Made::Disagree);
    }
    let planned = plan_files(&migrations, args, &changes)?;
    if !args.allow_rewrite {
        warn_rewrites(&files, &planned, err)?;
    }
    let written = write_files(dir, &planned)?;
    for path in &written {
        writeln!(out, "wrote {}", path.display()).map_err(write_failed)?;
    }
    Ok(Made::Written(written))
}

fn write_failed(error: std::io::Error) -> CommandError {
    CommandError::failed(format!("could not write the report: {error}"))
}

/// The migration files of `dir` (its `*.json` files, each id its file name without
/// `.json`), parsed and ordered: what [`tenantry::migrations!`] embeds, read at run time.
pub fn read_migrations_dir(dir: &Path) -> Result<Migrations, CommandError> {
    parse_files(&read_files(dir)?)
}

fn parse_files(files: &[(String, String)]) -> Result<Migrations, CommandError> {
    let pairs: Vec<(&str, &str)> = files
        .iter()
        .map(|(i, t)| (i.as_str(), t.as_str()))
        .collect();
    Migrations::from_files(&pairs).map_err(|e| CommandError::failed(e.to_string()))
}

/// The `(id, text)` of every `*.json` file of `dir`.
fn read_files(dir: &Path) -> Result<Vec<(String, String)>, CommandError> {
    let cannot = |e: std::io::Error| {
        CommandError::failed(format!(
            "cannot read the migrations directory {}: {e}",
            dir.display()
        ))
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(cannot)? {
        let path = entry.map_err(cannot)?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let Some(id) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
            return Err(CommandError::failed(format!(
                "{} is not a UTF-8 file name",
                path.display()
            )));
        };
        let text = std::fs::read_to_string(&path).map_err(cannot)?;
        files.push((id, text));
    }
    Ok(files)
}

/// A rename flag that fits no scope is a usage error: it names a table or column that the
/// migrations or the models do not have.
fn check_renames_fit(
    renames: &Renames,
    plans: &[(MigrationScope, Snapshot, Snapshot)],
) -> Result<(), CommandError> {
    let fits_somewhere = |one: Renames| {
        plans
            .iter()
            .any(|(_, old, new)| fitting(&one, old, new) == one)
    };
    for (from, to) in &renames.tables {
        let one = Renames {
            tables: vec![(from.clone(), to.clone())],
            columns: Vec::new(),
        };
        if !fits_somewhere(one) {
            return Err(CommandError::usage(format!(
                "--rename-table {from}={to}: the migrations must have a table {from} and the \
                 models a table {to} (and no longer {from})"
            )));
        }
    }
    for (table, from, to) in &renames.columns {
        let one = Renames {
            tables: renames.tables.clone(),
            columns: vec![(table.clone(), from.clone(), to.clone())],
        };
        let fits = plans
            .iter()
            .any(|(_, old, new)| fitting(&one, old, new).columns == one.columns);
        if !fits {
            return Err(CommandError::usage(format!(
                "--rename-column {table}.{from}={to}: the migrations must have a column \
                 {table}.{from} and the models a column {table}.{to} (and no longer {from})"
            )));
        }
    }
    Ok(())
}

/// The renames that apply between `old` and `new` (a shared model's rename does not apply
/// to the tenant scope, which lacks the table).
fn fitting(renames: &Renames, old: &Snapshot, new: &Snapshot) -> Renames {
    let tables: Vec<(String, String)> = renames
        .tables
        .iter()
        .filter(|(from, to)| {
            old.table(from).is_some() && new.table(from).is_none() && new.table(to).is_some()
        })
        .cloned()
        .collect();
    let old_name = |table: &str| {
        tables
            .iter()
            .find(|(_, to)| to == table)
            .map_or(table.to_owned(), |(from, _)| from.clone())
    };
    let columns = renames
        .columns
        .iter()
        .filter(|(table, from, to)| {
            let was = old.table(&old_name(table));
            was.is_some_and(|t| t.column(from).is_some())
                && new
                    .table(table)
                    .is_some_and(|t| t.column(to).is_some() && t.column(from).is_none())
        })
        .cloned()
        .collect();
    Renames { tables, columns }
}

fn answered(renames: &Renames, question: &PossibleRename) -> bool {
    match question {
        PossibleRename::Table { from, .. } => renames.tables.iter().any(|(f, _)| f == from),
        PossibleRename::Column { table, from, .. } => renames
            .columns
            .iter()
            .any(|(t, f, _)| t == table && f == from),
    }
}

fn add_rename(renames: &mut Renames, yes: PossibleRename) {
    match yes {
        PossibleRename::Table { from, to } => renames.tables.push((from, to)),
        PossibleRename::Column { table, from, to } => renames.columns.push((table, from, to)),
    }
}

fn ask_on_terminal(question: &PossibleRename) -> bool {
    let text = match question {
        PossibleRename::Table { from, to } => format!("Was table {from} renamed to {to}?"),
        PossibleRename::Column { table, from, to } => {
            format!("Was column {table}.{from} renamed to {to}?")
        }
    };
    eprint!("{text} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim(), "y" | "Y" | "yes" | "Yes")
}

fn scope_name(scope: MigrationScope) -> &'static str {
    match scope {
        MigrationScope::Shared => "shared",
        MigrationScope::Tenant => "tenant",
    }
}

/// Lists each scope's operations on `out` and the warnings on `err`.
fn report(
    changes: &[(MigrationScope, Changes)],
    check: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CommandError> {
    if changes.iter().all(|(_, c)| c.is_empty()) {
        writeln!(out, "no changes: the models and the migrations agree").map_err(write_failed)?;
        return Ok(());
    }
    if check {
        writeln!(
            out,
            "the models and the migrations disagree; run makemigrations:"
        )
        .map_err(write_failed)?;
    }
    for (scope, change) in changes.iter().filter(|(_, c)| !c.is_empty()) {
        writeln!(out, "{} schema:", scope_name(*scope)).map_err(write_failed)?;
        for op in &change.operations {
            writeln!(out, "  {}", op.describe()).map_err(write_failed)?;
        }
        for warning in &change.warnings {
            writeln!(err, "warning ({}): {warning}", scope_name(*scope)).map_err(write_failed)?;
        }
    }
    Ok(())
}

/// The files to write, one per scope that changed, numbered after the last migration:
/// `(NNNN_<scope>_<name>, text)`.
fn plan_files(
    migrations: &Migrations,
    args: &MakemigrationsArgs,
    changes: &[(MigrationScope, Changes)],
) -> Result<Vec<(String, String)>, CommandError> {
    let name = args.name.as_deref().unwrap_or("auto");
    let mut number = migrations
        .all()
        .iter()
        .filter_map(|m| {
            let digits: String = m.id().chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>().ok()
        })
        .max()
        .unwrap_or(0);
    let last = migrations.all().last().map(|m| m.id().to_owned());
    let mut planned = Vec::new();
    for (scope, change) in changes.iter().filter(|(_, c)| !c.is_empty()) {
        number += 1;
        let id = format!("{number:04}_{}_{name}", scope_name(*scope));
        // Migrations run in the order of their ids: a new one must sort after every other.
        if let Some(last) = last.as_deref().filter(|last| id.as_str() <= *last) {
            return Err(CommandError::failed(format!(
                "the next migration, {id}, would sort before {last} and run before it \
                 (migrations run in the order of their file names); name the files with a \
                 number of the same width first (0001_…, 0002_…)"
            )));
        }
        let text = Migration::file_text(*scope, args.allow_rewrite, &change.operations);
        // What is written must read back: the runner embeds it as it is.
        Migration::parse(&id, &text).map_err(|e| CommandError::usage(e.to_string()))?;
        planned.push((id, text));
    }
    Ok(planned)
}

/// Warns of each planned operation that rewrites, scans or copies a table on PostgreSQL or
/// MariaDB (judged against the tables the earlier migrations build): the runner refuses
/// such a file until it says `"allow_rewrite": true`.
fn warn_rewrites(
    files: &[(String, String)],
    planned: &[(String, String)],
    err: &mut dyn Write,
) -> Result<(), CommandError> {
    let all: Vec<(String, String)> = files.iter().chain(planned).cloned().collect();
    let set = parse_files(&all)?;
    let mut any = false;
    for (id, _) in planned {
        let Some(migration) = set.get(id) else {
            continue;
        };
        for backend in [Backend::Postgres, Backend::MySql] {
            let hazards = set.hazards(migration, backend);
            for hazard in hazards.iter().filter(|h| h.kind.needs_allow_rewrite()) {
                writeln!(err, "warning ({id}): {hazard}").map_err(write_failed)?;
                any = true;
            }
        }
    }
    if any {
        writeln!(
            err,
            "warning: the runner refuses these files on those backends until they say \
             \"allow_rewrite\": true (generate with --allow-rewrite, or edit them after reading \
             `migrate plan`); expand/contract avoids the rewrite"
        )
        .map_err(write_failed)?;
    }
    Ok(())
}

/// Writes the planned files into `dir`, never over an existing one.
fn write_files(dir: &Path, planned: &[(String, String)]) -> Result<Vec<PathBuf>, CommandError> {
    let mut written = Vec::new();
    for (id, text) in planned {
        let path = dir.join(format!("{id}.json"));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| CommandError::failed(format!("cannot create {}: {e}", path.display())))?;
        file.write_all(text.as_bytes())
            .map_err(|e| CommandError::failed(format!("cannot write {}: {e}", path.display())))?;
        written.push(path);
    }
    Ok(written)
}
