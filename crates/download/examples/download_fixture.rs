//! The downloader's loopback test server as a program, for `benches/scripts/download.sh`: serves the
//! routes of `tests/fixture/mod.rs` (files up to 256 MiB) and prints its address.
//!
//! ```text
//! cargo run --release -p weft-download --example download_fixture
//! ```

#[path = "../tests/fixture/mod.rs"]
mod fixture;

#[tokio::main]
async fn main() {
    let fx = fixture::Fixture::start(256 << 20).await;
    println!("{}", fx.addr);
    // Serve until killed.
    std::future::pending::<()>().await;
}
