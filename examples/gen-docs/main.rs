//! Writes the shell completions and man pages generated from the command line definition
//! into `deploy/completions/` and `deploy/man/`:
//!
//! ```sh
//! cargo run --example gen-docs
//! ```
//!
//! `tests/cli_docs.rs` fails while the committed files differ from what this writes.

mod generate;

fn main() -> std::io::Result<()> {
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    generate::write_all(&deploy)?;
    println!(
        "wrote {} and {}",
        deploy.join(generate::COMPLETIONS).display(),
        deploy.join(generate::MAN).display()
    );
    Ok(())
}
