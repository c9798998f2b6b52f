//! How a target's answers to a buy become outcomes: the profile's `[[buy.answer]]` rules.
//!
//! Rules are tried in order; the first whose status (and, if given, JSON value) matches decides.
//! An answer no rule matches is `unknown`, like a timeout: the harness cannot tell whether it
//! bought anything, so the checker treats it as "maybe". `sold_out` is a refusal the checker
//! knows by name (INV-5 judges it), so it is recorded as `rejected` with code `sold_out`
//! whatever the service calls it.

use serde_json::Value;

use super::template::pointed_text;
use crate::history::{Code, Outcome, SOLD_OUT};

/// What an answer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    Ok,
    SoldOut,
    Rejected,
    Unknown,
}

impl Meaning {
    pub fn parse(word: &str) -> Option<Meaning> {
        Some(match word {
            "ok" => Meaning::Ok,
            "sold_out" => Meaning::SoldOut,
            "rejected" => Meaning::Rejected,
            "unknown" => Meaning::Unknown,
            _ => return None,
        })
    }
}

/// Statuses a rule matches: exact codes, or whole classes written `"4xx"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusMatch {
    Exact(u16),
    Class(u16),
}

impl StatusMatch {
    fn matches(&self, status: u16) -> bool {
        match self {
            StatusMatch::Exact(code) => *code == status,
            StatusMatch::Class(class) => status / 100 == *class,
        }
    }

    /// `"4xx"` → a class; a number 100..=599 → exact.
    pub fn parse(value: &toml::Value) -> Option<StatusMatch> {
        match value {
            toml::Value::Integer(code) if (100..=599).contains(code) => {
                Some(StatusMatch::Exact(*code as u16))
            }
            toml::Value::String(text) => {
                let class = text.strip_suffix("xx")?.parse::<u16>().ok()?;
                (1..=5)
                    .contains(&class)
                    .then_some(StatusMatch::Class(class))
            }
            _ => None,
        }
    }
}

/// One `[[buy.answer]]` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerRule {
    /// Empty: any status.
    pub status: Vec<StatusMatch>,
    /// With `equals`: the value at this pointer must be one of them.
    pub pointer: Option<String>,
    pub equals: Vec<Value>,
    pub meaning: Meaning,
    /// Where a refusal's (or unknown's) code is in the body; overrides the profile-wide one.
    pub code: Option<String>,
}

impl AnswerRule {
    fn matches(&self, status: u16, body: Option<&Value>) -> bool {
        if !self.status.is_empty() && !self.status.iter().any(|s| s.matches(status)) {
            return false;
        }
        match &self.pointer {
            None => true,
            Some(pointer) => body
                .and_then(|b| b.pointer(pointer))
                .is_some_and(|found| self.equals.iter().any(|e| loose_equal(e, found))),
        }
    }
}

/// `"10"` in a rule matches `10` in an answer and the other way round: services disagree on
/// whether codes are numbers.
fn loose_equal(expected: &Value, found: &Value) -> bool {
    expected == found
        || match (expected, found) {
            (Value::String(s), Value::Number(n)) | (Value::Number(n), Value::String(s)) => {
                *s == n.to_string()
            }
            _ => false,
        }
}

/// The whole classification of a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Answers {
    pub rules: Vec<AnswerRule>,
    /// Where an `ok` answer names its order.
    pub order_id: String,
    /// Where a refusal's code is, for rules that do not say.
    pub code: Option<String>,
}

/// What one answer was classified as: outcome, code, order id.
pub type Classified = (Outcome, Option<Code>, Option<String>);

