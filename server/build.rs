//! Rebuilds the server when a migration is added: `sqlx::migrate!` embeds the files of
//! `migrations/` at compile time, but on stable Rust cargo only notices a change to a file it
//! already embedded, not a new file in the directory (sqlx's documentation asks for this script).

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
