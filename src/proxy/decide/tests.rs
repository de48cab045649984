use std::net::SocketAddr;
use std::sync::Arc;

use httparse::Header;

use super::*;
use crate::control::{AdminState, Control};
use crate::sticky::{Outcome, Sent};
use crate::worker::Worker;

const PEER: &str = "192.0.2.7:40000";

fn worker(persistence: &str, admin: &[(&str, AdminState)]) -> Worker {
    let text = format!(
        "[[listeners]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\ndefault_group = \"web\"\n\
         [[listeners.routes]]\nhost = \"api.example\"\ngroup = \"api\"\n\
         [groups.web]\n{persistence}\n\
         [[groups.web.servers]]\nname = \"ECS01\"\naddress = \"127.0.0.1:9001\"\n\
         [[groups.web.servers]]\nname = \"ECS02\"\naddress = \"127.0.0.1:9002\"\n\
         [[groups.api.servers]]\nname = \"API1\"\naddress = \"127.0.0.1:9003\"\n"
    );
    let config = crate::config::parse(&text, "t.toml").unwrap();
    let mut control = Control::new(Arc::new(config), vec!["127.0.0.1:1".parse().unwrap()]).unwrap();
    for (server, state) in admin {
        control.set_admin("web", server, *state).unwrap();
    }
    Worker::new(0, control.snapshot(), 4096, 4)
}

fn conn() -> Conn<'static> {
    Conn {
        listener: 0,
        peer: PEER.parse::<SocketAddr>().unwrap(),
        https: false,
        sni: None,
    }
}

fn request<'a>(authority: &'a [u8], fields: &'a [Header<'a>]) -> RequestView<'a, [Header<'a>]> {
    RequestView {
        method: "GET",
        authority: Some(authority),
        path: b"/cart",
        fields,
    }
}

/// The token that names server `s` of group `web` in `worker`'s view.
fn token(worker: &Worker, s: u32) -> String {
    let view = worker.view();
    let tokens = view.snapshot.groups[view.snapshot.config.group("web").unwrap().index()]
        .persistence
        .tokens()
        .unwrap();
    String::from_utf8(tokens.token(ServerIdx(s)).to_vec()).unwrap()
}

#[test]
fn an_insert_cookie_in_the_second_cookie_field_routes_and_is_hidden() {
    let worker = worker("[groups.web.persistence]\nmode = \"insert\"", &[]);
    let view = worker.view();
    let second = format!("theme=dark; SERVERID={}", token(&worker, 1));
    let fields = [
        Header {
            name: "Cookie",
            value: b"lang=en",
        },
        Header {
            name: "cookie",
            value: second.as_bytes(),
        },
    ];
    let decision = decide(&view, &conn(), &request(b"shop.example", &fields)).unwrap();
    assert_eq!(decision.session.server, Some(ServerIdx(1)));
    assert!(matches!(decision.session.sent, Sent::Valid { .. }));
    assert!(decision.now > 0, "a sticky group reads the clock");
    let chosen = decision.pick(&view, &[]).unwrap();
    assert_eq!(chosen, ServerIdx(1));
    assert_eq!(decision.session.outcome(chosen, false), Outcome::Stuck);
    // What the backend gets of each field: the persistence cookie is gone.
    let mut out = Vec::new();
    decision
        .persistence(&view)
        .edit_cookie(second.as_bytes(), &mut out);
    assert_eq!(out, b"theme=dark");
    // Nothing to send back for a stuck session.
    let mut cookies =
        decision
            .persistence(&view)
            .response(&decision.session, chosen, false, decision.now);
    let mut fields_out = Vec::new();
    assert!(!cookies.finish(|| true, &mut fields_out));
    assert!(fields_out.is_empty());
}

#[test]
fn a_new_insert_session_gets_both_cookies() {
    let worker = worker("[groups.web.persistence]\nmode = \"insert\"", &[]);
    let view = worker.view();
    let fields = [Header {
        name: "Cookie",
        value: b"lang=en",
    }];
    let decision = decide(&view, &conn(), &request(b"shop.example", &fields)).unwrap();
    assert_eq!(decision.session, crate::sticky::Session::ABSENT);
    let chosen = decision.pick(&view, &[]).unwrap();
    let mut cookies =
        decision
            .persistence(&view)
            .response(&decision.session, chosen, false, decision.now);
    let mut out = Vec::new();
    assert!(cookies.finish(|| true, &mut out));
    let text = String::from_utf8(out).unwrap();
    let expected = format!(
        "Set-Cookie: SERVERID={}; Path=/; HttpOnly\r\n",
        token(&worker, chosen.0)
    );
    assert!(text.starts_with(&expected), "{text}");
    assert!(text.contains("Set-Cookie: SERVERCORSID="), "{text}");
    assert!(
        text.ends_with("Cache-Control: no-cache=\"Set-Cookie\"\r\n"),
        "{text}"
    );
    assert_eq!(decision.session.outcome(chosen, true), Outcome::New);
}

