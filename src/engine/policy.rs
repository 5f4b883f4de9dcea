//! Policy expressions: a small boolean language over level conditions.
//!
//! ```text
//! expr    = or
//! or      = and { "or" and }
//! and     = unary { "and" unary }
//! unary   = "not" unary | primary
//! primary = "(" expr ")" | "true" | "false" | condition "(" server [ "," subject ] ")"
//! ```
//!
//! `server-running(knot) and all-zones-ready(knot) and not signatures-expiring(knot)`.
//! `not` binds tighter than `and`, which binds tighter than `or`. A subject is allowed only
//! for zone conditions and is normalised to lowercase with a trailing dot; a zone condition
//! without a subject is true when it is met for any subject. Event conditions are never
//! true or false and are refused.
//!
//! Errors carry the byte offset of what is wrong, so that the config can point at the
//! column inside the TOML string. Parentheses and `not` nest at most [`MAX_NESTING`] deep,
//! so no input can exhaust the stack.

use std::fmt;

use crate::condition::{ConditionId, ConditionKind, ConditionScope};

/// How deep parentheses and `not` may nest.
pub const MAX_NESTING: usize = 64;

/// What a policy is evaluated against.
pub trait ConditionFacts {
    /// Whether the condition is met; `subject` `None` means "for any subject".
    fn is_met(&self, server: &str, condition: ConditionId, subject: Option<&str>) -> bool;
}

/// A parsed policy expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    text: String,
    expr: Expr,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Const(bool),
    Condition(ConditionRef),
    Not(Box<Expr>),
    /// Two or more operands, none of them an `And`.
    And(Vec<Expr>),
    /// Two or more operands, none of them an `Or`.
    Or(Vec<Expr>),
}

/// `condition(server[, subject])` as written in the expression.
#[derive(Debug, Clone, PartialEq)]
struct ConditionRef {
    condition: ConditionId,
    server: String,
    /// Byte offset of the server name in the text.
    server_offset: usize,
    subject: Option<String>,
}

/// A syntax or meaning error at a byte offset of the expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {}: {message}", offset + 1)]
pub struct PolicyError {
    /// Byte offset into the expression text.
    pub offset: usize,
    pub message: String,
}

impl PolicyError {
    fn at(offset: usize, message: impl Into<String>) -> Self {
        PolicyError {
            offset,
            message: message.into(),
        }
    }
}

impl Policy {
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let mut parser = Parser {
            tokens: tokenize(text)?,
            pos: 0,
            end: text.len(),
            depth: 0,
        };
        if parser.tokens.is_empty() {
            return Err(PolicyError::at(
                0,
                "empty expression; write e.g. `server-running(knot)`, or `false`",
            ));
        }
        let expr = parser.or()?;
        if let Some(tok) = parser.peek() {
            let message = match keyword_in_wrong_case(&tok.text) {
                Some(keyword) => format!("write `{keyword}` in lowercase"),
                None if tok.text == ")" => "unexpected `)`: no `(` is open here".to_string(),
                None => format!(
                    "unexpected `{}` after a complete expression; join with `and` or `or`",
                    tok.text
                ),
            };
            return Err(PolicyError::at(tok.offset, message));
        }
        Ok(Policy {
            text: text.to_string(),
            expr,
        })
    }

    pub fn evaluate(&self, facts: &dyn ConditionFacts) -> bool {
        self.expr.evaluate(facts)
    }

    /// Every server the expression names, each once, in order of first mention.
    pub fn servers(&self) -> impl Iterator<Item = &str> {
        let mut seen: Vec<&str> = Vec::new();
        self.conditions()
            .into_iter()
            .map(|c| c.server.as_str())
            .filter(move |server| {
                let new = !seen.contains(server);
                if new {
                    seen.push(server);
                }
                new
            })
    }

    /// An error for every server the expression names that is not in `known`, at its
    /// first mention.
    pub fn unknown_servers(&self, known: &[&str]) -> Vec<PolicyError> {
        let mut reported: Vec<&str> = Vec::new();
        let mut errors = Vec::new();
        for c in self.conditions() {
            let server = c.server.as_str();
            if known.contains(&server) || reported.contains(&server) {
                continue;
            }
            reported.push(server);
            let known_list = known
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ");
            errors.push(PolicyError::at(
                c.server_offset,
                format!("unknown server `{server}`; configured servers: {known_list}"),
            ));
        }
        errors
    }

    /// The text it was parsed from.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The condition references, in the order they are written.
    fn conditions(&self) -> Vec<&ConditionRef> {
        let mut out = Vec::new();
        self.expr.collect_conditions(&mut out);
        out
    }
}

