//! The `limpet` binary: parse the command line, start, wait, exit.

use std::process::ExitCode;

use limpet::cli::{self, Command};
use limpet::dns::SystemResolver;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args().skip(1)) {
        Ok(command) => command,
        // --help and --version print to stdout and exit 0; mistakes print
        // the usage to stderr and exit 2.
        Err(err) => err.exit(),
    };
    limpet::logging::init();
    let result = match command {
        Command::Completions { shell } => {
            cli::completions(shell, &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        // Both resolve server names: a name that does not resolve is a
        // configuration error, at `check` time too.
        Command::Check { config, bind } => {
            limpet::check::run(&config, bind).map(|()| println!("{}: ok", config.display()))
        }
        Command::Run { config: path } => limpet::dns::load_resolved(&path, &SystemResolver)
            .map_err(anyhow::Error::from)
            .and_then(|(cfg, resolved)| {
                limpet::logging::set_format(cfg.log_format);
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
            eprintln!("limpet: {}", limpet::check::chain(&*err));
            ExitCode::FAILURE
        }
    }
}
