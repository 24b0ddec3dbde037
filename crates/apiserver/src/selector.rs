//! Kubernetes label and field selectors.
//!
//! Owns parsing, validation, matching and canonical printing of the `labelSelector` and
//! `fieldSelector` query parameters of list and watch requests, and of `metav1.LabelSelector`
//! objects (Deployment `spec.selector`, Service selectors as match labels). It does not
//! decide which fields a resource allows in a field selector: any dotted JSON path into the
//! object works, and a missing field compares as the empty string.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

/// Why a selector could not be parsed or built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The selector is not valid; the message names the offending part (answered as HTTP 400).
    #[error("{0}")]
    Invalid(String),
}

/// Longest label value and name part of a label key.
const LABEL_NAME_LEN_MAX: usize = 63;
/// Longest DNS subdomain, the optional prefix of a label key.
const DNS_SUBDOMAIN_LEN_MAX: usize = 253;
/// Characters that end a key or value token in the string form of a label selector.
const LABEL_SELECTOR_SPECIALS: &[char] = &['=', '!', '<', '>', '(', ')', ','];

// ---------------------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------------------

/// How a [`Requirement`] compares a label with its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operator {
    /// `key=value` or `key==value`: the label is present with this value.
    Equals,
    /// `key!=value`: the label is absent or has another value.
    NotEquals,
    /// `key in (v1,v2)`: the label is present with one of the values.
    In,
    /// `key notin (v1,v2)`: the label is absent or has none of the values.
    NotIn,
    /// `key`: the label is present.
    Exists,
    /// `!key`: the label is absent.
    DoesNotExist,
    /// `key>n`: the label is present and is an integer greater than `n`.
    GreaterThan,
    /// `key<n`: the label is present and is an integer less than `n`.
    LessThan,
}

/// One condition of a label selector on one label key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Requirement {
    /// The label key (validated).
    key: String,
    /// How the label is compared.
    operator: Operator,
    /// The values compared with (validated; sorted, so printing is canonical).
    values: BTreeSet<String>,
}

impl Requirement {
    /// Builds a requirement, validating the key, each value and the number of values the
    /// operator takes (one for `=`, `!=`, `>`, `<`; at least one for `in`, `notin`; none for
    /// exists and does-not-exist).
    pub fn new<I, S>(key: &str, operator: Operator, values: I) -> Result<Requirement, SelectorError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        validate_label_key(key)?;
        let values: BTreeSet<String> = values.into_iter().map(Into::into).collect();
        let count_ok = match operator {
            Operator::Equals | Operator::NotEquals | Operator::GreaterThan | Operator::LessThan => {
                values.len() == 1
            }
            Operator::In | Operator::NotIn => !values.is_empty(),
            Operator::Exists | Operator::DoesNotExist => values.is_empty(),
        };
        if !count_ok {
            return Err(SelectorError::Invalid(format!(
                "operator {} on key {key:?} takes {}, got {} values",
                operator_name(operator),
                match operator {
                    Operator::In | Operator::NotIn => "at least one value",
                    Operator::Exists | Operator::DoesNotExist => "no values",
                    _ => "exactly one value",
                },
                values.len()
            )));
        }
        for value in &values {
            match operator {
                Operator::GreaterThan | Operator::LessThan => {
                    if value.parse::<i64>().is_err() {
                        return Err(SelectorError::Invalid(format!(
                            "operator {} on key {key:?} needs an integer value, got {value:?}",
                            operator_name(operator)
                        )));
                    }
                }
                _ => validate_label_value(value)?,
            }
        }
        Ok(Requirement {
            key: key.to_owned(),
            operator,
            values,
        })
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The comparison.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, sorted.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.values.iter().map(String::as_str)
    }

    /// Whether `labels` satisfy this requirement. A label whose value is not a string is
    /// present but equal to no value.
    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        let present = labels.contains_key(&self.key);
        let value = labels.get(&self.key).and_then(Value::as_str);
        let listed = || value.is_some_and(|value| self.values.contains(value));
        let compare = |wanted: std::cmp::Ordering| {
            let label = value.and_then(|value| value.parse::<i64>().ok());
            let bound = self
                .values
                .first()
                .and_then(|bound| bound.parse::<i64>().ok());
            matches!((label, bound), (Some(label), Some(bound)) if label.cmp(&bound) == wanted)
        };
        match self.operator {
            Operator::Equals | Operator::In => listed(),
            Operator::NotEquals | Operator::NotIn => !listed(),
            Operator::Exists => present,
            Operator::DoesNotExist => !present,
            Operator::GreaterThan => compare(std::cmp::Ordering::Greater),
            Operator::LessThan => compare(std::cmp::Ordering::Less),
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = &self.key;
        let first = self.values.first().map(String::as_str).unwrap_or_default();
        let list = || {
            self.values
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(",")
        };
        match self.operator {
            Operator::Equals => write!(f, "{key}={first}"),
            Operator::NotEquals => write!(f, "{key}!={first}"),
            Operator::In => write!(f, "{key} in ({})", list()),
            Operator::NotIn => write!(f, "{key} notin ({})", list()),
            Operator::Exists => write!(f, "{key}"),
            Operator::DoesNotExist => write!(f, "!{key}"),
            Operator::GreaterThan => write!(f, "{key}>{first}"),
            Operator::LessThan => write!(f, "{key}<{first}"),
        }
    }
}

