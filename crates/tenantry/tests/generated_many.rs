//! Many-to-many relations whose junction the derive generates
//! (`#[model(many_to_many(tags, to = Label))]`): registered with their model, built by
//! `create_schema` and by `makemigrations` alike, unique per pair, deleted with either side,
//! and used (add, remove, set, clear, all, having, prefetch) in two tenants at once, inside
//! one task, with pools of 1 and 2; a relation of a model with itself; on every backend.
mod common;

use tenantry::{create_schema, with_tenant, Error, Instance, Model, Registry, SchemaName};

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "gm_articles", many_to_many(labels, to = Label))]
struct Article {
    id: i64,
    #[model(max_length = 40)]
    title: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "gm_labels")]
struct Label {
    id: i64,
    #[model(max_length = 40)]
    name: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(
    table = "gm_people",
    many_to_many(friends, to = Person, table = "gm_friendships")
)]
struct Person {
    id: i64,
    #[model(max_length = 40)]
    name: String,
}

/// A model named like a keyword, and relations to it and to `Self`: the junctions' keys
/// are `r#type` and `from_node` / `to_node` (they must compile and build).
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "gm_types")]
struct Type {
    id: i64,
    rank: i32,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(
    table = "gm_nodes",
    many_to_many(types, to = Type),
    many_to_many(links, to = Self, table = "gm_node_links")
)]
struct Node {
    id: i64,
    rank: i32,
}

fn registry(base: &Registry) -> Registry {
    base.clone()
        .register::<Label>()
        .register::<Article>()
        .register::<Person>()
}

async fn tenant(registry: &Registry, name: &SchemaName) {
    create_schema(registry, name, None, false, true)
        .await
        .unwrap();
}

/// In the current tenant: three labels and two articles, `first` labelled with
/// `labels`; returns the names `first` ends with after add / remove / set.
async fn label(registry: &Registry, prefix: &str) -> (Vec<String>, Vec<String>) {
    let labels: Vec<Instance<Label>> = Label::query(registry)
        .bulk_create(["red", "green", "blue"].map(|n| Label {
            id: 0,
            name: format!("{prefix}-{n}"),
        }))
        .await
        .unwrap();
    let first = Article::query(registry)
        .create(Article {
            id: 0,
            title: format!("{prefix}-first"),
        })
        .await
        .unwrap();
    Article::query(registry)
        .create(Article {
            id: 0,
            title: format!("{prefix}-second"),
        })
        .await
        .unwrap();
    let related = Article::labels().of(&first);
    related.add(&[&labels[0], &labels[1]]).await.unwrap();
    tokio::task::yield_now().await;
    // Adding a pair again is no error and no second row.
    related.add(&[&labels[1]]).await.unwrap();
    related.remove(&[&labels[0]]).await.unwrap();
    let after_remove = names(related.all().all().await.unwrap());
    related.set(&[&labels[2], &labels[0]]).await.unwrap();
    let after_set = names(related.all().all().await.unwrap());
    (after_remove, after_set)
}

fn names(labels: Vec<Instance<Label>>) -> Vec<String> {
    let mut names: Vec<String> = labels.into_iter().map(|l| l.name.clone()).collect();
    names.sort();
    names
}

backend_pool_test!(
    a_generated_junction_relates_rows_in_each_tenant_alone,
    |t: common::TestDb| async move {
        let r = &registry(&t.registry);
        // The junction is registered with its model.
        assert!(r.models().iter().any(|m| m.table == "gm_articles_labels"));
        assert!(r.models().iter().any(|m| m.table == "gm_friendships"));
        let (a, b) = (t.schema("ga"), t.schema("gb"));
        tenant(r, &a).await;
        tenant(r, &b).await;
        let (in_a, in_b) = tokio::join!(
            with_tenant(Some(a.clone()), label(r, "a")),
            with_tenant(Some(b.clone()), label(r, "b")),
        );
        assert_eq!(in_a.0, vec!["a-green"]);
        assert_eq!(in_a.1, vec!["a-blue", "a-red"]);
        assert_eq!(in_b.0, vec!["b-green"]);
        assert_eq!(in_b.1, vec!["b-blue", "b-red"]);
        for (tenant, prefix) in [(&a, "a"), (&b, "b")] {
            // Two links in each tenant: its own.
            assert_eq!(
                ArticleLabels::query(r).using(tenant).count().await.unwrap(),
                2
            );
            // having across the junction.
            let red: Vec<String> = Article::query(r)
                .using(tenant)
                .filter(Article::labels().having(Label::name().eq(format!("{prefix}-red"))))
                .values_list(Article::title())
                .await
                .unwrap();
            assert_eq!(red, vec![format!("{prefix}-first")]);
            // prefetch, and the relation read from the label's side.
            let articles = Article::query(r)
                .using(tenant)
                .order_by([Article::id().asc()])
                .prefetch_many(Article::labels())
                .all()
                .await
                .unwrap();
            let counts: Vec<usize> = articles
                .iter()
                .map(|a| a.prefetched_many(Article::labels()).unwrap().len())
                .collect();
            assert_eq!(counts, vec![2, 0]);
            let blue = Label::query(r)
                .using(tenant)
                .get(Label::name().eq(format!("{prefix}-blue")))
                .await
                .unwrap();
            let titles: Vec<String> = Article::labels()
                .reversed()
                .of(&blue)
                .all()
                .values_list(Article::title())
                .await
                .unwrap();
            assert_eq!(titles, vec![format!("{prefix}-first")]);
        }
        // A pair is unique: a second row for it is refused by the junction's key.
        let (article, label) = (
            Article::query(r).using(&a).first().await.unwrap().unwrap(),
            Label::query(r).using(&a).first().await.unwrap().unwrap(),
        );
        let link = |_: ()| ArticleLabels {
            id: 0,
            article: (&article).into(),
            label: (&label).into(),
        };
        ArticleLabels::query(r)
            .using(&a)
            .create(link(()))
            .await
            .ok();
        let twice = ArticleLabels::query(r).using(&a).create(link(())).await;
        assert!(
            matches!(twice, Err(Error::UniqueViolation { .. })),
            "{twice:?}"
        );
        // Deleting an article deletes its links, in its tenant only.
        let first = Article::query(r)
            .using(&b)
            .get(Article::title().eq("b-first"))
            .await
            .unwrap();
        first.delete().await.unwrap();
        assert_eq!(ArticleLabels::query(r).using(&b).count().await.unwrap(), 0);
        assert!(ArticleLabels::query(r).using(&a).count().await.unwrap() >= 2);
    }
);

