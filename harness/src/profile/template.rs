//! Templates of a target profile: strings with `{placeholder}`s filled per run or per request,
//! and `${VAR}` secrets filled from the environment once, when the profile is read.
//!
//! Three renderings share one parsed form: as text (URLs, headers, commands), as a SQL literal
//! (each value quoted for PostgreSQL, so a value can never change a statement's shape), and as
//! JSON (a body given as a TOML table: a string that is exactly one placeholder takes the
//! value's own type — a number stays a number — and `{name?}` drops the field when the value is
//! absent). Every placeholder is checked against the names its key may use when the profile is
//! read, so a typo is an error naming the key and its line, never a literal `{qty}` on the wire.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::ProfileError;

/// Looks up `${VAR}`: the environment, or the values the command line supplies.
pub type VarLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Where a template came from: the dotted key and its line, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub key: String,
    pub line: usize,
}

impl Origin {
    pub fn new(key: impl Into<String>, line: usize) -> Self {
        Origin {
            key: key.into(),
            line,
        }
    }

    pub fn error(&self, problem: impl std::fmt::Display) -> ProfileError {
        ProfileError::Invalid {
            key: self.key.clone(),
            line: self.line,
            problem: problem.to_string(),
        }
    }
}

/// The values placeholders are filled with. A name absent from the map renders as an absent
/// value: empty text, SQL `NULL`, JSON `null` (or no field at all with `{name?}`).
pub type Values = HashMap<&'static str, Value>;

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Slot { name: String, optional: bool },
}

/// A string with placeholders, `${VAR}`s already resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`, resolving `${VAR}` and `${VAR:-default}` through `vars` and refusing any
    /// `{name}` not in `allowed`. `{{` and `}}` stand for literal braces.
    pub fn parse(
        text: &str,
        allowed: &[&str],
        vars: VarLookup,
        origin: &Origin,
    ) -> Result<Template, ProfileError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '$' if chars.peek().map(|(_, n)| *n) == Some('{') => {
                    chars.next();
                    let rest = &text[at + 2..];
                    let end = rest.find('}').ok_or_else(|| {
                        origin.error(format!("`${{` at column {} is never closed", at + 1))
                    })?;
                    let spec = &rest[..end];
                    literal.push_str(&resolve_var(spec, vars, origin)?);
                    for _ in 0..spec.chars().count() + 1 {
                        chars.next();
                    }
                }
                '{' if chars.peek().map(|(_, n)| *n) == Some('{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().map(|(_, n)| *n) == Some('}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let rest = &text[at + 1..];
                    let end = rest.find('}').ok_or_else(|| {
                        origin.error(format!(
                            "`{{` at column {} is never closed (write `{{{{` for a literal brace)",
                            at + 1
                        ))
                    })?;
                    let spec = &rest[..end];
                    let (name, optional) = match spec.strip_suffix('?') {
                        Some(name) => (name, true),
                        None => (spec, false),
                    };
                    if !allowed.contains(&name) {
                        return Err(origin.error(format!(
                            "unknown placeholder {{{spec}}}; here you may use {}",
                            list(allowed)
                        )));
                    }
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Slot {
                        name: name.to_owned(),
                        optional,
                    });
                    for _ in 0..spec.chars().count() + 1 {
                        chars.next();
                    }
                }
                '}' => {
                    return Err(origin.error(format!(
                        "a lone `}}` at column {} (write `}}}}` for a literal brace)",
                        at + 1
                    )));
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Template { parts })
    }

    /// A template that is fixed text.
    pub fn literal(text: &str) -> Template {
        Template {
            parts: vec![Part::Text(text.to_owned())],
        }
    }

    /// The placeholder names the template uses.
    pub fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Slot { name, .. } => Some(name.as_str()),
            Part::Text(_) => None,
        })
    }

    /// The single placeholder this template consists of, if that is all it is.
    fn whole_slot(&self) -> Option<(&str, bool)> {
        match self.parts.as_slice() {
            [Part::Slot { name, optional }] => Some((name, *optional)),
            _ => None,
        }
    }

    /// Renders as text: strings as they are, numbers in decimal, absent values as nothing.
    pub fn render(&self, values: &Values) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Slot { name, .. } => out.push_str(&as_text(values.get(name.as_str()))),
            }
        }
        out
    }

    /// Renders as SQL: every value becomes a literal (`'text'` with quotes doubled, numbers
    /// bare, absent values `NULL`), so no value can change what the statement does.
    pub fn render_sql(&self, values: &Values) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Slot { name, .. } => out.push_str(&sql_literal(values.get(name.as_str()))),
            }
        }
        out
    }
}

