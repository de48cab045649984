//! Finds the end of a `Transfer-Encoding: chunked` body (RFC 9112 §7.1) as
//! it streams through, one buffer at a time, so the proxy can forward the
//! encoded bytes verbatim and keep whatever follows (a pipelined message).
//!
//! It owns the chunked syntax and its limits: CRLF everywhere (no bare LF,
//! no bare CR), hex sizes in checked arithmetic, bounded extensions and
//! trailers. It never buffers, allocates or panics: a byte-level state
//! machine in the manner of hyper's `proto/h1/decode.rs`, where only chunk
//! data is skipped in bulk.

use std::ops::Range;

use thiserror::Error;

use super::field::{is_tchar, is_value_byte};

/// 16 hex digits fill a `u64`. Capping the digits (leading zeros included)
/// also bounds the work an endless `0000…` size line can cause.
pub const MAX_CHUNK_SIZE_DIGITS: u8 = 16;
/// Default cap on one chunk line's extension (from the end of the size to
/// the CR), whitespace included.
pub const DEFAULT_MAX_EXTENSION_BYTES: usize = 4096;
/// Default cap on the whole trailer section, CRLFs included.
pub const DEFAULT_MAX_TRAILER_BYTES: usize = 8192;

/// Configurable bounds on the parts of a chunked body that carry no data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLimits {
    pub max_extension_bytes: usize,
    pub max_trailer_bytes: usize,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        ChunkLimits {
            max_extension_bytes: DEFAULT_MAX_EXTENSION_BYTES,
            max_trailer_bytes: DEFAULT_MAX_TRAILER_BYTES,
        }
    }
}

/// A chunked body that cannot be framed; the connection must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ChunkError {
    #[error("chunk size is not hexadecimal")]
    BadSize,
    #[error("chunk size has too many digits or overflows u64")]
    SizeOverflow,
    #[error("LF without CR")]
    BareLf,
    #[error("CR without LF")]
    BareCr,
    #[error("chunk data longer than its size (no CRLF after it)")]
    DataTooLong,
    #[error("chunk extension longer than the limit")]
    ExtensionTooLong,
    #[error("invalid byte in a chunk extension")]
    BadExtension,
    #[error("trailer section larger than the limit")]
    TrailersTooLarge,
    #[error("malformed trailer field")]
    BadTrailer,
}

/// What one [`ChunkedDecoder::feed`] call found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes at the front of the input that belong to this body; all of
    /// them unless `done`.
    pub consumed: usize,
    /// The last chunk, the trailers and the final CRLF have been seen.
    pub done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size.
    Size,
    /// Whitespace after the size (BWS before `;`).
    SizeWs,
    /// Just after a `;`: BWS, then an extension name must follow
    /// (`2;` alone is malformed, RFC 9112 §7.1.1).
    ExtensionStart,
    /// From an extension's name to the CR of the size line.
    Extension,
    /// CR of the size line seen.
    SizeLf,
    /// Inside chunk data; `ChunkedDecoder::size` bytes are left.
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line or of the final CRLF.
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    /// CR of the final CRLF seen.
    EndLf,
    Done,
}