#[test]
fn a_session_on_a_disabled_server_fails_over_and_says_moved() {
    let worker = worker(
        "[groups.web.persistence]\nmode = \"insert\"",
        &[("ECS01", AdminState::Disabled)],
    );
    let view = worker.view();
    let cookie = format!("SERVERID={}", token(&worker, 0));
    let fields = [Header {
        name: "Cookie",
        value: cookie.as_bytes(),
    }];
    let decision = decide(&view, &conn(), &request(b"shop.example", &fields)).unwrap();
    assert_eq!(decision.session.server, Some(ServerIdx(0)));
    let chosen = decision.pick(&view, &[]).unwrap();
    assert_eq!(chosen, ServerIdx(1), "the disabled server takes nothing");
    assert_eq!(decision.session.outcome(chosen, true), Outcome::Moved);
    let mut cookies =
        decision
            .persistence(&view)
            .response(&decision.session, chosen, false, decision.now);
    let mut out = Vec::new();
    assert!(
        cookies.finish(|| false, &mut out),
        "the cookie names the new server"
    );
    let expected = format!("Set-Cookie: SERVERID={};", token(&worker, 1));
    assert!(String::from_utf8_lossy(&out).starts_with(&expected));
}

#[test]
fn a_rewrite_cookie_routes_and_the_backend_gets_its_value_back() {
    let worker = worker(
        "[groups.web.persistence]\nmode = \"rewrite\"\ncookie = \"BACKEND_SERVER\"",
        &[],
    );
    let view = worker.view();
    let cookie = format!("a=1; BACKEND_SERVER={}.abc123", token(&worker, 1));
    let fields = [Header {
        name: "Cookie",
        value: cookie.as_bytes(),
    }];
    let decision = decide(&view, &conn(), &request(b"shop.example", &fields)).unwrap();
    assert_eq!(decision.session.server, Some(ServerIdx(1)));
    assert_eq!(decision.session.app_value.as_deref(), Some(&b"abc123"[..]));
    assert_eq!(decision.pick(&view, &[]), Some(ServerIdx(1)));
    let mut out = Vec::new();
    decision
        .persistence(&view)
        .edit_cookie(cookie.as_bytes(), &mut out);
    assert_eq!(out, b"a=1; BACKEND_SERVER=abc123");
    // The application's own Set-Cookie gets the token in front.
    let mut cookies =
        decision
            .persistence(&view)
            .response(&decision.session, ServerIdx(1), false, decision.now);
    let mut set = Vec::new();
    cookies.set_cookie(b"BACKEND_SERVER=new1; Path=/", &mut set);
    assert_eq!(
        String::from_utf8(set).unwrap(),
        format!("BACKEND_SERVER={}.new1; Path=/", token(&worker, 1))
    );
}

#[test]
fn rewrite_failover_follows_the_ring_on_the_application_value() {
    let worker = worker(
        "[groups.web.persistence]\nmode = \"rewrite\"\ncookie = \"BACKEND_SERVER\"",
        &[("ECS02", AdminState::Disabled)],
    );
    let view = worker.view();
    let cookie = format!("BACKEND_SERVER={}.abc123", token(&worker, 1));
    let fields = [Header {
        name: "Cookie",
        value: cookie.as_bytes(),
    }];
    let decision = decide(&view, &conn(), &request(b"shop.example", &fields)).unwrap();
    let chosen = decision.pick(&view, &[]).unwrap();
    assert_eq!(chosen, ServerIdx(0));
    assert_eq!(decision.session.outcome(chosen, true), Outcome::Moved);
    let mut cookies =
        decision
            .persistence(&view)
            .response(&decision.session, chosen, false, decision.now);
    let mut out = Vec::new();
    assert!(cookies.finish(|| false, &mut out));
    assert!(String::from_utf8_lossy(&out).starts_with(&format!(
        "Set-Cookie: BACKEND_SERVER={}.abc123; Path=/",
        token(&worker, 0)
    )));
}

