//! `portcullis backup` and `portcullis restore`: a backup of a server under SCIM load holds
//! every write acknowledged before it began, restores to a working server, and nothing damaged,
//! foreign or unsafe is ever restored.

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::Output,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
};

use reqwest::Method;
use serde_json::Value;

use crate::{
    scim::{Scim, user},
    server::{ADMIN_KEY, Server, command},
};

fn portcullis(args: &[&str], data_dir: &Path) -> Output {
    command().args(args).env("PORTCULLIS_DATA_DIR", data_dir).output().unwrap()
}

fn succeeds(output: Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&output.stderr));
    stdout
}

fn fails(output: Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "it succeeded: {}", String::from_utf8_lossy(&output.stdout));
    stderr
}

fn backup(data_dir: &Path, file: &Path) -> String {
    succeeds(portcullis(&["backup", "--output", file.to_str().unwrap()], data_dir))
}

fn restore(data_dir: &Path, file: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["restore", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    portcullis(&args, data_dir)
}

/// The files of a data directory (not the search index), by name and digest.
fn contents(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), sha256(&std::fs::read(&p).unwrap())))
        .collect();
    files.sort();
    files
}

/// Creates users as fast as the server takes them until told to stop; remembers each one the
/// server acknowledged.
struct Load {
    stop: Arc<AtomicBool>,
    acknowledged: Arc<Mutex<Vec<String>>>,
    workers: Vec<thread::JoinHandle<u64>>,
}

impl Load {
    fn start(scim: &Scim, workers: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(Mutex::new(Vec::new()));
        let workers = (0..workers)
            .map(|worker| {
                let (scim, stop, acknowledged) =
                    (scim.with_token(&scim.token), stop.clone(), acknowledged.clone());
                thread::spawn(move || {
                    let mut attempted = 0;
                    while !stop.load(Ordering::SeqCst) {
                        attempted += 1;
                        let response =
                            scim.post("/Users", user(&format!("load-{worker}-{attempted}@acme.test")));
                        if response.status() == 201 {
                            let id = response.json::<Value>().unwrap()["id"].as_str().unwrap().to_owned();
                            acknowledged.lock().unwrap().push(id);
                        }
                    }
                    attempted
                })
            })
            .collect();
        Load { stop, acknowledged, workers }
    }

    fn acknowledged(&self) -> Vec<String> {
        self.acknowledged.lock().unwrap().clone()
    }

    /// Stops the load; returns how many creates were attempted in all.
    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.workers.into_iter().map(|w| w.join().unwrap()).sum()
    }
}

#[test]
fn a_backup_under_scim_load_restores_every_acknowledged_write() {
    let server = Server::start();
    let scim = Scim::new(&server, "acme");
    let load = Load::start(&scim, 4);
    while load.acknowledged().len() < 50 {
        thread::sleep(std::time::Duration::from_millis(20));
    }
    let before = load.acknowledged();
    let file = server.data_dir().join("nightly.tar.gz");
    let said = backup(server.data_dir(), &file);
    let during = load.acknowledged().len();
    let attempted = load.stop();
    assert!(said.contains("from the running server"), "{said}");
    assert!(during > before.len(), "the load went on while the backup was taken");
    // The server records the backup once it has sent it.
    let recorded = (0..200).any(|_| {
        thread::sleep(std::time::Duration::from_millis(50));
        server.audit("instance.backup").len() == 1
    });
    assert!(recorded, "a backup is recorded in the audit trail");

    let restored_dir = tempfile::tempdir().unwrap();
    let said = succeeds(restore(restored_dir.path(), &file, &[]));
    assert!(said.contains("audit records verified"), "{said}");
    let restored =
        Server::start_with(Arc::new(restored_dir), &[("PORTCULLIS_BOOTSTRAP_ADMIN_KEY", ADMIN_KEY)]);
    let scim = scim.on(&restored);
    for id in &before {
        assert_eq!(
            scim.get(&format!("/Users/{id}")).status(),
            200,
            "user {id} was acknowledged before the backup"
        );
    }
    let total = scim.fetch("/Users?count=1")["totalResults"].as_u64().unwrap();
    assert!(total >= before.len() as u64 && total <= attempted, "{total} users restored");
    let verified: Value =
        restored.admin(Method::POST, "/api/v1/audit/verify").send().unwrap().json().unwrap();
    assert_eq!(verified["intact"], true, "{verified}");
    // The search index was rebuilt from the restored log.
    assert!(!restored.audit("scim.user.create").is_empty());
    // The restored server is a working one: it takes writes, and the old admin key works.
    scim.create_user("after-restore@acme.test");
    assert_eq!(restored.get("/api/v1/tenants").status(), 200);
}