/// The canonical form: single spaces, `condition(server, subject.)`, and parentheses only
/// where precedence needs them.
impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.expr.write(f, Precedence::Or)
    }
}

/// Binding strength, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Precedence {
    Or,
    And,
    Unary,
}

impl Expr {
    fn evaluate(&self, facts: &dyn ConditionFacts) -> bool {
        match self {
            Expr::Const(b) => *b,
            Expr::Condition(c) => facts.is_met(&c.server, c.condition, c.subject.as_deref()),
            Expr::Not(e) => !e.evaluate(facts),
            Expr::And(operands) => operands.iter().all(|e| e.evaluate(facts)),
            Expr::Or(operands) => operands.iter().any(|e| e.evaluate(facts)),
        }
    }

    fn collect_conditions<'a>(&'a self, out: &mut Vec<&'a ConditionRef>) {
        match self {
            Expr::Const(_) => {}
            Expr::Condition(c) => out.push(c),
            Expr::Not(e) => e.collect_conditions(out),
            Expr::And(operands) | Expr::Or(operands) => {
                for e in operands {
                    e.collect_conditions(out);
                }
            }
        }
    }

    fn precedence(&self) -> Precedence {
        match self {
            Expr::Or(_) => Precedence::Or,
            Expr::And(_) => Precedence::And,
            _ => Precedence::Unary,
        }
    }

    /// Writes the expression, in parentheses if it binds weaker than its context.
    fn write(&self, f: &mut fmt::Formatter<'_>, context: Precedence) -> fmt::Result {
        let parenthesised = self.precedence() < context;
        if parenthesised {
            f.write_str("(")?;
        }
        match self {
            Expr::Const(b) => write!(f, "{b}")?,
            Expr::Condition(c) => match &c.subject {
                Some(subject) => write!(f, "{}({}, {subject})", c.condition, c.server)?,
                None => write!(f, "{}({})", c.condition, c.server)?,
            },
            Expr::Not(e) => {
                f.write_str("not ")?;
                e.write(f, Precedence::Unary)?;
            }
            Expr::And(operands) | Expr::Or(operands) => {
                let (separator, inner) = match self {
                    Expr::Or(_) => (" or ", Precedence::And),
                    _ => (" and ", Precedence::Unary),
                };
                for (i, e) in operands.iter().enumerate() {
                    if i > 0 {
                        f.write_str(separator)?;
                    }
                    e.write(f, inner)?;
                }
            }
        }
        if parenthesised {
            f.write_str(")")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Token {
    offset: usize,
    text: String,
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

fn tokenize(text: &str) -> Result<Vec<Token>, PolicyError> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(offset, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if matches!(c, '(' | ')' | ',') {
            chars.next();
            tokens.push(Token {
                offset,
                text: c.to_string(),
            });
        } else if is_word_char(c) {
            let mut word = String::new();
            while let Some(&(_, c)) = chars.peek() {
                if !is_word_char(c) {
                    break;
                }
                word.push(c);
                chars.next();
            }
            tokens.push(Token { offset, text: word });
        } else {
            let hint = match c {
                '&' => "; write `and`",
                '|' => "; write `or`",
                '!' => "; write `not`",
                _ => "; use `and`, `or`, `not` and parentheses",
            };
            return Err(PolicyError::at(
                offset,
                format!("unexpected character `{c}`{hint}"),
            ));
        }
    }
    Ok(tokens)
}

/// `AND`, `Or`, …: the keyword meant, if `word` is one in the wrong case.
fn keyword_in_wrong_case(word: &str) -> Option<&'static str> {
    ["and", "or", "not", "true", "false"]
        .into_iter()
        .find(|k| *k != word && k.eq_ignore_ascii_case(word))
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// Byte length of the text, the offset of errors at its end.
    end: usize,
    /// Current nesting of parentheses and `not`.
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let tok = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        tok
    }

    fn at(&self, text: &str) -> bool {
        self.peek().is_some_and(|t| t.text == text)
    }

    fn or(&mut self) -> Result<Expr, PolicyError> {
        let mut operands = Vec::new();
        loop {
            // `(a or b) or c` is `a or b or c`.
            match self.and()? {
                Expr::Or(inner) => operands.extend(inner),
                operand => operands.push(operand),
            }
            if !self.at("or") {
                break;
            }
            self.next();
        }
        Ok(match operands.len() {
            1 => operands.remove(0),
            _ => Expr::Or(operands),
        })
    }

    fn and(&mut self) -> Result<Expr, PolicyError> {
        let mut operands = Vec::new();
        loop {
            // `(a and b) and c` is `a and b and c`.
            match self.unary()? {
                Expr::And(inner) => operands.extend(inner),
                operand => operands.push(operand),
            }
            if !self.at("and") {
                break;
            }
            self.next();
        }
        Ok(match operands.len() {
            1 => operands.remove(0),
            _ => Expr::And(operands),
        })
    }

    fn unary(&mut self) -> Result<Expr, PolicyError> {
        if let Some(tok) = self.peek().filter(|t| t.text == "not").cloned() {
            self.next();
            self.enter(tok.offset)?;
            let operand = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(operand)));
        }
        self.primary()
    }

    fn enter(&mut self, offset: usize) -> Result<(), PolicyError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(PolicyError::at(
                offset,
                format!("parentheses and `not` nest more than {MAX_NESTING} deep"),
            ));
        }
        Ok(())
    }

    fn missing(&self, what: &str) -> PolicyError {
        PolicyError::at(
            self.end,
            format!("expected {what}, found the end of the expression"),
        )
    }

    fn primary(&mut self) -> Result<Expr, PolicyError> {
        const WANTED: &str = "a condition, `not`, `true`, `false` or `(`";
        let Some(tok) = self.next() else {
            return Err(self.missing(WANTED));
        };
        match tok.text.as_str() {
            "(" => {
                self.enter(tok.offset)?;
                let inner = self.or()?;
                self.depth -= 1;
                let opened = format!("the `(` at column {}", tok.offset + 1);
                match self.next() {
                    Some(t) if t.text == ")" => Ok(inner),
                    Some(t) => Err(PolicyError::at(
                        t.offset,
                        format!("expected `)` to close {opened}, found `{}`", t.text),
                    )),
                    None => Err(self.missing(&format!("`)` closing {opened}"))),
                }
            }
            "true" => Ok(Expr::Const(true)),
            "false" => Ok(Expr::Const(false)),
            ")" | "," | "and" | "or" => Err(PolicyError::at(
                tok.offset,
                format!("expected {WANTED}, found `{}`", tok.text),
            )),
            word => match keyword_in_wrong_case(word) {
                Some(keyword) => Err(PolicyError::at(
                    tok.offset,
                    format!("write `{keyword}` in lowercase"),
                )),
                None => self.condition(word, tok.offset),
            },
        }
    }

    fn condition(&mut self, word: &str, offset: usize) -> Result<Expr, PolicyError> {
        let condition: ConditionId = word
            .parse()
            .map_err(|_| PolicyError::at(offset, unknown_condition_message(word)))?;
        if condition.kind() == ConditionKind::Event {
            return Err(PolicyError::at(
                offset,
                format!(
                    "`{condition}` is an event, it is never true or false; policies can use level conditions only"
                ),
            ));
        }
        self.expect("(", &format!("`(` and a server name after `{condition}`"))?;
        let (server_offset, server) = self.word(&format!("a server name in `{condition}(…)`"))?;
        let mut subject = None;
        if self.at(",") {
            self.next();
            let (zone_offset, zone) = self.word("a zone name after `,`")?;
            if condition.scope() != ConditionScope::Zone {
                return Err(PolicyError::at(
                    zone_offset,
                    format!("`{condition}` is a server condition; it takes no zone"),
                ));
            }
            subject = Some(normalize_subject(&zone).map_err(|m| PolicyError::at(zone_offset, m))?);
        }
        let what = match subject {
            Some(_) => format!("`)` closing `{condition}(` (it takes a server and a zone)"),
            None if condition.scope() == ConditionScope::Zone => {
                format!("`,` and a zone, or `)` closing `{condition}(`")
            }
            None => format!("`)` closing `{condition}(` (it takes only a server)"),
        };
        self.expect(")", &what)?;
        Ok(Expr::Condition(ConditionRef {
            condition,
            server,
            server_offset,
            subject,
        }))
    }

    fn expect(&mut self, text: &str, what: &str) -> Result<(), PolicyError> {
        match self.next() {
            Some(t) if t.text == text => Ok(()),
            Some(t) => Err(PolicyError::at(
                t.offset,
                format!("expected {what}, found `{}`", t.text),
            )),
            None => Err(self.missing(what)),
        }
    }

    /// A name: anything but punctuation. Returns its offset and text.
    fn word(&mut self, what: &str) -> Result<(usize, String), PolicyError> {
        match self.next() {
            Some(t) if !matches!(t.text.as_str(), "(" | ")" | ",") => Ok((t.offset, t.text)),
            Some(t) => Err(PolicyError::at(
                t.offset,
                format!("expected {what}, found `{}`", t.text),
            )),
            None => Err(self.missing(what)),
        }
    }
}

