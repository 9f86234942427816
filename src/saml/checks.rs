//! The checks of SAML Core and the Web Browser SSO profile (Profiles §4.1.4.3) on a verified
//! Response: pure functions of what the signature covered, the connection and the time, so every
//! refusal is tested here without a server. The checks that need the store (the request it
//! answers, the replay cache, the directory) run in the sign-in's transaction (`acs`).

use std::collections::BTreeMap;

use samael::schema::{Assertion, Response};
use time::{Duration, OffsetDateTime};

use super::{refusal::Refusal, verify::Verified, xml::instant};

const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
const ENTITY_FORMAT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity";
/// How old an IssueInstant may be (beyond the skew): the browser posts an answer at once.
const MAX_ISSUE_AGE: Duration = Duration::minutes(5);
/// The longest a consumed assertion is remembered, whatever its own validity says; an assertion
/// valid for longer is refused rather than remembered for less.
pub const MAX_VALIDITY: Duration = Duration::hours(24);

/// What a Response must match.
pub struct Expected<'a> {
    pub acs_url: &'a str,
    pub sp_entity_id: &'a str,
    pub idp_entity_id: &'a str,
    pub skew: Duration,
    pub now: OffsetDateTime,
}

/// An assertion that passed every check that needs no store.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub assertion_id: String,
    /// The request it answers; None for an unsolicited (IdP-initiated) Response.
    pub in_response_to: Option<String>,
    pub name_id: String,
    pub name_id_format: Option<String>,
    pub session_index: Option<String>,
    /// The IdP's limit on the session (`SessionNotOnOrAfter`).
    pub session_not_on_or_after: Option<OffsetDateTime>,
    /// Until when the assertion ID must be remembered to refuse a replay.
    pub remember_until: OffsetDateTime,
    pub attributes: BTreeMap<String, Vec<String>>,
    pub authn_context: Option<String>,
}

