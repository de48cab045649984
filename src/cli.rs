//! The command line: `run`, `check`, `demo`. Parsed by hand because there are
//! three commands and three flags; a parser crate would outweigh them.

use std::net::SocketAddr;
use std::path::PathBuf;

/// What `limpet --help` prints.
pub const USAGE: &str = "\
usage:
  limpet run   --config FILE    serve with the configuration in FILE
  limpet check --config FILE    validate FILE and exit (0 when valid)
  limpet demo  [--listen ADDR] [--admin ADDR]
                                two built-in backends behind an insert-mode
                                listener (default 127.0.0.1:8080, admin
                                127.0.0.1:9901); no config file needed
  limpet --version | --help

environment: LIMPET_LOG=debug|info|warn|error (default info)";

/// One invocation of the binary.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Run {
        config: PathBuf,
    },
    Check {
        config: PathBuf,
    },
    Demo {
        listen: SocketAddr,
        admin: SocketAddr,
    },
    Help,
    Version,
}

/// A command line that makes no sense, said in words.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CliError {
    #[error("no command given")]
    NoCommand,
    #[error("unknown command `{0}`")]
    UnknownCommand(String),
    #[error("`{0}` needs a value")]
    MissingValue(&'static str),
    #[error("`{command}` does not take `{arg}`")]
    UnexpectedArgument { command: &'static str, arg: String },
    #[error("`{command}` needs --config FILE")]
    MissingConfig { command: &'static str },
    #[error("{flag} {value}: not an address like 127.0.0.1:8080")]
    BadAddress { flag: &'static str, value: String },
}

/// The demo's default listener (SPEC §8).
pub const DEMO_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);
/// The demo's default admin listener (SPEC §8).
pub const DEMO_ADMIN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9901);

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, CliError> {
    let mut args = args.into_iter();
    let command = args.next().ok_or(CliError::NoCommand)?;
    let name: &'static str = match command.as_str() {
        "run" => "run",
        "check" => "check",
        "demo" => "demo",
        "-h" | "--help" | "help" => return Ok(Command::Help),
        "-V" | "--version" => return Ok(Command::Version),
        _ => return Err(CliError::UnknownCommand(command)),
    };
    let mut config = None;
    let mut listen = DEMO_LISTEN;
    let mut admin = DEMO_ADMIN;
    while let Some(arg) = args.next() {
        match (name, arg.as_str()) {
            ("run" | "check", "--config" | "-c") => {
                config = Some(PathBuf::from(
                    args.next().ok_or(CliError::MissingValue("--config"))?,
                ));
            }
            ("demo", "--listen") => listen = address("--listen", args.next())?,
            ("demo", "--admin") => admin = address("--admin", args.next())?,
            _ => return Err(CliError::UnexpectedArgument { command: name, arg }),
        }
    }
    match name {
        "demo" => Ok(Command::Demo { listen, admin }),
        _ => {
            let config = config.ok_or(CliError::MissingConfig { command: name })?;
            Ok(if name == "run" {
                Command::Run { config }
            } else {
                Command::Check { config }
            })
        }
    }
}

fn address(flag: &'static str, value: Option<String>) -> Result<SocketAddr, CliError> {
    let value = value.ok_or(CliError::MissingValue(flag))?;
    value
        .parse()
        .map_err(|_| CliError::BadAddress { flag, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(line: &str) -> Result<Command, CliError> {
        parse(line.split_whitespace().map(String::from))
    }

    #[test]
    fn commands() {
        assert_eq!(
            parse_str("run --config a.toml"),
            Ok(Command::Run {
                config: "a.toml".into()
            })
        );
        assert_eq!(
            parse_str("check -c b.toml"),
            Ok(Command::Check {
                config: "b.toml".into()
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
    fn mistakes_are_named() {
        assert_eq!(parse_str(""), Err(CliError::NoCommand));
        assert_eq!(
            parse_str("serve"),
            Err(CliError::UnknownCommand("serve".into()))
        );
        assert_eq!(
            parse_str("run"),
            Err(CliError::MissingConfig { command: "run" })
        );
        assert_eq!(
            parse_str("run --config"),
            Err(CliError::MissingValue("--config"))
        );
        assert_eq!(
            parse_str("demo --listen localhost"),
            Err(CliError::BadAddress {
                flag: "--listen",
                value: "localhost".into()
            })
        );
        assert_eq!(
            parse_str("check --config a --listen x"),
            Err(CliError::UnexpectedArgument {
                command: "check",
                arg: "--listen".into()
            })
        );
    }
}
