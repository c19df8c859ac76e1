//! Other people's protocols: messages rendered from a template instead of wsbench's header, and
//! the correlation rule that finds which request a reply answers.
//!
//! A [`Template`] is parsed once per process into literal runs and placeholders, and rendered per
//! message into the connection's reused send buffer: integers are formatted on the stack, random
//! characters come from the connection's seeded generator, so rendering allocates nothing.
//! A [`Correlator`] reads the sequence number back out of each reply: `--match-regex` runs on
//! the reply's bytes with capture slots kept per connection, `--match-json` walks the JSON
//! pointer through the reply with serde, skipping everything off the path unparsed.
//! Neither stores the reply.

use std::fmt;
use std::ops::Range;

use bytes::{BufMut, BytesMut};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use wsbench_core::plan::Correlation;

/// The longest `{rand:N}`: longer random runs would measure the generator, not the server.
pub const MAX_RAND: usize = 64 << 10;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// Bytes of the template itself.
    Literal(Range<usize>),
    /// The message's sequence number on its connection (0, 1, 2, ...).
    Seq,
    /// The connection's number within the load-generator process (0-based).
    Conn,
    /// The intended send time, monotonic nanoseconds (closed loop: the time of rendering).
    TsNs,
    /// This many random ASCII letters and digits.
    Rand(usize),
}

/// A message template: text with placeholders `{seq}`, `{conn}`, `{ts_ns}` and `{rand:N}`.
///
/// Any other `{` is literal, so JSON templates need no escaping; a brace followed by a lowercase
/// word and `}` or `:` that is not a placeholder is refused as a likely typo (`{sequence}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    parts: Vec<Part>,
    /// The longest rendering: literals, 20 digits per number, the random runs.
    max_len: usize,
}

/// What a template's placeholders stand for in one message.
#[derive(Debug, Clone, Copy)]
pub struct Values {
    pub seq: u64,
    pub conn: u32,
    pub ts_ns: u64,
}

impl Template {
    /// Parses a template; the error says which placeholder is wrong and what is accepted.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut literal_from = 0;
        let mut i = 0;
        let bytes = text.as_bytes();
        while i < bytes.len() {
            if bytes[i] != b'{' {
                i += 1;
                continue;
            }
            let name_end = bytes[i + 1..].iter().position(|b| !(b.is_ascii_lowercase() || *b == b'_')).map_or(bytes.len(), |p| i + 1 + p);
            let name = &text[i + 1..name_end];
            let next = bytes.get(name_end).copied();
            if name.is_empty() || !matches!(next, Some(b'}') | Some(b':')) {
                i += 1;
                continue;
            }
            let close = text[name_end..].find('}').map(|p| name_end + p);
            let (part, end) = match (name, next, close) {
                ("seq", Some(b'}'), _) => (Part::Seq, name_end + 1),
                ("conn", Some(b'}'), _) => (Part::Conn, name_end + 1),
                ("ts_ns", Some(b'}'), _) => (Part::TsNs, name_end + 1),
                ("rand", Some(b':'), Some(close)) => {
                    let n = &text[name_end + 1..close];
                    match n.parse::<usize>() {
                        Ok(n) if (1..=MAX_RAND).contains(&n) => (Part::Rand(n), close + 1),
                        _ => return Err(format!("template placeholder `{{rand:{n}}}`: N must be a whole number from 1 to {MAX_RAND}")),
                    }
                }
                // `{"a":1}` never gets here (a quote is not a word character), nor does `{x: 1}`
                // in JavaScript-like text with a space; `{word:` with no placeholder meant is rare.
                _ => {
                    let shown = close.map_or(&text[i..name_end.min(text.len())], |c| &text[i..=c]);
                    return Err(format!("template placeholder `{shown}` is unknown; use {{seq}}, {{conn}}, {{ts_ns}} or {{rand:N}}"));
                }
            };
            if literal_from < i {
                parts.push(Part::Literal(literal_from..i));
            }
            parts.push(part);
            i = end;
            literal_from = end;
        }
        if literal_from < bytes.len() {
            parts.push(Part::Literal(literal_from..bytes.len()));
        }
        let max_len = parts
            .iter()
            .map(|p| match p {
                Part::Literal(r) => r.len(),
                Part::Seq | Part::TsNs | Part::Conn => 20,
                Part::Rand(n) => *n,
            })
            .sum();
        Ok(Self { text: text.to_owned(), parts, max_len })
    }

    /// True when the template carries the sequence number, which replies must give back.
    pub fn has_seq(&self) -> bool {
        self.parts.contains(&Part::Seq)
    }

    /// The longest message this template renders, in bytes.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Appends one message to `out`. Reserves [`Self::max_len`] first, so a buffer that has
    /// room (a reused one whose earlier messages were released) is not reallocated.
    pub fn render(&self, out: &mut BytesMut, v: Values, rng: &mut fastrand::Rng) {
        out.reserve(self.max_len);
        for part in &self.parts {
            match part {
                Part::Literal(r) => out.extend_from_slice(&self.text.as_bytes()[r.clone()]),
                Part::Seq => put_u64(out, v.seq),
                Part::Conn => put_u64(out, u64::from(v.conn)),
                Part::TsNs => put_u64(out, v.ts_ns),
                Part::Rand(n) => {
                    for _ in 0..*n {
                        // Letters and digits are one byte each in UTF-8.
                        out.put_u8(rng.alphanumeric() as u8);
                    }
                }
            }
        }
    }
}

