//! A tiny authoritative DNS server for tests: it answers TXT queries for names a test publishes,
//! over UDP and TCP on the same loopback port, so domain verification can be tested end to end
//! without the network. Unknown names get NXDOMAIN. Every answer and every negative answer
//! carries a long TTL (and an SOA), so a resolver that cached anything would serve stale data and
//! the test would notice; `queries()` proves each check really reached the server.
//!
//! It runs on its own thread with its own current-thread tokio runtime, because the end-to-end
//! tests are plain synchronous `#[test]`s, and stops when dropped.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::{SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

/// TTL of every answer: long enough that any cache would still hold it when a test re-checks.
const TTL: u32 = 300;
/// How many random ports to try before giving up on finding one free for both UDP and TCP.
const BIND_TRIES: usize = 20;

/// TXT records by lowercase name without the trailing dot; each record is its character-strings.
type Zone = HashMap<String, Vec<Vec<String>>>;

/// What the test and the server thread share (through an `Arc`).
#[derive(Default)]
struct Shared {
    zone: Mutex<Zone>,
    queries: AtomicUsize,
    servfail: AtomicBool,
}

/// A running test DNS server; stops when dropped.
pub struct TestDns {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestDns {
    /// Binds UDP and TCP on one ephemeral loopback port and starts answering.
    pub fn start() -> TestDns {
        let (udp, tcp) = bind_same_port();
        let addr = udp.local_addr().expect("test DNS: UDP address");
        let shared = Arc::new(Shared::default());
        let (shutdown, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("test-dns-{}", addr.port()))
            .spawn({
                let shared = Arc::clone(&shared);
                move || run(udp, tcp, shared, stopped)
            })
            .expect("test DNS: spawn the server thread");
        TestDns { addr, shared, shutdown: Some(shutdown), thread: Some(thread) }
    }

    /// Where to send queries: the same port serves UDP and TCP.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Publishes (replacing) the TXT records at `name`. Each record is a list of
    /// character-strings, so a test can publish a value split the way DNS providers split long
    /// records; each string must be at most 255 bytes. No records at all means the name exists
    /// with no TXT (NOERROR, empty answer).
    pub fn set_txt<R, S>(&self, name: &str, records: impl IntoIterator<Item = R>)
    where
        R: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let records = records.into_iter().map(|r| r.into_iter().map(Into::into).collect()).collect();
        lock(&self.shared.zone).insert(zone_key(name), records);
    }

    /// Removes `name`: it answers NXDOMAIN again.
    pub fn remove(&self, name: &str) {
        lock(&self.shared.zone).remove(&zone_key(name));
    }

    /// How many queries the server has received (UDP and TCP), to prove no cache hid a change.
    pub fn queries(&self) -> usize {
        self.shared.queries.load(Ordering::SeqCst)
    }

    /// While set, every query is answered SERVFAIL, as a broken upstream resolver would.
    pub fn set_servfail(&self, failing: bool) {
        self.shared.servfail.store(failing, Ordering::SeqCst);
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Binds UDP on port 0, then TCP on the port it got; another process may hold that TCP port,
/// so on failure it starts again with a new UDP port.
fn bind_same_port() -> (UdpSocket, TcpListener) {
    for _ in 0..BIND_TRIES {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("test DNS: bind UDP on loopback");
        let port = udp.local_addr().expect("test DNS: UDP address").port();
        if let Ok(tcp) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            udp.set_nonblocking(true).expect("test DNS: non-blocking UDP");
            tcp.set_nonblocking(true).expect("test DNS: non-blocking TCP");
            return (udp, tcp);
        }
    }
    panic!("test DNS: no loopback port free for both UDP and TCP after {BIND_TRIES} tries");
}

/// The server thread: serves both transports until the shutdown signal (or the sender's drop).
fn run(udp: UdpSocket, tcp: TcpListener, shared: Arc<Shared>, stopped: oneshot::Receiver<()>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("test DNS: build the runtime");
    runtime.block_on(async move {
        let udp = tokio::net::UdpSocket::from_std(udp).expect("test DNS: UDP socket");
        let tcp = tokio::net::TcpListener::from_std(tcp).expect("test DNS: TCP listener");
        tokio::select! {
            () = serve_udp(udp, &shared) => {}
            () = serve_tcp(tcp, &shared) => {}
            _ = stopped => {}
        }
    });
}

async fn serve_udp(socket: tokio::net::UdpSocket, shared: &Shared) {
    let mut buffer = vec![0u8; usize::from(u16::MAX)];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buffer).await else { continue };
        let Some(request) = shared.parse(&buffer[..len]) else { continue };
        let reply = shared.answer(&request);
        let reply = fit_udp(&request, reply);
        if let Ok(bytes) = reply.to_vec() {
            let _ = socket.send_to(&bytes, peer).await;
        }
    }
}

