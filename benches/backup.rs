//! Online backup and restore, for BENCHMARKS.md: the release server in its own process, driven
//! over HTTP (reqwest, 8 connections) from the bench process; `portcullis backup` and
//! `portcullis restore` run as the operator runs them, as their own processes.
//!
//! 1. 100,000 SCIM users in one tenant (provisioned at concurrency 8) and five groups of 1,000:
//!    `portcullis backup` of the running, idle server — the command's wall time (snapshot,
//!    archive, the client's check), when the server finished its part, the file's size beside
//!    the database's, and the server's RSS before, during (sampled) and after.
//! 2. `POST /Users` at concurrency 8: a fixed number without a backup, then the same load with a
//!    backup started in the middle of it — the rate and latencies of the requests that completed
//!    during the backup, and the longest stretch in which none did (a global pause would show
//!    there).
//! 3. `portcullis restore` of the first backup into an empty directory, then the first start of
//!    a server on it: to its "listening" line, and until the audit search index (rebuilt from the
//!    log in the background) has caught up.
//!
//! The phases of a backup are seen from outside: the server's scratch directory (`.backup-*` in
//! the data directory) exists from the snapshot until the last byte is sent; the client's partial
//! file starts growing when the snapshot is done and the archive streams.
//!
//! Run with `cargo bench --bench backup`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    path::Path,
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};

mod support;

use support::{ADMIN_KEY, Server, create_users, expect_status, send, tenant, user};

const PORTCULLIS: &str = env!("CARGO_BIN_EXE_portcullis");
const USERS: usize = 100_000;
const GROUPS: usize = 5;
const GROUP_MEMBERS: usize = 1_000;
/// Requests of the load without a backup.
const BASELINE: usize = 10_000;
/// How long the load runs before the backup starts, and after it ends.
const SETTLE: Duration = Duration::from_secs(1);

/// Rows of the table printed at the end.
#[derive(Default)]
struct Table(Vec<(String, String)>);

impl Table {
    fn row(&mut self, what: impl Into<String>, figure: impl Into<String>) {
        let (what, figure) = (what.into(), figure.into());
        println!("{what}: {figure}");
        self.0.push((what, figure));
    }

    fn print(&self) {
        println!("\n| measure | figure |\n|---|---|");
        for (what, figure) in &self.0 {
            println!("| {what} | {figure} |");
        }
    }
}