/// Decimal digits of `n`, formatted on the stack.
fn put_u64(out: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// A template load's settings, checked and compiled: shared by a worker's connections, each of
/// which clones the correlator.
#[derive(Debug, Clone)]
pub struct Foreign {
    pub template: Template,
    pub correlator: Correlator,
}

impl Foreign {
    /// Parses the template and compiles the rule; the error is one line saying what to change.
    pub fn new(plan: &wsbench_core::plan::Foreign) -> Result<Self, String> {
        let template = Template::parse(&plan.template)?;
        if !template.has_seq() {
            return Err("the template has no {seq}: replies could not name the request they answer; put {seq} where the server reads the request's id".into());
        }
        Ok(Self { template, correlator: Correlator::new(&plan.correlation)? })
    }
}

/// What a correlation rule found in a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// The sequence number of the request the reply answers.
    Seq(u64),
    /// No sequence number at all: the JSON pointer leads nowhere, or the expression does not
    /// match. A message of the server's own (a push, a notification).
    Nothing,
    /// Something where the number should be that is not one (a JSON `null` or `"abc"`, a capture
    /// that is not a whole number), or, with `--match-json`, a reply that is not JSON.
    Unreadable,
}

/// A correlation rule, ready to read replies; one per connection (it keeps capture slots).
#[derive(Debug, Clone)]
pub enum Correlator {
    /// JSON pointer segments (`~0`, `~1` unescaped).
    Json(Vec<String>),
    Regex(regex::bytes::Regex, regex::bytes::CaptureLocations),
}

impl Correlator {
    /// Compiles a rule; the error names the flag and what is wrong with its value.
    pub fn new(rule: &Correlation) -> Result<Self, String> {
        match rule {
            Correlation::MatchJson(p) => {
                if p.is_empty() {
                    return Ok(Self::Json(Vec::new()));
                }
                let Some(rest) = p.strip_prefix('/') else {
                    return Err(format!("--match-json `{p}` is not a JSON pointer; write it as /id or /result/id (RFC 6901)"));
                };
                Ok(Self::Json(rest.split('/').map(|s| s.replace("~1", "/").replace("~0", "~")).collect()))
            }
            Correlation::MatchRegex(r) => {
                let re = regex::bytes::Regex::new(r).map_err(|e| format!("--match-regex `{r}` is not a regular expression: {e}"))?;
                if re.captures_len() < 2 {
                    return Err(format!("--match-regex `{r}` has no capture group; put the sequence number in one, e.g. \"id\":(\\d+)"));
                }
                let slots = re.capture_locations();
                Ok(Self::Regex(re, slots))
            }
        }
    }

