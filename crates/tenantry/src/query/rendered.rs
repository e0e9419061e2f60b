//! The rendered text of SQLite upserts and key lookups, kept per shape.
//!
//! A bulk upsert of 1,000 rows is one statement of 2,000 or more parameters; building it
//! with sea-query (a value expression per cell, a row list, then the text with a second
//! copy of every value) cost more than a tenth of the upsert on SQLite, where the database
//! work is cheapest (W13: 1.17–1.22 times bare sqlx). On SQLite the text is the same for
//! every tenant (a tenant's table is `"main"."t"` in its own file), so it is rendered by
//! sea-query once per shape (model, table name, rows, conflict clause) and the values are
//! bound in its order. Upserts whose conflict clause binds values (assignments, a version
//! column) and the other backends (whose text names the tenant's schema) are rendered
//! each time.
//!
//! The same holds for `select_related`'s second statement, the parents by key
//! (`SELECT … FROM "main"."users" WHERE "id" IN (?, …)`): keeping its text cut the
//! instructions of a W9 read through the ORM on SQLite by 15 %.

use std::sync::{Arc, Mutex};

use hashlink::LruCache;
use sea_query::TableName;

/// The most SQLite shapes kept in the process: an application upserting batches of every
/// size keeps the last ones rather than growing without bound.
const CAPACITY: usize = 64;

/// What decides the text of a cached statement. `model` is the model's metadata, by
/// address (one per model in the process).
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) enum Shape {
    /// An upsert of `rows` rows.
    Upsert {
        model: usize,
        table: TableName,
        rows: usize,
        /// The conflict key's column indexes and the updated columns, in order.
        conflict: (smallvec::SmallVec<[usize; 2]>, Vec<&'static str>),
    },
    /// The rows of `model` whose primary key is one of `keys` values.
    ByKeys {
        model: usize,
        table: TableName,
        keys: usize,
    },
}

/// The rendered texts, for every SQLite database of the process (the text does not depend
/// on the file).
pub(crate) static SQLITE_TEXTS: std::sync::LazyLock<RenderedTexts<Shape, Arc<str>>> =
    std::sync::LazyLock::new(|| RenderedTexts::new(CAPACITY));

/// Rendered statements by shape, the least recently used forgotten first once `capacity`
/// are kept. Shared by the threads of the process.
pub(crate) struct RenderedTexts<K, V> {
    texts: Mutex<LruCache<K, V>>,
}

impl<K: std::hash::Hash + Eq, V: Clone> RenderedTexts<K, V> {
    pub(crate) fn new(capacity: usize) -> Self {
        RenderedTexts {
            texts: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// The text of `shape`, if rendered before.
    pub(crate) fn get(&self, shape: &K) -> Option<V> {
        self.lock().get(shape).cloned()
    }

    /// Keeps `text` for `shape`.
    pub(crate) fn insert(&self, shape: K, text: V) {
        self.lock().insert(shape, text);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<K, V>> {
        // A panic elsewhere while holding the lock leaves a cache of whole entries.
        self.texts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
