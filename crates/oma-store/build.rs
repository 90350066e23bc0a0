// The migrations are embedded with `sqlx::migrate!`; rebuild when a file is added or changed.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
