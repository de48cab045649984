//! The status page in a real browser (issue 19): headless Chromium, driven
//! by Selenium, against `limpet demo`. Both servers are shown, their counts
//! change after requests are sent, pressing drain changes the server's
//! state on the page and in `/stats`, so does setting a weight, and any JavaScript console error
//! fails the test. `#[ignore]`: it needs Debian's `chromium` and
//! `chromium-driver` and Python's `selenium`; `.ci/run` installs them and
//! runs it with `--ignored`, where a missing tool is a failure.
//!
//! `LIMPET_SCREENSHOT=docs/status-page.png` also saves the page as the
//! README shows it.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

const LIMPET: &str = env!("CARGO_BIN_EXE_limpet");

/// The Selenium side: argv is the admin address, the listener address and
/// a screenshot path (or ""). Prints what failed and exits 1, or prints OK.
const DRIVE: &str = r#"
import json, sys, time, urllib.request
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

admin, listener, shot = sys.argv[1], sys.argv[2], sys.argv[3]
options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for flag in ["--headless", "--no-sandbox", "--disable-background-networking",
             "--disable-component-update", "--disable-dev-shm-usage", "--window-size=1400,640"]:
    options.add_argument(flag)
options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)

def fail(why):
    print("FAILED: " + why)
    try:
        print("page: " + driver.find_element(By.TAG_NAME, "body").text)
    except Exception:
        pass
    driver.quit()
    sys.exit(1)

def wait(what, check, seconds=15):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception:
            pass
        time.sleep(0.1)
    fail("timed out waiting for " + what)

def cell(server, name):
    return driver.find_element(By.CSS_SELECTOR, 'tr[data-server="web/%s"] td.%s' % (server, name)).text

def errors():
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]

driver.get("http://%s/" % admin)
for server in ["ECS01", "ECS02"]:
    wait(server + " on the page", lambda: cell(server, "responses") != "")
before = {s: int(cell(s, "responses")) for s in ["ECS01", "ECS02"]}
for _ in range(8):
    with urllib.request.urlopen("http://%s/" % listener) as answer:
        answer.read()
for server in ["ECS01", "ECS02"]:
    wait(server + "'s count to grow", lambda: int(cell(server, "responses")) > before[server])
wait("a request rate", lambda: cell("ECS01", "rate") not in ("", "–"))
if cell("ECS01", "admin") != "enabled":
    fail("ECS01 starts " + cell("ECS01", "admin"))
driver.find_element(By.CSS_SELECTOR, 'button[data-action="drain"][data-server="ECS01"]').click()
wait("ECS01 draining on the page", lambda: cell("ECS01", "admin") == "draining")
field = driver.find_element(By.CSS_SELECTOR, 'tr[data-server="web/ECS02"] input.weight-input')
field.clear()
field.send_keys("3")
time.sleep(2.5)  # a refresh while typing keeps what was typed
driver.find_element(By.CSS_SELECTOR, 'button[data-action="weight"][data-server="ECS02"]').click()
wait("ECS02's weight on the page", lambda: cell("ECS02", "weight") == "3")
with urllib.request.urlopen("http://%s/stats" % admin) as answer:
    stats = json.load(answer)
state = {s["name"]: (s["admin"], s["weight"]) for s in stats["groups"][0]["servers"]}
if state != {"ECS01": ("draining", 1), "ECS02": ("enabled", 3)}:
    fail("/stats says %r" % state)
if shot:
    time.sleep(2.5)
    driver.save_screenshot(shot)
bad = errors()
if bad:
    fail("console errors: %r" % bad)
driver.quit()
print("OK")
"#;

#[test]
#[ignore = "needs chromium, chromium-driver and selenium; .ci/run runs it"]
fn the_status_page_shows_live_counts_and_drains_in_chromium() {
    let mut child = Command::new(LIMPET)
        .args(["demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut listener, mut admin) = (None::<SocketAddr>, None::<SocketAddr>);
    while listener.is_none() || admin.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the demo prints its addresses");
        let line = line.trim();
        let addr = |rest: &str| rest.split([' ', ':']).take(2).collect::<Vec<_>>().join(":");
        if let Some(rest) = line.strip_prefix("listener on ") {
            listener = addr(rest).parse().ok();
        } else if let Some(rest) = line.strip_prefix("admin on ") {
            admin = addr(rest).parse().ok();
        }
    }
    let (listener, admin) = (listener.unwrap(), admin.unwrap());
    let shot = std::env::var("LIMPET_SCREENSHOT").unwrap_or_default();
    let output = Command::new("python3")
        .args([
            "-c",
            DRIVE,
            &admin.to_string(),
            &listener.to_string(),
            &shot,
        ])
        .output()
        .expect("python3 with selenium is needed (python3 -m pip install selenium)");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGTERM,
    )
    .unwrap();
    let _ = child.wait();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && said.contains("OK"),
        "the browser test failed: {said}"
    );
}
