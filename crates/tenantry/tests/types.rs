//! Types: every supported field type survives a write and a read on every backend.
mod common;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use common::models::*;
use serde_json::json;
use tenantry::{Error, Instance};

fn at() -> DateTime<Utc> {
    // Microsecond precision, no nanoseconds: every backend stores it exactly.
    Utc.timestamp_opt(1_700_000_000, 123_456_000).unwrap()
}

fn sample(code: &str) -> EveryType {
    EveryType {
        key: 0,
        body: "héllo wörld ✓ 🚀\nsecond line with 'quotes' and \"doubles\" and \\ backslash"
            .repeat(50),
        code: code.into(),
        flag: true,
        ratio: std::f64::consts::PI,
        at: at(),
        day: NaiveDate::from_ymd_opt(2024, 2, 29).unwrap(),
        token: uuid::Uuid::new_v4(),
        doc: json!({
            "name": "édgy",
            "list": [1, 2.5, -3, "x", null, true],
            "nested": {"empty": {}, "none": null, "big": 9_007_199_254_740_993_i64},
        }),
        maybe: Some("present".into()),
        maybe_number: Some(-9_000_000_000),
    }
}

fn fields_equal(stored: &EveryType, expected: &EveryType) {
    assert_eq!(stored.body, expected.body);
    assert_eq!(stored.code, expected.code);
    assert_eq!(stored.flag, expected.flag);
    assert_eq!(stored.ratio, expected.ratio);
    assert_eq!(stored.at, expected.at);
    assert_eq!(stored.day, expected.day);
    assert_eq!(stored.token, expected.token);
    assert_eq!(stored.doc, expected.doc);
    assert_eq!(stored.maybe, expected.maybe);
    assert_eq!(stored.maybe_number, expected.maybe_number);
}

backend_test!(every_type_round_trips, |t: common::TestDb| async move {
    let r = &t.registry;
    let value = sample("A1");
    let created = EveryType::query(r).create(value.clone()).await.unwrap();
    assert!(created.key > 0, "the i32 key is assigned by the database");
    let loaded = EveryType::query(r).get_pk(created.key).await.unwrap();
    assert_eq!(loaded.key, created.key);
    fields_equal(&loaded, &value);
    assert_eq!(*loaded, *created);
});

backend_test!(
    nulls_and_other_values_round_trip,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let mut value = sample("B1");
        value.flag = false;
        value.ratio = -0.000_123_456_789;
        value.maybe = None;
        value.maybe_number = None;
        value.body = String::new();
        value.doc = json!([]);
        value.at = Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 59).unwrap();
        value.day = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        let created = EveryType::query(r).create(value.clone()).await.unwrap();
        let loaded = EveryType::query(r).get_pk(created.key).await.unwrap();
        fields_equal(&loaded, &value);

        // Some(empty string) stays distinct from None.
        let mut empty = sample("B2");
        empty.maybe = Some(String::new());
        empty.maybe_number = Some(0);
        empty.doc = json!("just a string");
        let created = EveryType::query(r).create(empty.clone()).await.unwrap();
        let loaded = EveryType::query(r).get_pk(created.key).await.unwrap();
        fields_equal(&loaded, &empty);
        assert_eq!(
            EveryType::query(r)
                .filter(EveryType::maybe().isnull(true))
                .count()
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            EveryType::query(r)
                .filter(EveryType::maybe().eq(String::new()))
                .count()
                .await
                .unwrap(),
            1
        );
    }
);

backend_test!(updates_round_trip, |t: common::TestDb| async move {
    let r = &t.registry;
    let mut stored = EveryType::query(r).create(sample("C1")).await.unwrap();
    let mut changed = sample("C2");
    changed.key = stored.key;
    changed.maybe = None;
    changed.maybe_number = Some(i64::MAX);
    changed.flag = false;
    changed.doc = json!({"replaced": [true]});
    *stored = changed.clone();
    stored.save().await.unwrap();
    let loaded = EveryType::query(r).get_pk(stored.key).await.unwrap();
    fields_equal(&loaded, &changed);

    // Bulk updates bind every type, too, including NULLs.
    let later = at() + chrono::Duration::microseconds(1);
    let day = NaiveDate::from_ymd_opt(2000, 1, 2).unwrap();
    let token = uuid::Uuid::new_v4();
    let n = EveryType::query(r)
        .filter(EveryType::key().eq(stored.key))
        .update([
            EveryType::at().set(later),
            EveryType::day().set(day),
            EveryType::token().set(token),
            EveryType::doc().set(json!({"k": 1})),
            EveryType::ratio().set(2.5),
            EveryType::flag().set(true),
            EveryType::maybe().set("back"),
            EveryType::maybe_number().set_null(),
        ])
        .await
        .unwrap();
    assert_eq!(n, 1);
    let loaded = EveryType::query(r).get_pk(stored.key).await.unwrap();
    assert_eq!(loaded.at, later);
    assert_eq!(loaded.day, day);
    assert_eq!(loaded.token, token);
    assert_eq!(loaded.doc, json!({"k": 1}));
    assert_eq!(loaded.ratio, 2.5);
    assert!(loaded.flag);
    assert_eq!(loaded.maybe.as_deref(), Some("back"));
    assert_eq!(loaded.maybe_number, None);
});

