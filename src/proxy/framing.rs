//! Where an HTTP/1 message body ends, as its bytes arrive: by length, by
//! chunked framing (validated by the decoder, passed on verbatim), or by
//! the connection closing. Backends speak HTTP/1.1, so every front end
//! reads their responses through this.

use crate::http::{BodyFraming, ChunkedDecoder, ResponseFraming};

/// Where the end of a message is, as bytes arrive.
#[derive(Debug)]
pub enum Remaining {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
    Done,
}

impl Remaining {
    /// The state at the start of a request body.
    pub fn of_request(framing: BodyFraming) -> Self {
        match framing {
            BodyFraming::None | BodyFraming::Length(0) => Remaining::Done,
            BodyFraming::Length(n) => Remaining::Length(n),
            BodyFraming::Chunked => Remaining::Chunked(ChunkedDecoder::new()),
        }
    }

    /// The state at the start of a response body.
    pub fn of_response(framing: ResponseFraming) -> Self {
        match framing {
            ResponseFraming::None | ResponseFraming::Length(0) => Remaining::Done,
            ResponseFraming::Length(n) => Remaining::Length(n),
            ResponseFraming::Chunked => Remaining::Chunked(ChunkedDecoder::new()),
            ResponseFraming::UntilClose => Remaining::UntilClose,
        }
    }

    /// How many of `bytes` belong to the message; moves the state on.
    pub fn advance(&mut self, bytes: &[u8]) -> Result<usize, crate::http::ChunkError> {
        let taken = match self {
            Remaining::Done => 0,
            Remaining::Length(left) => {
                let n = usize::try_from(*left).map_or(bytes.len(), |left| left.min(bytes.len()));
                *left -= n as u64;
                if *left == 0 {
                    *self = Remaining::Done;
                }
                n
            }
            Remaining::Chunked(decoder) => {
                let progress = decoder.feed(bytes)?;
                if progress.done {
                    *self = Remaining::Done;
                }
                progress.consumed
            }
            Remaining::UntilClose => bytes.len(),
        };
        Ok(taken)
    }

    pub fn is_done(&self) -> bool {
        matches!(self, Remaining::Done)
    }
}
