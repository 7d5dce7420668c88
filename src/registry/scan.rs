//! A resumable JSON scanner: a registry document's registrations found by byte range, without building it.
//!
//! The registrations are the elements of a top-level array, or of the `"clients"` array of a top-level
//! object (the last `"clients"` member counts, as when the document is parsed whole). The scanner checks
//! the structure of the whole document; the contents of every string and number it does not hand out as
//! part of an element are checked with serde_json, so a document is accepted exactly when
//! `serde_json::from_slice` would accept it.

use std::fmt;
use std::ops::Range;

/// Containers nested deeper than this are refused (serde_json's recursion limit).
pub const MAX_DEPTH: usize = 127;

/// Why the document is not JSON, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError {
    /// Byte offset in the document.
    pub offset: usize,
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A byte that cannot appear here (shown escaped).
    Unexpected(u8),
    /// The document ends inside a value, or holds no value at all.
    UnexpectedEnd,
    TooDeep,
    /// A string or number outside the registrations that serde_json refuses (its message).
    Invalid(String),
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.problem {
            Problem::Unexpected(b) => {
                write!(f, "unexpected byte '{}' at byte offset {}", std::ascii::escape_default(*b), self.offset)
            }
            Problem::UnexpectedEnd => write!(f, "the document ends inside a value (byte offset {})", self.offset),
            Problem::TooDeep => {
                write!(f, "containers nested deeper than {MAX_DEPTH} levels at byte offset {}", self.offset)
            }
            Problem::Invalid(e) => write!(f, "{e} (value at byte offset {})", self.offset),
        }
    }
}

impl std::error::Error for ScanError {}

/// What one call of [`Scanner::next`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The byte range of the next registration.
    Element(Range<usize>),
    /// Another `"clients"` member begins: the registrations found so far do not count (the last one wins).
    Reset,
    /// The byte budget is spent; call again.
    Pending,
    /// The document is complete and valid. `list`: it has registrations (a top-level array, or a
    /// `"clients"` member that is an array).
    End { list: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    Array,
    Object,
}

/// Between tokens: what may come next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Value,
    /// Just after `[`.
    ValueOrEnd,
    /// Just after `{`.
    KeyOrEnd,
    Key,
    Colon,
    CommaOrEnd,
    /// After the top-level value: only whitespace.
    Nothing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Number {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    Exp,
    ExpSign,
    ExpDigits,
}

impl Number {
    fn start(b: u8) -> Option<Number> {
        match b {
            b'-' => Some(Number::Minus),
            b'0' => Some(Number::Zero),
            b'1'..=b'9' => Some(Number::Int),
            _ => None,
        }
    }

    fn next(self, b: u8) -> Option<Number> {
        use Number::*;
        match (self, b) {
            (Minus, b'0') => Some(Zero),
            (Minus, b'1'..=b'9') | (Int, b'0'..=b'9') => Some(Int),
            (Zero | Int, b'.') => Some(Dot),
            (Dot | Frac, b'0'..=b'9') => Some(Frac),
            (Zero | Int | Frac, b'e' | b'E') => Some(Exp),
            (Exp, b'+' | b'-') => Some(ExpSign),
            (Exp | ExpSign | ExpDigits, b'0'..=b'9') => Some(ExpDigits),
            _ => None,
        }
    }

    fn complete(self) -> bool {
        matches!(self, Number::Zero | Number::Int | Number::Frac | Number::ExpDigits)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Between(Expect),
    String { start: usize, key: bool, escaped: bool },
    Literal { word: &'static [u8], at: usize },
    Number { start: usize, state: Number },
}

/// The scanner's position and state; feed it the same document on every call.
#[derive(Debug, Clone)]
pub struct Scanner {
    pos: usize,
    token: Token,
    stack: Vec<Container>,
    /// Stack depth inside the registrations array, while in it.
    list_depth: Option<usize>,
    /// Where the registration being scanned began.
    element_start: Option<usize>,
    /// The key just read is a top-level `"clients"`.
    clients_key: bool,
    /// The last `"clients"` member (or the top-level value) is an array.
    list: bool,
    /// A top-level `"clients"` member has been seen.
    seen_clients: bool,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner::new()
    }
}

impl Scanner {
    pub fn new() -> Scanner {
        Scanner {
            pos: 0,
            token: Token::Between(Expect::Value),
            stack: Vec::new(),
            list_depth: None,
            element_start: None,
            clients_key: false,
            list: false,
            seen_clients: false,
        }
    }

