//! scim2-tester (PyPI), an independent SCIM 2.0 conformance suite, against the real server:
//! discovery, then create / read / list / replace / patch / delete of every resource type the
//! server advertises, with every response validated against the SCIM models. Installed (pinned)
//! by scripts/scim-tester on first use.

use std::{path::PathBuf, process::Command};

use super::Scim;
use crate::server::Server;

#[test]
fn scim2_tester_passes_every_check() {
    // The tester re-deletes every resource it made after each check (hundreds of requests in a
    // few seconds): the per-token rate limit is not what is under test here.
    let server = Server::start_with_settings(&[("PORTCULLIS_SCIM_RATE_LIMIT", "0")]);
    let scim = Scim::new(&server, "conformance");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/scim-tester");
    let output = Command::new(script).args([&scim.base, &scim.token]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "scim2-tester failed:\n{stdout}\n{stderr}");
    assert!(!stdout.contains("ERROR") && !stdout.contains("SKIPPED"), "{stdout}");
}
