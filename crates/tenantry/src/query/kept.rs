//! The text of a QuerySet's SELECT kept per shape, so that a query run again is neither
//! built nor rendered.
//!
//! Building a SELECT with sea-query, rendering it and dropping it were two fifths of the
//! ORM's own cost of a W9 read on SQLite (a lookup joined across a foreign key, then
//! `select_related`): about 19,000 instructions of the 47,000 a read took on the calling
//! thread, against 25,000 for bare sqlx's two statements. On PostgreSQL and MySQL the same
//! work is a smaller share of a slower read, but it is the ORM's own cost all the same.
//!
//! A statement's text is decided by the QuerySet's shape: its database, its model and
//! table (named with the tenant's schema on PostgreSQL and MySQL), the filter tree's nodes
//! with their columns and operators (not their values), the orderings, and whether it has
//! a LIMIT, an OFFSET and DISTINCT. Its bound values are the values of the filter tree,
//! then LIMIT and OFFSET, in an order the shape decides. The first time a shape is
//! rendered, each value of the rendered statement is found among the tree's; the text is
//! kept only when every value of the tree was bound exactly once and no two were equal, so
//! the match is unambiguous (a value the builder wrote into the text would leave one
//! unmatched). Later queries of the shape take their values from the tree in that order
//! and send the kept text.
//!
//! On SQLite a tenant's table is `"main"."t"` in the tenant's own file, so one text serves
//! every tenant. On PostgreSQL and MySQL the text names the tenant's schema, so each
//! (shape, tenant) pair that runs has an entry; the cache holds [`CAPACITY`] of them, least
//! recently used forgotten first, and a query whose entry was forgotten is built and
//! rendered as before (it costs a copy of its values more). Filters with a subquery, a
//! reverse lookup or an expression comparison, locked reads and queries of a directory
//! tenant's database are built each time.

use std::sync::{Arc, LazyLock};

use sea_query::{Order, TableName, Value};
use smallvec::SmallVec;

use super::{rendered::RenderedTexts, QuerySet, MAX_ROWS};
use crate::{
    error::Result,
    model::{path::Path, Comparison, Model, ModelMeta, Node, Ordering, Test, TypedTest},
    target::Target,
    SchemaName,
};

/// The most texts kept in the process.
const CAPACITY: usize = 1024;

/// The most values a kept statement binds (a bigger one is built each time). At most 64:
/// `binding_order` marks the values it has matched in a `u64`.
const MAX_VALUES: usize = 64;

/// A SELECT to send.
// Lives on the stack for one query; boxing the statement would cost every built query an
// allocation.
#[allow(clippy::large_enum_variant)]
pub(super) enum Statement {
    /// Built, to be rendered when sent.
    Built(sea_query::SelectStatement),
    /// Rendered now (a shape seen for the first time), with its values.
    Rendered { text: Arc<str>, values: Vec<Value> },
    /// A kept text; its values are the QuerySet's, in the kept order
    /// ([`QuerySet::values`]).
    Kept(Arc<Kept>),
}

/// What decides the text of a QuerySet's SELECT.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Shape {
    /// The database (its shared schema's name and its tenants' namespace are its own).
    database: u64,
    /// The schema the statement runs in, on PostgreSQL and MySQL: a lookup may name a
    /// table there even where the model's own table is shared. `None` on SQLite, where a
    /// statement runs in the schema's own file and names it `"main"`.
    schema: Option<SchemaName>,
    /// The model's metadata, by address (one per model in the process).
    model: usize,
    /// The model's table as the statement names it: with the tenant's schema, or
    /// `"main"."t"` from a tenant's SQLite file.
    table: TableName,
    tokens: SmallVec<[Token; 8]>,
}

/// One element of a shape, in the order the QuerySet is walked.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Token {
    All(usize),
    Any(usize),
    Not,
    /// A lookup from `from` across `hops` foreign keys ([`Token::Hop`]s follow), then its
    /// condition's tokens.
    Forward {
        from: usize,
        hops: u8,
    },
    Hop {
        column: &'static str,
        target: usize,
    },
    Test {
        model: Option<usize>,
        column: &'static str,
        kind: Kind,
    },
    Typed {
        model: usize,
        ty: usize,
        column: &'static str,
        kind: Kind,
    },
    /// An ordering on `column` ([`Token::Hop`]s to its model follow).
    Order {
        from: usize,
        column: &'static str,
        descending: bool,
        hops: u8,
    },
    Distinct,
    Limit,
    Offset,
}

