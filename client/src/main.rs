//! `cairn`: keeps a local folder and a folder on a Cairn server the same.

mod plan;

fn main() {}
