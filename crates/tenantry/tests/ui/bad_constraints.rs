use tenantry::Model;

// Every mistake at once: an unknown field, a field twice, one field, a name too long.
#[derive(Model)]
#[model(
    unique(owner, nobody),
    index(owner, owner),
    unique(kind),
    index(owner, kind, name = "an_index_name_far_longer_than_the_sixty_three_characters_postgres_keeps")
)]
struct Badge {
    id: i64,
    owner: String,
    kind: String,
}

// Two indexes with one name; a check without a name, one without a condition, a bad name.
#[derive(Model)]
#[model(
    unique(a, b, name = "same"),
    index(b, a, name = "same"),
    check(condition = Pair::a().ne("")),
    check(name = "no_condition"),
    check(name = "bad name", condition = Pair::a().ne(""))
)]
struct Pair {
    id: i64,
    a: String,
    b: String,
}

// A condition that is not a filter.
#[derive(Model)]
#[model(check(name = "not_a_filter", condition = 42))]
struct Wrong {
    id: i64,
}

// A relation without its model, one named like a field, a junction table name too long.
#[derive(Model)]
#[model(
    many_to_many(tags),
    many_to_many(owner, to = Wrong),
    many_to_many(others, to = Wrong, table = "a_junction_table_name_of_sixty_one_characters_which_is_too_long"),
    many_to_many(query, to = Wrong)
)]
struct Linked {
    id: i64,
    owner: String,
}

fn main() {}
