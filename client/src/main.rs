//! `cairn`, the sync client. Built in the sync issue; this binary only says so.

fn main() -> std::process::ExitCode {
    eprintln!("cairn: the sync client is not built yet");
    std::process::ExitCode::from(2)
}