/// samael speaks chrono; SAML instants carry whole seconds.
fn time_of(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub fn check(verified: &Verified, expected: &Expected<'_>) -> Result<Accepted, Refusal> {
    if let Some(response) = &verified.signed_response {
        check_response(response, expected)?;
    }
    if let Some(destination) = verified.unsigned_destination.as_deref().filter(|d| *d != expected.acs_url) {
        return Err(Refusal::Destination {
            found: destination.to_owned(),
            expected: expected.acs_url.to_owned(),
        });
    }
    let assertion = &verified.assertion;
    check_issuer(assertion.issuer.value.as_deref(), assertion.issuer.format.as_deref(), expected)?;
    check_issue_instant(time_of(assertion.issue_instant.timestamp()), expected)?;
    let conditions_end = check_conditions(assertion, expected)?;
    let (name_id, name_id_format) = subject_name(assertion)?;
    let confirmation = bearer_confirmation(assertion, expected)?;
    if let (Some(response), Some(answered)) = (&verified.signed_response, &confirmation.in_response_to) {
        if response.in_response_to.as_ref().is_some_and(|r| r != answered) {
            return Err(Refusal::Malformed(
                "the Response and its assertion answer different requests".into(),
            ));
        }
    }
    let statement =
        assertion.authn_statements.as_ref().and_then(|s| s.first()).ok_or(Refusal::NoAuthnStatement)?;
    let session_not_on_or_after = statement.session_not_on_or_after.map(|t| time_of(t.timestamp()));
    if let Some(end) = session_not_on_or_after.filter(|end| *end + expected.skew <= expected.now) {
        return Err(Refusal::Expired(instant(end)));
    }
    let valid_until =
        conditions_end.map_or(confirmation.not_on_or_after, |c| c.min(confirmation.not_on_or_after));
    if valid_until - expected.now > MAX_VALIDITY {
        return Err(Refusal::Malformed("the assertion claims to stay valid for more than 24 hours".into()));
    }
    Ok(Accepted {
        assertion_id: assertion.id.clone(),
        in_response_to: confirmation.in_response_to,
        name_id,
        name_id_format,
        session_index: statement.session_index.clone(),
        session_not_on_or_after,
        remember_until: valid_until + expected.skew,
        attributes: attributes(assertion),
        authn_context: statement
            .authn_context
            .as_ref()
            .and_then(|c| c.value.as_ref())
            .and_then(|r| r.value.clone()),
    })
}

/// A signed Response must name its Destination (SAML Bindings §3.5.5.2), and it must be us.
fn check_response(response: &Response, expected: &Expected<'_>) -> Result<(), Refusal> {
    match response.destination.as_deref() {
        Some(destination) if destination == expected.acs_url => {}
        found => {
            return Err(Refusal::Destination {
                found: found.unwrap_or("(none)").to_owned(),
                expected: expected.acs_url.to_owned(),
            });
        }
    }
    if let Some(issuer) = &response.issuer {
        check_issuer(issuer.value.as_deref(), issuer.format.as_deref(), expected)?;
    }
    check_issue_instant(time_of(response.issue_instant.timestamp()), expected)
}

fn check_issuer(value: Option<&str>, format: Option<&str>, expected: &Expected<'_>) -> Result<(), Refusal> {
    let value = value.map(str::trim).unwrap_or_default();
    if value != expected.idp_entity_id || format.is_some_and(|f| f != ENTITY_FORMAT) {
        return Err(Refusal::Issuer { found: value.to_owned(), expected: expected.idp_entity_id.to_owned() });
    }
    Ok(())
}

fn check_issue_instant(issued: OffsetDateTime, expected: &Expected<'_>) -> Result<(), Refusal> {
    if issued > expected.now + expected.skew {
        return Err(Refusal::NotYetValid(instant(issued)));
    }
    if issued + MAX_ISSUE_AGE + expected.skew < expected.now {
        return Err(Refusal::Expired(instant(issued + MAX_ISSUE_AGE)));
    }
    Ok(())
}

/// The validity window and the audience. Every AudienceRestriction must name us (Core §2.5.1.4),
/// and there must be one: an assertion for nobody in particular is an assertion for anybody.
fn check_conditions(
    assertion: &Assertion,
    expected: &Expected<'_>,
) -> Result<Option<OffsetDateTime>, Refusal> {
    let audience_missing = || Refusal::Audience { expected: expected.sp_entity_id.to_owned() };
    let conditions = assertion.conditions.as_ref().ok_or_else(audience_missing)?;
    if let Some(not_before) = conditions.not_before.map(|t| time_of(t.timestamp())) {
        if expected.now + expected.skew < not_before {
            return Err(Refusal::NotYetValid(instant(not_before)));
        }
    }
    let not_on_or_after = conditions.not_on_or_after.map(|t| time_of(t.timestamp()));
    if let Some(end) = not_on_or_after.filter(|end| *end + expected.skew <= expected.now) {
        return Err(Refusal::Expired(instant(end)));
    }
    let restrictions = conditions.audience_restrictions.as_deref().unwrap_or_default();
    if restrictions.is_empty()
        || !restrictions.iter().all(|r| r.audience.iter().any(|a| a.trim() == expected.sp_entity_id))
    {
        return Err(audience_missing());
    }
    Ok(not_on_or_after)
}

fn subject_name(assertion: &Assertion) -> Result<(String, Option<String>), Refusal> {
    let name_id = assertion.subject.as_ref().and_then(|s| s.name_id.as_ref()).ok_or(Refusal::NoSubject)?;
    let value = name_id.value.trim();
    if value.is_empty() {
        return Err(Refusal::NoSubject);
    }
    Ok((value.to_owned(), name_id.format.clone()))
}

struct Confirmation {
    in_response_to: Option<String>,
    not_on_or_after: OffsetDateTime,
}

/// The first bearer SubjectConfirmation that is for us and in its window (Profiles §4.1.4.2):
/// Recipient is our ACS URL, NotOnOrAfter is required and not passed, NotBefore not reached.
/// The refusal reported is the first bearer confirmation's.
fn bearer_confirmation(assertion: &Assertion, expected: &Expected<'_>) -> Result<Confirmation, Refusal> {
    let confirmations = assertion.subject.as_ref().and_then(|s| s.subject_confirmations.as_ref());
    let bearers = confirmations.into_iter().flatten().filter(|c| c.method.as_deref() == Some(BEARER));
    let mut first_refusal = None;
    for bearer in bearers {
        let outcome = (|| {
            let data = bearer.subject_confirmation_data.as_ref().ok_or(Refusal::NoBearerConfirmation)?;
            let recipient = data.recipient.as_deref().unwrap_or("(none)");
            if recipient != expected.acs_url {
                return Err(Refusal::Recipient {
                    found: recipient.to_owned(),
                    expected: expected.acs_url.to_owned(),
                });
            }
            let end =
                data.not_on_or_after.map(|t| time_of(t.timestamp())).ok_or(Refusal::NoBearerConfirmation)?;
            if end + expected.skew <= expected.now {
                return Err(Refusal::Expired(instant(end)));
            }
            if let Some(start) = data.not_before.map(|t| time_of(t.timestamp())) {
                if expected.now + expected.skew < start {
                    return Err(Refusal::NotYetValid(instant(start)));
                }
            }
            Ok(Confirmation { in_response_to: data.in_response_to.clone(), not_on_or_after: end })
        })();
        match outcome {
            Ok(confirmation) => return Ok(confirmation),
            Err(refusal) => {
                first_refusal.get_or_insert(refusal);
            }
        }
    }
    Err(first_refusal.unwrap_or(Refusal::NoBearerConfirmation))
}

/// Attribute name → values, in the order sent. Values without text are dropped.
fn attributes(assertion: &Assertion) -> BTreeMap<String, Vec<String>> {
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let statements = assertion.attribute_statements.iter().flatten();
    for attribute in statements.flat_map(|s| s.attributes.iter()) {
        let Some(name) = attribute.name.as_ref() else { continue };
        let values = attribute.values.iter().filter_map(|v| v.value.as_deref()).map(str::to_owned);
        found.entry(name.clone()).or_default().extend(values);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACS: &str = "https://sso.test/sso/saml/c/acs";
    const SP: &str = "https://sso.test/sso/saml/c/metadata";
    const IDP: &str = "https://idp.test/entity";

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    fn expected() -> Expected<'static> {
        Expected {
            acs_url: ACS,
            sp_entity_id: SP,
            idp_entity_id: IDP,
            skew: Duration::seconds(60),
            now: now(),
        }
    }

    /// An assertion as an IdP sends it, issued now and valid five minutes; `edit` rewrites it.
    fn assertion_xml() -> String {
        let (issued, end) = (instant(now()), instant(now() + Duration::minutes(5)));
        format!(
            r#"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_a1" Version="2.0" IssueInstant="{issued}">
<saml:Issuer>{IDP}</saml:Issuer>
<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">ada@corp.test</saml:NameID>
<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData InResponseTo="_r1" NotOnOrAfter="{end}" Recipient="{ACS}"/></saml:SubjectConfirmation></saml:Subject>
<saml:Conditions NotBefore="{issued}" NotOnOrAfter="{end}"><saml:AudienceRestriction><saml:Audience>{SP}</saml:Audience></saml:AudienceRestriction></saml:Conditions>
<saml:AuthnStatement AuthnInstant="{issued}" SessionIndex="_s1"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>
<saml:AttributeStatement><saml:Attribute Name="groups"><saml:AttributeValue>Sales</saml:AttributeValue><saml:AttributeValue>All</saml:AttributeValue></saml:Attribute></saml:AttributeStatement>
</saml:Assertion>"#
        )
    }

    fn verified(xml: &str) -> Verified {
        Verified {
            signed_response: None,
            unsigned_destination: None,
            assertion: xml.parse().unwrap(),
            encrypted: false,
        }
    }

    fn check_edited(from: &str, to: &str) -> Result<Accepted, Refusal> {
        let xml = assertion_xml();
        assert!(xml.contains(from), "{from}");
        check(&verified(&xml.replace(from, to)), &expected())
    }

    #[test]
    fn a_valid_assertion_is_accepted_with_its_facts() {
        let accepted = check(&verified(&assertion_xml()), &expected()).unwrap();
        assert_eq!(accepted.assertion_id, "_a1");
        assert_eq!(accepted.in_response_to.as_deref(), Some("_r1"));
        assert_eq!(accepted.name_id, "ada@corp.test");
        assert_eq!(accepted.session_index.as_deref(), Some("_s1"));
        assert_eq!(accepted.attributes["groups"], ["Sales", "All"]);
        assert_eq!(accepted.remember_until, now() + Duration::minutes(5) + Duration::seconds(60));
    }

    #[test]
    fn each_field_the_sp_must_match_is_checked() {
        let cases = [
            (format!("<saml:Issuer>{IDP}"), "<saml:Issuer>https://evil.test".to_owned(), "issuer"),
            (format!("Recipient=\"{ACS}\""), "Recipient=\"https://evil.test/acs\"".to_owned(), "recipient"),
            (format!("<saml:Audience>{SP}"), "<saml:Audience>https://other-sp.test".to_owned(), "audience"),
            ("Method=\"urn:oasis:names:tc:SAML:2.0:cm:bearer\"".to_owned(), "Method=\"urn:oasis:names:tc:SAML:2.0:cm:holder-of-key\"".to_owned(), "no_bearer_confirmation"),
            (
                "<saml:NameID Format=\"urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress\">ada@corp.test</saml:NameID>".to_owned(),
                String::new(),
                "no_subject",
            ),
        ];
        for (from, to, code) in cases {
            assert_eq!(check_edited(&from, &to).unwrap_err().code(), code, "{to}");
        }
    }

    #[test]
    fn an_assertion_without_audience_restriction_is_for_nobody() {
        let xml = assertion_xml();
        let start = xml.find("<saml:AudienceRestriction>").unwrap();
        let end = xml.find("</saml:AudienceRestriction>").unwrap() + "</saml:AudienceRestriction>".len();
        let stripped = format!("{}{}", &xml[..start], &xml[end..]);
        assert_eq!(check(&verified(&stripped), &expected()).unwrap_err().code(), "audience");
    }

    #[test]
    fn time_windows_are_enforced_beyond_the_skew_only() {
        let at = |offset: i64| OffsetDateTime::from_unix_timestamp(1_800_000_000 + offset).unwrap();
        let mut late = expected();
        late.now = at(5 * 60 + 59);
        assert!(check(&verified(&assertion_xml()), &late).is_ok(), "within the skew");
        late.now = at(5 * 60 + 60);
        assert_eq!(check(&verified(&assertion_xml()), &late).unwrap_err().code(), "expired");
        let mut early = expected();
        early.now = at(-61);
        assert_eq!(check(&verified(&assertion_xml()), &early).unwrap_err().code(), "not_yet_valid");
        early.now = at(-60);
        assert!(check(&verified(&assertion_xml()), &early).is_ok());
    }

    #[test]
    fn an_old_issue_instant_is_refused_even_inside_a_long_validity() {
        let mut expected = expected();
        let xml = assertion_xml()
            .replace(&instant(now() + Duration::minutes(5)), &instant(now() + Duration::hours(2)));
        expected.now = now() + Duration::minutes(7);
        assert_eq!(check(&verified(&xml), &expected).unwrap_err().code(), "expired");
    }

    #[test]
    fn an_assertion_valid_for_more_than_a_day_is_refused() {
        let far = instant(now() + Duration::days(2));
        let xml = assertion_xml().replace(&instant(now() + Duration::minutes(5)), &far);
        assert_eq!(check(&verified(&xml), &expected()).unwrap_err().code(), "malformed");
    }

    #[test]
    fn an_unsigned_envelope_addressed_elsewhere_is_refused_though_it_proves_nothing() {
        let mut elsewhere = verified(&assertion_xml());
        elsewhere.unsigned_destination = Some("https://evil.test/acs".into());
        assert_eq!(check(&elsewhere, &expected()).unwrap_err().code(), "destination");
        elsewhere.unsigned_destination = Some(ACS.into());
        assert!(check(&elsewhere, &expected()).is_ok());
    }

    #[test]
    fn an_unsolicited_assertion_is_accepted_here_and_judged_by_the_connection() {
        let accepted = check_edited("InResponseTo=\"_r1\" ", "").unwrap();
        assert_eq!(accepted.in_response_to, None);
    }

    #[test]
    fn a_signed_response_must_be_addressed_to_us_and_agree_with_its_assertion() {
        let response = |destination: &str, in_response_to: &str| {
            let xml = format!(
                r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_r" Version="2.0" IssueInstant="{}" {destination} InResponseTo="{in_response_to}"><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>{}</samlp:Response>"#,
                instant(now()),
                assertion_xml()
            );
            let response: Response = xml.parse().unwrap();
            Verified {
                assertion: response.assertion.clone().unwrap(),
                signed_response: Some(response),
                unsigned_destination: None,
                encrypted: false,
            }
        };
        let ok = response(&format!("Destination=\"{ACS}\""), "_r1");
        assert!(check(&ok, &expected()).is_ok());
        let elsewhere = response("Destination=\"https://evil.test/acs\"", "_r1");
        assert_eq!(check(&elsewhere, &expected()).unwrap_err().code(), "destination");
        let missing = response("", "_r1");
        assert_eq!(check(&missing, &expected()).unwrap_err().code(), "destination");
        let disagreeing = response(&format!("Destination=\"{ACS}\""), "_other");
        assert_eq!(check(&disagreeing, &expected()).unwrap_err().code(), "malformed");
    }
}
