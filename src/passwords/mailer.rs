//! Sending password reset emails through an SMTP relay.
//!
//! The message is plain text with a simple HTML alternative; every value placed in the HTML is
//! escaped, and names placed in headers lose any control characters, so neither a tenant's name nor a
//! user's display name can inject markup or headers.

use std::fmt;
use std::time::Duration;

use super::reset::ResetPurpose;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain text: only for a relay on the same host or a trusted network (e.g. port 25 to localhost).
    None,
    /// Plain connect, then STARTTLS, which is required (usually port 587).
    StartTls,
    /// TLS from the first byte (usually port 465).
    Tls,
}

/// Where and how to send mail. `Debug` hides the password.
#[derive(Clone)]
pub struct SmtpSettings {
    /// The relay's host name (also the name its TLS certificate must carry).
    pub host: String,
    /// The relay's port.
    pub port: u16,
    /// Transport security.
    pub security: SmtpSecurity,
    /// The user name to authenticate with, if the relay wants one.
    pub username: Option<String>,
    /// The password for `username`.
    pub password: Option<String>,
    /// The sender, as a mailbox: `Portcullis <no-reply@example.com>` or a bare address.
    pub from: String,
    /// How long to wait on the relay for any one step.
    pub timeout: Duration,
}

impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<secret>"))
            .field("from", &self.from)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Why an email could not be built or sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The configured sender is not a valid mailbox.
    #[error("the sender address is not valid: {0}")]
    InvalidSender(#[source] lettre::address::AddressError),
    /// The recipient is not a valid email address.
    #[error("the recipient address is not valid: {0}")]
    InvalidRecipient(#[source] lettre::address::AddressError),
    /// TLS could not be set up for the relay's host name.
    #[error("TLS could not be set up for the SMTP relay: {0}")]
    Tls(#[source] lettre::transport::smtp::Error),
    /// The message could not be assembled.
    #[error("the email could not be built: {0}")]
    Build(#[source] lettre::error::Error),
    /// The relay could not be reached or refused the message.
    #[error("the SMTP relay did not accept the email: {0}")]
    Send(#[source] lettre::transport::smtp::Error),
}

/// Sends Portcullis' emails through one SMTP relay.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer").field("from", &self.from.to_string()).finish_non_exhaustive()
    }
}

/// What a password link email says, before it becomes a message.
struct ResetEmail<'a> {
    greeting_name: Option<String>,
    link: &'a str,
    expires_in_minutes: u64,
    tenant_name: String,
    purpose: ResetPurpose,
}

impl Mailer {
    /// A mailer for `settings`. Nothing is sent or connected yet.
    pub fn new(settings: SmtpSettings) -> Result<Self, MailError> {
        let from: Mailbox = settings.from.parse().map_err(MailError::InvalidSender)?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.as_str())
            .port(settings.port)
            .timeout(Some(settings.timeout))
            .tls(tls_for(&settings)?);
        if let Some(username) = settings.username {
            builder = builder.credentials(Credentials::new(username, settings.password.unwrap_or_default()));
        }
        Ok(Self { transport: builder.build(), from })
    }

    /// Sends the "choose a new password" email (or, for an invitation, "choose your password")
    /// with `link` to `to`.
    pub async fn send_password_link(
        &self,
        to: &str,
        display_name: Option<&str>,
        link: &str,
        expires_in_minutes: u64,
        tenant_name: &str,
        purpose: ResetPurpose,
    ) -> Result<(), MailError> {
        let greeting_name = display_name.map(header_safe).filter(|name| !name.is_empty());
        let address = to.parse().map_err(MailError::InvalidRecipient)?;
        let recipient = Mailbox::new(greeting_name.clone(), address);
        let email = ResetEmail {
            greeting_name,
            link,
            expires_in_minutes,
            tenant_name: header_safe(tenant_name),
            purpose,
        };
        let message = Message::builder()
            .from(self.from.clone())
            .to(recipient)
            .subject(email.subject())
            .multipart(MultiPart::alternative_plain_html(email.text(), email.html()))
            .map_err(MailError::Build)?;
        self.transport.send(message).await.map_err(MailError::Send)?;
        Ok(())
    }
}