    /// Bytes of the document consumed so far.
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// Scans at most `budget` more bytes of `doc` (at least one), up to the next event.
    pub fn next(&mut self, doc: &[u8], budget: usize) -> Result<Event, ScanError> {
        let stop = self.pos.saturating_add(budget.max(1)).min(doc.len());
        while self.pos < stop {
            let Some(&b) = doc.get(self.pos) else { break };
            match self.token {
                Token::String { start, key, escaped } => {
                    if escaped {
                        self.token = Token::String { start, key, escaped: false };
                        self.pos += 1;
                        continue;
                    }
                    // Skip plain content in one go; escapes and control characters are serde_json's to judge.
                    let rest = doc.get(self.pos..stop).unwrap_or_default();
                    match rest.iter().position(|c| *c == b'"' || *c == b'\\') {
                        None => self.pos = stop,
                        Some(n) => {
                            self.pos += n;
                            if doc.get(self.pos) == Some(&b'\\') {
                                self.token = Token::String { start, key, escaped: true };
                                self.pos += 1;
                            } else {
                                self.pos += 1;
                                if let Some(event) = self.string_done(doc, start, key)? {
                                    return Ok(event);
                                }
                            }
                        }
                    }
                }
                Token::Literal { word, at } => {
                    if word.get(at) != Some(&b) {
                        return Err(self.error(Problem::Unexpected(b)));
                    }
                    self.pos += 1;
                    if at + 1 < word.len() {
                        self.token = Token::Literal { word, at: at + 1 };
                    } else if let Some(event) = self.value_done() {
                        return Ok(event);
                    }
                }
                Token::Number { start, state } => match state.next(b) {
                    Some(next) => {
                        self.token = Token::Number { start, state: next };
                        self.pos += 1;
                    }
                    None if state.complete() => {
                        if let Some(event) = self.number_done(doc, start)? {
                            return Ok(event);
                        }
                    }
                    None => return Err(self.error(Problem::Unexpected(b))),
                },
                Token::Between(expect) => {
                    if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                        self.pos += 1;
                        continue;
                    }
                    if let Some(event) = self.structural(expect, b)? {
                        return Ok(event);
                    }
                }
            }
        }
        if self.pos < doc.len() {
            return Ok(Event::Pending);
        }
        // The whole document has been read.
        if let Token::Number { start, state } = self.token {
            if state.complete() && self.stack.is_empty() {
                if let Some(event) = self.number_done(doc, start)? {
                    return Ok(event);
                }
            }
        }
        match self.token {
            Token::Between(Expect::Nothing) => Ok(Event::End { list: self.list }),
            _ => Err(self.error(Problem::UnexpectedEnd)),
        }
    }

    fn error(&self, problem: Problem) -> ScanError {
        ScanError { offset: self.pos, problem }
    }

    /// A byte outside any string, number or literal.
    fn structural(&mut self, expect: Expect, b: u8) -> Result<Option<Event>, ScanError> {
        let top = self.stack.last().copied();
        match (expect, b) {
            (Expect::ValueOrEnd, b']') => Ok(self.close()),
            (Expect::Value | Expect::ValueOrEnd, _) => self.value_start(b),
            (Expect::KeyOrEnd | Expect::Key, b'"') => {
                self.token = Token::String { start: self.pos, key: true, escaped: false };
                self.pos += 1;
                Ok(None)
            }
            (Expect::KeyOrEnd, b'}') => Ok(self.close()),
            (Expect::Colon, b':') => {
                self.pos += 1;
                self.token = Token::Between(Expect::Value);
                Ok(None)
            }
            (Expect::CommaOrEnd, b',') => {
                self.pos += 1;
                self.token = Token::Between(if top == Some(Container::Object) { Expect::Key } else { Expect::Value });
                Ok(None)
            }
            (Expect::CommaOrEnd, b']') if top == Some(Container::Array) => Ok(self.close()),
            (Expect::CommaOrEnd, b'}') if top == Some(Container::Object) => Ok(self.close()),
            _ => Err(self.error(Problem::Unexpected(b))),
        }
    }

