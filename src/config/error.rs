//! `ConfigError`: every way a configuration file can be refused, each naming
//! the file, the line and the key. It only describes; it never decides.

use std::fmt;
use std::path::PathBuf;

use thiserror::Error;

/// A configuration that cannot be used. `Display` is the whole message for
/// the operator, in the form `<origin>:<line>: <key path> <what is wrong>`.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The text is not TOML (no key path can be given).
    #[error("{}: {message}", At(.origin, *.line))]
    Syntax {
        origin: String,
        line: Option<usize>,
        message: String,
    },
    /// Valid TOML of the wrong shape: an unknown key, a missing key, a value
    /// of the wrong type. The message is the deserializer's own.
    #[error("{}: {path}: {message}", At(.origin, *.line))]
    Shape {
        origin: String,
        line: Option<usize>,
        path: String,
        message: String,
    },
    /// Well-formed, but breaks a rule: a range, a reference, a duplicate.
    #[error("{}: {path} {problem}", At(.origin, *.line))]
    Invalid {
        origin: String,
        line: Option<usize>,
        path: String,
        problem: String,
    },
}

impl ConfigError {
    /// The 1-based line the error points at, when it points at one.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Read { .. } => None,
            Self::Syntax { line, .. } | Self::Shape { line, .. } | Self::Invalid { line, .. } => {
                *line
            }
        }
    }
}

/// `origin:line`, or just `origin` for a rule about the file as a whole.
struct At<'a>(&'a str, Option<usize>);

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(line) => write!(f, "{}:{line}", self.0),
            None => f.write_str(self.0),
        }
    }
}