impl ResetEmail<'_> {
    fn subject(&self) -> String {
        match self.purpose {
            ResetPurpose::Reset => format!("Reset your {} password", self.tenant_name),
            ResetPurpose::Invite => format!("Your {} account is ready", self.tenant_name),
        }
    }

    /// Why the person receives the email, and what to do if it is unexpected.
    fn reason(&self) -> (String, &'static str) {
        match self.purpose {
            ResetPurpose::Reset => (
                format!(
                    "Someone, hopefully you, asked to reset the password of your {} account.",
                    self.tenant_name
                ),
                "If you did not ask for this, ignore this email: your password stays as it is.",
            ),
            ResetPurpose::Invite => (
                format!("An administrator of {} created an account for you.", self.tenant_name),
                "If you did not expect this, ignore this email.",
            ),
        }
    }

    /// "expires in 45 minutes", "in 7 days".
    fn lifetime(&self) -> String {
        match self.expires_in_minutes {
            m if m >= 2 * 24 * 60 => format!("{} days", m / (24 * 60)),
            m if m >= 120 => format!("{} hours", m / 60),
            m => format!("{m} minutes"),
        }
    }

    fn text(&self) -> String {
        let greeting =
            self.greeting_name.as_deref().map_or_else(|| "Hello,".to_owned(), |n| format!("Hello {n},"));
        let (reason, unexpected) = self.reason();
        format!(
            "{greeting}\n\n\
             {reason}\n\
             Open this link to choose a password:\n\n\
             {link}\n\n\
             The link works once and expires in {lifetime}.\n\
             {unexpected}\n",
            link = self.link,
            lifetime = self.lifetime(),
        )
    }

    fn html(&self) -> String {
        let greeting = self
            .greeting_name
            .as_deref()
            .map_or_else(|| "Hello,".to_owned(), |n| format!("Hello {},", escape_html(n)));
        let link = escape_html(self.link);
        let (reason, unexpected) = self.reason();
        format!(
            "<!DOCTYPE html>\n<html><body>\n\
             <p>{greeting}</p>\n\
             <p>{reason}</p>\n\
             <p><a href=\"{link}\">Choose a password</a></p>\n\
             <p>Or copy this link into your browser:<br>{link}</p>\n\
             <p>The link works once and expires in {lifetime}. {unexpected}</p>\n\
             </body></html>\n",
            reason = escape_html(&reason),
            lifetime = self.lifetime(),
        )
    }
}

fn tls_for(settings: &SmtpSettings) -> Result<Tls, MailError> {
    let parameters = || TlsParameters::new(settings.host.clone()).map_err(MailError::Tls);
    Ok(match settings.security {
        SmtpSecurity::None => Tls::None,
        SmtpSecurity::StartTls => Tls::Required(parameters()?),
        SmtpSecurity::Tls => Tls::Wrapper(parameters()?),
    })
}

/// `text` without control characters (line breaks above all) and surrounding spaces.
fn header_safe(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect::<String>().trim().to_owned()
}

