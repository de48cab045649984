//! What happened to a request's session, as one value, and its names in
//! the two vocabularies operators already read: the access log's words and
//! the metrics' labels. Both mappings live here and nowhere else.

use super::Refusal;

/// A request's persistence outcome (SPEC §3, §4, §5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// No session: the group has no persistence, or nothing was sent and
    /// nothing started.
    #[default]
    None,
    /// A session started: the response carries a new persistence cookie.
    New,
    /// The request went to the server its session names.
    Stuck,
    /// The session's server could not take it; it moved (failover, drain,
    /// disable), and the response names the new server.
    Moved,
    /// The client's token was refused (garbled, unknown, forged, expired,
    /// idle) and treated as absent: a new session started.
    Refused(Refusal),
}

impl Outcome {
    /// The access log's word (`session=` in text lines).
    pub fn log_word(self) -> &'static str {
        match self {
            Outcome::None => "none",
            Outcome::New => "new",
            Outcome::Stuck => "stuck",
            Outcome::Moved => "moved",
            Outcome::Refused(Refusal::Garbled) => "refused-garbled",
            Outcome::Refused(Refusal::Unknown) => "refused-unknown",
            Outcome::Refused(Refusal::BadSignature) => "refused-bad-signature",
            Outcome::Refused(Refusal::Expired) => "refused-expired",
            Outcome::Refused(Refusal::Idle) => "refused-idle",
        }
    }

    /// The `outcome` label of `limpet_sticky_total`, or `None` when the
    /// request is not counted there. A refused token starts a new session
    /// (its reason is counted apart, `limpet_sticky_refused_total`).
    pub fn metric_label(self) -> Option<&'static str> {
        match self {
            Outcome::None => None,
            Outcome::New | Outcome::Refused(_) => Some("new"),
            Outcome::Stuck => Some("hit"),
            Outcome::Moved => Some("moved"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_has_a_log_word_and_the_counted_ones_a_label() {
        let cases = [
            (Outcome::None, "none", None),
            (Outcome::New, "new", Some("new")),
            (Outcome::Stuck, "stuck", Some("hit")),
            (Outcome::Moved, "moved", Some("moved")),
            (
                Outcome::Refused(Refusal::Garbled),
                "refused-garbled",
                Some("new"),
            ),
            (
                Outcome::Refused(Refusal::Unknown),
                "refused-unknown",
                Some("new"),
            ),
            (
                Outcome::Refused(Refusal::BadSignature),
                "refused-bad-signature",
                Some("new"),
            ),
            (
                Outcome::Refused(Refusal::Expired),
                "refused-expired",
                Some("new"),
            ),
            (Outcome::Refused(Refusal::Idle), "refused-idle", Some("new")),
        ];
        for (outcome, word, label) in cases {
            assert_eq!(outcome.log_word(), word);
            assert_eq!(outcome.metric_label(), label);
        }
    }
}
