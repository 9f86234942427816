//! A tiny SMTP relay for tests: accepts every message and keeps it in memory, so the emails the
//! server sends (invitations, password resets) can be read and their links followed.
//!
//! It speaks just enough SMTP for lettre without TLS (greeting, EHLO/HELO, MAIL, RCPT, DATA, RSET,
//! NOOP, QUIT), advertises no extensions (so no STARTTLS and no AUTH) and undoes dot-stuffing.
//! It runs on plain threads, one per connection, because the end-to-end tests are synchronous
//! `#[test]`s; it stops accepting when dropped.

use std::{
    io::{self, BufRead, BufReader, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

/// One message as the relay received it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mail {
    /// The envelope sender (`MAIL FROM`), without the angle brackets.
    pub mail_from: String,
    /// The envelope recipients (`RCPT TO`).
    pub rcpt_to: Vec<String>,
    /// Headers and body, CRLF line endings, dot-stuffing undone, without the final `.` line.
    pub data: String,
}

impl Mail {
    /// The message with quoted-printable undone, for searching.
    pub fn decoded(&self) -> String {
        decode_quoted_printable(&self.data)
    }

    /// The first `{base}/password/reset?token=…` link in the message.
    pub fn password_link(&self) -> String {
        let decoded = self.decoded();
        let at = decoded
            .find("/password/reset?token=")
            .unwrap_or_else(|| panic!("no password link in:\n{decoded}"));
        let start = decoded[..at].rfind("http").expect("the link is absolute");
        let rest = &decoded[start..];
        let end = rest.find(|c: char| c.is_whitespace() || c == '"' || c == '<').unwrap_or(rest.len());
        rest[..end].to_owned()
    }
}

type Inbox = Arc<Mutex<Vec<Mail>>>;

/// A running relay on 127.0.0.1.
pub struct TestSmtp {
    addr: SocketAddr,
    inbox: Inbox,
    stopped: Arc<AtomicBool>,
}

impl TestSmtp {
    /// Listens on a free loopback port and starts accepting.
    pub fn start() -> TestSmtp {
        let listener = TcpListener::bind("127.0.0.1:0").expect("test SMTP: bind");
        let addr = listener.local_addr().expect("test SMTP: address");
        let inbox = Inbox::default();
        let stopped = Arc::new(AtomicBool::new(false));
        {
            let (inbox, stopped) = (Arc::clone(&inbox), Arc::clone(&stopped));
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stopped.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let inbox = Arc::clone(&inbox);
                    thread::spawn(move || {
                        // Any I/O error just ends the session, as a real relay would.
                        let _ = serve(stream, &inbox);
                    });
                }
            });
        }
        TestSmtp { addr, inbox, stopped }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every message accepted so far (the client has had its `250` for each).
    pub fn messages(&self) -> Vec<Mail> {
        self.inbox.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Waits (up to thirty seconds) until at least `count` messages have arrived; returns them all.
    pub fn wait_for(&self, count: usize) -> Vec<Mail> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "expected {count} emails, got {}: {messages:#?}",
                messages.len()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TestSmtp {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag and ends.
        let _ = TcpStream::connect(self.addr);
    }
}

/// One SMTP session.
fn serve(stream: TcpStream, inbox: &Inbox) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut write = stream.try_clone()?;
    let mut lines = BufReader::new(stream);
    write.write_all(b"220 sink.test ESMTP ready\r\n")?;
    let mut message = Mail::default();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 sink.test\r\n",
            "MAIL" => {
                message = Mail { mail_from: address_in(&line), ..Mail::default() };
                b"250 OK\r\n"
            }
            "RCPT" => {
                message.rcpt_to.push(address_in(&line));
                b"250 OK\r\n"
            }
            "DATA" => {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n")?;
                message.data = read_data(&mut lines)?;
                inbox.lock().unwrap_or_else(PoisonError::into_inner).push(std::mem::take(&mut message));
                b"250 OK queued\r\n"
            }
            "RSET" | "NOOP" => b"250 OK\r\n",
            "QUIT" => {
                write.write_all(b"221 bye\r\n")?;
                return Ok(());
            }
            _ => b"502 command not implemented\r\n",
        };
        write.write_all(reply)?;
    }
}

/// The message after `DATA`, up to the line holding only `.`.
fn read_data(lines: &mut impl BufRead) -> io::Result<String> {
    let mut data = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line)? == 0 || line == ".\r\n" {
            return Ok(data);
        }
        data.push_str(line.strip_prefix('.').unwrap_or(&line));
    }
}

/// The address between `<` and `>` in a MAIL or RCPT command.
fn address_in(line: &str) -> String {
    let start = line.find('<').map_or(0, |i| i + 1);
    let end = line.rfind('>').unwrap_or(line.len());
    line.get(start..end).unwrap_or_default().to_owned()
}

/// Undoes quoted-printable soft line breaks (`=` at the end of a line) and `=XX` escapes. Applied
/// to a whole message it leaves 7bit parts and headers unchanged (they hold no `=` followed by two
/// hex digits, bar the odd header parameter, which tests do not search).
pub fn decode_quoted_printable(text: &str) -> String {
    let unwrapped = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = unwrapped.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = bytes
            .get(i + 1..i + 3)
            .filter(|_| bytes[i] == b'=')
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .filter(|pair| pair.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match escape {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[test]
fn quoted_printable_is_undone() {
    assert_eq!(decode_quoted_printable("a=3Db&c=\r\nd =C3=A9"), "a=b&cd é");
    assert_eq!(decode_quoted_printable("x=zz y=4"), "x=zz y=4");
}

#[test]
fn the_relay_captures_a_hand_written_session() {
    use std::io::Read;
    let smtp = TestSmtp::start();
    let mut stream = TcpStream::connect(("127.0.0.1", smtp.port())).unwrap();
    stream
        .write_all(
            b"EHLO me\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n\
              Subject: hi\r\n\r\n..dotted\r\n.\r\nQUIT\r\n",
        )
        .unwrap();
    let mut replies = String::new();
    stream.read_to_string(&mut replies).unwrap();
    assert_eq!(
        replies,
        "220 sink.test ESMTP ready\r\n250 sink.test\r\n250 OK\r\n250 OK\r\n\
         354 end with <CRLF>.<CRLF>\r\n250 OK queued\r\n221 bye\r\n"
    );
    assert_eq!(
        smtp.messages(),
        vec![Mail {
            mail_from: "a@x.test".into(),
            rcpt_to: vec!["b@y.test".into()],
            data: "Subject: hi\r\n\r\n.dotted\r\n".into(),
        }]
    );
}