    fn value_start(&mut self, b: u8) -> Result<Option<Event>, ScanError> {
        let depth = self.stack.len();
        if self.list_depth == Some(depth) {
            self.element_start = Some(self.pos);
        }
        // The top-level value, or the value of a top-level "clients" member, decides the list.
        let clients_value = depth == 1 && self.clients_key;
        self.clients_key = false;
        match b {
            b'{' | b'[' => {
                if depth >= MAX_DEPTH {
                    return Err(self.error(Problem::TooDeep));
                }
                self.stack.push(if b == b'{' { Container::Object } else { Container::Array });
                self.token = Token::Between(if b == b'{' { Expect::KeyOrEnd } else { Expect::ValueOrEnd });
            }
            b'"' => self.token = Token::String { start: self.pos, key: false, escaped: false },
            b't' => self.token = Token::Literal { word: b"true", at: 1 },
            b'f' => self.token = Token::Literal { word: b"false", at: 1 },
            b'n' => self.token = Token::Literal { word: b"null", at: 1 },
            _ => match Number::start(b) {
                Some(state) => self.token = Token::Number { start: self.pos, state },
                None => return Err(self.error(Problem::Unexpected(b))),
            },
        }
        self.pos += 1;
        if depth == 0 || clients_value {
            self.list = b == b'[';
            if self.list {
                self.list_depth = Some(depth + 1);
            }
        }
        if clients_value {
            // A second "clients" member replaces the first: what the first held no longer counts.
            let repeated = self.seen_clients;
            self.seen_clients = true;
            if repeated {
                return Ok(Some(Event::Reset));
            }
        }
        Ok(None)
    }

    /// `]` or `}` closing the innermost container.
    fn close(&mut self) -> Option<Event> {
        self.pos += 1;
        self.stack.pop();
        if self.list_depth == Some(self.stack.len() + 1) {
            self.list_depth = None;
        }
        self.value_done()
    }

    /// A value ended just before `self.pos`.
    fn value_done(&mut self) -> Option<Event> {
        self.token = Token::Between(if self.stack.is_empty() { Expect::Nothing } else { Expect::CommaOrEnd });
        if self.list_depth == Some(self.stack.len()) {
            if let Some(start) = self.element_start.take() {
                return Some(Event::Element(start..self.pos));
            }
        }
        None
    }

    /// The closing quote of a string was consumed.
    fn string_done(&mut self, doc: &[u8], start: usize, key: bool) -> Result<Option<Event>, ScanError> {
        let raw = doc.get(start..self.pos).unwrap_or_default();
        if self.element_start.is_none() {
            // Not part of a registration, so nobody else parses it: serde_json judges it here.
            // As a Value, not a String: typed deserialization would link serde's float formatting (~17 KB).
            let text = serde_json::from_slice::<serde_json::Value>(raw)
                .map_err(|e| ScanError { offset: start, problem: Problem::Invalid(e.to_string()) })?;
            if key {
                self.clients_key = self.stack.len() == 1 && text.as_str() == Some("clients");
            }
        }
        if key {
            self.token = Token::Between(Expect::Colon);
            return Ok(None);
        }
        Ok(self.value_done())
    }