/// A label selector: the AND of its [`Requirement`]s. The empty selector selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct LabelSelector {
    /// Sorted and deduplicated, so equal selectors compare and print equal.
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// The selector that selects every object.
    pub fn everything() -> LabelSelector {
        LabelSelector::default()
    }

    /// A selector of these requirements, in canonical (sorted) order.
    pub fn from_requirements(mut requirements: Vec<Requirement>) -> LabelSelector {
        requirements.sort();
        requirements.dedup();
        LabelSelector { requirements }
    }

    /// Parses the query-string form: comma-separated requirements, all of which must hold:
    /// `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, `a>1`, `a<1`.
    /// Whitespace around tokens is ignored; the empty string selects everything.
    pub fn parse(text: &str) -> Result<LabelSelector, SelectorError> {
        if text.trim().is_empty() {
            return Ok(LabelSelector::everything());
        }
        let requirements = split_requirements(text)?
            .into_iter()
            .map(parse_requirement)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LabelSelector::from_requirements(requirements))
    }

    /// Builds a selector from a `metav1.LabelSelector` JSON object (`matchLabels` and
    /// `matchExpressions` with operators `In`, `NotIn`, `Exists`, `DoesNotExist`).
    /// `null` or an empty object selects everything.
    pub fn from_label_selector(value: &Value) -> Result<LabelSelector, SelectorError> {
        let fields = match value {
            Value::Null => return Ok(LabelSelector::everything()),
            Value::Object(fields) => fields,
            other => {
                return Err(SelectorError::Invalid(format!(
                    "a label selector must be an object, got {other}"
                )));
            }
        };
        let mut requirements = Vec::new();
        match fields.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(match_labels)) => {
                for (key, value) in match_labels {
                    let Value::String(value) = value else {
                        return Err(SelectorError::Invalid(format!(
                            "matchLabels value of {key:?} must be a string, got {value}"
                        )));
                    };
                    requirements.push(Requirement::new(key, Operator::Equals, [value.as_str()])?);
                }
            }
            Some(other) => {
                return Err(SelectorError::Invalid(format!(
                    "matchLabels must be an object, got {other}"
                )));
            }
        }
        match fields.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(expressions)) => {
                for expression in expressions {
                    requirements.push(match_expression(expression)?);
                }
            }
            Some(other) => {
                return Err(SelectorError::Invalid(format!(
                    "matchExpressions must be a list, got {other}"
                )));
            }
        }
        Ok(LabelSelector::from_requirements(requirements))
    }

    /// The requirements, in canonical order.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether an object with these labels is selected (`None`: the object has no labels).
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let no_labels = Map::new();
        let labels = labels.unwrap_or(&no_labels);
        self.requirements
            .iter()
            .all(|requirement| requirement.matches(labels))
    }

    /// Whether `object` is selected, by its `metadata.labels`.
    pub fn matches_object(&self, object: &Value) -> bool {
        let labels = object
            .get("metadata")
            .and_then(|metadata| metadata.get("labels"))
            .and_then(Value::as_object);
        self.matches(labels)
    }

    /// Whether this selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

impl fmt::Display for LabelSelector {
    /// The canonical string form (`app=web,tier in (a,b)`), which [`LabelSelector::parse`]
    /// reads back to an equal selector.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, requirement) in self.requirements.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

impl FromStr for LabelSelector {
    type Err = SelectorError;

    fn from_str(text: &str) -> Result<LabelSelector, SelectorError> {
        LabelSelector::parse(text)
    }
}

/// The name of an operator in error messages.
fn operator_name(operator: Operator) -> &'static str {
    match operator {
        Operator::Equals => "'='",
        Operator::NotEquals => "'!='",
        Operator::In => "'in'",
        Operator::NotIn => "'notin'",
        Operator::Exists => "'exists'",
        Operator::DoesNotExist => "'!'",
        Operator::GreaterThan => "'>'",
        Operator::LessThan => "'<'",
    }
}