/// A zone name as a subject: lowercase with a trailing dot. The tokenizer has already
/// limited it to letters, digits, `-`, `_` and `.`.
fn normalize_subject(zone: &str) -> Result<String, String> {
    let mut name = zone.to_ascii_lowercase();
    if !name.ends_with('.') {
        name.push('.');
    }
    if name == "." {
        return Ok(name);
    }
    if name.len() > 254 {
        return Err(format!("zone `{zone}` is longer than 255 octets"));
    }
    let labels = name[..name.len() - 1].split('.');
    for label in labels {
        if label.is_empty() {
            return Err(format!("zone `{zone}` has an empty label"));
        }
        if label.len() > 63 {
            return Err(format!("zone `{zone}` has a label longer than 63 octets"));
        }
    }
    Ok(name)
}

fn unknown_condition_message(word: &str) -> String {
    match closest_condition(word) {
        Some(close) => format!("unknown condition `{word}`; did you mean `{close}`?"),
        None => format!(
            "unknown condition `{word}`; level conditions: {}",
            ConditionId::ALL
                .iter()
                .filter(|c| c.is_level())
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The condition whose id is closest to `word`, if one is within two edits: for "did you
/// mean".
pub(crate) fn closest_condition(word: &str) -> Option<ConditionId> {
    ConditionId::ALL
        .iter()
        .map(|c| (edit_distance(word, c.as_str()), *c))
        .min()
        .filter(|(d, _)| *d <= 2)
        .map(|(_, c)| c)
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Met conditions as (server, condition, subject) triples.
    struct FakeFacts(HashSet<(String, ConditionId, Option<String>)>);

    impl ConditionFacts for FakeFacts {
        fn is_met(&self, server: &str, condition: ConditionId, subject: Option<&str>) -> bool {
            match subject {
                Some(s) => self.0.contains(&(server.into(), condition, Some(s.into()))),
                None => self
                    .0
                    .iter()
                    .any(|(sv, c, _)| sv == server && *c == condition),
            }
        }
    }

    fn facts(list: &[(&str, ConditionId, Option<&str>)]) -> FakeFacts {
        FakeFacts(
            list.iter()
                .map(|(s, c, z)| (s.to_string(), *c, z.map(str::to_string)))
                .collect(),
        )
    }

    fn err(text: &str) -> PolicyError {
        match Policy::parse(text) {
            Ok(p) => panic!("`{text}` parsed as `{p}`"),
            Err(e) => e,
        }
    }

    /// Asserts that `text` fails at `offset` with a message containing `needle`.
    fn assert_error(text: &str, offset: usize, needle: &str) {
        let e = err(text);
        assert_eq!(e.offset, offset, "`{text}`: {e}");
        assert!(e.message.contains(needle), "`{text}`: {e}");
    }

    #[test]
    fn parses_the_design_example() {
        let text =
            "server-running(knot) and all-zones-ready(knot) and not signatures-expiring(knot)";
        let p = Policy::parse(text).unwrap();
        assert_eq!(p.text(), text);
        assert_eq!(p.to_string(), text);
        assert_eq!(p.servers().collect::<Vec<_>>(), ["knot"]);
    }

    #[test]
    fn evaluates_with_precedence() {
        let f = facts(&[
            ("knot", ConditionId::ServerRunning, None),
            ("knot", ConditionId::ZoneReady, Some("example.net.")),
        ]);
        let cases = [
            ("server-running(knot)", true),
            ("not server-running(knot)", false),
            ("not not server-running(knot)", true),
            ("server-running(knot) and all-zones-ready(knot)", false),
            ("server-running(knot) or all-zones-ready(knot)", true),
            // not > and > or
            ("not server-crashed(knot) and server-running(knot)", true),
            ("not server-running(knot) and server-crashed(knot)", false),
            ("false and true or true", true),
            ("true or true and false", true),
            ("false and (true or true)", false),
            ("(true or true) and false", false),
            ("not true or true", true),
            ("not (true or true)", false),
            ("true and true and true and false", false),
            ("false or false or false or true", true),
            // a zone condition without a subject: met for any zone
            ("zone-ready(knot)", true),
            ("zone-ready(knot, example.net.)", true),
            ("zone-ready(knot, Example.NET)", true),
            ("zone-ready(knot, example.org.)", false),
            ("zone-ready(nsd)", false),
            ("server-running(nsd)", false),
            ("true", true),
            ("false", false),
        ];
        for (text, expected) in cases {
            assert_eq!(
                Policy::parse(text).unwrap().evaluate(&f),
                expected,
                "{text}"
            );
        }
    }

    #[test]
    fn facts_are_asked_with_the_normalised_subject() {
        struct Recorder(std::cell::RefCell<Vec<(String, ConditionId, Option<String>)>>);
        impl ConditionFacts for Recorder {
            fn is_met(&self, server: &str, c: ConditionId, subject: Option<&str>) -> bool {
                let call = (server.to_string(), c, subject.map(str::to_string));
                self.0.borrow_mut().push(call);
                false
            }
        }
        let recorder = Recorder(Default::default());
        Policy::parse("zone-ready(knot, A.Test) or signatures-expiring(nsd)")
            .unwrap()
            .evaluate(&recorder);
        assert_eq!(
            recorder.0.into_inner(),
            [
                (
                    "knot".to_string(),
                    ConditionId::ZoneReady,
                    Some("a.test.".to_string())
                ),
                ("nsd".to_string(), ConditionId::SignaturesExpiring, None),
            ]
        );
    }

    #[test]
    fn canonical_form_round_trips() {
        let cases = [
            (
                "not (server-running(knot) or zone-ready(knot,A.test)) and (true or false)",
                "not (server-running(knot) or zone-ready(knot, a.test.)) and (true or false)",
            ),
            ("((server-running(knot)))", "server-running(knot)"),
            ("(true and false) and true", "true and false and true"),
            ("true or (false or true)", "true or false or true"),
            ("true and (false or true)", "true and (false or true)"),
            ("not not  true", "not not true"),
            ("not (not true and false)", "not (not true and false)"),
            ("zone-ready(knot , .)", "zone-ready(knot, .)"),
        ];
        for (text, canonical) in cases {
            let p = Policy::parse(text).unwrap();
            assert_eq!(p.to_string(), canonical, "{text}");
            let again = Policy::parse(canonical).unwrap();
            assert_eq!(again.to_string(), canonical);
        }
    }

    #[test]
    fn servers_are_listed_once_in_order() {
        let p = Policy::parse(
            "server-running(knot) and (zone-ready(nsd) or not server-crashed(knot)) or true",
        )
        .unwrap();
        assert_eq!(p.servers().collect::<Vec<_>>(), ["knot", "nsd"]);
        assert_eq!(Policy::parse("true").unwrap().servers().count(), 0);
    }

    #[test]
    fn unknown_servers_point_at_their_first_mention() {
        let p = Policy::parse("server-running(knot) or server-running(nsd) or zone-ready(nsd)")
            .unwrap();
        assert!(p.unknown_servers(&["knot", "nsd"]).is_empty());
        let errors = p.unknown_servers(&["knot"]);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].offset, 39);
        assert!(
            errors[0].message.contains("unknown server `nsd`")
                && errors[0].message.contains("`knot`"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn errors_point_at_the_problem() {
        // unknown condition, with and without a close match
        assert_error(
            "server-running(knot) and server-runing(knot)",
            25,
            "did you mean `server-running`?",
        );
        assert_error("bogus(knot)", 0, "level conditions: server-running");
        // events are not true or false
        assert_error(
            "true and zone-updated(knot)",
            9,
            "`zone-updated` is an event, it is never true or false; policies can use level conditions only",
        );
        // missing `)`
        assert_error("server-running(knot", 19, "`)` closing `server-running(`");
        assert_error(
            "(server-running(knot)",
            21,
            "`)` closing the `(` at column 1",
        );
        assert_error(
            "(true or false false",
            15,
            "expected `)` to close the `(` at column 1, found `false`",
        );
        // trailing input
        assert_error(
            "server-running(knot) all-zones-ready(knot)",
            21,
            "join with `and` or `or`",
        );
        assert_error("true)", 4, "no `(` is open");
        // empty
        assert_error("", 0, "empty expression");
        assert_error("   ", 0, "empty expression");
        assert_error("()", 1, "expected a condition");
        // operators without an operand
        assert_error("server-running(knot) and", 24, "found the end");
        assert_error("true or", 7, "found the end");
        assert_error("not", 3, "found the end");
        assert_error("and true", 0, "found `and`");
        assert_error("true and or false", 9, "found `or`");
        // arguments
        assert_error("server-running", 14, "`(` and a server name");
        assert_error("server-running()", 15, "a server name");
        assert_error("server-running(knot, a.test.)", 21, "takes no zone");
        assert_error("zone-ready(knot, )", 17, "a zone name");
        assert_error("zone-ready(knot, a..test)", 17, "empty label");
        assert_error("zone-ready(knot, a, b)", 18, "a server and a zone");
        assert_error("zone-ready(knot x)", 16, "`,` and a zone");
        // characters and keywords
        assert_error("true && false", 5, "write `and`");
        assert_error("true || false", 5, "write `or`");
        assert_error("!true", 0, "write `not`");
        assert_error("true AND false", 5, "write `and` in lowercase");
        assert_error("NOT true", 0, "write `not` in lowercase");
        assert_error("true ∧ false", 5, "unexpected character `∧`");
    }

    #[test]
    fn display_names_the_column() {
        let e = err("true and bogus(knot)");
        assert_eq!(e.to_string(), format!("column 10: {}", e.message));
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = |n: usize| format!("{}true{}", "(".repeat(n), ")".repeat(n));
        assert!(Policy::parse(&deep(MAX_NESTING)).is_ok());
        assert_error(&deep(MAX_NESTING + 1), MAX_NESTING, "nest more than");
        assert_error(&"not ".repeat(100_000), 4 * MAX_NESTING, "nest more than");
        assert!(Policy::parse(&"(".repeat(100_000)).is_err());
        // Long chains are flat, not deep.
        let chain = vec!["server-running(knot)"; 100_000].join(" and ");
        let p = Policy::parse(&chain).unwrap();
        assert!(!p.evaluate(&facts(&[])));
        assert_eq!(p.to_string(), chain);
    }

    #[test]
    fn distance() {
        assert_eq!(edit_distance("zone-redy", "zone-ready"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(closest_condition("zone-redy"), Some(ConditionId::ZoneReady));
        assert_eq!(closest_condition("zone"), None);
    }
}
