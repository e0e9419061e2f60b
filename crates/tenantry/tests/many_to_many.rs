//! Many-to-many through a junction model, inside the tenant: two tenants hold different
//! links under the same ids and are used concurrently in one task.
mod common;

use std::sync::atomic::Ordering;

use common::models::*;
use tenantry::{
    create_schema, with_tenant, Error, ForeignKey, Instance, ManyToMany, Model, Registry,
    SchemaName,
};

#[derive(Model, Debug, Clone, PartialEq)]
struct Label {
    id: i64,
    #[model(max_length = 50)]
    name: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
struct ProductLabel {
    id: i64,
    #[model(on_delete = "cascade")]
    product: ForeignKey<Product>,
    #[model(on_delete = "cascade")]
    label: ForeignKey<Label>,
}

const LABELS: ManyToMany<ProductLabel, Product, Label> =
    ManyToMany::new(ProductLabel::product(), ProductLabel::label());

async fn registry(t: &common::TestDb) -> Registry {
    let registry = t
        .registry
        .clone()
        .register::<Label>()
        .register::<ProductLabel>();
    registry.create_all().await.unwrap();
    registry
}

/// In `schema`: products named `products`, tags named `tags` (ids from 1 in both).
async fn fill(
    r: &Registry,
    schema: &SchemaName,
    products: &[&str],
    tags: &[&str],
) -> (Vec<Instance<Product>>, Vec<Instance<Label>>) {
    create_schema(r, schema, None, false, true).await.unwrap();
    let products = Product::query(r)
        .using(schema)
        .bulk_create(products.iter().map(|n| product(n, None)))
        .await
        .unwrap();
    let tags = Label::query(r)
        .using(schema)
        .bulk_create(tags.iter().map(|n| Label {
            id: 0,
            name: n.to_string(),
        }))
        .await
        .unwrap();
    (products, tags)
}

async fn label_names(product: &Instance<Product>) -> Vec<String> {
    LABELS
        .of(product)
        .all()
        .order_by([Label::name().asc()])
        .values_list(Label::name())
        .await
        .unwrap()
}

backend_pool_test!(links_stay_in_their_tenant, |t: common::TestDb| async move {
    let r = &registry(&t).await;
    let (a, b) = (t.schema("m2m_a"), t.schema("m2m_b"));
    let (pa, ta) = fill(r, &a, &["lamp", "desk"], &["red", "blue", "green"]).await;
    let (pb, tb) = fill(r, &b, &["chair"], &["oak", "pine"]).await;
    // Same ids: lamp and chair are product 1, red and oak tag 1.
    assert_eq!((pa[0].id, tb[0].id), (pb[0].id, ta[0].id));
    let (of_a, of_b) = (LABELS.of(&pa[0]), LABELS.of(&pb[0]));
    let (add_a, add_b) = ([&ta[0], &ta[1], &ta[0]], [&tb[0]]);
    let (added_a, added_b) = tokio::join!(of_a.add(&add_a), of_b.add(&add_b));
    added_a.unwrap();
    added_b.unwrap();
    // Adding again changes nothing.
    LABELS.of(&pa[0]).add(&[&ta[1]]).await.unwrap();
    assert_eq!(ProductLabel::query(r).using(&a).count().await.unwrap(), 2);
    let (names_a, names_b) = tokio::join!(label_names(&pa[0]), label_names(&pb[0]));
    assert_eq!(names_a, ["blue", "red"]);
    assert_eq!(names_b, ["oak"]);
    // Across the relation: products having a tag named "red" (a) / "oak" (b).
    let having = |s: SchemaName, tag: &'static str| {
        with_tenant(
            Some(s),
            Product::query(r)
                .filter(LABELS.having(Label::name().eq(tag)))
                .values_list(Product::name()),
        )
    };
    let (red_in_a, red_in_b) = tokio::join!(having(a.clone(), "red"), having(b.clone(), "red"));
    assert_eq!(red_in_a.unwrap(), ["lamp"]);
    assert!(red_in_b.unwrap().is_empty());
    assert_eq!(having(b.clone(), "oak").await.unwrap(), ["chair"]);
    // From the other side.
    let products_of_red: Vec<String> = LABELS
        .reversed()
        .of(&ta[0])
        .all()
        .values_list(Product::name())
        .await
        .unwrap();
    assert_eq!(products_of_red, ["lamp"]);
    // remove, set, clear.
    assert_eq!(LABELS.of(&pa[0]).remove(&[&ta[0]]).await.unwrap(), 1);
    assert_eq!(label_names(&pa[0]).await, ["blue"]);
    LABELS.of(&pa[0]).set(&[&ta[2], &ta[0]]).await.unwrap();
    assert_eq!(label_names(&pa[0]).await, ["green", "red"]);
    assert_eq!(LABELS.of(&pa[0]).clear().await.unwrap(), 2);
    assert!(label_names(&pa[0]).await.is_empty());
    // Tenant b never changed.
    assert_eq!(label_names(&pb[0]).await, ["oak"]);
});

async fn prefetch_many_body(t: common::TestDb) {
    let r = &registry(&t).await;
    let s = t.schema("m2m_pf");
    let names: Vec<String> = (0..30).map(|i| format!("p{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let (products, tags) = fill(r, &s, &refs, &["x", "y", "z"]).await;
    for (i, product) in products.iter().enumerate() {
        // Product i has the first i % 4 tags.
        let mine: Vec<&Instance<Label>> = tags.iter().take(i % 4).collect();
        LABELS.of(product).add(&mine).await.unwrap();
    }
    let (count, counter) = common::statements::CountStatements::new();
    let loaded = {
        let _counting = tracing::subscriber::set_default(counter);
        Product::query(r)
            .using(&s)
            .order_by([Product::id().asc()])
            .prefetch_many(LABELS)
            .all()
            .await
            .unwrap()
    };
    let statements = count.load(Ordering::SeqCst);
    assert_eq!(statements, 2, "statements for 30 parents");
    for (i, product) in loaded.iter().enumerate() {
        let tags: Vec<&str> = product
            .prefetched_many(LABELS)
            .unwrap()
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(tags, ["x", "y", "z"][..i % 4], "product {i}");
    }
    // The junction's keys the wrong way round: a typed error, nothing sent.
    const WRONG: ManyToMany<ProductLabel, Product, Label> =
        ManyToMany::new(ProductLabel::label(), ProductLabel::product());
    let wrong = WRONG.of(&products[0]).all().count().await;
    assert!(
        matches!(wrong, Err(Error::InvalidRelation { .. })),
        "{wrong:?}"
    );
    let wrong = WRONG.of(&products[0]).add(&[&tags[0]]).await;
    assert!(
        matches!(wrong, Err(Error::InvalidRelation { .. })),
        "{wrong:?}"
    );
}

// The counting subscriber is this thread's: a current-thread runtime keeps every statement
// of the test on it.
#[tokio::test(flavor = "current_thread")]
async fn prefetch_many_is_one_statement_per_relation_sqlite() {
    common::run(tenantry::Backend::Sqlite, "m2m_pf", prefetch_many_body).await;
}

#[tokio::test(flavor = "current_thread")]
async fn prefetch_many_is_one_statement_per_relation_postgres() {
    common::run(tenantry::Backend::Postgres, "m2m_pf", prefetch_many_body).await;
}

#[tokio::test(flavor = "current_thread")]
async fn prefetch_many_is_one_statement_per_relation_mysql() {
    common::run(tenantry::Backend::MySql, "m2m_pf", prefetch_many_body).await;
}