/// One `matchExpressions` entry as a requirement.
fn match_expression(expression: &Value) -> Result<Requirement, SelectorError> {
    let invalid =
        |why: &str| SelectorError::Invalid(format!("matchExpressions entry {expression}: {why}"));
    let key = expression
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("key must be a string"))?;
    let operator = match expression.get("operator").and_then(Value::as_str) {
        Some("In") => Operator::In,
        Some("NotIn") => Operator::NotIn,
        Some("Exists") => Operator::Exists,
        Some("DoesNotExist") => Operator::DoesNotExist,
        Some(other) => {
            return Err(SelectorError::Invalid(format!(
                "{other:?} is not a valid label selector operator"
            )));
        }
        None => return Err(invalid("operator must be a string")),
    };
    let values = match expression.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(values)) => values
            .iter()
            .map(|value| {
                value
                    .as_str()
                    .ok_or_else(|| invalid("values must be strings"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(invalid("values must be a list")),
    };
    Requirement::new(key, operator, values)
}

/// Splits the string form at the commas that separate requirements (not those inside a
/// value set), checking that parentheses balance.
fn split_requirements(text: &str) -> Result<Vec<&str>, SelectorError> {
    let mut parts = Vec::new();
    let mut depth = 0_usize;
    let mut start = 0;
    for (index, character) in text.char_indices() {
        match character {
            '(' => depth += 1,
            ')' => {
                depth = depth.checked_sub(1).ok_or_else(|| {
                    SelectorError::Invalid(format!(
                        "unable to parse requirement: {:?}: unbalanced ')'",
                        text[start..].trim()
                    ))
                })?;
            }
            ',' if depth == 0 => {
                parts.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    Ok(parts)
}

/// Parses one requirement of the string form.
fn parse_requirement(part: &str) -> Result<Requirement, SelectorError> {
    let part = part.trim();
    let fail =
        |why: &str| SelectorError::Invalid(format!("unable to parse requirement: {part:?}: {why}"));
    let wrap = |error: SelectorError| match error {
        SelectorError::Invalid(why) => fail(&why),
    };
    if part.is_empty() {
        return Err(fail("empty requirement (stray ',')"));
    }
    if let Some(key) = part.strip_prefix('!') {
        let key = key.trim();
        if !is_token(key) {
            return Err(fail("expected a single key after '!'"));
        }
        return Requirement::new(key, Operator::DoesNotExist, Vec::<String>::new()).map_err(wrap);
    }
    let key_end = part.find(is_token_end).unwrap_or(part.len());
    let (key, rest) = part.split_at(key_end);
    if key.is_empty() {
        return Err(fail("expected a key"));
    }
    let rest = rest.trim_start();
    if rest.is_empty() {
        return Requirement::new(key, Operator::Exists, Vec::<String>::new()).map_err(wrap);
    }
    let single = [
        ("==", Operator::Equals),
        ("=", Operator::Equals),
        ("!=", Operator::NotEquals),
        (">", Operator::GreaterThan),
        ("<", Operator::LessThan),
    ];
    for (symbol, operator) in single {
        if let Some(value) = rest.strip_prefix(symbol) {
            let value = value.trim();
            if !value.is_empty() && !is_token(value) {
                return Err(fail("expected a single value after the operator"));
            }
            return Requirement::new(key, operator, [value]).map_err(wrap);
        }
    }
    let word_end = rest.find(is_token_end).unwrap_or(rest.len());
    let (word, set) = rest.split_at(word_end);
    let operator = match word {
        "in" => Operator::In,
        "notin" => Operator::NotIn,
        _ => {
            return Err(fail(
                "expected an operator ('=', '==', '!=', 'in', 'notin', '>' or '<') after the key",
            ));
        }
    };
    let set = set.trim();
    let Some(inner) = set.strip_prefix('(') else {
        return Err(fail("expected '(' after 'in' or 'notin'"));
    };
    let Some(inner) = inner.strip_suffix(')') else {
        return Err(fail("missing ')'"));
    };
    let mut values = Vec::new();
    for value in inner.split(',') {
        let value = value.trim();
        if !value.is_empty() && !is_token(value) {
            return Err(fail("expected values separated by ',' inside '(...)'"));
        }
        values.push(value);
    }
    Requirement::new(key, operator, values).map_err(wrap)
}

/// Whether `character` ends a key, operator word or value in the string form.
fn is_token_end(character: char) -> bool {
    character.is_whitespace() || LABEL_SELECTOR_SPECIALS.contains(&character)
}

/// Whether `text` is one non-empty key or value token.
fn is_token(text: &str) -> bool {
    !text.is_empty() && !text.contains(is_token_end)
}

/// Checks a label key: an optional DNS subdomain prefix and `/`, then a name of at most 63
/// characters of `[A-Za-z0-9._-]` that starts and ends with a letter or digit.
fn validate_label_key(key: &str) -> Result<(), SelectorError> {
    let invalid = |why: String| SelectorError::Invalid(format!("invalid label key {key:?}: {why}"));
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        check_dns_subdomain(prefix).map_err(|why| invalid(format!("prefix part {why}")))?;
    }
    if name.is_empty() {
        return Err(invalid("name part must not be empty".to_owned()));
    }
    check_label_name(name).map_err(|why| invalid(format!("name part {why}")))
}

/// Checks a label value: empty, or at most 63 characters of `[A-Za-z0-9._-]` that start and
/// end with a letter or digit.
fn validate_label_value(value: &str) -> Result<(), SelectorError> {
    if value.is_empty() {
        return Ok(());
    }
    check_label_name(value)
        .map_err(|why| SelectorError::Invalid(format!("invalid label value {value:?}: {why}")))
}

/// The rules shared by label values and the name part of label keys (non-empty input).
fn check_label_name(name: &str) -> Result<(), String> {
    if name.len() > LABEL_NAME_LEN_MAX {
        return Err(format!("must be {LABEL_NAME_LEN_MAX} characters or less"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err("must consist of alphanumeric characters, '-', '_' or '.'".to_owned());
    }
    if !starts_and_ends_alphanumeric(name) {
        return Err("must start and end with an alphanumeric character".to_owned());
    }
    Ok(())
}

/// RFC 1123 subdomain: dot-separated labels of `[a-z0-9-]`, each starting and ending with a
/// letter or digit, at most 253 characters in all.
fn check_dns_subdomain(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if name.len() > DNS_SUBDOMAIN_LEN_MAX {
        return Err(format!(
            "must be {DNS_SUBDOMAIN_LEN_MAX} characters or less"
        ));
    }
    let valid = name.split('.').all(|label| {
        label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && starts_and_ends_alphanumeric(label)
    });
    if valid {
        Ok(())
    } else {
        Err("must be a lowercase RFC 1123 subdomain".to_owned())
    }
}

/// Whether `text` is non-empty and starts and ends with an ASCII letter or digit.
fn starts_and_ends_alphanumeric(text: &str) -> bool {
    let mut chars = text.chars();
    let first = chars.next();
    let last = chars.next_back().or(first);
    matches!((first, last), (Some(first), Some(last))
        if first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric())
}

// ---------------------------------------------------------------------------------------
// Field selectors
// ---------------------------------------------------------------------------------------

/// How a [`FieldRequirement`] compares a field with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// `path=value` or `path==value`.
    Equals,
    /// `path!=value`.
    NotEquals,
}

/// One condition of a field selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldRequirement {
    /// Dotted JSON path into the object, e.g. `involvedObject.name`.
    path: String,
    /// How the field is compared.
    operator: FieldOperator,
    /// The value compared with, unescaped.
    value: String,
}

impl FieldRequirement {
    /// The dotted JSON path of the field.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The comparison.
    pub fn operator(&self) -> FieldOperator {
        self.operator
    }

    /// The value compared with.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether `object` satisfies this requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let actual = field_value(object, &self.path);
        match self.operator {
            FieldOperator::Equals => actual == self.value,
            FieldOperator::NotEquals => actual != self.value,
        }
    }
}

impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let operator = match self.operator {
            FieldOperator::Equals => "=",
            FieldOperator::NotEquals => "!=",
        };
        write!(f, "{}{operator}", self.path)?;
        for character in self.value.chars() {
            if matches!(character, '\\' | ',' | '=') {
                f.write_str("\\")?;
            }
            write!(f, "{character}")?;
        }
        Ok(())
    }
}

/// A field selector: the AND of `path=value`, `path==value` and `path!=value` requirements
/// on dotted JSON paths (`metadata.name`, `spec.nodeName`, `involvedObject.uid`, `type`...).
/// A missing or `null` field compares as `""`; numbers and booleans compare by their JSON
/// text (`spec.unschedulable=true`). The empty selector selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FieldSelector {
    /// In the order given.
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// The selector that selects every object.
    pub fn everything() -> FieldSelector {
        FieldSelector::default()
    }

    /// Parses the query-string form. In values, `\,`, `\=` and `\\` stand for `,`, `=` and
    /// `\`; whitespace around paths and values is ignored.
    pub fn parse(text: &str) -> Result<FieldSelector, SelectorError> {
        if text.trim().is_empty() {
            return Ok(FieldSelector::everything());
        }
        let requirements = split_escaped_terms(text)
            .into_iter()
            .map(parse_field_requirement)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FieldSelector { requirements })
    }

    /// The requirements, in the order given.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// Whether `object` is selected.
    pub fn matches(&self, object: &Value) -> bool {
        self.requirements
            .iter()
            .all(|requirement| requirement.matches(object))
    }

    /// Whether this selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The name `X` if the selector is exactly `metadata.name=X` (as `kubectl wait` and
    /// `delete` send it), which lets a list be served as a point read.
    pub fn exact_name(&self) -> Option<&str> {
        match self.requirements.as_slice() {
            [only] if only.path == "metadata.name" && only.operator == FieldOperator::Equals => {
                Some(&only.value)
            }
            _ => None,
        }
    }
}