/// Incremental chunked-body framer. Build one per connection and
/// [`reset`](ChunkedDecoder::reset) it between messages.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    /// The size being read, then the data bytes left in the chunk.
    size: u64,
    digits: u8,
    extension_bytes: usize,
    trailer_bytes: usize,
    limits: ChunkLimits,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        Self::with_limits(ChunkLimits::default())
    }

    pub fn with_limits(limits: ChunkLimits) -> Self {
        ChunkedDecoder {
            state: State::Size,
            size: 0,
            digits: 0,
            extension_bytes: 0,
            trailer_bytes: 0,
            limits,
        }
    }

    /// Ready for the next message, keeping the limits.
    pub fn reset(&mut self) {
        *self = Self::with_limits(self.limits);
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Frames the next bytes of the body. After `done`, further calls
    /// consume nothing.
    pub fn feed(&mut self, input: &[u8]) -> Result<Progress, ChunkError> {
        self.feed_data(input, |_| {})
    }

    /// As [`feed`](Self::feed), and reports each run of chunk data as a
    /// range of `input`, so a caller can de-chunk without a second pass.
    pub fn feed_data(
        &mut self,
        input: &[u8],
        on_data: impl FnMut(Range<usize>),
    ) -> Result<Progress, ChunkError> {
        self.feed_parts(input, on_data, |_| {})
    }

    /// As [`feed_data`](Self::feed_data), and hands each byte of the
    /// trailer section (its lines and the final CR) to `on_trailer`, so a
    /// caller can relay the trailers in another form (HTTP/2's HEADERS).
    pub fn feed_parts(
        &mut self,
        input: &[u8],
        mut on_data: impl FnMut(Range<usize>),
        mut on_trailer: impl FnMut(u8),
    ) -> Result<Progress, ChunkError> {
        let mut pos = 0;
        while self.state != State::Done {
            let Some(rest) = input.get(pos..).filter(|r| !r.is_empty()) else {
                break;
            };
            if self.state == State::Data {
                // Bulk skip: the only state that can cover many bytes.
                let take =
                    usize::try_from(self.size).map_or(rest.len(), |left| left.min(rest.len()));
                on_data(pos..pos + take);
                pos += take;
                // take <= size by construction, so this cannot underflow.
                self.size = self.size.saturating_sub(take as u64);
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            for &b in rest {
                pos += 1;
                if matches!(
                    self.state,
                    State::TrailerStart
                        | State::TrailerName
                        | State::TrailerValue
                        | State::TrailerLf
                ) {
                    on_trailer(b);
                }
                self.step(b)?;
                if matches!(self.state, State::Data | State::Done) {
                    break;
                }
            }
        }
        Ok(Progress {
            consumed: pos,
            done: self.state == State::Done,
        })
    }

    /// One byte outside chunk data.
    fn step(&mut self, b: u8) -> Result<(), ChunkError> {
        self.state = match self.state {
            State::Size => match hex_value(b) {
                Some(v) => {
                    if self.digits == MAX_CHUNK_SIZE_DIGITS {
                        return Err(ChunkError::SizeOverflow);
                    }
                    self.digits += 1;
                    self.size = self
                        .size
                        .checked_mul(16)
                        .and_then(|s| s.checked_add(u64::from(v)))
                        .ok_or(ChunkError::SizeOverflow)?;
                    State::Size
                }
                None if self.digits == 0 => return Err(ChunkError::BadSize),
                None => self.after_size(b)?,
            },
            State::SizeWs => self.after_size(b)?,
            State::ExtensionStart => match b {
                b' ' | b'\t' => {
                    self.count_extension()?;
                    State::ExtensionStart
                }
                b'\n' => return Err(ChunkError::BareLf),
                _ if is_tchar(b) => {
                    self.count_extension()?;
                    State::Extension
                }
                _ => return Err(ChunkError::BadExtension),
            },
            State::Extension => match b {
                b'\r' => State::SizeLf,
                b'\n' => return Err(ChunkError::BareLf),
                b';' => {
                    self.count_extension()?;
                    State::ExtensionStart
                }
                _ if is_value_byte(b) => {
                    self.count_extension()?;
                    State::Extension
                }
                _ => return Err(ChunkError::BadExtension),
            },
            State::SizeLf => match b {
                b'\n' if self.size == 0 => State::TrailerStart,
                b'\n' => {
                    self.digits = 0;
                    self.extension_bytes = 0;
                    State::Data
                }
                _ => return Err(ChunkError::BareCr),
            },
            // Unreachable through feed_data, which skips data in bulk; kept
            // total so that a byte here is never silently misread.
            State::Data => return Err(ChunkError::DataTooLong),
            State::DataCr => match b {
                b'\r' => State::DataLf,
                b'\n' => return Err(ChunkError::BareLf),
                _ => return Err(ChunkError::DataTooLong),
            },
            State::DataLf => match b {
                b'\n' => {
                    self.size = 0;
                    State::Size
                }
                _ => return Err(ChunkError::BareCr),
            },
            State::TrailerStart => {
                self.count_trailer()?;
                match b {
                    b'\r' => State::EndLf,
                    b'\n' => return Err(ChunkError::BareLf),
                    _ if is_tchar(b) => State::TrailerName,
                    // Includes SP / HTAB: obs-fold is refused in trailers too.
                    _ => return Err(ChunkError::BadTrailer),
                }
            }
            State::TrailerName => {
                self.count_trailer()?;
                match b {
                    b':' => State::TrailerValue,
                    b'\n' => return Err(ChunkError::BareLf),
                    _ if is_tchar(b) => State::TrailerName,
                    _ => return Err(ChunkError::BadTrailer),
                }
            }
            State::TrailerValue => {
                self.count_trailer()?;
                match b {
                    b'\r' => State::TrailerLf,
                    b'\n' => return Err(ChunkError::BareLf),
                    _ if is_value_byte(b) => State::TrailerValue,
                    _ => return Err(ChunkError::BadTrailer),
                }
            }
            State::TrailerLf => {
                self.count_trailer()?;
                match b {
                    b'\n' => State::TrailerStart,
                    _ => return Err(ChunkError::BareCr),
                }
            }
            State::EndLf => match b {
                b'\n' => State::Done,
                _ => return Err(ChunkError::BareCr),
            },
            State::Done => State::Done,
        };
        Ok(())
    }

    /// After at least one size digit: BWS, an extension, or the line end.
    fn after_size(&mut self, b: u8) -> Result<State, ChunkError> {
        match b {
            b'\r' => Ok(State::SizeLf),
            b'\n' => Err(ChunkError::BareLf),
            b' ' | b'\t' => {
                self.count_extension()?;
                Ok(State::SizeWs)
            }
            b';' => {
                self.count_extension()?;
                Ok(State::ExtensionStart)
            }
            _ => Err(ChunkError::BadSize),
        }
    }

    fn count_extension(&mut self) -> Result<(), ChunkError> {
        self.extension_bytes += 1;
        if self.extension_bytes > self.limits.max_extension_bytes {
            return Err(ChunkError::ExtensionTooLong);
        }
        Ok(())
    }

    fn count_trailer(&mut self) -> Result<(), ChunkError> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > self.limits.max_trailer_bytes {
            return Err(ChunkError::TrailersTooLarge);
        }
        Ok(())
    }
}

const fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