fn resolve_var(spec: &str, vars: VarLookup, origin: &Origin) -> Result<String, ProfileError> {
    let (name, default) = match spec.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (spec, None),
    };
    let valid = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !valid {
        return Err(origin.error(format!(
            "`${{{spec}}}` does not name an environment variable (letters, digits and _)"
        )));
    }
    match (vars(name), default) {
        (Some(value), _) => Ok(value),
        (None, Some(default)) => Ok(default.to_owned()),
        (None, None) => Err(origin.error(format!(
            "${{{name}}} is not set: export it, or give a default as ${{{name}:-…}}"
        ))),
    }
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        return "none".to_owned();
    }
    names
        .iter()
        .map(|n| format!("{{{n}}}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn as_text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn sql_literal(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "NULL".to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::String(s)) => format!("'{}'", s.replace('\'', "''")),
        Some(other) => format!("'{}'", other.to_string().replace('\'', "''")),
    }
}

/// A JSON body given as a TOML value: its strings are templates.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonTemplate {
    Literal(Value),
    /// A string with text around its placeholders (or none): always a JSON string.
    Text(Template),
    /// A string that is exactly one placeholder: the value with its own type.
    Whole {
        name: String,
        optional: bool,
    },
    Array(Vec<JsonTemplate>),
    Object(Vec<(String, JsonTemplate)>),
}

impl JsonTemplate {
    /// Parses a TOML value into a JSON template, checking every placeholder against `allowed`.
    pub fn parse(
        value: &toml::Value,
        allowed: &[&str],
        vars: VarLookup,
        origin: &Origin,
    ) -> Result<JsonTemplate, ProfileError> {
        Ok(match value {
            toml::Value::String(text) => {
                let template = Template::parse(text, allowed, vars, origin)?;
                match template.whole_slot() {
                    Some((name, optional)) => JsonTemplate::Whole {
                        name: name.to_owned(),
                        optional,
                    },
                    None => JsonTemplate::Text(template),
                }
            }
            toml::Value::Integer(i) => JsonTemplate::Literal(Value::from(*i)),
            toml::Value::Float(f) => JsonTemplate::Literal(Value::from(*f)),
            toml::Value::Boolean(b) => JsonTemplate::Literal(Value::from(*b)),
            toml::Value::Datetime(d) => JsonTemplate::Literal(Value::from(d.to_string())),
            toml::Value::Array(items) => JsonTemplate::Array(
                items
                    .iter()
                    .map(|item| JsonTemplate::parse(item, allowed, vars, origin))
                    .collect::<Result<_, _>>()?,
            ),
            toml::Value::Table(table) => JsonTemplate::Object(
                table
                    .iter()
                    .map(|(key, item)| {
                        let origin = Origin::new(format!("{}.{key}", origin.key), origin.line);
                        Ok((
                            key.clone(),
                            JsonTemplate::parse(item, allowed, vars, &origin)?,
                        ))
                    })
                    .collect::<Result<_, ProfileError>>()?,
            ),
        })
    }

    /// The placeholder names the body uses anywhere.
    pub fn placeholders(&self) -> Vec<&str> {
        match self {
            JsonTemplate::Literal(_) => Vec::new(),
            JsonTemplate::Text(t) => t.placeholders().collect(),
            JsonTemplate::Whole { name, .. } => vec![name.as_str()],
            JsonTemplate::Array(items) => items.iter().flat_map(|i| i.placeholders()).collect(),
            JsonTemplate::Object(fields) => {
                fields.iter().flat_map(|(_, f)| f.placeholders()).collect()
            }
        }
    }

    /// Renders the body; `None` only for an optional placeholder whose value is absent (the
    /// enclosing object then leaves the field out).
    pub fn render(&self, values: &Values) -> Option<Value> {
        match self {
            JsonTemplate::Literal(v) => Some(v.clone()),
            JsonTemplate::Text(t) => Some(Value::String(t.render(values))),
            JsonTemplate::Whole { name, optional } => match values.get(name.as_str()) {
                None | Some(Value::Null) if *optional => None,
                None => Some(Value::Null),
                Some(v) => Some(v.clone()),
            },
            JsonTemplate::Array(items) => Some(Value::Array(
                items.iter().filter_map(|i| i.render(values)).collect(),
            )),
            JsonTemplate::Object(fields) => {
                let mut map = Map::with_capacity(fields.len());
                for (key, field) in fields {
                    if let Some(v) = field.render(values) {
                        map.insert(key.clone(), v);
                    }
                }
                Some(Value::Object(map))
            }
        }
    }
}

