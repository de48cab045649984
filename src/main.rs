//! The `limpet` binary: parse the command line, start, wait, exit.

use std::process::ExitCode;

use limpet::cli::{self, Command};
use limpet::dns::SystemResolver;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::new().filter_or("LIMPET_LOG", "info"))
        .format_target(false)
        .init();
    let command = match cli::parse(std::env::args().skip(1)) {
        Ok(command) => command,
        Err(err) => {
            eprintln!("limpet: {err}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    let result = match command {
        Command::Help => {
            println!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            println!("limpet {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        // Both resolve server names: a name that does not resolve is a
        // configuration error, at `check` time too.
        Command::Check { config } => limpet::dns::load_resolved(&config, &SystemResolver)
            .map(|_| println!("{}: ok", config.display()))
            .map_err(anyhow::Error::from),
        Command::Run { config: path } => limpet::dns::load_resolved(&path, &SystemResolver)
            .map_err(anyhow::Error::from)
            .and_then(|(cfg, resolved)| {
                let resolver = std::sync::Arc::new(SystemResolver);
                let running =
                    limpet::server::start_with(cfg, resolver, Some(resolved))?.reload_from(path);
                Ok(running.watch_signals()?.wait()?)
            }),
        Command::Demo { listen, admin } => limpet::demo::run(listen, admin),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("limpet: {err:#}");
            ExitCode::FAILURE
        }
    }
}
