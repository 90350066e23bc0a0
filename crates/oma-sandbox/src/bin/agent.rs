//! `oma-sandbox-agent`: the in-box agent alone. The production entry point is the `oma`
//! binary's hidden `sandbox-agent` subcommand; this binary exists so that this crate's
//! integration tests can launch the real agent. It takes the same arguments.

fn main() -> std::process::ExitCode {
    oma_sandbox::agent::process_main(std::env::args().skip(1).collect())
}