/// Checks that `pointer` is a JSON pointer (RFC 6901: empty, or `/`-separated tokens).
pub fn check_pointer(pointer: &str, origin: &Origin) -> Result<(), ProfileError> {
    if pointer.is_empty() || pointer.starts_with('/') {
        Ok(())
    } else {
        Err(origin.error(format!(
            "`{pointer}` is not a JSON pointer: it starts with `/`, e.g. \"/{pointer}\""
        )))
    }
}

/// The text of the value a pointer finds: strings as they are, numbers in decimal (services
/// often number their orders), anything else `None`.
pub fn pointed_text(document: &Value, pointer: &str) -> Option<String> {
    match document.pointer(pointer)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn no_vars(_: &str) -> Option<String> {
        None
    }

    fn origin() -> Origin {
        Origin::new("buy.url", 7)
    }

    fn values() -> Values {
        let mut v = Values::new();
        v.insert("sale_id", json!("s-1"));
        v.insert("quantity", json!(3));
        v.insert("buyer_id", json!("O'Brien"));
        v
    }

    #[test]
    fn text_placeholders_render_and_braces_escape() {
        let t = Template::parse(
            "/sales/{sale_id}/orders?q={quantity}&x={{y}}",
            &["sale_id", "quantity"],
            &no_vars,
            &origin(),
        )
        .unwrap();
        assert_eq!(t.render(&values()), "/sales/s-1/orders?q=3&x={y}");
    }

    #[test]
    fn an_unknown_placeholder_names_the_key_the_line_and_the_choices() {
        let err = Template::parse("/x/{qty}", &["quantity"], &no_vars, &origin())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("buy.url")
                && err.contains("line 7")
                && err.contains("{qty}")
                && err.contains("{quantity}"),
            "{err}"
        );
        for bad in ["/x/{sale_id", "/x/}", "${1X}", "${NOT_SET_ANYWHERE_X}"] {
            assert!(
                Template::parse(bad, &["sale_id"], &no_vars, &origin()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn environment_variables_resolve_once_with_defaults() {
        let vars = |name: &str| (name == "TOKEN").then(|| "s3cret".to_owned());
        let t = Template::parse(
            "Bearer ${TOKEN} ${MISSING:-fallback}",
            &[],
            &vars,
            &origin(),
        )
        .unwrap();
        assert_eq!(t.render(&Values::new()), "Bearer s3cret fallback");
        let err = Template::parse("${MISSING}", &[], &vars, &origin())
            .unwrap_err()
            .to_string();
        assert!(err.contains("MISSING") && err.contains("export"), "{err}");
    }

    #[test]
    fn sql_values_are_quoted_literals() {
        let t = Template::parse(
            "SELECT * FROM t WHERE id = {sale_id} AND who = {buyer_id} AND n = {quantity} AND c = {cap}",
            &["sale_id", "buyer_id", "quantity", "cap"],
            &no_vars,
            &origin(),
        )
        .unwrap();
        assert_eq!(
            t.render_sql(&values()),
            "SELECT * FROM t WHERE id = 's-1' AND who = 'O''Brien' AND n = 3 AND c = NULL"
        );
    }

    #[test]
    fn json_bodies_keep_types_and_drop_absent_optional_fields() {
        let body: toml::Value = toml::from_str(
            r#"buyer = "{buyer_id}"
qty = "{quantity}"
label = "n={quantity}"
product = "{product_id?}"
cap = "{cap}"
fixed = [1, true]"#,
        )
        .unwrap();
        let t = JsonTemplate::parse(
            &body,
            &["buyer_id", "quantity", "product_id", "cap"],
            &no_vars,
            &origin(),
        )
        .unwrap();
        assert_eq!(
            t.render(&values()).unwrap(),
            json!({"buyer": "O'Brien", "qty": 3, "label": "n=3", "cap": null, "fixed": [1, true]})
        );
        let mut with_product = values();
        with_product.insert("product_id", json!("p-9"));
        assert_eq!(t.render(&with_product).unwrap()["product"], json!("p-9"));
    }

    #[test]
    fn pointers_must_start_with_a_slash_and_read_numbers_as_text() {
        assert!(check_pointer("/a/0", &origin()).is_ok());
        assert!(check_pointer("a", &origin()).is_err());
        let doc = json!({"order": {"id": 17, "ref": "P-1", "list": []}});
        assert_eq!(pointed_text(&doc, "/order/id").as_deref(), Some("17"));
        assert_eq!(pointed_text(&doc, "/order/ref").as_deref(), Some("P-1"));
        assert_eq!(pointed_text(&doc, "/order/list"), None);
        assert_eq!(pointed_text(&doc, "/nothing"), None);
    }
}