/// What a test does, without its values.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Compare(Comparison),
    In(usize),
    Null(bool),
    Like(bool),
}

/// A kept text and where each of its parameters comes from.
pub(super) struct Kept {
    pub(super) text: Arc<str>,
    /// For each parameter, the index of its value among the QuerySet's; `None` when they
    /// are in the same order.
    pub(super) order: Option<Box<[u8]>>,
}

/// The kept texts of every database of the process.
static SELECTS: LazyLock<RenderedTexts<Shape, Arc<Kept>>> =
    LazyLock::new(|| RenderedTexts::new(CAPACITY));

impl<M: Model> QuerySet<M> {
    /// The SELECT of [`all`](Self::all): a kept text when this shape was rendered before,
    /// else built, rendered, and kept if it can be.
    pub(super) fn statement(&mut self, target: &Target) -> Result<Statement> {
        let shape = match self.lock {
            None => self.shape(target)?,
            Some(_) => None,
        };
        let Some(shape) = shape else {
            return self.select(target).map(Statement::Built);
        };
        let kept = SELECTS.get(&shape);
        if let Some(kept) = kept {
            return Ok(Statement::Kept(kept));
        }
        let ours = self.values(None);
        let select = self.select(target)?;
        let (text, rendered) = crate::target::render(target.backend(), &select);
        let text: Arc<str> = text.into();
        let values = rendered.0 .0;
        if let Some(order) = binding_order(&ours, &values) {
            let kept = Kept {
                text: text.clone(),
                order,
            };
            SELECTS.insert(shape, Arc::new(kept));
        }
        Ok(Statement::Rendered { text, values })
    }

    /// This QuerySet's shape at `target`, `None` for one whose text is not kept.
    fn shape(&self, target: &Target) -> Result<Option<Shape>> {
        let mut tokens = SmallVec::new();
        if let Some(node) = &self.filter {
            if node_tokens(node, &mut tokens).is_none() {
                return Ok(None);
            }
        }
        for ordering in &self.order {
            if order_tokens(ordering, &mut tokens).is_none() {
                return Ok(None);
            }
        }
        let flags = [
            (self.distinct, Token::Distinct),
            (self.limit.is_some(), Token::Limit),
            (self.offset.is_some(), Token::Offset),
        ];
        tokens.extend(flags.into_iter().filter(|(on, _)| *on).map(|(_, t)| t));
        // More values than a kept text binds: not worth the copy that keeping it needs.
        if target.database().is_directory_database() || bound(&tokens) > MAX_VALUES {
            return Ok(None);
        }
        let schema = match target.backend() {
            crate::Backend::Sqlite => None,
            _ => target.schema.clone(),
        };
        Ok(Some(Shape {
            database: target.database().id(),
            schema,
            model: address(M::META),
            table: target.table(M::META)?,
            tokens,
        }))
    }

    /// The values the SELECT binds, copied from the QuerySet in `order` (`None`: in the
    /// QuerySet's own order: its filter's, then LIMIT and OFFSET as `select` binds them).
    pub(super) fn values(&self, order: Option<&[u8]>) -> Vec<Value> {
        let limit = match (self.limit, self.offset) {
            (Some(limit), _) => Some(Value::from(limit.min(MAX_ROWS))),
            (None, Some(_)) => Some(Value::from(MAX_ROWS)),
            (None, None) => None,
        };
        let offset = self.offset.map(|offset| Value::from(offset.min(MAX_ROWS)));
        let mut values = SmallVec::new();
        if let Some(node) = &self.filter {
            node_values(node, &mut values);
        }
        values.extend(limit.iter().chain(offset.iter()).map(Bound::Value));
        in_order(&values, order)
    }
}

