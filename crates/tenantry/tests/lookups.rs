//! Lookups: every column lookup and the `&` / `|` / `!` combinators, with the same answers on
//! every backend.
mod common;
use common::models::*;
use tenantry::{Backend, Filter, Registry};

/// Creates users with the given names (emails derived, made unique by position).
async fn seed(r: &Registry, names: &[&str]) {
    let users: Vec<User> = names
        .iter()
        .enumerate()
        .map(|(i, name)| User {
            id: 0,
            name: (*name).into(),
            email: format!("user{i}@example.com"),
            is_active: i % 2 == 0,
        })
        .collect();
    User::query(r).bulk_create(users).await.unwrap();
}

/// The names matching `filter`, sorted.
async fn names(r: &Registry, filter: Filter) -> Vec<String> {
    let mut names: Vec<String> = User::query(r)
        .filter(filter)
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.into_inner().name)
        .collect();
    names.sort();
    names
}

const ASCII: &[&str] = &["Alice", "alice", "ALICE Smith", "Bob", "bobby", "Carol"];

backend_test!(equality_lookups, |t: common::TestDb| async move {
    let r = &t.registry;
    seed(r, ASCII).await;
    assert_eq!(names(r, User::name().eq("Alice")).await, ["Alice"]);
    assert_eq!(names(r, User::name().eq("alice")).await, ["alice"]);
    assert!(names(r, User::name().eq("ALICE")).await.is_empty());
    assert_eq!(
        names(r, User::name().ne("Alice")).await,
        ["ALICE Smith", "Bob", "Carol", "alice", "bobby"]
    );
    assert_eq!(
        names(r, User::name().iexact("ALICE")).await,
        ["Alice", "alice"]
    );
    assert_eq!(names(r, User::name().iexact("bob")).await, ["Bob"]);
    assert!(names(r, User::name().iexact("bo")).await.is_empty());
});

backend_test!(text_lookups_ascii_case, |t: common::TestDb| async move {
    let r = &t.registry;
    seed(r, ASCII).await;
    // Case-sensitive on every backend.
    assert_eq!(
        names(r, User::name().contains("lic")).await,
        ["Alice", "alice"]
    );
    assert_eq!(
        names(r, User::name().contains("LIC")).await,
        ["ALICE Smith"]
    );
    assert!(names(r, User::name().contains("bOB")).await.is_empty());
    assert_eq!(
        names(r, User::name().startswith("A")).await,
        ["ALICE Smith", "Alice"]
    );
    assert_eq!(names(r, User::name().startswith("a")).await, ["alice"]);
    assert_eq!(
        names(r, User::name().endswith("ice")).await,
        ["Alice", "alice"]
    );
    assert_eq!(
        names(r, User::name().endswith("ith")).await,
        ["ALICE Smith"]
    );
    assert!(names(r, User::name().endswith("ITH")).await.is_empty());
    // Case-insensitive variants.
    assert_eq!(
        names(r, User::name().icontains("LIC")).await,
        ["ALICE Smith", "Alice", "alice"]
    );
    assert_eq!(
        names(r, User::name().icontains("oB")).await,
        ["Bob", "bobby"]
    );
    assert_eq!(
        names(r, User::name().istartswith("alice")).await,
        ["ALICE Smith", "Alice", "alice"]
    );
    assert_eq!(names(r, User::name().istartswith("BOBB")).await, ["bobby"]);
    assert_eq!(
        names(r, User::name().iendswith("ICE")).await,
        ["Alice", "alice"]
    );
    assert_eq!(
        names(r, User::name().iendswith("sMiTh")).await,
        ["ALICE Smith"]
    );
    // The empty string is contained in everything.
    assert_eq!(names(r, User::name().contains("")).await.len(), ASCII.len());
});