impl fmt::Display for FieldSelector {
    /// The string form, with `\`, `,` and `=` in values escaped; parses back to an equal
    /// selector.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, requirement) in self.requirements.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

impl FromStr for FieldSelector {
    type Err = SelectorError;

    fn from_str(text: &str) -> Result<FieldSelector, SelectorError> {
        FieldSelector::parse(text)
    }
}

/// Splits at commas that are not escaped with `\` (escapes are kept for the term parser).
fn split_escaped_terms(text: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (index, character) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if character == '\\' {
            escaped = true;
        } else if character == ',' {
            terms.push(&text[start..index]);
            start = index + 1;
        }
    }
    terms.push(&text[start..]);
    terms
}

/// Parses one `path<op>value` term.
fn parse_field_requirement(term: &str) -> Result<FieldRequirement, SelectorError> {
    let fail =
        |why: &str| SelectorError::Invalid(format!("invalid field selector term {term:?}: {why}"));
    // The first unescaped operator splits the term; `!=` and `==` win over `=`.
    let mut split = None;
    let mut escaped = false;
    for (index, character) in term.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        let rest = &term[index..];
        if character == '\\' {
            escaped = true;
        } else if rest.starts_with("!=") {
            split = Some((index, 2, FieldOperator::NotEquals));
        } else if rest.starts_with("==") {
            split = Some((index, 2, FieldOperator::Equals));
        } else if character == '=' {
            split = Some((index, 1, FieldOperator::Equals));
        }
        if split.is_some() {
            break;
        }
    }
    let Some((index, length, operator)) = split else {
        return Err(fail("expected path=value, path==value or path!=value"));
    };
    let path = term[..index].trim();
    let valid_path = !path.is_empty()
        && path.split('.').all(|segment| {
            !segment.is_empty() && !segment.contains(|c: char| c.is_whitespace() || c == '\\')
        });
    if !valid_path {
        return Err(fail("expected a dotted field path before the operator"));
    }
    let value = unescape_field_value(term[index + length..].trim()).map_err(|why| fail(&why))?;
    Ok(FieldRequirement {
        path: path.to_owned(),
        operator,
        value,
    })
}