/// For each value of a rendered statement, the index of the same value among `ours`:
/// `Some(None)` when they are in the same order. `None` when the text cannot be kept:
/// their numbers differ, two of ours are equal, or a value is not among ours.
fn binding_order(ours: &[Value], rendered: &[Value]) -> Option<Option<Box<[u8]>>> {
    if ours.len() != rendered.len() || ours.len() > MAX_VALUES {
        return None;
    }
    let distinct = ours
        .iter()
        .enumerate()
        .all(|(i, a)| ours[i + 1..].iter().all(|b| a != b));
    if !distinct {
        return None;
    }
    let order = rendered
        .iter()
        .map(|value| ours.iter().position(|ours| ours == value))
        .map(|i| i.and_then(|i| u8::try_from(i).ok()))
        .collect::<Option<Box<[u8]>>>()?;
    // Each of ours bound once: a value rendered twice would leave another unbound.
    let used = order.iter().fold(0u64, |used, &i| used | (1u64 << i));
    if used.count_ones() as usize != order.len() {
        return None;
    }
    let same = order.iter().enumerate().all(|(i, &j)| usize::from(j) == i);
    Some((!same).then_some(order))
}

/// The number of values a statement of these tokens binds.
fn bound(tokens: &[Token]) -> usize {
    let kind = |kind: &Kind| match kind {
        Kind::Compare(_) | Kind::Like(_) => 1,
        Kind::In(n) => *n,
        Kind::Null(_) => 0,
    };
    tokens
        .iter()
        .map(|token| match token {
            Token::Test { kind: k, .. } | Token::Typed { kind: k, .. } => kind(k),
            Token::Limit | Token::Offset => 1,
            _ => 0,
        })
        .sum()
}

fn address(meta: &'static ModelMeta) -> usize {
    std::ptr::from_ref(meta) as usize
}

/// Appends `node`'s tokens; `None` for a node whose statement is built each time.
fn node_tokens(node: &Node, tokens: &mut SmallVec<[Token; 8]>) -> Option<()> {
    match node {
        Node::Condition { model, test } => {
            let (column, kind) = test_shape(test)?;
            tokens.push(Token::Test {
                model: model.map(|model| address(model())),
                column,
                kind,
            });
        }
        Node::All(nodes) | Node::Any(nodes) => {
            tokens.push(match node {
                Node::All(_) => Token::All(nodes.len()),
                _ => Token::Any(nodes.len()),
            });
            for node in nodes {
                node_tokens(node, tokens)?;
            }
        }
        Node::Not(node) => {
            tokens.push(Token::Not);
            node_tokens(node, tokens)?;
        }
        Node::Forward { from, path, inner } => {
            tokens.push(Token::Forward {
                from: address(from()),
                hops: hop_count(path)?,
            });
            hop_tokens(path, tokens);
            node_tokens(inner, tokens)?;
        }
        Node::Typed {
            model,
            ty,
            column,
            test,
        } => tokens.push(Token::Typed {
            model: address(model()),
            ty: std::ptr::from_ref(*ty) as usize,
            column,
            kind: match test {
                TypedTest::Compare(op, _) => Kind::Compare(*op),
                TypedTest::In(values) if values.is_empty() => return None,
                TypedTest::In(values) => Kind::In(values.len()),
            },
        }),
        Node::Reverse { .. } | Node::InQuery { .. } | Node::Exists(_) | Node::Compare { .. } => {
            return None
        }
    }
    Some(())
}

fn order_tokens(ordering: &Ordering, tokens: &mut SmallVec<[Token; 8]>) -> Option<()> {
    tokens.push(Token::Order {
        from: address((ordering.from)()),
        column: ordering.column,
        descending: match ordering.order {
            Order::Asc => false,
            Order::Desc => true,
            _ => return None,
        },
        hops: hop_count(&ordering.path)?,
    });
    hop_tokens(&ordering.path, tokens);
    Some(())
}

/// The number of hops of `path`; `None` for one that asked for too many (refused when
/// rendered).
fn hop_count(path: &Path) -> Option<u8> {
    if path.overflowed() {
        return None;
    }
    u8::try_from(path.hops().count()).ok()
}

fn hop_tokens(path: &Path, tokens: &mut SmallVec<[Token; 8]>) {
    tokens.extend(path.hops().map(|hop| Token::Hop {
        column: hop.column,
        target: address((hop.target)()),
    }));
}