backend_test!(every_type_filters, |t: common::TestDb| async move {
    let r = &t.registry;
    let one = EveryType::query(r).create(sample("D1")).await.unwrap();
    let mut other = sample("D2");
    other.flag = false;
    other.ratio = 1.5;
    other.at = at() + chrono::Duration::seconds(1);
    other.day = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
    other.maybe = None;
    other.maybe_number = None;
    let two = EveryType::query(r).create(other).await.unwrap();

    async fn keys(r: &tenantry::Registry, filter: tenantry::Filter) -> Vec<i32> {
        let mut keys: Vec<i32> = EveryType::query(r)
            .filter(filter)
            .all()
            .await
            .unwrap()
            .iter()
            .map(|e| e.key)
            .collect();
        keys.sort();
        keys
    }
    let (k1, k2) = (one.key, two.key);
    assert_eq!(keys(r, EveryType::key().eq(k1)).await, [k1]);
    assert_eq!(keys(r, EveryType::code().eq("D2")).await, [k2]);
    assert_eq!(keys(r, EveryType::flag().eq(true)).await, [k1]);
    assert_eq!(keys(r, EveryType::flag().eq(false)).await, [k2]);
    assert_eq!(keys(r, EveryType::ratio().gt(2.0)).await, [k1]);
    assert_eq!(
        keys(r, EveryType::ratio().eq(std::f64::consts::PI)).await,
        [k1]
    );
    assert_eq!(keys(r, EveryType::at().eq(at())).await, [k1]);
    assert_eq!(keys(r, EveryType::at().gt(at())).await, [k2]);
    assert_eq!(keys(r, EveryType::at().lte(at())).await, [k1]);
    assert_eq!(
        keys(
            r,
            EveryType::day().eq(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap())
        )
        .await,
        [k1]
    );
    assert_eq!(
        keys(
            r,
            EveryType::day().gt(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap())
        )
        .await,
        [k2]
    );
    assert_eq!(keys(r, EveryType::token().eq(two.token)).await, [k2]);
    assert_eq!(
        keys(r, EveryType::token().is_in([one.token, two.token])).await,
        [k1, k2]
    );
    assert_eq!(keys(r, EveryType::maybe().eq("present")).await, [k1]);
    assert_eq!(keys(r, EveryType::maybe().isnull(true)).await, [k2]);
    assert_eq!(keys(r, EveryType::maybe_number().isnull(false)).await, [k1]);
    assert_eq!(keys(r, EveryType::maybe_number().lt(0_i64)).await, [k1]);

    // Ordering by a timestamp follows time, not text.
    let ordered: Vec<i32> = EveryType::query(r)
        .order_by([EveryType::at().desc()])
        .all()
        .await
        .unwrap()
        .iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(ordered, [k2, k1]);
});

backend_test!(tag_uuid_primary_key, |t: common::TestDb| async move {
    let r = &t.registry;
    let token = uuid::Uuid::new_v4();
    let tag = Tag::query(r)
        .create(Tag {
            token,
            label: "red".into(),
        })
        .await
        .unwrap();
    assert_eq!(tag.token, token, "a non-auto key is kept as given");
    let loaded = Tag::query(r).get_pk(token).await.unwrap();
    assert_eq!(loaded.label, "red");

    let many: Vec<Tag> = (0..50)
        .map(|i| Tag {
            token: uuid::Uuid::new_v4(),
            label: format!("label-{i}"),
        })
        .collect();
    let created = Tag::query(r).bulk_create(many.clone()).await.unwrap();
    assert_eq!(
        created.iter().map(|t| t.token).collect::<Vec<_>>(),
        many.iter().map(|t| t.token).collect::<Vec<_>>()
    );
    for tag in &many {
        assert_eq!(
            Tag::query(r).get_pk(tag.token).await.unwrap().label,
            tag.label
        );
    }
    assert_eq!(Tag::query(r).count().await.unwrap(), 51);

    // Save and delete go by the uuid key.
    let mut loaded: Instance<Tag> = loaded;
    loaded.label = "crimson".into();
    loaded.save().await.unwrap();
    assert_eq!(Tag::query(r).get_pk(token).await.unwrap().label, "crimson");
    loaded.delete().await.unwrap();
    assert!(matches!(
        Tag::query(r).get_pk(token).await,
        Err(Error::NotFound { .. })
    ));

    // An unsaved instance with a chosen key inserts with that key.
    let chosen = uuid::Uuid::new_v4();
    let mut fresh = Tag::query(r)
        .instance(Tag {
            token: chosen,
            label: "fresh".into(),
        })
        .unwrap();
    fresh.save().await.unwrap();
    assert_eq!(fresh.token, chosen);
    assert_eq!(Tag::query(r).get_pk(chosen).await.unwrap().label, "fresh");
});
