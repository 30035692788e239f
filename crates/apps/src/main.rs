//! The `weft` command line.

fn main() {
    println!("weft: subcommands are being built");
}
