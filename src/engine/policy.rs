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
//! A subject is allowed only for zone conditions and is normalised to lowercase with a
//! trailing dot; a zone condition without a subject is true when it is met for any
//! subject. Event conditions are never true or false and are refused.

use std::fmt;

use crate::condition::{ConditionId, ConditionKind, ConditionScope};

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
    Condition {
        condition: ConditionId,
        server: String,
        subject: Option<String>,
    },
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

/// A syntax or meaning error at a byte offset of the expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {}: {message}", offset + 1)]
pub struct PolicyError {
    /// Byte offset into the expression text.
    pub offset: usize,
    pub message: String,
}

impl Policy {
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let tokens = tokenize(text)?;
        let mut parser = Parser {
            tokens,
            pos: 0,
            end: text.len(),
        };
        if parser.tokens.is_empty() {
            return Err(PolicyError {
                offset: 0,
                message: "empty expression; write e.g. `server-running(knot)`".into(),
            });
        }
        let expr = parser.or()?;
        if let Some(tok) = parser.peek() {
            return Err(PolicyError {
                offset: tok.offset,
                message: format!(
                    "unexpected `{}` after a complete expression; join with `and` or `or`",
                    tok.text
                ),
            });
        }
        Ok(Policy {
            text: text.to_string(),
            expr,
        })
    }

    pub fn evaluate(&self, facts: &dyn ConditionFacts) -> bool {
        eval(&self.expr, facts)
    }

    /// Every server the expression names.
    pub fn servers(&self) -> Vec<&str> {
        let mut out = Vec::new();
        collect_servers(&self.expr, &mut out);
        out
    }

    /// The text it was parsed from.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_expr(&self.expr, f, 0)
    }
}

fn eval(expr: &Expr, facts: &dyn ConditionFacts) -> bool {
    match expr {
        Expr::Const(b) => *b,
        Expr::Condition {
            condition,
            server,
            subject,
        } => facts.is_met(server, *condition, subject.as_deref()),
        Expr::Not(e) => !eval(e, facts),
        Expr::And(a, b) => eval(a, facts) && eval(b, facts),
        Expr::Or(a, b) => eval(a, facts) || eval(b, facts),
    }
}

fn collect_servers<'a>(expr: &'a Expr, out: &mut Vec<&'a str>) {
    match expr {
        Expr::Const(_) => {}
        Expr::Condition { server, .. } => {
            if !out.contains(&server.as_str()) {
                out.push(server);
            }
        }
        Expr::Not(e) => collect_servers(e, out),
        Expr::And(a, b) | Expr::Or(a, b) => {
            collect_servers(a, out);
            collect_servers(b, out);
        }
    }
}

