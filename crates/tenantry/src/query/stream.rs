//! Streaming: the matching rows as a `Stream`, read in batches by primary key so that
//! memory stays flat however many rows there are.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use futures_util::{future::BoxFuture, stream::BoxStream, Stream, StreamExt};
use sea_query::Order;

use super::{read::fetch, QuerySet};
use crate::{
    error::{Error, Result},
    field::FieldType,
    instance::Instance,
    model::Model,
    target::Target,
};

/// Rows read per statement by [`QuerySet::stream`] unless [`QuerySet::stream_batch`] says
/// otherwise.
pub const STREAM_BATCH: u64 = 10_000;

/// Where a stream is: the rows read and not yet taken, the last key read, what is left.
struct Cursor<M: Model> {
    query: QuerySet<M>,
    target: Target,
    batch: u64,
    /// The batch being yielded (taken from the Vec the batch was decoded into: no copy).
    buffer: std::vec::IntoIter<Instance<M>>,
    after: Option<sea_query::Value>,
    /// Rows still to yield under the QuerySet's limit.
    left: Option<u64>,
    done: bool,
}

impl<M: Model> QuerySet<M> {
    /// The matching rows as a boxed (so `Unpin`) [`Stream`](futures_util::Stream), in
    /// primary-key order, for exports over more rows
    /// than memory should hold.
    ///
    /// The rows are read in batches of [`STREAM_BATCH`] (see
    /// [`stream_batch`](Self::stream_batch)), each one statement `WHERE pk > last ORDER BY
    /// pk LIMIT batch`, and the next batch is read only when the consumer has taken the
    /// previous one: memory holds one batch, and no connection is held between batches, so
    /// the consumer may run queries of its own while it iterates (even on a pool of one).
    /// The schema is chosen when `stream` is called, by the usual precedence: the stream
    /// may be polled anywhere (an HTTP response body, another task) and still reads that
    /// schema. The batches are separate statements: rows written while the stream runs are
    /// seen if their key is past the last one read (inside a transaction with repeatable
    /// reads, none are).
    ///
    /// The QuerySet's filter, limit and offset apply; it must have no ordering other than
    /// its primary key ascending ([`Error::InvalidArgument`]), and `select_related` is not
    /// applied. A builder error (a bad `using`) is the stream's first and only item.
    ///
    /// ```no_run
    /// # use tenantry::__doc::*;
    /// # async fn demo(registry: tenantry::Registry) -> tenantry::Result<()> {
    /// use futures_util::TryStreamExt;
    /// let mut users = User::query(&registry).stream();
    /// while let Some(user) = users.try_next().await? {
    ///     println!("{}", user.name);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn stream(self) -> BoxStream<'static, Result<Instance<M>>> {
        let state = match self.stream_cursor() {
            Ok(cursor) => State::Ready(Box::new(cursor)),
            Err(error) => State::Failed(error),
        };
        Rows { state }.boxed()
    }

    /// Rows read per statement by [`stream`](Self::stream) (at least 1).
    pub fn stream_batch(mut self, rows: u64) -> Self {
        self.stream_batch = Some(rows.clamp(1, super::MAX_ROWS));
        self
    }

    fn stream_cursor(self) -> Result<Cursor<M>> {
        self.refuse_lock("stream reads in batches, each on a connection of its own; lock rows with all() in a transaction")?;
        let target = self.target()?;
        let pk = M::META.primary_key_column().name;
        let ordered_by_pk = self
            .order
            .iter()
            .all(|o| super::page::is_own_column::<M>(o, pk) && matches!(o.order, Order::Asc));
        if !ordered_by_pk {
            return Err(Error::InvalidArgument {
                argument: "order_by",
                reason: "stream() reads in primary-key order; use all() for another ordering",
            });
        }
        Ok(Cursor {
            batch: self.stream_batch.unwrap_or(STREAM_BATCH),
            left: self.limit,
            query: self,
            target,
            buffer: Vec::new().into_iter(),
            after: None,
            done: false,
        })
    }
}

/// The stream [`QuerySet::stream`] returns. A row of the batch in hand is handed out with
/// no future made for it (a stream built with `unfold` made one per row, a tenth of a
/// streamed row's cost); a batch is read by a boxed future once the one in hand is used up.
struct Rows<M: Model> {
    state: State<M>,
}

enum State<M: Model> {
    Ready(Box<Cursor<M>>),
    Reading(BoxFuture<'static, (Box<Cursor<M>>, Result<()>)>),
    Failed(Error),
    Done,
}

impl<M: Model> Stream for Rows<M> {
    type Item = Result<Instance<M>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            // A row of the batch in hand is taken in place: the state is only moved when it
            // changes.
            if let State::Ready(cursor) = &mut self.state {
                if let Some(instance) = cursor.take() {
                    return Poll::Ready(Some(Ok(instance)));
                }
            }
            match std::mem::replace(&mut self.state, State::Done) {
                State::Ready(mut cursor) => {
                    if cursor.done {
                        return Poll::Ready(None);
                    }
                    self.state = State::Reading(Box::pin(async move {
                        let read = cursor.read_batch().await;
                        (cursor, read)
                    }));
                }
                State::Reading(mut reading) => match reading.as_mut().poll(cx) {
                    Poll::Pending => {
                        self.state = State::Reading(reading);
                        return Poll::Pending;
                    }
                    Poll::Ready((cursor, Ok(()))) => self.state = State::Ready(cursor),
                    Poll::Ready((_, Err(error))) => return Poll::Ready(Some(Err(error))),
                },
                State::Failed(error) => return Poll::Ready(Some(Err(error))),
                State::Done => return Poll::Ready(None),
            }
        }
    }
}

impl<M: Model> Cursor<M> {
    /// The next row of the batch in hand, counted against the limit.
    fn take(&mut self) -> Option<Instance<M>> {
        let next = self.buffer.next()?;
        if let Some(left) = &mut self.left {
            *left -= 1;
        }
        Some(next)
    }

    async fn read_batch(&mut self) -> Result<()> {
        let want = match self.left {
            Some(0) => {
                self.done = true;
                return Ok(());
            }
            Some(left) => std::cmp::min(left, self.batch),
            None => self.batch,
        };
        let pk = M::META.primary_key_column().name;
        let mut query = self.query.clone();
        query.order = vec![query.pk_order(Order::Asc)];
        query.limit = Some(want);
        match self.after.take() {
            Some(last) => {
                query.offset = None;
                query = query.filter(crate::model::Filter::new(crate::model::Test::Compare {
                    column: pk,
                    op: crate::model::Comparison::Gt,
                    value: last,
                }));
            }
            // The QuerySet's offset applies to the first batch only.
            None => query.offset = self.query.offset,
        }
        let select = query.select(&self.target)?;
        let rows = fetch::<M>(&self.target, &select, want).await?;
        if (rows.len() as u64) < want {
            self.done = true;
        }
        self.after = rows.last().map(|last| last.primary_key().to_value());
        self.buffer = rows.into_iter();
        Ok(())
    }
}
