//! The command line: settings, their errors, and `portcullis config`.

use std::net::TcpListener;

use crate::server::command;

#[test]
fn config_prints_effective_settings_with_their_origins_and_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("portcullis.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:7000\"\nlog_level = \"debug\"\n").unwrap();
    let secret = "s3cret-s3cret-s3cret-s3cret-s3cret-42";
    let output = command()
        .args(["config", "--config"])
        .arg(&file)
        .args(["--log-level", "warn"])
        .env("PORTCULLIS_DATA_DIR", "/srv/portcullis")
        .env("PORTCULLIS_BOOTSTRAP_ADMIN_KEY", secret)
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(!text.contains(secret), "{text}");
    let line =
        |key: &str| text.lines().find(|l| l.starts_with(&format!("{key} ="))).unwrap_or_default().to_owned();
    assert!(line("listen").contains("127.0.0.1:7000") && line("listen").contains("config file"), "{text}");
    assert!(
        line("log_level").contains("\"warn\"") && line("log_level").contains("flag --log-level"),
        "{text}"
    );
    assert!(
        line("data_dir").contains("/srv/portcullis") && line("data_dir").contains("PORTCULLIS_DATA_DIR"),
        "{text}"
    );
    assert!(line("bootstrap_admin_key").contains("\"***\""), "{text}");
    assert!(line("max_body_bytes").contains("default"), "{text}");
    assert!(text.contains("http://127.0.0.1:7000"), "the derived public URL is shown: {text}");
}

#[test]
fn a_bad_setting_stops_the_start_and_says_which_and_why() {
    // (flags, environment, what the message must name)
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 5] = [
        (&["--listen", "nowhere"], &[], "`listen`"),
        (&[], &[("PORTCULLIS_PUBLIC_URL", "ftp://id.acme.test")], "PORTCULLIS_PUBLIC_URL"),
        (&[], &[("PORTCULLIS_MAX_BODY_BYTES", "lots")], "max_body_bytes"),
        (&[], &[("PORTCULLIS_LISTN", "127.0.0.1:1")], "PORTCULLIS_LISTN"),
        (&[], &[("PORTCULLIS_BOOTSTRAP_ADMIN_KEY", "short")], "bootstrap_admin_key"),
    ];
    for (args, env, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = command();
        cmd.arg("serve").args(args).env("PORTCULLIS_DATA_DIR", dir.path());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let output = cmd.output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{expected}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "expected {expected} in: {stderr}");
        assert!(!dir.path().join("portcullis.redb").exists(), "nothing is created on a bad setting");
    }
}

#[test]
fn a_missing_config_file_and_a_taken_port_are_reported() {
    let output = command().args(["serve", "--config", "/no/such/file.toml"]).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("/no/such/file.toml"));

    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stderr = crate::server::serve_refused(&taken.local_addr().unwrap().to_string(), dir.path());
    assert!(stderr.contains("setting listen"), "{stderr}");
}

#[test]
fn init_creates_the_data_directory_and_prints_the_first_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nested/data");
    let output = command().arg("init").env("PORTCULLIS_DATA_DIR", &data).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("pcak_"));
    assert!(data.join("portcullis.redb").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "the data directory holds private keys");
        let mode = std::fs::metadata(data.join("portcullis.redb")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let again = command().arg("init").env("PORTCULLIS_DATA_DIR", &data).output().unwrap();
    assert!(again.status.success());
    assert!(!String::from_utf8_lossy(&again.stdout).contains("pcak_"));
}

#[test]
fn keys_rotate_works_on_a_stopped_server_and_points_a_running_one_to_the_api() {
    let server = crate::server::Server::start();
    let data = server.data();
    let refused =
        command().args(["keys", "rotate"]).env("PORTCULLIS_DATA_DIR", data.path()).output().unwrap();
    assert!(!refused.status.success());
    let message = String::from_utf8(refused.stderr).unwrap();
    assert!(message.contains("POST /api/v1/signing-keys/rotate"), "{message}");

    let before: serde_json::Value = server.get("/oauth2/jwks").json().unwrap();
    let data = server.kill9();
    let rotated =
        command().args(["keys", "rotate"]).env("PORTCULLIS_DATA_DIR", data.path()).output().unwrap();
    assert!(rotated.status.success(), "{}", String::from_utf8_lossy(&rotated.stderr));
    let listing = String::from_utf8(rotated.stdout).unwrap();
    // The new keys are published now and sign after the handover; the old ones sign until then.
    assert_eq!(listing.lines().filter(|l| l.contains(" pending (signs from ")).count(), 2, "{listing}");
    assert_eq!(listing.lines().filter(|l| l.contains(" active (until ")).count(), 2, "{listing}");
    for key in before["keys"].as_array().unwrap() {
        assert!(
            listing.contains(key["kid"].as_str().unwrap()),
            "the old keys are listed as retired: {listing}"
        );
    }

    let restarted = crate::server::Server::start_with(data, &[]);
    let after: serde_json::Value = restarted.get("/oauth2/jwks").json().unwrap();
    assert_eq!(after["keys"].as_array().unwrap().len(), 4, "old and new keys are published");
}

#[test]
fn healthcheck_answers_for_the_server_on_the_listen_address() {
    let server = crate::server::Server::start();
    let listen = server.base.trim_start_matches("http://").to_owned();
    let output = command().args(["healthcheck", "--listen", &listen]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let output = command().args(["healthcheck", "--url", &format!("http://{closed}")]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line says why: {stderr}");
    assert!(stderr.contains("/readyz does not answer"), "{stderr}");
}
