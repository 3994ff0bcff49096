//! Rebuilds the server when a migration is added or changed: `sqlx::migrate!`
//! embeds `migrations/` at compile time, and cargo does not otherwise know
//! the crate depends on that folder.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
