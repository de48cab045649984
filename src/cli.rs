//! The command line: `run`, `check`, `demo`, `completions`, declared with
//! clap's derive so that every command has its own `--help` and the shell
//! completions cannot drift from the parser. It only parses: `main` acts.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The demo's default listener (SPEC §8).
pub const DEMO_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);
/// The demo's default admin listener (SPEC §8).
pub const DEMO_ADMIN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9901);

/// `limpet --version`: the crate version and the commit it was built from
/// (`unknown` when built outside a git checkout; see build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("LIMPET_COMMIT"),
    ")"
);

/// A thread-per-core io_uring HTTP load balancer with session persistence.
#[derive(Debug, Parser)]
#[command(
    name = "limpet",
    version = VERSION,
    about,
    after_help = "environment: LIMPET_LOG=debug|info|warn|error (default info)",
    propagate_version = true,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// One invocation of the binary.
#[derive(Debug, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Serve with the configuration in FILE (SIGHUP reloads it).
    Run {
        /// The configuration file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Validate FILE as `run` would and exit (0 when valid): server names
    /// are resolved, TLS files read, access logs checked for appending.
    Check {
        /// The configuration file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// Also bind every listen address (fails beside a running limpet).
        #[arg(long)]
        bind: bool,
    },
    /// Two built-in backends behind an insert-mode listener; no config
    /// file needed.
    Demo {
        /// The demo listener.
        #[arg(long, value_name = "ADDR", default_value_t = DEMO_LISTEN)]
        listen: SocketAddr,
        /// The demo's admin listener.
        #[arg(long, value_name = "ADDR", default_value_t = DEMO_ADMIN)]
        admin: SocketAddr,
    },
    /// Print a completion script for SHELL to standard output.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Parses the arguments after the program name. `--help` and `--version`
/// come back as errors of their kind, which `clap::Error::exit` prints.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, clap::Error> {
    let words = std::iter::once("limpet".to_owned()).chain(args);
    Cli::try_parse_from(words).map(|cli| cli.command)
}

/// Writes the completion script for `shell` to `out`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    use clap::CommandFactory;
    clap_complete::generate(shell, &mut Cli::command(), "limpet", out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse_str(line: &str) -> Result<Command, ErrorKind> {
        parse(line.split_whitespace().map(String::from)).map_err(|e| e.kind())
    }

    #[test]
    fn declaration_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn commands_keep_their_spelling() {
        assert_eq!(
            parse_str("run --config a.toml"),
            Ok(Command::Run {
                config: "a.toml".into()
            })
        );
        assert_eq!(
            parse_str("check -c b.toml"),
            Ok(Command::Check {
                config: "b.toml".into(),
                bind: false
            })
        );
        assert_eq!(
            parse_str("check -c b.toml --bind"),
            Ok(Command::Check {
                config: "b.toml".into(),
                bind: true
            })
        );
        assert_eq!(
            parse_str("demo"),
            Ok(Command::Demo {
                listen: DEMO_LISTEN,
                admin: DEMO_ADMIN
            })
        );
        assert_eq!(
            parse_str("demo --listen 127.0.0.1:0 --admin 127.0.0.1:7"),
            Ok(Command::Demo {
                listen: "127.0.0.1:0".parse().unwrap(),
                admin: "127.0.0.1:7".parse().unwrap()
            })
        );
    }

    #[test]
    fn mistakes_are_refused() {
        assert!(parse_str("").is_err());
        assert_eq!(parse_str("serve"), Err(ErrorKind::InvalidSubcommand));
        assert_eq!(parse_str("run"), Err(ErrorKind::MissingRequiredArgument));
        assert_eq!(parse_str("run --config"), Err(ErrorKind::InvalidValue));
        assert_eq!(
            parse_str("demo --listen localhost"),
            Err(ErrorKind::ValueValidation)
        );
        assert_eq!(
            parse_str("check --config a --listen x"),
            Err(ErrorKind::UnknownArgument)
        );
        assert_eq!(parse_str("run --help"), Err(ErrorKind::DisplayHelp));
        assert_eq!(parse_str("--version"), Err(ErrorKind::DisplayVersion));
    }
}