backend_test!(
    like_wildcards_match_literally,
    |t: common::TestDb| async move {
        let r = &t.registry;
        seed(
            r,
            &[
                "100%",
                "1000",
                "a_b",
                "axb",
                r"back\slash",
                "backXslash",
                r"back\\double",
                "%",
                "_",
                r"\",
            ],
        )
        .await;
        assert_eq!(names(r, User::name().contains("%")).await, ["%", "100%"]);
        assert_eq!(names(r, User::name().endswith("0%")).await, ["100%"]);
        assert_eq!(names(r, User::name().startswith("100%")).await, ["100%"]);
        assert_eq!(names(r, User::name().contains("_")).await, ["_", "a_b"]);
        assert_eq!(names(r, User::name().iexact("A_B")).await, ["a_b"]);
        assert_eq!(names(r, User::name().icontains("A_")).await, ["a_b"]);
        assert_eq!(
            names(r, User::name().contains(r"\")).await,
            [r"\", r"back\\double", r"back\slash"]
        );
        assert_eq!(
            names(r, User::name().contains(r"k\s")).await,
            [r"back\slash"]
        );
        assert_eq!(
            names(r, User::name().icontains(r"K\S")).await,
            [r"back\slash"]
        );
        assert_eq!(
            names(r, User::name().contains(r"\\")).await,
            [r"back\\double"]
        );
        assert_eq!(names(r, User::name().endswith(r"\")).await, [r"\"]);
        assert_eq!(names(r, User::name().istartswith(r"\")).await, [r"\"]);
        assert_eq!(names(r, User::name().iexact("%")).await, ["%"]);
        assert_eq!(names(r, User::name().iendswith("_")).await, ["_"]);
        // Plain equality is not a pattern at all.
        assert_eq!(names(r, User::name().eq("a_b")).await, ["a_b"]);
        assert_eq!(names(r, User::name().eq(r"\")).await, [r"\"]);
    }
);

backend_test!(non_ascii_text_lookups, |t: common::TestDb| async move {
    let r = &t.registry;
    seed(r, &["É", "é", "Ärger", "straße", "日本語"]).await;
    // Case-sensitive lookups compare code points on every backend.
    assert_eq!(names(r, User::name().contains("É")).await, ["É"]);
    assert_eq!(names(r, User::name().contains("é")).await, ["é"]);
    assert_eq!(names(r, User::name().startswith("Ä")).await, ["Ärger"]);
    assert!(names(r, User::name().startswith("ä")).await.is_empty());
    assert_eq!(names(r, User::name().contains("本")).await, ["日本語"]);
    assert_eq!(names(r, User::name().icontains("本")).await, ["日本語"]);
    assert_eq!(names(r, User::name().endswith("ße")).await, ["straße"]);
    assert_eq!(names(r, User::name().eq("é")).await, ["é"]);
    // A lowercase non-ASCII letter in the column is found by both cases of the value, on
    // every backend.
    assert!(names(r, User::name().icontains("é"))
        .await
        .contains(&"é".to_owned()));
    assert!(names(r, User::name().icontains("É"))
        .await
        .contains(&"é".to_owned()));
    assert!(names(r, User::name().iexact("é"))
        .await
        .contains(&"é".to_owned()));
    assert!(names(r, User::name().iexact("É"))
        .await
        .contains(&"é".to_owned()));
    // Folding is one-to-one: "SSE" lowers to "sse", which "straße" does not end with.
    assert!(names(r, User::name().iendswith("SSE")).await.is_empty());
    assert_eq!(names(r, User::name().iendswith("ẞE")).await, ["straße"]);
    // An uppercase non-ASCII letter in the column folds on PostgreSQL and MySQL only.
    let upper_found = t.backend != Backend::Sqlite;
    assert_eq!(
        names(r, User::name().icontains("É")).await,
        if upper_found {
            vec!["É", "é"]
        } else {
            vec!["é"]
        }
    );
    assert_eq!(
        names(r, User::name().icontains("é")).await,
        if upper_found {
            vec!["É", "é"]
        } else {
            vec!["é"]
        }
    );
    assert_eq!(
        names(r, User::name().iexact("É")).await,
        if upper_found {
            vec!["É", "é"]
        } else {
            vec!["é"]
        }
    );
    assert_eq!(
        names(r, User::name().istartswith("ärg")).await,
        if upper_found {
            vec!["Ärger"]
        } else {
            Vec::<&str>::new()
        }
    );
    assert_eq!(
        names(r, User::name().istartswith("ÄRG")).await,
        if upper_found {
            vec!["Ärger"]
        } else {
            Vec::<&str>::new()
        }
    );
    // SQLite: "É" is found by neither case of the value.
    if t.backend == Backend::Sqlite {
        assert!(!names(r, User::name().icontains("É"))
            .await
            .contains(&"É".to_owned()));
        assert!(!names(r, User::name().icontains("é"))
            .await
            .contains(&"É".to_owned()));
    }
});

backend_test!(comparison_and_membership, |t: common::TestDb| async move {
    let r = &t.registry;
    seed(r, &["a", "b", "c", "d"]).await;
    let users = User::query(r)
        .order_by([User::id().asc()])
        .all()
        .await
        .unwrap();
    let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
    let (a, b, c, d) = (ids[0], ids[1], ids[2], ids[3]);
    assert_eq!(names(r, User::id().gt(b)).await, ["c", "d"]);
    assert_eq!(names(r, User::id().gte(b)).await, ["b", "c", "d"]);
    assert_eq!(names(r, User::id().lt(c)).await, ["a", "b"]);
    assert_eq!(names(r, User::id().lte(c)).await, ["a", "b", "c"]);
    assert_eq!(names(r, User::id().gt(d)).await, Vec::<String>::new());
    assert_eq!(names(r, User::id().is_in([a, d])).await, ["a", "d"]);
    assert_eq!(names(r, User::id().is_in([a, a, a])).await, ["a"]);
    assert_eq!(
        names(r, User::name().is_in(["b", "c", "zz"])).await,
        ["b", "c"]
    );
    assert!(names(r, User::id().is_in(Vec::<i64>::new()))
        .await
        .is_empty());
    assert_eq!(
        names(r, !User::id().is_in(Vec::<i64>::new())).await,
        ["a", "b", "c", "d"]
    );
    assert_eq!(names(r, User::is_active().eq(true)).await, ["a", "c"]);
    assert_eq!(names(r, User::is_active().ne(true)).await, ["b", "d"]);
    // Ranges combine.
    assert_eq!(
        names(r, User::id().gt(a) & User::id().lt(d)).await,
        ["b", "c"]
    );
});

backend_test!(isnull_lookup, |t: common::TestDb| async move {
    let r = &t.registry;
    let owner = User::query(r).create(user("Owner")).await.unwrap();
    Product::query(r)
        .bulk_create([
            product("owned", Some(&owner)),
            product("orphan", None),
            product("orphan2", None),
        ])
        .await
        .unwrap();
    let mut orphans: Vec<String> = Product::query(r)
        .filter(Product::user().isnull(true))
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.into_inner().name)
        .collect();
    orphans.sort();
    assert_eq!(orphans, ["orphan", "orphan2"]);
    let owned = Product::query(r)
        .filter(Product::user().isnull(false))
        .all()
        .await
        .unwrap();
    assert_eq!(owned.len(), 1);
    assert_eq!(owned[0].name, "owned");
    // `eq` on a NULL column never matches; `ne` does not match NULLs either (SQL semantics).
    assert_eq!(
        Product::query(r)
            .filter(Product::user().ne(owner.id))
            .count()
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        Product::query(r)
            .filter(Product::user().eq(owner.id))
            .count()
            .await
            .unwrap(),
        1
    );
});

backend_test!(and_or_not, |t: common::TestDb| async move {
    let r = &t.registry;
    seed(r, ASCII).await;
    let alice = || User::name().icontains("alice");
    let bob = || User::name().icontains("bob");
    let active = || User::is_active().eq(true);
    // is_active is true at even positions: Alice, ALICE Smith, bobby.
    assert_eq!(names(r, alice() & active()).await, ["ALICE Smith", "Alice"]);
    assert_eq!(
        names(r, alice() | bob()).await,
        ["ALICE Smith", "Alice", "Bob", "alice", "bobby"]
    );
    assert_eq!(names(r, !(alice() | bob())).await, ["Carol"]);
    assert_eq!(names(r, !alice() & !bob()).await, ["Carol"]);
    assert_eq!(
        names(r, (alice() | bob()) & !active()).await,
        ["Bob", "alice"]
    );
    assert_eq!(names(r, alice() & bob()).await, Vec::<String>::new());
    assert_eq!(names(r, !!alice()).await, ["ALICE Smith", "Alice", "alice"]);
    assert_eq!(
        names(r, alice().and(active()).or(User::name().eq("Carol"))).await,
        ["ALICE Smith", "Alice", "Carol"]
    );
    // Filter::all / Filter::any, empty and not.
    assert_eq!(
        names(
            r,
            Filter::all([alice(), active(), User::name().startswith("A")])
        )
        .await,
        ["ALICE Smith", "Alice"]
    );
    assert_eq!(
        names(
            r,
            Filter::any([User::name().eq("Bob"), User::name().eq("Carol")])
        )
        .await,
        ["Bob", "Carol"]
    );
    assert_eq!(names(r, Filter::all([])).await.len(), ASCII.len());
    assert!(names(r, Filter::any([])).await.is_empty());
    assert!(names(r, !Filter::all([])).await.is_empty());
    assert_eq!(names(r, !Filter::any([])).await.len(), ASCII.len());
    // Chained filter calls AND; exclude negates.
    let chained: Vec<String> = User::query(r)
        .filter(alice())
        .filter(active())
        .exclude(User::name().eq("Alice"))
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.into_inner().name)
        .collect();
    assert_eq!(chained, ["ALICE Smith"]);
});