    /// Finds the sequence number in `reply`.
    pub fn find(&mut self, reply: &[u8]) -> Found {
        match self {
            Self::Regex(re, slots) => match re.captures_read(slots, reply) {
                None => Found::Nothing,
                Some(_) => match slots.get(1) {
                    None => Found::Nothing,
                    Some((a, b)) => parse_digits(&reply[a..b]),
                },
            },
            Self::Json(path) => {
                let mut de = serde_json::Deserializer::from_slice(reply);
                match (PointerSeed { path }).deserialize(&mut de).and_then(|f| de.end().map(|()| f)) {
                    Ok(found) => found,
                    Err(_) => Found::Unreadable,
                }
            }
        }
    }
}

/// A whole number in ASCII digits.
fn parse_digits(s: &[u8]) -> Found {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return Found::Unreadable;
    }
    std::str::from_utf8(s).ok().and_then(|s| s.parse().ok()).map_or(Found::Unreadable, Found::Seq)
}

/// Walks a JSON pointer through a document as serde reads it: values off the path are skipped
/// (`IgnoredAny`), keys on it compared borrowed, so a reply is never built into a `Value`.
struct PointerSeed<'p> {
    path: &'p [String],
}

impl<'de> DeserializeSeed<'de> for PointerSeed<'_> {
    type Value = Found;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Found, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for PointerSeed<'_> {
    type Value = Found;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Found, E> {
        Ok(if self.path.is_empty() { Found::Seq(n) } else { Found::Nothing })
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Found, E> {
        Ok(match (self.path.is_empty(), u64::try_from(n)) {
            (false, _) => Found::Nothing,
            (true, Ok(n)) => Found::Seq(n),
            (true, Err(_)) => Found::Unreadable,
        })
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Found, E> {
        Ok(if self.path.is_empty() { Found::Unreadable } else { Found::Nothing })
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Found, E> {
        Ok(if self.path.is_empty() { parse_digits(s.as_bytes()) } else { Found::Nothing })
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Found, E> {
        self.visit_f64(0.0)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Found, E> {
        self.visit_f64(0.0)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Found, A::Error> {
        let mut found = if self.path.is_empty() { Found::Unreadable } else { Found::Nothing };
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match self.path.split_first() {
                Some((first, rest)) if key.0 == first.as_str() && found == Found::Nothing => found = map.next_value_seed(PointerSeed { path: rest })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Found, A::Error> {
        let index = self.path.split_first().and_then(|(first, rest)| Some((first.parse::<usize>().ok()?, rest)));
        let mut found = if self.path.is_empty() { Found::Unreadable } else { Found::Nothing };
        let mut i = 0;
        loop {
            let more = match index {
                Some((at, rest)) if at == i => seq.next_element_seed(PointerSeed { path: rest })?.map(|f| found = f).is_some(),
                _ => seq.next_element::<IgnoredAny>()?.is_some(),
            };
            if !more {
                return Ok(found);
            }
            i += 1;
        }
    }
}

/// An object key, borrowed from the reply when it has no escapes (copied only when it does).
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(s)))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(t: &str, v: Values) -> String {
        let mut out = BytesMut::new();
        Template::parse(t).unwrap().render(&mut out, v, &mut fastrand::Rng::with_seed(7));
        String::from_utf8(out.to_vec()).unwrap()
    }

    const V: Values = Values { seq: 42, conn: 3, ts_ns: 1_234_567_890_123 };

    #[test]
    fn placeholders_render_and_json_braces_stay_literal() {
        let t = r#"{"jsonrpc":"2.0","id":{seq},"method":"echo","params":["{conn}",{ts_ns}]}"#;
        assert_eq!(render(t, V), r#"{"jsonrpc":"2.0","id":42,"method":"echo","params":["3",1234567890123]}"#);
        assert_eq!(render("{seq}", Values { seq: 0, ..V }), "0");
        assert_eq!(render("{seq}", Values { seq: u64::MAX, ..V }), u64::MAX.to_string());
        assert_eq!(render("{}{ {x {seq", V), "{}{ {x {seq", "unclosed or non-word braces are literal");
        assert!(Template::parse("{seq}").unwrap().has_seq());
        assert!(!Template::parse(r#"{"id":1}"#).unwrap().has_seq());
    }

    #[test]
    fn random_runs_are_alphanumeric_and_seeded() {
        let a = render("<{rand:16}>", V);
        assert_eq!(a.len(), 18);
        assert!(a[1..17].bytes().all(|b| b.is_ascii_alphanumeric()), "{a}");
        assert_eq!(a, render("<{rand:16}>", V), "the same seed gives the same text");
    }

    #[test]
    fn bad_placeholders_are_named() {
        for (t, says) in [("{sequence}", "`{sequence}` is unknown"), ("{rand:0}", "1 to"), ("{rand:x}", "1 to"), ("{seq:3}", "`{seq:3}` is unknown"), ("{rand}", "`{rand}` is unknown")] {
            let e = Template::parse(t).unwrap_err();
            assert!(e.contains(says), "{t}: {e}");
        }
    }

    #[test]
    fn render_fits_the_reserved_length() {
        let t = Template::parse("a{seq}b{conn}c{ts_ns}d{rand:5}").unwrap();
        let mut out = BytesMut::new();
        t.render(&mut out, Values { seq: u64::MAX, conn: u32::MAX, ts_ns: u64::MAX }, &mut fastrand::Rng::with_seed(1));
        assert!(out.len() <= t.max_len());
    }

    fn find(rule: Correlation, reply: &str) -> Found {
        Correlator::new(&rule).unwrap().find(reply.as_bytes())
    }

    #[test]
    fn json_pointer_finds_the_number_and_tells_nothing_from_unreadable() {
        let j = |p: &str| Correlation::MatchJson(p.into());
        assert_eq!(find(j("/id"), r#"{"jsonrpc":"2.0","id":17,"result":["x"]}"#), Found::Seq(17));
        assert_eq!(find(j("/id"), r#"{"result":{"id":5},"id":"18"}"#), Found::Seq(18), "strings of digits count; nested keys of the same name do not");
        assert_eq!(find(j("/result/1/n"), r#"{"result":[{"n":1},{"n":9}]}"#), Found::Seq(9));
        assert_eq!(find(j("/a~1b"), r#"{"a/b":3}"#), Found::Seq(3));
        assert_eq!(find(j("/id"), r#"{"jsonrpc":"2.0","method":"tick","params":[1]}"#), Found::Nothing);
        assert_eq!(find(j("/id"), r#"{"id":null}"#), Found::Unreadable);
        assert_eq!(find(j("/id"), r#"{"id":-1}"#), Found::Unreadable);
        assert_eq!(find(j("/id"), r#"{"id":"x1"}"#), Found::Unreadable);
        assert_eq!(find(j("/id"), r#"{"id":1.5}"#), Found::Unreadable);
        assert_eq!(find(j("/id"), "not json"), Found::Unreadable);
        assert_eq!(find(j("/id"), r#"{"id":1} trailing"#), Found::Unreadable);
        assert_eq!(find(j("/id"), "[1,2]"), Found::Nothing);
        assert!(Correlator::new(&j("id")).unwrap_err().contains("not a JSON pointer"));
    }

    #[test]
    fn regex_takes_the_first_capture_group() {
        let r = |p: &str| Correlation::MatchRegex(p.into());
        assert_eq!(find(r(r#""id":(\d+)"#), r#"{"id":123,"x":1}"#), Found::Seq(123));
        assert_eq!(find(r(r#""id":(\d+)"#), r#"{"method":"push"}"#), Found::Nothing);
        assert_eq!(find(r(r#""id":"?(\w+)"#), r#"{"id":"abc"}"#), Found::Unreadable);
        assert!(Correlator::new(&r("id:\\d+")).unwrap_err().contains("no capture group"));
        assert!(Correlator::new(&r("(")).unwrap_err().contains("not a regular expression"));
    }
}