/// Precedence: or 1, and 2, not/primary 3; parentheses where a lower one sits inside.
fn write_expr(expr: &Expr, f: &mut fmt::Formatter<'_>, outer: u8) -> fmt::Result {
    let (prec, open) = match expr {
        Expr::Or(..) => (1, outer > 1),
        Expr::And(..) => (2, outer > 2),
        _ => (3, false),
    };
    if open {
        f.write_str("(")?;
    }
    match expr {
        Expr::Const(b) => write!(f, "{b}")?,
        Expr::Condition {
            condition,
            server,
            subject,
        } => match subject {
            Some(s) => write!(f, "{condition}({server}, {s})")?,
            None => write!(f, "{condition}({server})")?,
        },
        Expr::Not(e) => {
            f.write_str("not ")?;
            write_expr(e, f, 3)?;
        }
        Expr::And(a, b) | Expr::Or(a, b) => {
            write_expr(a, f, prec)?;
            f.write_str(if prec == 1 { " or " } else { " and " })?;
            // Both operators are associative: the right side only needs a higher precedence.
            write_expr(b, f, prec + 1)?;
        }
    }
    if open {
        f.write_str(")")?;
    }
    Ok(())
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
            return Err(PolicyError {
                offset,
                message: format!(
                    "unexpected character `{c}`; use `and`, `or`, `not` and parentheses"
                ),
            });
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// Byte length of the text, the offset of errors at its end.
    end: usize,
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

    fn at_word(&self, word: &str) -> bool {
        self.peek().is_some_and(|t| t.text == word)
    }

    fn or(&mut self) -> Result<Expr, PolicyError> {
        let mut left = self.and()?;
        while self.at_word("or") {
            self.next();
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, PolicyError> {
        let mut left = self.unary()?;
        while self.at_word("and") {
            self.next();
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, PolicyError> {
        if self.at_word("not") {
            self.next();
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn missing(&self, what: &str) -> PolicyError {
        PolicyError {
            offset: self.end,
            message: format!("the expression ends where {what} was expected"),
        }
    }

    fn primary(&mut self) -> Result<Expr, PolicyError> {
        let Some(tok) = self.next() else {
            return Err(self.missing("a condition, `not` or `(`"));
        };
        match tok.text.as_str() {
            "(" => {
                let inner = self.or()?;
                match self.next() {
                    Some(t) if t.text == ")" => Ok(inner),
                    Some(t) => Err(PolicyError {
                        offset: t.offset,
                        message: format!(
                            "expected `)` to close the `(` at column {}, found `{}`",
                            tok.offset + 1,
                            t.text
                        ),
                    }),
                    None => {
                        Err(self
                            .missing(&format!("`)` closing the `(` at column {}", tok.offset + 1)))
                    }
                }
            }
            "true" => Ok(Expr::Const(true)),
            "false" => Ok(Expr::Const(false)),
            ")" | "," | "and" | "or" => Err(PolicyError {
                offset: tok.offset,
                message: format!("expected a condition, `not` or `(`, found `{}`", tok.text),
            }),
            word => self.condition(word, tok.offset),
        }
    }

    fn condition(&mut self, word: &str, offset: usize) -> Result<Expr, PolicyError> {
        let condition: ConditionId = word.parse().map_err(|_| PolicyError {
            offset,
            message: unknown_condition_message(word),
        })?;
        if condition.kind() == ConditionKind::Event {
            return Err(PolicyError {
                offset,
                message: format!(
                    "`{condition}` is an event, it is never true or false; policies can use level conditions only"
                ),
            });
        }
        self.expect("(", &format!("`(` and a server name after `{condition}`"))?;
        let server = self.word(&format!("a server name in `{condition}(…)`"))?;
        let mut subject = None;
        if self.at_word(",") {
            self.next();
            let tok_offset = self.peek().map(|t| t.offset).unwrap_or(self.end);
            let zone = self.word("a zone name after `,`")?;
            if condition.scope() != ConditionScope::Zone {
                return Err(PolicyError {
                    offset: tok_offset,
                    message: format!("`{condition}` is a server condition; it takes no zone"),
                });
            }
            let mut zone = zone.to_ascii_lowercase();
            if !zone.ends_with('.') {
                zone.push('.');
            }
            subject = Some(zone);
        }
        self.expect(")", &format!("`)` closing `{condition}(`"))?;
        Ok(Expr::Condition {
            condition,
            server,
            subject,
        })
    }

    fn expect(&mut self, text: &str, what: &str) -> Result<(), PolicyError> {
        match self.next() {
            Some(t) if t.text == text => Ok(()),
            Some(t) => Err(PolicyError {
                offset: t.offset,
                message: format!("expected {what}, found `{}`", t.text),
            }),
            None => Err(self.missing(what)),
        }
    }

    fn word(&mut self, what: &str) -> Result<String, PolicyError> {
        match self.next() {
            Some(t) if !matches!(t.text.as_str(), "(" | ")" | ",") => Ok(t.text),
            Some(t) => Err(PolicyError {
                offset: t.offset,
                message: format!("expected {what}, found `{}`", t.text),
            }),
            None => Err(self.missing(what)),
        }
    }
}

fn unknown_condition_message(word: &str) -> String {
    let closest = ConditionId::ALL
        .iter()
        .map(|c| (edit_distance(word, c.as_str()), c.as_str()))
        .min()
        .filter(|(d, _)| *d <= 2);
    match closest {
        Some((_, name)) => format!("unknown condition `{word}`; did you mean `{name}`?"),
        None => format!(
            "unknown condition `{word}`; known: {}",
            ConditionId::ALL
                .iter()
                .filter(|c| c.is_level())
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Levenshtein distance, for "did you mean".
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
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

    struct Facts(HashSet<(String, ConditionId, Option<String>)>);

    impl ConditionFacts for Facts {
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

    fn facts(list: &[(&str, ConditionId, Option<&str>)]) -> Facts {
        Facts(
            list.iter()
                .map(|(s, c, z)| (s.to_string(), *c, z.map(str::to_string)))
                .collect(),
        )
    }

    fn err(text: &str) -> PolicyError {
        Policy::parse(text).unwrap_err()
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
            ("server-running(knot) and all-zones-ready(knot)", false),
            ("server-running(knot) or all-zones-ready(knot)", true),
            // not > and > or
            ("not server-crashed(knot) and server-running(knot)", true),
            ("false and true or true", true),
            ("false and (true or true)", false),
            ("zone-ready(knot)", true),
            ("zone-ready(knot, Example.NET)", true),
            ("zone-ready(knot, example.org.)", false),
            ("server-running(nsd)", false),
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
    fn canonical_form_round_trips() {
        let p = Policy::parse(
            "not (server-running(knot) or zone-ready(knot,A.test)) and (true or false)",
        )
        .unwrap();
        let text = p.to_string();
        assert_eq!(
            text,
            "not (server-running(knot) or zone-ready(knot, a.test.)) and (true or false)"
        );
        assert_eq!(Policy::parse(&text).unwrap().to_string(), text);
        assert_eq!(p.servers(), ["knot"]);
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = err("server-running(knot) and server-runing(knot)");
        assert_eq!(e.offset, 25);
        assert!(e.message.contains("did you mean `server-running`"), "{e}");
        let e = err("server-running(knot");
        assert_eq!(e.offset, 19);
        assert!(e.message.contains("`)`"), "{e}");
        let e = err("server-running(knot) and");
        assert_eq!(e.offset, 24);
        let e = err("server-running(knot) all-zones-ready(knot)");
        assert_eq!(e.offset, 21);
        assert!(e.message.contains("and"), "{e}");
        assert_eq!(err("").offset, 0);
        assert_eq!(err("   ").offset, 0);
        let e = err("zone-updated(knot)");
        assert!(e.message.contains("is an event"), "{e}");
        let e = err("server-running(knot, a.test.)");
        assert_eq!(e.offset, 21);
        assert!(e.message.contains("takes no zone"), "{e}");
        let e = err("server-running(knot) && zone-ready(knot)");
        assert_eq!(e.offset, 21);
        let e = err("(server-running(knot)");
        assert!(e.message.contains("column 1"), "{e}");
        let e = err("server-running()");
        assert_eq!(e.offset, 15);
        let e = err("bogus(knot)");
        assert!(e.message.contains("known:"), "{e}");
        assert_eq!(e.to_string(), format!("column 1: {}", e.message));
    }

    #[test]
    fn distance() {
        assert_eq!(edit_distance("zone-redy", "zone-ready"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", "abc"), 0);
    }
}