impl Answers {
    /// Classifies an answer that arrived (transport failures are classified by the caller).
    pub fn classify(&self, status: u16, body: &[u8]) -> Classified {
        let json: Option<Value> = serde_json::from_slice(body).ok();
        let rule = self.rules.iter().find(|r| r.matches(status, json.as_ref()));
        let code_at = rule
            .and_then(|r| r.code.as_deref())
            .or(self.code.as_deref());
        let code = || {
            code_at
                .and_then(|p| json.as_ref().and_then(|j| pointed_text(j, p)))
                .map(Code::from)
                .unwrap_or_else(|| Code::from(format!("http_{status}")))
        };
        match rule.map(|r| r.meaning) {
            Some(Meaning::Ok) => {
                match json.as_ref().and_then(|j| pointed_text(j, &self.order_id)) {
                    Some(id) => (Outcome::Ok, None, Some(id)),
                    None => (Outcome::Unknown, Some(Code::new("bad_response")), None),
                }
            }
            Some(Meaning::SoldOut) => (Outcome::Rejected, Some(Code::new(SOLD_OUT)), None),
            Some(Meaning::Rejected) => (Outcome::Rejected, Some(code()), None),
            Some(Meaning::Unknown) | None => (Outcome::Unknown, Some(code()), None),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rule(status: &[StatusMatch], meaning: Meaning) -> AnswerRule {
        AnswerRule {
            status: status.to_vec(),
            pointer: None,
            equals: Vec::new(),
            meaning,
            code: None,
        }
    }

    fn shop_answers() -> Answers {
        let by_result = |value: &str, meaning| AnswerRule {
            pointer: Some("/result".into()),
            equals: vec![json!(value)],
            ..rule(&[StatusMatch::Exact(200)], meaning)
        };
        Answers {
            rules: vec![
                by_result("confirmed", Meaning::Ok),
                by_result("sold_out", Meaning::SoldOut),
                AnswerRule {
                    code: Some("/result".into()),
                    ..rule(&[StatusMatch::Exact(200)], Meaning::Rejected)
                },
                rule(&[StatusMatch::Class(4)], Meaning::Rejected),
            ],
            order_id: "/purchase/ref".into(),
            code: Some("/problem/type".into()),
        }
    }

    #[test]
    fn sold_out_in_the_body_of_a_200_is_sold_out() {
        let a = shop_answers();
        let (outcome, code, id) = a.classify(200, br#"{"result":"sold_out"}"#);
        assert_eq!(
            (outcome, code.as_deref(), id),
            (Outcome::Rejected, Some(SOLD_OUT), None)
        );
        let ok = a.classify(200, br#"{"result":"confirmed","purchase":{"ref":"P-7"}}"#);
        assert_eq!((ok.0, ok.2.as_deref()), (Outcome::Ok, Some("P-7")));
        let limit = a.classify(200, br#"{"result":"limit_reached"}"#);
        assert_eq!(
            (limit.0, limit.1.as_deref()),
            (Outcome::Rejected, Some("limit_reached"))
        );
        let bad = a.classify(400, br#"{"problem":{"type":"bad_request"}}"#);
        assert_eq!(
            (bad.0, bad.1.as_deref()),
            (Outcome::Rejected, Some("bad_request"))
        );
    }

    #[test]
    fn an_ok_without_an_order_id_and_an_unmatched_answer_are_unknown() {
        let a = shop_answers();
        let no_id = a.classify(200, br#"{"result":"confirmed"}"#);
        assert_eq!(
            (no_id.0, no_id.1.as_deref()),
            (Outcome::Unknown, Some("bad_response"))
        );
        let overloaded = a.classify(503, b"<html>busy</html>");
        assert_eq!(
            (overloaded.0, overloaded.1.as_deref()),
            (Outcome::Unknown, Some("http_503"))
        );
    }

    #[test]
    fn statuses_parse_as_codes_or_classes() {
        assert_eq!(
            StatusMatch::parse(&toml::Value::Integer(409)),
            Some(StatusMatch::Exact(409))
        );
        assert_eq!(
            StatusMatch::parse(&toml::Value::String("5xx".into())),
            Some(StatusMatch::Class(5))
        );
        for bad in [
            toml::Value::Integer(42),
            toml::Value::String("4XX".into()),
            toml::Value::String("9xx".into()),
        ] {
            assert_eq!(StatusMatch::parse(&bad), None, "{bad:?}");
        }
        assert!(loose_equal(&json!("10"), &json!(10)));
        assert!(!loose_equal(&json!("10"), &json!(11)));
    }
}
