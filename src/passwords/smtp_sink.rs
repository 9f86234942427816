//! A minimal SMTP server for tests: accepts every message and keeps it in memory.
//!
//! It speaks just enough SMTP for lettre (greeting, EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT),
//! advertises no extensions (so no STARTTLS and no AUTH), and undoes dot-stuffing.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One message as the relay received it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CapturedMessage {
    /// The envelope sender (`MAIL FROM`), without the angle brackets.
    pub(crate) mail_from: String,
    /// The envelope recipients (`RCPT TO`).
    pub(crate) rcpt_to: Vec<String>,
    /// Headers and body, CRLF line endings, dot-stuffing undone, without the final `.` line.
    pub(crate) data: String,
}

type Inbox = Arc<Mutex<Vec<CapturedMessage>>>;

/// A running sink; dropping it stops accepting connections.
pub(crate) struct SmtpSink {
    inbox: Inbox,
    accept_loop: JoinHandle<()>,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

impl SmtpSink {
    /// Listens on 127.0.0.1 on a free port.
    pub(crate) async fn start() -> std::io::Result<(SocketAddr, SmtpSink)> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let inbox = Inbox::default();
        let accept_loop = tokio::spawn(accept(listener, inbox.clone()));
        Ok((addr, SmtpSink { inbox, accept_loop }))
    }

    /// Every message accepted so far (the client has its `250` for each, so a finished send is here).
    pub(crate) fn messages(&self) -> Vec<CapturedMessage> {
        self.inbox.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

async fn accept(listener: TcpListener, inbox: Inbox) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(serve(stream, inbox.clone()));
    }
}

/// One SMTP session; any I/O error just ends it.
async fn serve(stream: TcpStream, inbox: Inbox) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink.test ESMTP ready\r\n").await?;
    let mut message = CapturedMessage::default();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 sink.test\r\n",
            "MAIL" => {
                message = CapturedMessage { mail_from: address_in(&line), ..CapturedMessage::default() };
                b"250 OK\r\n"
            }
            "RCPT" => {
                message.rcpt_to.push(address_in(&line));
                b"250 OK\r\n"
            }
            "DATA" => {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                message.data = read_data(&mut lines).await?;
                inbox.lock().unwrap_or_else(PoisonError::into_inner).push(std::mem::take(&mut message));
                b"250 OK queued\r\n"
            }
            "RSET" | "NOOP" => b"250 OK\r\n",
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 command not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
}

/// The message after `DATA`, up to the line holding only `.`.
async fn read_data(lines: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> std::io::Result<String> {
    let mut data = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 || line == ".\r\n" {
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

/// Undoes quoted-printable soft line breaks and `=XX` escapes, so tests can search decoded text.
/// Applied to a whole message it leaves 7bit parts and headers unchanged (they hold no `=`
/// sequences of that shape, bar the odd header parameter, which tests do not search).
pub(crate) fn decode_quoted_printable(text: &str) -> String {
    let unwrapped = text.replace("=\r\n", "");
    let bytes = unwrapped.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = bytes.get(i + 1..i + 3).filter(|_| bytes[i] == b'=').and_then(hex_byte);
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

fn hex_byte(pair: &[u8]) -> Option<u8> {
    let text = std::str::from_utf8(pair).ok()?;
    if !text.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)) {
        return None;
    }
    u8::from_str_radix(text, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_printable_is_undone() {
        assert_eq!(decode_quoted_printable("a=3Db&c=\r\nd =C3=A9"), "a=b&cd é");
        assert_eq!(decode_quoted_printable("x=zz y=4"), "x=zz y=4");
    }

    #[tokio::test]
    async fn the_sink_captures_a_hand_written_session() {
        let (addr, sink) = SmtpSink::start().await.unwrap();
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(
                b"EHLO me\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n\
                  Subject: hi\r\n\r\n..dotted\r\n.\r\nQUIT\r\n",
            )
            .await
            .unwrap();
        let mut replies = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut replies).await.unwrap();
        assert!(replies.starts_with("220 ") && replies.ends_with("221 bye\r\n"), "{replies}");
        let messages = sink.messages();
        assert_eq!(
            messages,
            vec![CapturedMessage {
                mail_from: "a@x.test".to_owned(),
                rcpt_to: vec!["b@y.test".to_owned()],
                data: "Subject: hi\r\n\r\n.dotted\r\n".to_owned(),
            }]
        );
    }
}