/// `text` safe inside HTML text and double-quoted attributes.
fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passwords::smtp_sink::{SmtpSink, decode_quoted_printable};

    const LINK: &str = "https://id.example.com/t/acme/password/reset?token=AZAAAAAAcACAAAAAAAAAAQGQAAAAAHAAgAAAAAAAAAI.\
                        x-_Yq3ZTm0x5QnHcWZsFPu8cD2P9C9yMIJqvdkrDq5o&lang=en";

    fn settings(port: u16) -> SmtpSettings {
        SmtpSettings {
            host: "127.0.0.1".to_owned(),
            port,
            security: SmtpSecurity::None,
            username: None,
            password: None,
            from: "Portcullis <no-reply@id.example.com>".to_owned(),
            timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn the_reset_email_reaches_the_relay_with_the_link_intact() {
        let (addr, sink) = SmtpSink::start().await.unwrap();
        let mailer = Mailer::new(settings(addr.port())).unwrap();
        mailer
            .send_password_link("jane@example.org", Some("Jane Doe"), LINK, 30, "Acme", ResetPurpose::Reset)
            .await
            .unwrap();

        let messages = sink.messages();
        assert_eq!(messages.len(), 1);
        let message = &messages[0];
        assert_eq!(message.mail_from, "no-reply@id.example.com");
        assert_eq!(message.rcpt_to, vec!["jane@example.org".to_owned()]);
        assert!(message.data.contains("Subject: Reset your Acme password"), "{}", message.data);
        assert!(message.data.contains("To: \"Jane Doe\" <jane@example.org>"), "{}", message.data);

        let decoded = decode_quoted_printable(&message.data);
        assert!(decoded.contains(&format!("\r\n{LINK}\r\n")), "plain part lost the link:\n{decoded}");
        let escaped = LINK.replace('&', "&amp;");
        assert!(decoded.contains(&format!("<a href=\"{escaped}\">")), "html part:\n{decoded}");
        assert!(decoded.contains("expires in 30 minutes"), "{decoded}");
        assert!(decoded.contains("Hello Jane Doe,"), "{decoded}");
    }

    #[tokio::test]
    async fn a_bad_recipient_is_an_error_and_nothing_is_sent() {
        let (addr, sink) = SmtpSink::start().await.unwrap();
        let mailer = Mailer::new(settings(addr.port())).unwrap();
        for bad in ["", "not an address", "jane@", "a@b\r\nBcc: evil@example.com"] {
            let result = mailer.send_password_link(bad, None, LINK, 30, "Acme", ResetPurpose::Reset).await;
            assert!(matches!(result, Err(MailError::InvalidRecipient(_))), "{bad:?}: {result:?}");
        }
        assert!(sink.messages().is_empty());
    }

    #[tokio::test]
    async fn an_unreachable_relay_is_a_send_error() {
        let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mailer = Mailer::new(settings(closed_port)).unwrap();
        let result =
            mailer.send_password_link("jane@example.org", None, LINK, 30, "Acme", ResetPurpose::Reset).await;
        assert!(matches!(result, Err(MailError::Send(_))), "{result:?}");
    }

    #[test]
    fn an_invitation_says_so_and_gives_its_lifetime_in_days() {
        let email = ResetEmail {
            greeting_name: None,
            link: "https://x.example/",
            expires_in_minutes: 7 * 24 * 60,
            tenant_name: "Acme".into(),
            purpose: ResetPurpose::Invite,
        };
        assert_eq!(email.subject(), "Your Acme account is ready");
        let text = email.text();
        assert!(text.contains("An administrator of Acme created an account for you."), "{text}");
        assert!(text.contains("expires in 7 days"), "{text}");
        assert!(!text.contains("reset"), "{text}");
    }

    #[test]
    fn a_bad_sender_is_refused_at_construction() {
        let bad = SmtpSettings { from: "Portcullis <nobody>".to_owned(), ..settings(25) };
        assert!(matches!(Mailer::new(bad), Err(MailError::InvalidSender(_))));
    }

    #[test]
    fn tls_modes_build() {
        for security in [SmtpSecurity::StartTls, SmtpSecurity::Tls] {
            let tls = SmtpSettings { host: "smtp.example.com".to_owned(), security, ..settings(587) };
            assert!(Mailer::new(tls).is_ok());
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let secret = SmtpSettings {
            username: Some("mailer".to_owned()),
            password: Some("hunter2-very-secret".to_owned()),
            ..settings(25)
        };
        let shown = format!("{secret:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<secret>") && shown.contains("mailer"), "{shown}");
    }

    #[test]
    fn names_cannot_inject_markup_or_headers() {
        let email = ResetEmail {
            greeting_name: Some(header_safe("<b>Eve</b>\r\nBcc: x@example.com")),
            link: "https://x.example/?a=1&b=\"2\"",
            expires_in_minutes: 15,
            tenant_name: header_safe("Acme & <Co>"),
            purpose: ResetPurpose::Reset,
        };
        assert_eq!(email.greeting_name.as_deref(), Some("<b>Eve</b>Bcc: x@example.com"));
        let html = email.html();
        assert!(html.contains("Hello &lt;b&gt;Eve&lt;/b&gt;Bcc: x@example.com,"), "{html}");
        assert!(html.contains("Acme &amp; &lt;Co&gt;"), "{html}");
        assert!(html.contains("href=\"https://x.example/?a=1&amp;b=&quot;2&quot;\""), "{html}");
        assert!(email.text().contains("https://x.example/?a=1&b=\"2\""));
    }
}