async fn serve_tcp(listener: tokio::net::TcpListener, shared: &Arc<Shared>) {
    loop {
        if let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_tcp_connection(stream, Arc::clone(shared)));
        }
    }
}

/// DNS over TCP: each message is preceded by its length as two big-endian bytes.
async fn serve_tcp_connection(mut stream: tokio::net::TcpStream, shared: Arc<Shared>) -> io::Result<()> {
    loop {
        let len = stream.read_u16().await?;
        let mut bytes = vec![0u8; usize::from(len)];
        stream.read_exact(&mut bytes).await?;
        let Some(request) = shared.parse(&bytes) else { continue };
        let reply = shared.answer(&request).to_vec().map_err(io::Error::other)?;
        let reply_len = u16::try_from(reply.len()).map_err(io::Error::other)?;
        stream.write_all(&reply_len.to_be_bytes()).await?;
        stream.write_all(&reply).await?;
    }
}

/// An answer too big for the client's UDP buffer goes back empty with TC set, as a real server
/// does, so the client retries over TCP.
fn fit_udp(request: &Message, reply: Message) -> Message {
    let fits = reply.to_vec().is_ok_and(|bytes| bytes.len() <= usize::from(request.max_payload()));
    if fits {
        return reply;
    }
    let mut truncated = response_to(request);
    truncated.set_truncated(true);
    truncated
}

impl Shared {
    /// Decodes a query and counts it; garbage is dropped without an answer.
    fn parse(&self, bytes: &[u8]) -> Option<Message> {
        let request = Message::from_vec(bytes).ok()?;
        self.queries.fetch_add(1, Ordering::SeqCst);
        Some(request)
    }

    fn answer(&self, request: &Message) -> Message {
        let mut response = response_to(request);
        if self.servfail.load(Ordering::SeqCst) {
            response.set_response_code(ResponseCode::ServFail);
            return response;
        }
        let Some(query) = request.query() else {
            response.set_response_code(ResponseCode::FormErr);
            return response;
        };
        let records = lock(&self.zone).get(&zone_key(&query.name().to_ascii())).cloned();
        match records {
            None => {
                response.set_response_code(ResponseCode::NXDomain);
                response.add_name_server(soa());
            }
            Some(records) if query.query_type() == RecordType::TXT && !records.is_empty() => {
                for strings in records {
                    response.add_answer(txt_record(query, strings));
                }
            }
            Some(_) => {
                response.add_name_server(soa());
            }
        }
        response
    }
}

/// The header and question every response to `request` starts with.
fn response_to(request: &Message) -> Message {
    let mut response = Message::new();
    response
        .set_id(request.id())
        .set_message_type(MessageType::Response)
        .set_op_code(request.op_code())
        .set_authoritative(true)
        .set_recursion_desired(request.recursion_desired())
        .add_queries(request.queries().to_vec());
    response
}

fn txt_record(query: &Query, strings: Vec<String>) -> Record {
    Record::from_rdata(query.name().clone(), TTL, RData::TXT(TXT::new(strings)))
}

/// The SOA of negative answers: its TTL and minimum let a resolver cache the "no" if it would.
fn soa() -> Record {
    let server = Name::from_ascii("ns.test.").unwrap_or_else(|_| Name::root());
    let admin = Name::from_ascii("hostmaster.test.").unwrap_or_else(|_| Name::root());
    let soa = SOA::new(server, admin, 1, 3600, 600, 86_400, TTL);
    Record::from_rdata(Name::root(), TTL, RData::SOA(soa))
}

/// Names are compared case-insensitively and with or without the trailing dot.
fn zone_key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// A poisoned lock only means another test thread panicked; the map is still usable.
fn lock(zone: &Mutex<Zone>) -> MutexGuard<'_, Zone> {
    zone.lock().unwrap_or_else(PoisonError::into_inner)
}