#[test]
fn without_persistence_nothing_is_read_or_written() {
    let worker = worker("", &[]);
    let view = worker.view();
    let fields = [Header {
        name: "Cookie",
        value: b"SERVERID=whatever",
    }];
    let decision = decide(&view, &conn(), &request(b"shop.example", &fields)).unwrap();
    assert_eq!(decision.session, crate::sticky::Session::ABSENT);
    assert_eq!(
        decision.now, 0,
        "no clock read for a group without sessions"
    );
    let chosen = decision.pick(&view, &[]).unwrap();
    assert_eq!(decision.session.outcome(chosen, false), Outcome::None);
    let mut out = Vec::new();
    decision
        .persistence(&view)
        .edit_cookie(b"SERVERID=whatever", &mut out);
    assert_eq!(out, b"SERVERID=whatever", "cookies pass as they are");
    let mut cookies =
        decision
            .persistence(&view)
            .response(&decision.session, chosen, false, decision.now);
    assert!(!cookies.finish(|| true, &mut out));
}

#[test]
fn routes_by_authority_and_skips_tried_servers() {
    let worker = worker("", &[]);
    let view = worker.view();
    let api = decide(&view, &conn(), &request(b"API.example:8443", &[])).unwrap();
    assert_eq!(view.snapshot.config.groups[api.group.index()].name, "api");
    let web = decide(&view, &conn(), &request(b"shop.example", &[])).unwrap();
    let first = web.pick(&view, &[]).unwrap();
    let other = web.pick(&view, &[first]).unwrap();
    assert_ne!(first, other);
    assert_eq!(web.pick(&view, &[first, other]), None);
    assert!(web.idempotent);
}

#[test]
fn a_tls_name_that_routes_elsewhere_is_misdirected() {
    let worker = worker("", &[]);
    let view = worker.view();
    let tls = Conn {
        https: true,
        sni: Some("api.example"),
        ..conn()
    };
    let err = decide(&view, &tls, &request(b"shop.example", &[])).unwrap_err();
    assert!(matches!(err, ProxyError::Misdirected), "{err}");
    assert!(decide(&view, &tls, &request(b"api.example", &[])).is_ok());
}

#[test]
fn a_header_token_routes_moves_with_a_new_field_and_is_withheld() {
    let worker = worker(
        "[groups.web.persistence]\nmode = \"header\"\nheader = \"X-Session\"\nquery = \"sid\"",
        &[("ECS01", AdminState::Disabled)],
    );
    let view = worker.view();
    let (t0, t1) = (token(&worker, 0), token(&worker, 1));
    let fields = [Header {
        name: "x-session",
        value: t1.as_bytes(),
    }];
    let decision = decide(&view, &conn(), &request(b"shop.example", &fields)).unwrap();
    assert_eq!(decision.session.server, Some(ServerIdx(1)));
    let chosen = decision.pick(&view, &[]).unwrap();
    assert_eq!(chosen, ServerIdx(1));
    let persistence = decision.persistence(&view);
    let mut out = Vec::new();
    let mut fields_out = persistence.response(&decision.session, chosen, false, decision.now);
    assert!(!fields_out.finish(|| true, &mut out), "stuck: nothing sent");
    assert!(out.is_empty());
    assert_eq!(persistence.withheld().field, Some("x-session"));
    assert_eq!(persistence.withheld().query, Some(&b"sid"[..]));
    // The query parameter names the disabled server: the request moves
    // and the response names the new one, in the configured spelling,
    // with no cookie and no Cache-Control of limpet's.
    let path = format!("/cart?sid={t0}");
    let view_request = RequestView {
        method: "GET",
        authority: Some(&b"shop.example"[..]),
        path: path.as_bytes(),
        fields: &[][..],
    };
    let decision = decide(&view, &conn(), &view_request).unwrap();
    assert_eq!(decision.session.server, Some(ServerIdx(0)));
    let chosen = decision.pick(&view, &[]).unwrap();
    assert_eq!(chosen, ServerIdx(1));
    let mut fields_out = persistence.response(&decision.session, chosen, false, decision.now);
    assert!(fields_out.finish(|| true, &mut out));
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!("X-Session: {t1}\r\n")
    );
    assert_eq!(decision.session.outcome(chosen, true), Outcome::Moved);
    // Cookies pass untouched in header mode.
    let mut cookie = Vec::new();
    persistence.edit_cookie(b"SERVERID=x; a=1", &mut cookie);
    assert_eq!(cookie, b"SERVERID=x; a=1");
}
