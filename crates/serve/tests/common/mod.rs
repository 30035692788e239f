//! Test support shared by weft-serve's tests and the `weft serve` tests of weft-cli (which
//! include this file by path): a fresh PostgreSQL schema per test, so tests run in parallel
//! against one database without seeing each other's jobs.

#![allow(dead_code, clippy::unwrap_used)]

use std::hash::{BuildHasher, RandomState};

/// A URL to the test database whose `search_path` is a new, empty schema; `None` (after a loud
/// `SKIPPED` line) when no database is configured, unless `WEFT_TEST_REQUIRE_SERVICES=1`, which
/// makes a missing database a failure.
pub(crate) async fn pg_url() -> Option<String> {
    let Some(url) = std::env::var("WEFT_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        assert!(
            std::env::var("WEFT_TEST_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "WEFT_TEST_REQUIRE_SERVICES=1 but WEFT_TEST_PG_URL is unset (source .ci/services.sh)"
        );
        eprintln!("SKIPPED (no PostgreSQL: set WEFT_TEST_PG_URL or source .ci/services.sh)");
        return None;
    };
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to WEFT_TEST_PG_URL {url}: {e}"));
    let driver = tokio::spawn(connection);
    let schema = format!("t{:016x}", RandomState::new().hash_one(std::process::id()));
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    drop(client);
    let _ = driver.await;
    let sep = if url.contains('?') { '&' } else { '?' };
    Some(format!("{url}{sep}options=-c%20search_path%3D{schema}"))
}
