//! Counting the statements tenantry sends, through its `tenantry.query` spans.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

/// A tracing subscriber that counts `tenantry.query` spans. Set it for the current thread
/// (`tracing::subscriber::set_default`) in a current-thread runtime, so that every
/// statement of the test is seen.
pub struct CountStatements(pub Arc<AtomicUsize>);

impl CountStatements {
    /// A counter and the subscriber that feeds it.
    pub fn new() -> (Arc<AtomicUsize>, CountStatements) {
        let count = Arc::new(AtomicUsize::new(0));
        (count.clone(), CountStatements(count))
    }
}

impl tracing::Subscriber for CountStatements {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        if span.metadata().name() == "tenantry.query" {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