#[test]
fn a_stopped_server_is_backed_up_from_its_files_and_restored_elsewhere_with_its_secret_key() {
    let mut server = Server::start();
    let scim = Scim::new(&server, "acme");
    let ada = scim.create_user("ada@acme.test");
    server.send_sigterm();
    assert!(server.wait_exit().success());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.tar.gz");
    let said = backup(server.data_dir(), &file);
    assert!(
        said.contains("from the stopped data directory") && said.contains("the secret key included"),
        "{said}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let said = succeeds(restore(dir.path(), &file, &["--check"]));
    assert!(said.contains("is a good backup"), "{said}");

    let elsewhere = tempfile::tempdir().unwrap();
    succeeds(restore(elsewhere.path(), &file, &[]));
    assert_eq!(
        std::fs::read(elsewhere.path().join("secret.key")).unwrap(),
        std::fs::read(server.data_dir().join("secret.key")).unwrap()
    );
    let restored = Server::start_with(Arc::new(elsewhere), &[]);
    assert_eq!(
        scim.on(&restored).fetch(&format!("/Users/{}", ada["id"].as_str().unwrap()))["userName"],
        "ada@acme.test"
    );
}

#[test]
fn without_its_secret_key_a_restore_says_which_key_the_database_needs() {
    let server = Server::start();
    Scim::new(&server, "acme");
    let file = server.data_dir().join("backup.tar.gz");
    let said = succeeds(portcullis(
        &["backup", "--without-secret-key", "--output", file.to_str().unwrap()],
        server.data_dir(),
    ));
    assert!(said.contains("WITHOUT the secret key"), "{said}");
    let elsewhere = tempfile::tempdir().unwrap();
    let said = succeeds(restore(elsewhere.path(), &file, &[]));
    assert!(said.contains("WARNING") && said.contains("secret.key"), "{said}");
    assert!(!elsewhere.path().join("secret.key").exists());
}

#[test]
fn a_restore_refuses_a_running_server_and_keeps_a_database_it_replaces() {
    let mut server = Server::start();
    Scim::new(&server, "acme");
    let file = server.data_dir().join("backup.tar.gz");
    backup(server.data_dir(), &file);

    let refused = fails(restore(server.data_dir(), &file, &["--force"]));
    assert!(refused.contains("is running"), "{refused}");
    assert_eq!(server.get("/healthz").status(), 200);
    server.send_sigterm();
    assert!(server.wait_exit().success());
    let before = contents(server.data_dir());

    let refused = fails(restore(server.data_dir(), &file, &[]));
    assert!(refused.contains("--force"), "{refused}");
    assert_eq!(contents(server.data_dir()), before);

    let said = succeeds(restore(server.data_dir(), &file, &["--force"]));
    assert!(said.contains("is kept as"), "{said}");
    let kept: Vec<PathBuf> = std::fs::read_dir(server.data_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("portcullis.redb.replaced-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let restarted = Server::start_with(server.data(), &[("PORTCULLIS_BOOTSTRAP_ADMIN_KEY", ADMIN_KEY)]);
    assert_eq!(restarted.get("/api/v1/tenants").json::<Value>().unwrap()["items"][0]["slug"], "acme");
}

/// A backup file's members: (name, bytes).
type Members = Vec<(String, Vec<u8>)>;

/// A backup file as a list of (name, bytes) members, to damage and write back.
fn members(file: &Path) -> Members {
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(file).unwrap());
    let mut tar = tar::Archive::new(gz);
    tar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).unwrap();
            (e.path().unwrap().to_string_lossy().into_owned(), bytes)
        })
        .collect()
}