    /// A number ends before `self.pos` (the byte there is not part of it).
    fn number_done(&mut self, doc: &[u8], start: usize) -> Result<Option<Event>, ScanError> {
        if self.element_start.is_none() {
            let raw = doc.get(start..self.pos).unwrap_or_default();
            serde_json::from_slice::<serde_json::Value>(raw)
                .map_err(|e| ScanError { offset: start, problem: Problem::Invalid(e.to_string()) })?;
        }
        Ok(self.value_done())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event of a whole scan, with `budget` bytes per call.
    fn scan(doc: &str, budget: usize) -> Result<Vec<Event>, ScanError> {
        let mut s = Scanner::new();
        let mut events = Vec::new();
        loop {
            match s.next(doc.as_bytes(), budget)? {
                Event::Pending => {}
                end @ Event::End { .. } => {
                    events.push(end);
                    return Ok(events);
                }
                e => events.push(e),
            }
        }
    }

    /// The text of every element, and whether the document has a list.
    fn elements(doc: &str) -> Result<(Vec<&str>, bool), ScanError> {
        let mut texts = Vec::new();
        for e in scan(doc, usize::MAX)? {
            match e {
                Event::Element(r) => texts.push(&doc[r]),
                Event::Reset => texts.clear(),
                Event::End { list } => return Ok((texts, list)),
                Event::Pending => {}
            }
        }
        unreachable!()
    }

    #[test]
    fn the_elements_of_a_top_level_array_are_found_by_byte_range() {
        let doc = r#"[{"client_id": "a"}, 7, "s", null, [1, 2], -1.5e3]"#;
        let (found, list) = elements(doc).unwrap();
        assert!(list);
        assert_eq!(found, vec![r#"{"client_id": "a"}"#, "7", r#""s""#, "null", "[1, 2]", "-1.5e3"]);
    }

    #[test]
    fn the_elements_of_the_clients_member_are_found_and_other_members_skipped() {
        let doc = r#"{"version": {"n": [1, {"clients": [9]}]}, "clients": [{"client_id": "a"}, {"client_id": "b"}], "x": []}"#;
        assert_eq!(elements(doc).unwrap(), (vec![r#"{"client_id": "a"}"#, r#"{"client_id": "b"}"#], true));
    }

    #[test]
    fn quotes_brackets_and_escapes_inside_strings_do_not_end_an_element() {
        let doc = r#"[{"client_id": "a\"]}, {", "x": "\\"}, {"client_id": "[{\u0022"}]"#;
        let (found, _) = elements(doc).unwrap();
        assert_eq!(found, vec![r#"{"client_id": "a\"]}, {", "x": "\\"}"#, r#"{"client_id": "[{\u0022"}"#]);
    }

    #[test]
    fn nested_objects_stay_inside_their_element() {
        let doc = r#"[{"jwks": {"keys": [{"x5c": ["AA"]}, {"k": {"a": [[]]}}]}}, {}]"#;
        let (found, _) = elements(doc).unwrap();
        assert_eq!(found, vec![r#"{"jwks": {"keys": [{"x5c": ["AA"]}, {"k": {"a": [[]]}}]}}"#, "{}"]);
    }

    #[test]
    fn whitespace_anywhere_between_tokens_is_allowed() {
        let doc = " \r\n\t{ \"clients\" \n:\t[ \n{ } ,\r\n\t{\"a\" : 1 } \n] \t} \n";
        assert_eq!(elements(doc).unwrap(), (vec!["{ }", "{\"a\" : 1 }"], true));
    }

    #[test]
    fn an_empty_list_has_no_elements() {
        assert_eq!(elements("[]").unwrap(), (vec![], true));
        assert_eq!(elements(r#"{"clients": []}"#).unwrap(), (vec![], true));
    }

    #[test]
    fn documents_that_are_not_a_list_end_without_one() {
        for doc in [
            "42",
            r#""a string""#,
            "true",
            "null",
            "{}",
            r#"{"items": [1]}"#,
            r#"{"clients": 7}"#,
            r#"{"clients": {"a": 1}}"#,
        ] {
            assert_eq!(elements(doc).unwrap(), (vec![], false), "{doc}");
        }
    }

    #[test]
    fn the_last_clients_member_wins() {
        assert_eq!(elements(r#"{"clients": [1, 2], "clients": [3]}"#).unwrap(), (vec!["3"], true));
        assert_eq!(elements(r#"{"clients": [1], "clients": null}"#).unwrap(), (vec![], false));
        assert_eq!(scan(r#"{"clients": [1], "clients": [2]}"#, usize::MAX).unwrap()[1], Event::Reset);
    }

    #[test]
    fn an_escaped_clients_key_is_the_clients_key() {
        assert_eq!(elements(r#"{"clien\u0074s": [1]}"#).unwrap(), (vec!["1"], true));
    }

    #[test]
    fn a_clients_key_below_the_top_level_is_not_the_list() {
        assert_eq!(elements(r#"{"a": {"clients": [1]}}"#).unwrap(), (vec![], false));
        assert_eq!(elements(r#"[{"clients": [1]}]"#).unwrap(), (vec![r#"{"clients": [1]}"#], true));
    }

    #[test]
    fn malformed_documents_are_refused_with_the_offset() {
        let cases = [
            ("", 0),
            ("   ", 3),
            ("<html>", 0),
            ("[1 2]", 3),
            ("[1,]", 3),
            ("[,1]", 1),
            (r#"{"clients" []}"#, 11),
            (r#"{"clients": [1],}"#, 16),
            (r#"{1: 2}"#, 1),
            ("[tru]", 4),
            ("[nul", 4),
            ("[01]", 2),
            ("[1.]", 3),
            ("[-]", 2),
            ("[1e]", 3),
            ("[] []", 3),
            ("[]]", 2),
            ("{]", 1),
            ("[}", 1),
        ];
        for (doc, offset) in cases {
            let e = scan(doc, usize::MAX).unwrap_err();
            assert_eq!(e.offset, offset, "{doc:?}: {e}");
        }
    }

    #[test]
    fn truncated_documents_are_refused_at_every_cut() {
        let doc = r#"{"v": [true, false, null, -0.5E+2], "clients": [{"client_id": "a\"b", "n": [1, {"x": "y"}]}, 3]}"#;
        for cut in 0..doc.len() {
            assert!(scan(&doc[..cut], usize::MAX).is_err(), "{:?}", &doc[..cut]);
        }
        assert!(scan(doc, usize::MAX).is_ok());
    }

    #[test]
    fn strings_and_numbers_outside_the_registrations_are_checked_by_serde_json() {
        for doc in [
            r#"{"a": "\q", "clients": []}"#,
            "{\"a\": \"\u{1}\", \"clients\": []}",
            r#"{"a": 1e400, "clients": []}"#,
            r#"{"\ud800": 1}"#,
        ] {
            let e = scan(doc, usize::MAX).unwrap_err();
            assert!(matches!(e.problem, Problem::Invalid(_)), "{doc}: {e}");
        }
        // Inside a registration they are left to whoever parses the registration.
        assert_eq!(elements(r#"[{"a": "\q"}]"#).unwrap().0, vec![r#"{"a": "\q"}"#]);
    }

    #[test]
    fn bytes_that_are_not_ascii_outside_strings_are_refused() {
        let e = scan("[1, \u{e9}]", usize::MAX).unwrap_err();
        assert_eq!((e.offset, e.problem), (4, Problem::Unexpected(0xc3)));
    }

    #[test]
    fn nesting_is_limited_as_serde_json_limits_it() {
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(scan(&ok, usize::MAX).is_ok());
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(scan(&deep, usize::MAX).unwrap_err().problem, Problem::TooDeep);
        assert!(serde_json::from_str::<serde_json::Value>(&deep).is_err());
        assert!(serde_json::from_str::<serde_json::Value>(&ok).is_ok());
    }

    #[test]
    fn a_top_level_number_ends_with_the_document() {
        assert_eq!(elements("12").unwrap(), (vec![], false));
        assert_eq!(elements("-0.5e-3 ").unwrap(), (vec![], false));
        assert!(scan("-", usize::MAX).is_err());
    }

    #[test]
    fn any_budget_finds_the_same_events() {
        let doc = r#" {"x": {"y": ["]", "\"", 12.5e1]}, "clients": [{"client_id": "a\\", "n": null}, {"client_id": "b"}, false]} "#;
        let whole: Vec<Event> = scan(doc, usize::MAX).unwrap();
        for budget in [1, 2, 3, 7, 16] {
            let sliced: Vec<Event> = scan(doc, budget).unwrap();
            assert_eq!(sliced, whole, "budget {budget}");
        }
    }

    #[test]
    fn a_call_scans_no_more_than_its_budget() {
        let doc = format!("[{}]", vec![r#"{"client_id": "abcdefgh"}"#; 50].join(","));
        let mut s = Scanner::new();
        let mut before = 0;
        loop {
            let event = s.next(doc.as_bytes(), 10).unwrap();
            assert!(s.offset() - before <= 10);
            before = s.offset();
            if matches!(event, Event::End { .. }) {
                break;
            }
        }
    }
}