/// The column a test reads and what it does; `None` for a condition built otherwise.
fn test_shape(test: &Test) -> Option<(&'static str, Kind)> {
    Some(match test {
        Test::Compare { column, op, .. } => (column, Kind::Compare(*op)),
        // sea-query writes an empty list as `1 = 2` with both numbers bound.
        Test::In { values, .. } if values.is_empty() => return None,
        Test::In { column, values } => (column, Kind::In(values.len())),
        Test::Null { column, null } => (column, Kind::Null(*null)),
        Test::Like { column, fold, .. } => (column, Kind::Like(*fold)),
        Test::Built(_) => return None,
    })
}

/// A value a statement binds, as the QuerySet holds it.
#[derive(Clone, Copy)]
enum Bound<'a> {
    Value(&'a Value),
    /// A LIKE pattern, bound as a string.
    Pattern(&'a str),
}

impl Bound<'_> {
    fn to_value(self) -> Value {
        match self {
            Bound::Value(value) => value.clone(),
            Bound::Pattern(pattern) => Value::from(pattern.to_owned()),
        }
    }
}

/// Appends the values of `node`, a node [`node_tokens`] accepted, in tree order.
fn node_values<'a>(node: &'a Node, values: &mut SmallVec<[Bound<'a>; 8]>) {
    match node {
        Node::Condition { test, .. } => match test {
            Test::Compare { value, .. } => values.push(Bound::Value(value)),
            Test::In { values: list, .. } => values.extend(list.iter().map(Bound::Value)),
            Test::Like { pattern, .. } => values.push(Bound::Pattern(pattern)),
            Test::Null { .. } | Test::Built(_) => {}
        },
        Node::All(nodes) | Node::Any(nodes) => {
            for node in nodes {
                node_values(node, values);
            }
        }
        Node::Not(node) => node_values(node, values),
        Node::Forward { inner, .. } => node_values(inner, values),
        Node::Typed { test, .. } => match test {
            TypedTest::Compare(_, value) => values.push(Bound::Value(value)),
            TypedTest::In(list) => values.extend(list.iter().map(Bound::Value)),
        },
        Node::Reverse { .. } | Node::InQuery { .. } | Node::Exists(_) | Node::Compare { .. } => {}
    }
}

/// `values` copied in `order` (`None`: as they are). A shape decides the number of values
/// (an IN list's length is part of it), so every index is in range.
fn in_order(values: &[Bound<'_>], order: Option<&[u8]>) -> Vec<Value> {
    match order {
        None => values.iter().map(|value| value.to_value()).collect(),
        Some(order) => order
            .iter()
            .filter_map(|&i| values.get(usize::from(i)))
            .map(|value| value.to_value())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(n: i64) -> Value {
        Value::from(n)
    }

    #[test]
    fn values_in_the_same_order_need_no_reordering() {
        assert_eq!(
            binding_order(&[v(1), v(2)], &[v(1), v(2)]).map(|o| o.is_none()),
            Some(true)
        );
    }

    #[test]
    fn values_in_another_order_are_reordered_when_bound() {
        let order = binding_order(&[v(1), v(2), v(3)], &[v(3), v(1), v(2)])
            .flatten()
            .unwrap();
        let ours = [v(7), v(8), v(9)];
        let ours: Vec<Bound> = ours.iter().map(Bound::Value).collect();
        assert_eq!(in_order(&ours, Some(&order)), vec![v(9), v(7), v(8)]);
        assert_eq!(in_order(&ours, None), vec![v(7), v(8), v(9)]);
    }

    #[test]
    fn equal_missing_or_extra_values_keep_nothing() {
        assert!(binding_order(&[v(1), v(1)], &[v(1), v(1)]).is_none());
        assert!(binding_order(&[v(1), v(2)], &[v(1), v(3)]).is_none());
        assert!(binding_order(&[v(1), v(2)], &[v(1)]).is_none());
        assert!(binding_order(&[v(1)], &[v(1), v(1)]).is_none());
        assert!(binding_order(&[v(1), v(2)], &[v(1), v(1)]).is_none());
        // The same number, of another type: a BIGINT key against an unsigned LIMIT.
        assert!(binding_order(&[v(2), Value::from(2u64)], &[v(2), Value::from(2u64)]).is_some());
    }
}
