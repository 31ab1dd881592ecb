#[tokio::test]
async fn fresh_databases_are_distinct_and_usable() {
    let a = testkit::fresh_database("a").await;
    let b = testkit::fresh_database("b").await;
    assert_ne!(a, b);
    let client = testkit::connect(&a).await;
    let row = client
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap();
    let name: String = row.get(0);
    assert!(a.ends_with(&name), "{a} vs {name}");
}
