//! Rebuilds the crate when a migration is added or edited: `sqlx::migrate!` embeds them at
//! compile time, and cargo cannot see files a proc macro reads.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
