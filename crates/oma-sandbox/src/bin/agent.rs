//! `oma-sandbox-agent`: the in-box agent alone. The production entry point is the `oma`
//! binary's hidden `sandbox-agent` subcommand; this binary exists so that this crate's
//! integration tests can launch the real agent. Arguments are ignored (launchers pass
//! `sandbox-agent`).

fn main() -> std::process::ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("oma-sandbox-agent: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(oma_sandbox::agent::run_stdio()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oma-sandbox-agent: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
