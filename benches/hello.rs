//! Baseline for `make bench`: the cheapest static Rust program that
//! prints a line, built with the product's optimisation profile.
fn main() {
    println!("hello");
}