fn write_members(file: &Path, members: &[(String, Vec<u8>)]) {
    let gz = flate2::write::GzEncoder::new(std::fs::File::create(file).unwrap(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (name, bytes) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o600);
        header.set_entry_type(tar::EntryType::Regular);
        // Bypasses the crate's own path checks, as a hostile file would.
        header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_cksum();
        tar.append(&header, bytes.as_slice()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn a_damaged_truncated_or_hostile_backup_is_refused_and_changes_nothing() {
    let server = Server::start();
    Scim::new(&server, "acme").create_user("ada@acme.test");
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.tar.gz");
    backup(server.data_dir(), &good);
    let original = members(&good);
    let manifest: Value = serde_json::from_slice(&original[0].1).unwrap();

    let flipped = {
        let mut m = original.clone();
        let db = &mut m[1].1;
        let middle = db.len() / 2;
        db[middle] ^= 0xff;
        m
    };
    let undercounted = {
        // A manifest whose counts are wrong but whose digests match: the database is recounted.
        let mut changed = manifest.clone();
        let users = changed["tables"]["users"].as_u64().unwrap();
        changed["tables"]["users"] = (users + 1).into();
        let mut m = original.clone();
        m[0].1 = serde_json::to_vec(&changed).unwrap();
        m
    };
    let traversal = {
        let mut m = original.clone();
        m.push(("../escaped".into(), b"x".to_vec()));
        m
    };
    let foreign = {
        let mut changed = manifest.clone();
        changed["format"] = "something-else".into();
        vec![("manifest.json".to_owned(), serde_json::to_vec(&changed).unwrap())]
    };
    let newer = {
        let mut changed = manifest.clone();
        changed["schema_version"] = 999.into();
        let mut m = original.clone();
        m[0].1 = serde_json::to_vec(&changed).unwrap();
        m
    };
    let without_database = vec![original[0].clone()];
    let cases: Vec<(&str, Members, &str)> = vec![
        ("flipped", flipped, "does not match its manifest"),
        ("undercounted", undercounted, "not the"),
        ("traversal", traversal, "../escaped"),
        ("foreign", foreign, "not a Portcullis backup"),
        ("newer", newer, "newer Portcullis"),
        ("without-database", without_database, "missing"),
    ];
    assert_eq!(sha256(&original[1].1), manifest["files"][0]["sha256"].as_str().unwrap());
    for (name, members, expected) in cases {
        let file = dir.path().join(format!("{name}.tar.gz"));
        write_members(&file, &members);
        let target = tempfile::tempdir().unwrap();
        let refused = fails(restore(target.path(), &file, &[]));
        assert!(refused.contains(expected), "{name}: {refused}");
        let left: Vec<_> =
            std::fs::read_dir(target.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(left.is_empty(), "{name}: a refused restore leaves nothing behind: {left:?}");
        assert!(!dir.path().join("escaped").exists() && !target.path().join("../escaped").exists());
    }

    let bytes = std::fs::read(&good).unwrap();
    for (name, damaged) in [("truncated", bytes[..bytes.len() / 2].to_vec()), ("not-gzip", b"hello".to_vec())]
    {
        let file = dir.path().join(name);
        std::fs::write(&file, damaged).unwrap();
        let refused = fails(restore(dir.path(), &file, &["--check"]));
        assert!(refused.contains("cannot be used"), "{name}: {refused}");
    }
}

#[test]
fn a_backup_of_a_killed_server_waits_for_its_recovery_and_a_restart_replaces_the_dead_socket() {
    let server = Server::start();
    Scim::new(&server, "acme");
    let data = server.kill9();
    assert!(data.path().join("control.sock").exists());
    let dir = tempfile::tempdir().unwrap();
    let refused = fails(portcullis(
        &["backup", "--output", dir.path().join("b.tar.gz").to_str().unwrap()],
        data.path(),
    ));
    assert!(refused.contains("not closed cleanly"), "{refused}");
    assert!(!dir.path().join("b.tar.gz").exists());

    // A backup killed with the server leaves its scratch copy; the next start removes it.
    let leftover = data.path().join(".backup-killed");
    std::fs::create_dir(&leftover).unwrap();
    std::fs::write(leftover.join("portcullis.redb"), b"a partial copy").unwrap();
    let restarted = Server::start_with(data, &[("PORTCULLIS_BOOTSTRAP_ADMIN_KEY", ADMIN_KEY)]);
    assert!(!leftover.exists());
    let said = backup(restarted.data_dir(), &dir.path().join("b.tar.gz"));
    assert!(said.contains("from the running server"), "{said}");
}

#[test]
fn nightly_backups_go_into_a_directory_and_only_the_newest_are_kept() {
    let server = Server::start();
    Scim::new(&server, "acme");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep-me.txt"), "not a backup").unwrap();
    let nightly = |keep: &str| {
        succeeds(portcullis(
            &["backup", "--output-dir", dir.path().to_str().unwrap(), "--keep", keep],
            server.data_dir(),
        ))
    };
    for _ in 0..3 {
        nightly("2");
    }
    let said = nightly("2");
    assert!(said.contains("Removed the older backup"), "{said}");
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(names[0], "keep-me.txt", "files that are not dated backups are left alone");
    for name in &names[1..] {
        assert!(name.starts_with("portcullis-") && name.ends_with("Z.tar.gz"), "{name}");
        succeeds(restore(dir.path(), &dir.path().join(name), &["--check"]));
    }

    let (file, dir) = (dir.path().join("x.tar.gz"), dir.path().to_str().unwrap());
    let file = file.to_str().unwrap();
    for bad in [
        vec!["backup"],
        vec!["backup", "--output", file, "--output-dir", dir],
        vec!["backup", "--output", file, "--keep", "2"],
        vec!["backup", "--output-dir", dir, "--keep", "0"],
    ] {
        let output = portcullis(&bad, server.data_dir());
        assert_eq!(output.status.code(), Some(2), "{bad:?}");
    }
}
