//! Transactions on SQLite's writing connection, through `Database`.

use crate::sql;
use crate::Database;

async fn database(dir: &tempfile::TempDir) -> Database {
    let url = format!("sqlite:{}", dir.path().join("t.db").display());
    let db = Database::connect(&url, 2, true).await.expect("a database");
    let mut conn = db.acquire().await.expect("the writer");
    sql::query("CREATE TABLE t (k TEXT PRIMARY KEY)")
        .execute(&mut conn)
        .await
        .expect("a table");
    db
}

async fn keys(db: &Database) -> Vec<String> {
    sql::query("SELECT k FROM t ORDER BY k")
        .fetch_all(db.reader())
        .await
        .expect("read")
        .iter()
        .map(|r| r.try_get("k").expect("k"))
        .collect()
}

async fn insert(conn: &mut sql::Connection, key: &str) -> Result<(), sqlx::Error> {
    sql::query("INSERT INTO t (k) VALUES ($1)")
        .bind(key)
        .execute(conn)
        .await
        .map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_transaction_is_read_and_a_dropped_one_leaves_nothing() {
    let dir = tempfile::tempdir().expect("a folder");
    let db = database(&dir).await;
    let mut tx = db.begin().await.expect("begin");
    insert(&mut tx, "a").await.expect("insert");
    assert!(keys(&db).await.is_empty(), "not visible before COMMIT");
    tx.commit().await.expect("commit");
    assert_eq!(keys(&db).await, ["a"]);

    let mut tx = db.begin().await.expect("begin");
    insert(&mut tx, "b").await.expect("insert");
    drop(tx);
    // The writer is free again, outside any transaction.
    let mut tx = db.begin().await.expect("begin after a dropped transaction");
    insert(&mut tx, "c").await.expect("insert");
    tx.rollback().await.expect("rollback");
    assert_eq!(keys(&db).await, ["a"]);
}

#[tokio::test]
async fn statements_outside_a_transaction_commit_one_by_one() {
    let dir = tempfile::tempdir().expect("a folder");
    let db = database(&dir).await;
    let mut conn = db.acquire().await.expect("the writer");
    insert(&mut conn, "a").await.expect("insert");
    assert_eq!(
        keys(&db).await,
        ["a"],
        "visible while the connection is held"
    );
    conn.commit().await.expect("nothing to commit");
}