backend_test!(
    a_model_related_to_itself_gets_from_and_to_keys,
    |t: common::TestDb| async move {
        let r = &registry(&t.registry);
        let a = t.schema("self");
        tenant(r, &a).await;
        let people = Person::query(r)
            .using(&a)
            .bulk_create(["ann", "bob", "cy"].map(|n| Person {
                id: 0,
                name: n.into(),
            }))
            .await
            .unwrap();
        Person::friends()
            .of(&people[0])
            .add(&[&people[1], &people[2]])
            .await
            .unwrap();
        let link = PersonFriends::query(r)
            .using(&a)
            .first()
            .await
            .unwrap()
            .unwrap();
        assert_eq!(*link.from_person.key(), people[0].id);
        let of_bob: Vec<String> = Person::friends()
            .reversed()
            .of(&people[1])
            .all()
            .values_list(Person::name())
            .await
            .unwrap();
        assert_eq!(of_bob, vec!["ann".to_owned()]);
    }
);

backend_test!(
    keyword_and_self_relations_build_and_link,
    |t: common::TestDb| async move {
        let r = &t.registry.clone().register::<Type>().register::<Node>();
        let a = t.schema("kw");
        tenant(r, &a).await;
        let kind = Type::query(r)
            .using(&a)
            .create(Type { id: 0, rank: 1 })
            .await
            .unwrap();
        let nodes = Node::query(r)
            .using(&a)
            .bulk_create([Node { id: 0, rank: 1 }, Node { id: 0, rank: 2 }])
            .await
            .unwrap();
        Node::types().of(&nodes[0]).add(&[&kind]).await.unwrap();
        Node::links().of(&nodes[0]).add(&[&nodes[1]]).await.unwrap();
        let typed = NodeTypes::query(r)
            .using(&a)
            .first()
            .await
            .unwrap()
            .unwrap();
        assert_eq!(*typed.r#type.key(), kind.id);
        let link = NodeLinks::query(r)
            .using(&a)
            .first()
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (*link.from_node.key(), *link.to_node.key()),
            (nodes[0].id, nodes[1].id)
        );
    }
);

backend_test!(
    makemigrations_builds_the_generated_junction,
    |t: common::TestDb| async move {
        use tenantry::migrate::{
            diff, introspect, Migration, MigrationScope, Migrations, Migrator, Renames, RunOptions,
            Snapshot,
        };
        let r = registry(&t.registry);
        let models = Snapshot::of_models(r.models(), MigrationScope::Tenant).unwrap();
        let junction = models
            .table("gm_articles_labels")
            .expect("the junction's table");
        assert_eq!(junction.indexes.len(), 1);
        assert!(junction.indexes[0].unique);
        let changes = diff(&Snapshot::default(), &models, &Renames::default()).unwrap();
        let text = Migration::file_text(MigrationScope::Tenant, false, &changes.operations);
        let (built, migrated) = (t.schema("mbuilt"), t.schema("mmigrated"));
        tenant(&r, &built).await;
        create_schema(&r, &migrated, Some(&[]), false, false)
            .await
            .unwrap();
        let set = Migrations::from_files(&[("0001_initial", text.as_str())]).unwrap();
        let report = Migrator::new(&r, set)
            .run(RunOptions {
                tenant: Some(migrated.clone()),
                ..RunOptions::default()
            })
            .await
            .unwrap();
        assert!(report.is_complete(), "{report:?}");
        let db = t.registry.database();
        let differences = introspect(db, Some(&built))
            .await
            .unwrap()
            .differences(&introspect(db, Some(&migrated)).await.unwrap());
        assert!(differences.is_empty(), "{}", differences.join("\n"));
    }
);