/// Resolves `\\`, `\,` and `\=`; any other escape, or an unescaped `=` or `,`, is an error.
fn unescape_field_value(raw: &str) -> Result<String, String> {
    let mut value = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(character) = chars.next() {
        match character {
            '\\' => match chars.next() {
                Some(escaped @ ('\\' | ',' | '=')) => value.push(escaped),
                Some(other) => return Err(format!("invalid escape sequence '\\{other}' in value")),
                None => return Err("value ends with a lone '\\'".to_owned()),
            },
            '=' | ',' => return Err(format!("unescaped '{character}' in value")),
            other => value.push(other),
        }
    }
    Ok(value)
}

/// The value of the field at dotted `path` as selector text: `""` when missing or `null`.
fn field_value<'v>(object: &'v Value, path: &str) -> Cow<'v, str> {
    let mut current = object;
    for segment in path.split('.') {
        match current.get(segment) {
            Some(child) => current = child,
            None => return Cow::Borrowed(""),
        }
    }
    match current {
        Value::Null => Cow::Borrowed(""),
        Value::String(text) => Cow::Borrowed(text),
        other => Cow::Owned(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(fields) => fields,
            other => panic!("not an object: {other}"),
        }
    }

    fn selects(selector: &str, label_set: Value) -> bool {
        LabelSelector::parse(selector)
            .unwrap()
            .matches(Some(&labels(label_set)))
    }

    fn error_message(result: Result<LabelSelector, SelectorError>) -> String {
        match result {
            Ok(selector) => panic!("expected an error, parsed {selector}"),
            Err(SelectorError::Invalid(message)) => message,
        }
    }

    /// Every operator of the string form parses to the matching requirement, `=` and `==`
    /// alike, with whitespace around tokens ignored.
    #[test]
    fn label_selector_parses_every_operator() {
        let selector =
            LabelSelector::parse(" a=1 , b==2,c != 3,d in (x, y),e notin(z),f,! g,h>5,i<7")
                .unwrap();
        let parsed: Vec<(&str, Operator, Vec<&str>)> = selector
            .requirements()
            .iter()
            .map(|r| (r.key(), r.operator(), r.values().collect()))
            .collect();
        assert_eq!(
            parsed,
            vec![
                ("a", Operator::Equals, vec!["1"]),
                ("b", Operator::Equals, vec!["2"]),
                ("c", Operator::NotEquals, vec!["3"]),
                ("d", Operator::In, vec!["x", "y"]),
                ("e", Operator::NotIn, vec!["z"]),
                ("f", Operator::Exists, vec![]),
                ("g", Operator::DoesNotExist, vec![]),
                ("h", Operator::GreaterThan, vec!["5"]),
                ("i", Operator::LessThan, vec!["7"]),
            ]
        );
    }

    /// The empty (or blank) selector is empty and selects everything, even unlabelled
    /// objects.
    #[test]
    fn empty_label_selector_selects_everything() {
        for text in ["", "   "] {
            let selector = LabelSelector::parse(text).unwrap();
            assert!(selector.is_empty());
            assert!(selector.matches(None));
            assert!(selector.matches_object(&json!({"metadata": {"name": "x"}})));
        }
    }

    /// Equality needs the label present with the value; inequality also matches when the
    /// label is absent; requirements are ANDed.
    #[test]
    fn equality_selectors_match_like_kubernetes() {
        assert!(selects("app=web", json!({"app": "web", "x": "y"})));
        assert!(!selects("app=web", json!({"app": "db"})));
        assert!(!selects("app=web", json!({})));
        assert!(selects("app!=web", json!({"app": "db"})));
        assert!(selects("app!=web", json!({})));
        assert!(!selects("app!=web", json!({"app": "web"})));
        assert!(selects(
            "app=web,tier=fe",
            json!({"app": "web", "tier": "fe"})
        ));
        assert!(!selects(
            "app=web,tier=fe",
            json!({"app": "web", "tier": "be"})
        ));
        assert!(selects("empty=", json!({"empty": ""})));
        assert!(!selects("empty=", json!({})));
    }

    /// `in` needs the label present with a listed value; `notin` also matches when the
    /// label is absent; commas inside the value set do not split requirements.
    #[test]
    fn set_selectors_match_like_kubernetes() {
        assert!(selects("env in (prod,qa)", json!({"env": "qa"})));
        assert!(!selects("env in (prod,qa)", json!({"env": "dev"})));
        assert!(!selects("env in (prod,qa)", json!({})));
        assert!(selects("env notin (prod,qa)", json!({"env": "dev"})));
        assert!(selects("env notin (prod,qa)", json!({})));
        assert!(!selects("env notin (prod,qa)", json!({"env": "prod"})));
        assert!(selects(
            "env in (prod,qa),app",
            json!({"env": "prod", "app": "x"})
        ));
        assert!(!selects("env in (prod,qa),app", json!({"env": "prod"})));
    }

    /// Existence selectors look only at presence; `>` and `<` compare integer values and
    /// never match a non-integer or absent label.
    #[test]
    fn existence_and_numeric_selectors_match() {
        assert!(selects("app", json!({"app": ""})));
        assert!(!selects("app", json!({})));
        assert!(selects("!app", json!({"other": "1"})));
        assert!(!selects("!app", json!({"app": "x"})));
        assert!(selects("n>5", json!({"n": "6"})));
        assert!(!selects("n>5", json!({"n": "5"})));
        assert!(!selects("n>5", json!({"n": "six"})));
        assert!(!selects("n>5", json!({})));
        assert!(selects("n<5", json!({"n": "-1"})));
    }

    /// Matching an object reads its `metadata.labels`; an object without labels only
    /// matches selectors that allow absent labels.
    #[test]
    fn matches_object_reads_metadata_labels() {
        let pod = json!({"metadata": {"name": "p", "labels": {"app": "web"}}});
        let bare = json!({"metadata": {"name": "q"}});
        let selector = LabelSelector::parse("app=web").unwrap();
        assert!(selector.matches_object(&pod));
        assert!(!selector.matches_object(&bare));
        assert!(LabelSelector::parse("!app").unwrap().matches_object(&bare));
    }

    /// Malformed selectors fail with a message that quotes the offending requirement.
    #[test]
    fn malformed_label_selectors_name_the_offending_part() {
        let message = error_message(LabelSelector::parse("x=y,a in (b"));
        assert!(
            message.starts_with("unable to parse requirement: \"a in (b\""),
            "{message}"
        );
        for (text, part) in [
            ("a in b", "a in b"),
            ("=b", "=b"),
            ("a=b,", ""),
            ("a=b,,c", ""),
            ("a==b c", "a==b c"),
            ("!", "!"),
            ("a b", "a b"),
            ("a in ()x", "a in ()x"),
            ("a>x", "a>x"),
            ("a=(b)", "a=(b)"),
            ("a notin", "a notin"),
        ] {
            let message = error_message(LabelSelector::parse(text));
            assert!(message.contains(&format!("{part:?}")), "{text}: {message}");
        }
        let message = error_message(LabelSelector::parse("a)"));
        assert!(message.contains("unbalanced"), "{message}");
    }

    /// Keys and values follow the Kubernetes label rules: optional DNS-subdomain prefix, name
    /// and value of at most 63 characters of `[A-Za-z0-9._-]` starting and ending
    /// alphanumerically; values may be empty.
    #[test]
    fn label_keys_and_values_are_validated() {
        let long = "a".repeat(63);
        let too_long = "a".repeat(64);
        for valid in [
            "app.kubernetes.io/name=web".to_owned(),
            "A_b.c-D=x_Y.z-1".to_owned(),
            format!("{long}={long}"),
            "k8s.io/x in (a,b)".to_owned(),
            "a=".to_owned(),
        ] {
            assert!(LabelSelector::parse(&valid).is_ok(), "{valid}");
        }
        for invalid in [
            format!("{too_long}=x"),
            format!("x={too_long}"),
            "-a=x".to_owned(),
            "a-=x".to_owned(),
            "a=x-".to_owned(),
            "a=x@y".to_owned(),
            "Example.com/a=x".to_owned(),
            "example..com/a=x".to_owned(),
            "/a=x".to_owned(),
            "example.com/=x".to_owned(),
            "a/b/c=x".to_owned(),
            format!("{}.com/a=x", "a".repeat(250)),
        ] {
            let message = error_message(LabelSelector::parse(&invalid));
            assert!(message.contains("invalid label"), "{invalid}: {message}");
        }
    }

    /// Display prints the canonical form (requirements sorted by key, set values sorted,
    /// `==` as `=`), and parsing it back gives an equal selector.
    #[test]
    fn label_selector_display_is_canonical_and_round_trips() {
        let selector = LabelSelector::parse("tier in (b, a), app==web").unwrap();
        assert_eq!(selector.to_string(), "app=web,tier in (a,b)");
        for text in [
            "app=web,tier in (a,b)",
            "!a,b,c!=d,e notin (x,y),f>1,g<2",
            "example.com/key=value,z=",
            "",
        ] {
            let parsed = LabelSelector::parse(text).unwrap();
            assert_eq!(parsed.to_string(), text);
            assert_eq!(LabelSelector::parse(&parsed.to_string()).unwrap(), parsed);
        }
    }

    /// A `metav1.LabelSelector` becomes the same selector as its string form: matchLabels are
    /// equalities and matchExpressions map their four operators.
    #[test]
    fn from_label_selector_converts_match_labels_and_expressions() {
        let selector = LabelSelector::from_label_selector(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["fe", "be"]},
                {"key": "env", "operator": "NotIn", "values": ["dev"]},
                {"key": "team", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist", "values": []}
            ]
        }))
        .unwrap();
        assert_eq!(
            selector,
            LabelSelector::parse("app=web,tier in (be,fe),env notin (dev),team,!legacy").unwrap()
        );
        assert_eq!(
            selector.to_string(),
            "app=web,env notin (dev),!legacy,team,tier in (be,fe)"
        );
        assert!(selector.matches_object(&json!({"metadata": {"labels": {
            "app": "web", "tier": "fe", "team": "x"
        }}})));
    }

    /// An absent, null or empty `metav1.LabelSelector` selects everything.
    #[test]
    fn empty_label_selector_object_selects_everything() {
        for value in [
            json!(null),
            json!({}),
            json!({"matchLabels": {}, "matchExpressions": []}),
        ] {
            let selector = LabelSelector::from_label_selector(&value).unwrap();
            assert!(selector.is_empty(), "{value}");
        }
    }

    /// Bad `metav1.LabelSelector` objects are rejected: unknown operators, `In` without
    /// values, `Exists` with values, non-string label values and invalid keys.
    #[test]
    fn invalid_label_selector_objects_are_rejected() {
        for value in [
            json!({"matchExpressions": [{"key": "a", "operator": "Like", "values": ["x"]}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
            json!({"matchExpressions": [{"operator": "Exists"}]}),
            json!({"matchExpressions": {"key": "a"}}),
            json!({"matchLabels": {"a": 1}}),
            json!({"matchLabels": {"-a": "x"}}),
            json!({"matchLabels": ["a"]}),
            json!("app=web"),
        ] {
            assert!(
                LabelSelector::from_label_selector(&value).is_err(),
                "{value}"
            );
        }
        let error = LabelSelector::from_label_selector(
            &json!({"matchExpressions": [{"key": "a", "operator": "Like"}]}),
        )
        .unwrap_err();
        assert_eq!(
            error,
            SelectorError::Invalid("\"Like\" is not a valid label selector operator".to_owned())
        );
    }

    /// A field selector compares dotted JSON paths with `=`, `==` and `!=`, ANDed; a missing
    /// field compares as the empty string.
    #[test]
    fn field_selector_matches_dotted_paths() {
        let pod = json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"nodeName": "n1"},
            "status": {"phase": "Running"}
        });
        let matches = |text: &str| FieldSelector::parse(text).unwrap().matches(&pod);
        assert!(matches("metadata.name=p"));
        assert!(matches("metadata.name==p,metadata.namespace=default"));
        assert!(!matches("metadata.name=p,metadata.namespace=kube-system"));
        assert!(matches("status.phase!=Pending"));
        assert!(!matches("spec.nodeName!=n1"));
        assert!(matches("spec.nodeName=n1, status.phase=Running"));
        assert!(matches("spec.serviceAccountName="));
        assert!(!matches("spec.serviceAccountName!="));
        assert!(matches("metadata.name.deeper="));
    }

    /// The event fields `kubectl describe` selects on work, as do booleans and numbers by
    /// their JSON text.
    #[test]
    fn field_selector_matches_events_and_scalars() {
        let event = json!({
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default", "uid": "u-1"},
            "type": "Warning",
            "reason": "BackOff",
            "count": 3
        });
        let selector = FieldSelector::parse(
            "involvedObject.name=p,involvedObject.namespace=default,involvedObject.uid=u-1,\
             involvedObject.kind=Pod,type=Warning,reason=BackOff,count=3",
        )
        .unwrap();
        assert!(selector.matches(&event));
        let node = json!({"spec": {"unschedulable": true}});
        assert!(
            FieldSelector::parse("spec.unschedulable=true")
                .unwrap()
                .matches(&node)
        );
        assert!(
            !FieldSelector::parse("spec.unschedulable=false")
                .unwrap()
                .matches(&node)
        );
    }

    /// `exact_name` reports the name only for a selector that is exactly one
    /// `metadata.name` equality.
    #[test]
    fn exact_name_only_for_a_single_name_equality() {
        let name = |text: &str| {
            FieldSelector::parse(text)
                .unwrap()
                .exact_name()
                .map(str::to_owned)
        };
        assert_eq!(name("metadata.name=p"), Some("p".to_owned()));
        assert_eq!(name("metadata.name==p"), Some("p".to_owned()));
        assert_eq!(name("metadata.name!=p"), None);
        assert_eq!(name("metadata.name=p,metadata.namespace=d"), None);
        assert_eq!(name("metadata.namespace=d"), None);
        assert_eq!(name(""), None);
    }

    /// The empty field selector selects everything.
    #[test]
    fn empty_field_selector_selects_everything() {
        let selector = FieldSelector::parse("").unwrap();
        assert!(selector.is_empty());
        assert!(selector.matches(&json!({})));
    }

    /// Escaped `,`, `=` and `\` in values are literal, and Display escapes them again so the
    /// selector parses back equal.
    #[test]
    fn field_selector_escapes_round_trip() {
        let selector = FieldSelector::parse(r"metadata.name=a\,b\=c\\d,type!=x").unwrap();
        assert_eq!(selector.requirements()[0].value(), r"a,b=c\d");
        assert_eq!(
            selector.requirements()[1].operator(),
            FieldOperator::NotEquals
        );
        assert!(selector.matches(&json!({"metadata": {"name": "a,b=c\\d"}, "type": "y"})));
        assert_eq!(selector.to_string(), r"metadata.name=a\,b\=c\\d,type!=x");
        assert_eq!(
            FieldSelector::parse(&selector.to_string()).unwrap(),
            selector
        );
    }

    /// Malformed field selectors fail with a message that quotes the offending term.
    #[test]
    fn malformed_field_selectors_are_rejected() {
        for (text, term) in [
            ("metadata.name", "metadata.name"),
            ("metadata.name=p,status", "status"),
            ("=p", "=p"),
            ("a..b=p", "a..b=p"),
            ("a=b=c", "a=b=c"),
            (r"a=b\x", r"a=b\x"),
            ("a=b,", ""),
        ] {
            match FieldSelector::parse(text) {
                Ok(selector) => panic!("{text}: parsed as {selector}"),
                Err(SelectorError::Invalid(message)) => {
                    assert!(message.contains(&format!("{term:?}")), "{text}: {message}");
                }
            }
        }
    }
}
