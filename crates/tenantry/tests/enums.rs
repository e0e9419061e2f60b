//! Enums stored as text (`#[derive(Enum)]`), on every backend: variants round-trip in two
//! tenants written at once, filter, group and update; a renamed variant is stored as its
//! name; a stored text that is no variant's is `Decode`, never a default; a variant added
//! later needs no migration.
mod common;

use tenantry::{create_schema, with_tenant, Enum, Error, Model, Registry, SchemaName};

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Status {
    Open,
    #[model(rename = "in-progress")]
    InProgress,
    Closed,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "en_tickets")]
struct Ticket {
    id: i64,
    #[model(max_length = 40)]
    title: String,
    status: Status,
    previous: Option<Status>,
}

/// The same table with the status as plain text.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "en_tickets")]
struct RawTicket {
    id: i64,
    #[model(max_length = 40)]
    title: String,
    status: String,
    previous: Option<String>,
}

async fn tenant(registry: &Registry, name: &SchemaName) {
    create_schema(registry, name, Some(&[Ticket::META]), false, true)
        .await
        .unwrap();
}

fn ticket(title: &str, status: Status) -> Ticket {
    Ticket {
        id: 0,
        title: title.into(),
        status,
        previous: None,
    }
}

async fn work(registry: Registry, statuses: Vec<Status>) -> Vec<(Status, i64)> {
    let tickets = statuses
        .iter()
        .enumerate()
        .map(|(i, s)| ticket(&format!("t{i}"), *s));
    Ticket::query(&registry).bulk_create(tickets).await.unwrap();
    tokio::task::yield_now().await;
    Ticket::query(&registry)
        .filter(Ticket::status().eq(Status::Open))
        .update([
            Ticket::status().set(Status::InProgress),
            Ticket::previous().set(Status::Open),
        ])
        .await
        .unwrap();
    Ticket::query(&registry)
        .group_by(Ticket::status())
        .aggregate(Ticket::id().count())
        .await
        .unwrap()
}

backend_test!(
    enums_round_trip_filter_and_group_in_each_tenant,
    |t: common::TestDb| async move {
        let (a, b) = (t.schema("ea"), t.schema("eb"));
        tenant(&t.registry, &a).await;
        tenant(&t.registry, &b).await;
        use Status::*;
        let (in_a, in_b) = tokio::join!(
            with_tenant(
                Some(a.clone()),
                work(t.registry.clone(), vec![Open, Open, Closed])
            ),
            with_tenant(
                Some(b.clone()),
                work(t.registry.clone(), vec![Closed, InProgress])
            ),
        );
        let sorted = |mut groups: Vec<(Status, i64)>| {
            groups.sort_by_key(|(s, _)| format!("{s:?}"));
            groups
        };
        assert_eq!(sorted(in_a), vec![(Closed, 1), (InProgress, 2)]);
        assert_eq!(sorted(in_b), vec![(Closed, 1), (InProgress, 1)]);
        // Stored as the names (the renamed one as its rename).
        let stored = RawTicket::query(&t.registry)
            .using(&a)
            .order_by([RawTicket::id().asc()])
            .values_list((RawTicket::status(), RawTicket::previous().optional()))
            .await
            .unwrap();
        assert_eq!(
            stored,
            vec![
                ("in-progress".to_owned(), Some("Open".to_owned())),
                ("in-progress".to_owned(), Some("Open".to_owned())),
                ("Closed".to_owned(), None),
            ]
        );
        let first = Ticket::query(&t.registry)
            .using(&a)
            .get_pk(1)
            .await
            .unwrap();
        assert_eq!((first.status, first.previous), (InProgress, Some(Open)));
    }
);

backend_test!(
    a_stored_text_that_is_no_variant_is_a_decode_error,
    |t: common::TestDb| async move {
        let a = t.schema("ea");
        tenant(&t.registry, &a).await;
        // Written by a newer release that has a variant this one lacks.
        RawTicket::query(&t.registry)
            .using(&a)
            .create(RawTicket {
                id: 0,
                title: "from the future".into(),
                status: "Archived".into(),
                previous: None,
            })
            .await
            .unwrap();
        let read = Ticket::query(&t.registry).using(&a).all().await;
        assert!(
            matches!(
                read,
                Err(Error::Decode {
                    column: "status",
                    ..
                })
            ),
            "{read:?}"
        );
        // The others are still read by a query that leaves it out.
        Ticket::query(&t.registry)
            .using(&a)
            .create(ticket("now", Status::Open))
            .await
            .unwrap();
        let open = Ticket::query(&t.registry)
            .using(&a)
            .filter(Ticket::status().eq(Status::Open))
            .all()
            .await
            .unwrap();
        assert_eq!(open.len(), 1);
    }
);
