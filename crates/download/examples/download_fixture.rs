//! The downloader's loopback test server as a program, for `benches/scripts/download.sh`: serves the
//! routes of `tests/fixture/mod.rs` (files up to 256 MiB) and prints its address.
//!
//! With `--tls FILE` it serves them over TLS instead (HTTP/2 and HTTP/1.1 by ALPN), with a
//! certificate for 127.0.0.1 from a CA of its own whose PEM certificate it writes to FILE
//! (for `--cacert FILE`).
//!
//! ```text
//! cargo run --release -p weft-download --example download_fixture [-- --tls ca.pem]
//! ```

#[path = "../tests/fixture/mod.rs"]
mod fixture;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let fx = match args.as_slice() {
        [] => fixture::Fixture::start(256 << 20).await,
        [flag, ca] if flag == "--tls" => {
            let fx = fixture::Fixture::start_tls(256 << 20, true).await;
            std::fs::write(ca, fx.ca_pem.as_deref().unwrap_or_default())?;
            fx
        }
        _ => return Err("usage: download_fixture [--tls CA_PEM_FILE]".into()),
    };
    println!("{}", fx.addr);
    // Serve until killed.
    std::future::pending::<()>().await;
    Ok(())
}
