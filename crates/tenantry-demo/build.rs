//! Rebuilds the demo when a migration file is added (`migrations!` embeds the directory's
//! files at compile time; a new file is not otherwise noticed).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