#[tokio::main]
async fn main() {
    let root = tempfile::tempdir().unwrap();
    let (data, backups, restored) =
        (root.path().join("data"), root.path().join("backups"), root.path().join("restored"));
    for dir in [&data, &backups, &restored] {
        std::fs::create_dir(dir).unwrap();
    }
    let mut table = Table::default();
    let server = Server::start_in(&data);
    let client = reqwest::Client::builder().pool_max_idle_per_host(16).build().unwrap();
    let (base, token) = tenant(&client, &server, "acme").await;

    create_users(&client, &base, &token, "POST /Users (provisioning)", USERS, "u").await;
    create_groups(&client, &base, &token).await;
    index_caught_up(&client, &server.base).await;

    // 1. The idle server.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = server.rss_mb();
    let idle = backups.join("idle.tar.gz");
    let run = run_backup(&data, &idle, server.child.id()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = server.rss_mb();
    let database = file_mb(&data.join("portcullis.redb"));
    table.row(
        format!("`portcullis backup`, idle server, {USERS} users + {GROUPS} groups"),
        format!(
            "{:.2} s wall (snapshot done at {:.2} s, server done at {:.2} s, then the client's check)",
            run.wall.as_secs_f64(),
            run.snapshot.as_secs_f64(),
            run.served.as_secs_f64()
        ),
    );
    table.row("its report", run.report.clone());
    table.row(
        "backup file vs database",
        format!("{:.1} MB vs portcullis.redb {database:.1} MB", file_mb(&idle)),
    );
    table.row(
        "server RSS before / peak during / after the backup",
        format!(
            "{rss_before:.1} / {:.1} / {rss_after:.1} MB (VmHWM after: {:.1} MB)",
            run.peak_rss,
            hwm_mb(server.child.id())
        ),
    );

    // 2. Under load.
    let load = Load::new(&client, &base, &token);
    let started = Instant::now();
    let samples = load.run(Some(BASELINE), Arc::new(AtomicBool::new(false))).await;
    let quiet = Stats::of(&samples, started, Instant::now());
    table.row(format!("POST /Users ×{BASELINE}, concurrency 8, no backup"), quiet.describe());

    let stop = Arc::new(AtomicBool::new(false));
    let driver = tokio::spawn({
        let (load, stop) = (load.clone(), Arc::clone(&stop));
        async move { load.run(None, stop).await }
    });
    tokio::time::sleep(SETTLE).await;
    let begun = Instant::now();
    let run = run_backup(&data, &backups.join("under-load.tar.gz"), server.child.id()).await;
    tokio::time::sleep(SETTLE).await;
    stop.store(true, Ordering::SeqCst);
    let samples = driver.await.unwrap();
    let snapshot = Stats::of(&samples, begun, begun + run.snapshot);
    let served = Stats::of(&samples, begun, begun + run.served);
    let whole = Stats::of(&samples, begun, begun + run.wall);
    table.row(
        "`portcullis backup` under that load",
        format!(
            "{:.2} s wall (snapshot done at {:.2} s, server done at {:.2} s); peak server RSS {:.1} MB",
            run.wall.as_secs_f64(),
            run.snapshot.as_secs_f64(),
            run.served.as_secs_f64(),
            run.peak_rss
        ),
    );
    table.row("its report", run.report.clone());
    table.row("POST /Users during the snapshot", snapshot.describe());
    table.row("POST /Users while the server made and sent the backup", served.describe());
    table.row("POST /Users during the whole command (incl. the client's check)", whole.describe());
    table.row("server RSS after the load", format!("{:.1} MB", server.rss_mb()));
    server.stop();

    // 3. Restore, and the first start on it.
    let started = Instant::now();
    let output = portcullis(&["restore", "--data-dir", path(&restored), path(&idle)]);
    table.row(
        "`portcullis restore` into an empty directory",
        format!("{:.2} s", started.elapsed().as_secs_f64()),
    );
    table.row("its report", first_line(&output));
    table.row("restored portcullis.redb", format!("{:.1} MB", file_mb(&restored.join("portcullis.redb"))));
    let started = Instant::now();
    let server = Server::start_in(&restored);
    let listening = started.elapsed();
    index_caught_up(&client, &server.base).await;
    let indexed = started.elapsed();
    let moved = base.replacen(&base[..base.find("/scim").unwrap()], &server.base, 1);
    let list = send(client.get(format!("{moved}/Users?count=0")).bearer_auth(&token), 200).await;
    table.row(
        "first start on the restored directory",
        format!(
            "\"listening\" after {:.2} s; audit index rebuilt from the log after {:.2} s; {} users served; RSS {:.1} MB",
            listening.as_secs_f64(),
            indexed.as_secs_f64(),
            list["totalResults"],
            server.rss_mb()
        ),
    );
    server.stop();
    table.print();
    drop(root);
}

/// Five groups of 1,000 of the first users.
async fn create_groups(client: &reqwest::Client, base: &str, token: &str) {
    for group in 0..GROUPS {
        let url = format!(
            "{base}/Users?startIndex={}&count={GROUP_MEMBERS}&attributes=id",
            group * GROUP_MEMBERS + 1
        );
        let list = send(client.get(url).bearer_auth(token), 200).await;
        let members: Vec<Value> =
            list["Resources"].as_array().unwrap().iter().map(|u| json!({"value": u["id"]})).collect();
        assert_eq!(members.len(), GROUP_MEMBERS);
        let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": format!("Group {group}"), "members": members});
        let url = format!("{base}/Groups?excludedAttributes=members");
        send(client.post(url).bearer_auth(token).json(&body), 201).await;
    }
}

/// Waits until the audit search index holds every record of the log.
async fn index_caught_up(client: &reqwest::Client, server: &str) {
    let url = format!("{server}/api/v1/audit/status");
    let deadline = Instant::now() + Duration::from_secs(600);
    while send(client.get(&url).bearer_auth(ADMIN_KEY), 200).await["index_lag"] != 0 {
        assert!(Instant::now() < deadline, "the audit index did not catch up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct BackupRun {
    wall: Duration,
    /// When the client's partial file started growing: the server's snapshot was done.
    snapshot: Duration,
    /// When the server's scratch directory went: the server had sent everything.
    served: Duration,
    peak_rss: f64,
    report: String,
}

/// Runs `portcullis backup` against the server on `data`, watching its phases and the server's
/// RSS from another thread.
async fn run_backup(data: &Path, output: &Path, server: u32) -> BackupRun {
    let (data, output) = (data.to_owned(), output.to_owned());
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut child = Command::new(PORTCULLIS)
            .args(["backup", "--data-dir", path(&data), "--output", path(&output)])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (mut snapshot, mut served, mut seen_scratch, mut peak_rss) = (None, None, false, 0.0_f64);
        let outputs = output.parent().unwrap();
        while child.try_wait().unwrap().is_none() {
            let now = started.elapsed();
            peak_rss = peak_rss.max(rss_mb(server));
            let scratch = has_entry(&data, ".backup-");
            seen_scratch |= scratch;
            if seen_scratch && !scratch && served.is_none() {
                served = Some(now);
            }
            if snapshot.is_none() && partial_bytes(outputs) > 0 {
                snapshot = Some(now);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let wall = started.elapsed();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "portcullis backup failed");
        BackupRun {
            wall,
            snapshot: snapshot.unwrap_or(wall),
            served: served.unwrap_or(wall),
            peak_rss,
            report: first_line(&String::from_utf8_lossy(&out.stdout)),
        }
    })
    .await
    .unwrap()
}

fn has_entry(dir: &Path, prefix: &str) -> bool {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
}

/// The size of the client's partial backup file, if it is there.
fn partial_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".portcullis-backup-"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// One completed request: when it ended and how long it took.
type Sample = (Instant, Duration);

/// `POST /Users` from 8 concurrent clients, each user new.
#[derive(Clone)]
struct Load {
    client: reqwest::Client,
    url: String,
    token: String,
    next: Arc<AtomicUsize>,
}

impl Load {
    fn new(client: &reqwest::Client, base: &str, token: &str) -> Load {
        Load {
            client: client.clone(),
            url: format!("{base}/Users"),
            token: token.into(),
            next: Arc::default(),
        }
    }

    /// Sends `total` requests, or, without one, until `stop` is set.
    async fn run(&self, total: Option<usize>, stop: Arc<AtomicBool>) -> Vec<Sample> {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let sent = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..8)
            .map(|_| {
                let (load, stop, samples, sent) =
                    (self.clone(), Arc::clone(&stop), Arc::clone(&samples), Arc::clone(&sent));
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst)
                        && total.is_none_or(|t| sent.fetch_add(1, Ordering::SeqCst) < t)
                    {
                        let n = load.next.fetch_add(1, Ordering::SeqCst);
                        let name = format!("load{n}@load.example");
                        let request = load.client.post(&load.url).bearer_auth(&load.token).json(&user(&name));
                        let begun = Instant::now();
                        expect_status(request, 201).await;
                        let ended = Instant::now();
                        samples.lock().unwrap().push((ended, ended - begun));
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.await.unwrap();
        }
        let mut samples = samples.lock().unwrap().clone();
        samples.sort();
        samples
    }
}

/// The requests that completed within a window.
struct Stats {
    count: usize,
    seconds: f64,
    p50: f64,
    p99: f64,
    max: f64,
    /// The longest stretch of the window in which no request completed, ms.
    gap: f64,
    /// Where in the window that stretch began, s.
    gap_at: f64,
}

impl Stats {
    fn of(samples: &[Sample], from: Instant, to: Instant) -> Stats {
        let within: Vec<&Sample> =
            samples.iter().filter(|(ended, _)| *ended >= from && *ended <= to).collect();
        let mut latencies: Vec<f64> = within.iter().map(|(_, l)| l.as_secs_f64() * 1000.0).collect();
        latencies.sort_by(f64::total_cmp);
        let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
        let mut marks: Vec<Instant> = vec![from];
        marks.extend(within.iter().map(|(ended, _)| *ended));
        marks.push(to);
        let (gap, gap_at) = marks
            .windows(2)
            .map(|w| ((w[1] - w[0]).as_secs_f64() * 1000.0, (w[0] - from).as_secs_f64()))
            .fold((0.0, 0.0), |longest, gap| if gap.0 > longest.0 { gap } else { longest });
        Stats {
            count: within.len(),
            seconds: (to - from).as_secs_f64(),
            p50: pct(0.5),
            p99: pct(0.99),
            max: latencies.last().copied().unwrap_or_default(),
            gap,
            gap_at,
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} in {:.2} s = {:.0}/s; p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms; longest stretch without a completion {:.0} ms, from {:.2} s",
            self.count,
            self.seconds,
            self.count as f64 / self.seconds,
            self.p50,
            self.p99,
            self.max,
            self.gap,
            self.gap_at
        )
    }
}

/// Runs the release binary to completion; answers its standard output.
fn portcullis(args: &[&str]) -> String {
    let out = Command::new(PORTCULLIS).args(args).output().unwrap();
    assert!(out.status.success(), "portcullis {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn file_mb(p: &Path) -> f64 {
    std::fs::metadata(p).unwrap().len() as f64 / (1024.0 * 1024.0)
}

fn status_kb(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_default()
}

fn rss_mb(pid: u32) -> f64 {
    status_kb(pid, "VmRSS:") / 1024.0
}

fn hwm_mb(pid: u32) -> f64 {
    status_kb(pid, "VmHWM:") / 1024.0
}
