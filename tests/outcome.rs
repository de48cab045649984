//! One request, both vocabularies: the session outcome of a request appears
//! as its access-log word and as its metric label, both from one enum
//! (`sticky::Outcome`, issue 14 item 6).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod common;

use common::{Backend, Limpet};

/// The value of the sample `name{labels}` in Prometheus text.
fn sample(text: &str, name: &str, labels: &str) -> Option<u64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(name) && l.contains(labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn a_refused_token_is_refused_in_the_log_and_new_in_the_metrics() {
    let backend = Backend::named("a", Default::default());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let config = format!(
        "[workers]\ncount = 1\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n\
         [[listeners]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\ndefault_group = \"web\"\naccess_log = \"{}\"\n\n\
         [groups.web.persistence]\nmode = \"insert\"\n[[groups.web.servers]]\nname = \"s0\"\naddress = \"{}\"\n",
        log.display(),
        backend.addr
    );
    let limpet = Limpet::start(&config);
    let mut client = limpet.client();
    client.send(b"GET /once HTTP/1.1\r\nHost: t\r\nCookie: SERVERID=garbage!\r\n\r\n");
    let response = client.read_response(false).unwrap();
    assert_eq!(response.status, 200);
    assert!(
        response.header("set-cookie").is_some(),
        "a new session starts"
    );

    let metrics = limpet.admin("GET", "/metrics", "", None).body_text();
    assert_eq!(
        sample(&metrics, "limpet_sticky_requests", "outcome=\"new\""),
        Some(1),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "limpet_sticky_requests", "outcome=\"hit\""),
        Some(0)
    );
    assert_eq!(
        sample(&metrics, "limpet_sticky_refused", "reason=\"garbled\""),
        Some(1)
    );
    drop(limpet); // stops: every buffered line is written
    let lines = std::fs::read_to_string(&log).unwrap();
    let line = lines.lines().next().unwrap();
    assert!(
        line.contains(" server=s0 session=refused-garbled "),
        "{line}"
    );
}
