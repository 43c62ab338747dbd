//! The Python library's own notation for adapter setups, read into a [`Setup`] and written
//! back (`Setup`'s `FromStr` and `Display`):
//!
//! ```text
//! Stack(a, Fuse(b, c))            Parallel(a, b)          MultiTask(a, b)
//! Average(a, b, weights=[0.3, 0.7], normalize_weights=False)
//! BatchSplit(a, b, batch_sizes=[1, 2])       Split(a, b, splits=[4, 4])   Split(a, b, splits=4)
//! ```
//!
//! As the library's constructors take them: blocks nest; an adapter is a bare name (letters,
//! digits, `_`, `-`) or a quoted one (`'a b'`, `"a b"`, with `\'`, `\"`, `\\` escapes);
//! keyword arguments after the children (`weights`, `normalize_weights` and `name` — only the
//! fusion's own — of Average and Fuse; `batch_sizes`, `splits` as a list or one number for
//! every child); blanks anywhere; a trailing comma. A bare name alone is `Stack(name)`, as the
//! library's `set_active_adapters("name")`. Each block's sizes are checked against its children
//! here (the library fails later, mid-forward, or silently gives a child nothing).
//!
//! Errors name the column (1-based, in characters) and what was expected. Hostile input is
//! bounded before anything grows with it: at most [`MAX_CHARS`] characters, [`MAX_DEPTH`]
//! nested blocks (the reader recurses once per block), [`MAX_ITEMS`] names and blocks,
//! [`MAX_NAME_CHARS`] characters a name and sizes up to [`MAX_SIZE`]. What `Display` writes
//! for a setup this reads is read back to the same setup (and stays within these bounds).
use std::fmt;

use super::composition::Setup;
use crate::error::{clip, Error, Result};

/// The longest expression read, in characters.
pub const MAX_CHARS: usize = 1 << 20;
/// The deepest nesting of blocks (the library's valid setups use three).
pub const MAX_DEPTH: usize = 32;
/// The most names and blocks in one expression.
pub const MAX_ITEMS: usize = 1000;
/// The longest adapter name, in characters (names become folder names).
pub const MAX_NAME_CHARS: usize = 255;
/// The largest batch size or split.
pub const MAX_SIZE: i64 = i32::MAX as i64;

/// Every keyword argument a block takes.
const KEYWORDS: [&str; 5] = [
    "weights",
    "normalize_weights",
    "batch_sizes",
    "splits",
    "name",
];

const BLOCKS: [&str; 7] = [
    "Stack",
    "Fuse",
    "Average",
    "Parallel",
    "BatchSplit",
    "Split",
    "MultiTask",
];

/// Reads the library's notation; see the module's documentation.
pub fn parse(text: &str) -> Result<Setup> {
    // Bytes first: a huge string is refused without walking it.
    if text.len() > 4 * MAX_CHARS || text.chars().count() > MAX_CHARS {
        return Err(Error::Invalid(format!(
            "the setup is {} characters long; at most {MAX_CHARS} are read",
            text.chars().count()
        )));
    }
    let mut p = Reader {
        chars: text.chars().collect(),
        pos: 0,
        items: 0,
    };
    p.blanks();
    if p.peek().is_none() {
        return Err(p.error(
            p.pos,
            "expected an adapter name or a block such as Stack(a, b); the setup is empty",
        ));
    }
    let setup = match p.node(0)? {
        Node::Name(n) => Setup::Stack(vec![Setup::Adapter(n)]),
        Node::Block(b) => b,
    };
    p.blanks();
    if p.peek().is_some() {
        let what = p.describe(p.pos);
        return Err(p.error(p.pos, &format!("unexpected {what} after the setup")));
    }
    Ok(setup)
}

/// Writes `setup` in the library's notation (`Setup`'s `Display`).
pub(crate) fn write(setup: &Setup, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let Setup::Adapter(name) = setup else {
        write!(f, "{}(", setup.kind())?;
        for (i, c) in setup.children().iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write(c, f)?;
        }
        match setup {
            Setup::Average { children, weights } if *weights != default_weights(children.len()) => {
                write!(f, ", weights=")?;
                write_list(f, weights.iter().map(|w| format!("{w:?}")))?;
                if !is_normalized(weights) {
                    write!(f, ", normalize_weights=False")?;
                }
            }
            Setup::BatchSplit { batch_sizes, .. } => {
                write!(f, ", batch_sizes=")?;
                write_list(f, batch_sizes.iter().map(i64::to_string))?;
            }
            Setup::Split { splits, .. } => {
                write!(f, ", splits=")?;
                write_list(f, splits.iter().map(i64::to_string))?;
            }
            _ => {}
        }
        return write!(f, ")");
    };
    if is_bare(name) {
        return write!(f, "{name}");
    }
    // The quote that needs no escaping where there is one.
    let quote = if name.contains('\'') && !name.contains('"') {
        '"'
    } else {
        '\''
    };
    write!(f, "{quote}")?;
    for c in name.chars() {
        if c == quote || c == '\\' {
            write!(f, "\\")?;
        }
        write!(f, "{c}")?;
    }
    write!(f, "{quote}")
}

fn write_list(f: &mut fmt::Formatter<'_>, items: impl Iterator<Item = String>) -> fmt::Result {
    write!(f, "[")?;
    for (i, x) in items.enumerate() {
        if i > 0 {
            write!(f, ", ")?;
        }
        write!(f, "{x}")?;
    }
    write!(f, "]")
}

/// A name written without quotes: letters, digits, `_` and `-`.
fn is_bare(name: &str) -> bool {
    !name.is_empty() && name.chars().all(bare_char)
}

fn bare_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

/// The library's weights when none are given: `[1 / n] * n`.
fn default_weights(n: usize) -> Vec<f64> {
    vec![1.0 / n as f64; n]
}

/// The library's normalisation (`w / sum(w)`); None where the sum is 0 or the result is not
/// finite (the library divides by zero or makes NaN).
fn normalized(weights: &[f64]) -> Option<Vec<f64>> {
    let sum: f64 = weights.iter().sum();
    let out: Vec<f64> = weights.iter().map(|w| w / sum).collect();
    (sum != 0.0 && out.iter().all(|w| w.is_finite())).then_some(out)
}

/// Whether normalising `weights` as the library does leaves them as they are.
pub(crate) fn is_normalized(weights: &[f64]) -> bool {
    normalized(weights).as_deref() == Some(weights)
}

/// A parsed argument value.
#[derive(Debug)]
enum Value {
    /// A number; `whole` when written without a fraction or exponent.
    Number {
        value: f64,
        whole: bool,
    },
    List(Vec<(f64, bool, usize)>),
    Bool(bool),
    None,
    Text(String),
}

enum Node {
    Name(String),
    Block(Setup),
}

struct Reader {
    chars: Vec<char>,
    pos: usize,
    items: usize,
}

impl Reader {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn blanks(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    /// `at column N: message` (N = 1-based character position of `pos`).
    fn error(&self, pos: usize, message: &str) -> Error {
        Error::Invalid(format!("at column {}: {message}", pos + 1))
    }

    /// What is at `pos`, for an error: `x`, a name, or the end.
    fn describe(&self, pos: usize) -> String {
        match self.chars.get(pos) {
            None => "end of input".into(),
            Some(c) if bare_char(*c) => {
                let word: String = self.chars[pos..]
                    .iter()
                    .take_while(|c| bare_char(**c))
                    .take(40)
                    .collect();
                format!("`{word}`")
            }
            Some(c) if c.is_control() => format!("character {:?}", c),
            Some(c) => format!("`{c}`"),
        }
    }

    fn count_item(&mut self, pos: usize) -> Result<()> {
        self.items += 1;
        if self.items > MAX_ITEMS {
            return Err(self.error(
                pos,
                &format!("more than {MAX_ITEMS} adapter names and blocks"),
            ));
        }
        Ok(())
    }

    /// A bare word (letters, digits, `_`, `-`) at the current position, possibly empty.
    fn word(&mut self) -> String {
        let start = self.pos;
        while self.peek().is_some_and(bare_char) {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    /// A quoted string; the current character is its opening quote.
    fn quoted(&mut self) -> Result<String> {
        let open = self.pos;
        let quote = self.chars[open];
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(self.error(
                        open,
                        &format!("unterminated string: no closing {quote} for this one"),
                    ))
                }
                Some(c) if c == quote => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some('\\') => {
                    let at = self.pos;
                    self.pos += 1;
                    let c =
                        match self.peek() {
                            Some(c @ ('\\' | '\'' | '"')) => c,
                            Some('n') => '\n',
                            Some('t') => '\t',
                            Some('r') => '\r',
                            _ => return Err(self.error(
                                at,
                                "unknown escape in a quoted name (\\\\, \\', \\\", \\n, \\t, \\r)",
                            )),
                        };
                    out.push(c);
                    self.pos += 1;
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
            if out.chars().count() > MAX_NAME_CHARS {
                return Err(self.error(
                    open,
                    &format!("names are at most {MAX_NAME_CHARS} characters"),
                ));
            }
        }
    }

    /// Checks an adapter name as adapters are named (it becomes weight names and folders).
    fn check_name(&self, name: &str, pos: usize) -> Result<()> {
        if name.is_empty() {
            return Err(self.error(pos, "an adapter name cannot be empty"));
        }
        if let Some(c) = name.chars().find(|c| matches!(c, '.' | ',' | '/')) {
            return Err(self.error(
                pos,
                &format!(
                    "adapter name `{}` holds `{c}` (adapter names hold no `.`, `,` or `/`)",
                    clip(name)
                ),
            ));
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(self.error(
                pos,
                &format!("names are at most {MAX_NAME_CHARS} characters"),
            ));
        }
        Ok(())
    }

    /// An adapter name or a block, at nesting `depth`.
    fn node(&mut self, depth: usize) -> Result<Node> {
        let start = self.pos;
        match self.peek() {
            Some('\'' | '"') => {
                let name = self.quoted()?;
                self.check_name(&name, start)?;
                self.count_item(start)?;
                Ok(Node::Name(name))
            }
            Some(c) if bare_char(c) => {
                let word = self.word();
                let after_word = self.pos;
                self.blanks();
                if self.peek() == Some('(') {
                    return self.block(&word, start, depth).map(Node::Block);
                }
                self.pos = after_word;
                if let Some(c @ ('.' | '/')) = self.peek() {
                    return Err(self.error(
                        self.pos,
                        &format!(
                            "unexpected `{c}` after `{}` (adapter names hold no `.`, `,` or `/`)",
                            clip(&word)
                        ),
                    ));
                }
                self.check_name(&word, start)?;
                self.count_item(start)?;
                Ok(Node::Name(word))
            }
            _ => {
                let what = self.describe(start);
                Err(self.error(
                    start,
                    &format!(
                        "expected an adapter name or a block such as Stack(a, b), found {what} \
                         (quote names with other characters: 'a b')"
                    ),
                ))
            }
        }
    }

    /// A block `kind(children, keywords)`; the current character is its `(`.
    fn block(&mut self, kind: &str, start: usize, depth: usize) -> Result<Setup> {
        if !BLOCKS.contains(&kind) {
            let hint = BLOCKS
                .iter()
                .find(|b| b.eq_ignore_ascii_case(kind))
                .map(|b| format!("; did you mean {b}?"))
                .unwrap_or_default();
            return Err(self.error(
                start,
                &format!(
                    "unknown block `{}` (the blocks are {}){hint}",
                    clip(kind),
                    BLOCKS.join(", ")
                ),
            ));
        }
        if depth + 1 > MAX_DEPTH {
            return Err(self.error(start, &format!("blocks nested deeper than {MAX_DEPTH}")));
        }
        self.count_item(start)?;
        self.pos += 1; // (
        let mut children = Vec::new();
        let mut keywords: Vec<(String, usize, Value, usize)> = Vec::new();
        // What the last argument was, for "expected ',' or ')' after …".
        let mut last = format!("{kind}(");
        loop {
            self.blanks();
            match self.peek() {
                Some(')') => {
                    self.pos += 1;
                    break;
                }
                None => {
                    return Err(self.error(
                        self.pos,
                        &format!(
                            "expected an adapter name, a block or ')' after `{}`; the {kind}( at \
                             column {} is not closed",
                            clip(&last),
                            start + 1
                        ),
                    ))
                }
                _ => {}
            }
            let arg_start = self.pos;
            // A keyword: a word followed by `=`.
            if self.peek().is_some_and(bare_char) {
                let word = self.word();
                self.blanks();
                if self.peek() == Some('=') {
                    self.pos += 1;
                    self.blanks();
                    let value_start = self.pos;
                    let value = self.value()?;
                    if keywords.iter().any(|(k, ..)| *k == word) {
                        return Err(self.error(arg_start, &format!("keyword `{word}` given twice")));
                    }
                    last = format!("{word}=…");
                    keywords.push((word, arg_start, value, value_start));
                } else {
                    self.pos = arg_start;
                }
            }
            if self.pos == arg_start {
                if let Some((k, ..)) = keywords.last() {
                    return Err(self.error(
                        arg_start,
                        &format!(
                            "an adapter or block after the keyword `{k}` (children come first, \
                             keywords last, as in Python)"
                        ),
                    ));
                }
                match self.node(depth + 1)? {
                    Node::Name(n) => {
                        last = n.clone();
                        children.push(Setup::Adapter(n));
                    }
                    Node::Block(b) => {
                        last = format!("{}(…)", b.kind());
                        children.push(b);
                    }
                }
            }
            self.blanks();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(')') => {}
                None => {
                    return Err(self.error(
                        self.pos,
                        &format!(
                            "expected ',' or ')' after `{}`; the {kind}( at column {} is not \
                             closed",
                            clip(&last),
                            start + 1
                        ),
                    ))
                }
                _ => {
                    let what = self.describe(self.pos);
                    return Err(self.error(
                        self.pos,
                        &format!("expected ',' or ')' after `{}`, found {what}", clip(&last)),
                    ));
                }
            }
        }
        if children.is_empty() {
            return Err(self.error(
                start,
                &format!("{kind} needs at least one adapter or block"),
            ));
        }
        self.build(kind, start, children, keywords)
    }

    /// A keyword's value: a number, a list of numbers, True, False, None or a quoted text.
    fn value(&mut self) -> Result<Value> {
        let start = self.pos;
        match self.peek() {
            Some('[') => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.blanks();
                    if self.peek() == Some(']') {
                        self.pos += 1;
                        return Ok(Value::List(items));
                    }
                    let at = self.pos;
                    let (value, whole) = self.number()?;
                    items.push((value, whole, at));
                    self.blanks();
                    match self.peek() {
                        Some(',') => self.pos += 1,
                        Some(']') => {}
                        _ => {
                            let what = self.describe(self.pos);
                            return Err(self.error(
                                self.pos,
                                &format!(
                                    "expected ',' or ']' in the list opened at column {}, found \
                                     {what}",
                                    start + 1
                                ),
                            ));
                        }
                    }
                }
            }
            Some('\'' | '"') => Ok(Value::Text(self.quoted()?)),
            Some(c) if c.is_ascii_digit() || matches!(c, '-' | '+' | '.') => {
                // `-x` could be a name; a number is tried first, as Python reads it.
                let (value, whole) = self.number()?;
                Ok(Value::Number { value, whole })
            }
            Some(c) if bare_char(c) => match self.word().as_str() {
                "True" => Ok(Value::Bool(true)),
                "False" => Ok(Value::Bool(false)),
                "None" => Ok(Value::None),
                other => Err(self.error(
                    start,
                    &format!(
                        "expected a number, a list [..], True, False or None, found `{}`",
                        clip(other)
                    ),
                )),
            },
            _ => {
                let what = self.describe(start);
                Err(self.error(
                    start,
                    &format!("expected a number, a list [..], True, False or None, found {what}"),
                ))
            }
        }
    }

    /// A number as Python writes it: `[+-]digits[.digits][e[+-]digits]`; whether it is whole.
    fn number(&mut self) -> Result<(f64, bool)> {
        let start = self.pos;
        let mut text = String::new();
        if let Some(c @ ('-' | '+')) = self.peek() {
            text.push(c);
            self.pos += 1;
            self.blanks();
        }
        let digits = |r: &mut Reader, text: &mut String| {
            let mut n = 0;
            while let Some(c) = r.peek().filter(char::is_ascii_digit) {
                text.push(c);
                r.pos += 1;
                n += 1;
            }
            n
        };
        let mut whole = true;
        let mut n = digits(self, &mut text);
        if self.peek() == Some('.') {
            whole = false;
            text.push('.');
            self.pos += 1;
            n += digits(self, &mut text);
        }
        if n == 0 {
            let what = self.describe(self.pos);
            return Err(self.error(start, &format!("expected a number, found {what}")));
        }
        if let Some(e @ ('e' | 'E')) = self.peek() {
            whole = false;
            text.push(e);
            self.pos += 1;
            if let Some(c @ ('-' | '+')) = self.peek() {
                text.push(c);
                self.pos += 1;
            }
            if digits(self, &mut text) == 0 {
                return Err(self.error(start, "a number's exponent has no digits"));
            }
        }
        if self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            let what = self.describe(self.pos);
            return Err(self.error(self.pos, &format!("unexpected {what} in a number")));
        }
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok((v, whole)),
            _ => Err(self.error(start, &format!("`{}` is not a finite number", clip(&text)))),
        }
    }

    /// The block `kind` with its children and keyword arguments, checked.
    fn build(
        &self,
        kind: &str,
        start: usize,
        children: Vec<Setup>,
        keywords: Vec<(String, usize, Value, usize)>,
    ) -> Result<Setup> {
        let n = children.len();
        let allowed: &[&str] = match kind {
            "Average" => &["weights", "normalize_weights"],
            "BatchSplit" => &["batch_sizes"],
            "Split" => &["splits"],
            "Fuse" => &["name"],
            _ => &[],
        };
        for (k, at, ..) in &keywords {
            if !allowed.contains(&k.as_str()) {
                let valid = match allowed {
                    [] => format!("{kind} takes no keyword arguments"),
                    some => format!("{kind} takes {}", some.join(", ")),
                };
                return Err(self.error(*at, &format!("unknown keyword `{k}` ({valid})")));
            }
        }
        let get = |k: &str| keywords.iter().find(|(name, ..)| name == k);
        // A list of sizes, or one size for every child (the library's `[n] * len(children)`).
        let sizes = |k: &str| -> Result<Vec<i64>> {
            let Some((_, _, value, at)) = get(k) else {
                return Err(self.error(
                    start,
                    &format!("{kind} needs {k}=[…] (one per child) or {k}=N"),
                ));
            };
            let one = |v: f64, whole: bool, at: usize| -> Result<i64> {
                if !whole || v < 0.0 || v > MAX_SIZE as f64 {
                    return Err(self.error(
                        at,
                        &format!("{k} are whole numbers from 0 to {MAX_SIZE}, not {v}"),
                    ));
                }
                Ok(v as i64)
            };
            match value {
                Value::Number { value, whole } => Ok(vec![one(*value, *whole, *at)?; n]),
                Value::List(items) if items.len() == n => items
                    .iter()
                    .map(|(v, whole, at)| one(*v, *whole, *at))
                    .collect(),
                Value::List(items) => Err(self.error(
                    *at,
                    &format!(
                        "{kind} has {n} {} but {} {k}: give one per child",
                        if n == 1 { "child" } else { "children" },
                        items.len()
                    ),
                )),
                other => Err(self.error(
                    *at,
                    &format!(
                        "{k} is a list of whole numbers or one number, not {}",
                        other.word()
                    ),
                )),
            }
        };
        Ok(match kind {
            "Stack" => Setup::Stack(children),
            "Parallel" => Setup::Parallel(children),
            "MultiTask" => Setup::MultiTask(children),
            "Fuse" => {
                let setup = Setup::Fuse(children);
                if let Some((_, _, value, at)) = get("name") {
                    let want = setup.name();
                    match value {
                        Value::Text(t) if *t == want => {}
                        Value::None => {}
                        _ => {
                            return Err(self.error(
                                *at,
                                &format!(
                                    "a fusion here is named by its adapters: this Fuse needs the \
                                     fusion `{}` (give name='{}' or leave name out)",
                                    clip(&want),
                                    clip(&want)
                                ),
                            ))
                        }
                    }
                }
                setup
            }
            "BatchSplit" => Setup::BatchSplit {
                batch_sizes: sizes("batch_sizes")?,
                children,
            },
            "Split" => Setup::Split {
                splits: sizes("splits")?,
                children,
            },
            "Average" => {
                let normalize = match get("normalize_weights") {
                    None => true,
                    Some((_, _, Value::Bool(b), _)) => *b,
                    Some((_, _, Value::Number { value, whole: true }, _))
                        if *value == 0.0 || *value == 1.0 =>
                    {
                        *value == 1.0
                    }
                    Some((_, _, other, at)) => {
                        return Err(self.error(
                            *at,
                            &format!("normalize_weights is True or False, not {}", other.word()),
                        ))
                    }
                };
                let weights = match get("weights") {
                    None | Some((_, _, Value::None, _)) => default_weights(n),
                    Some((_, _, Value::List(items), at)) => {
                        if items.len() != n {
                            return Err(self.error(
                                *at,
                                &format!(
                                    "Average has {n} {} but {} weights: give one per child",
                                    if n == 1 { "child" } else { "children" },
                                    items.len()
                                ),
                            ));
                        }
                        let raw: Vec<f64> = items.iter().map(|(v, ..)| *v).collect();
                        if !normalize {
                            raw
                        } else {
                            normalized(&raw).ok_or_else(|| {
                                self.error(
                                    *at,
                                    "the weights sum to 0 (or too near it) and cannot be \
                                     normalised, as the library does by default; give \
                                     normalize_weights=False to use them as they are",
                                )
                            })?
                        }
                    }
                    Some((_, _, other, at)) => {
                        return Err(self.error(
                            *at,
                            &format!("weights is a list of numbers, not {}", other.word()),
                        ))
                    }
                };
                Setup::Average { children, weights }
            }
            other => return Err(self.error(start, &format!("unknown block `{}`", clip(other)))),
        })
    }
}

impl Value {
    /// What a value is, for an error.
    fn word(&self) -> String {
        match self {
            Value::Number { value, .. } => format!("{value}"),
            Value::List(_) => "a list".into(),
            Value::Bool(b) => if *b { "True" } else { "False" }.into(),
            Value::None => "None".into(),
            Value::Text(t) => format!("'{}'", clip(t)),
        }
    }
}

/// The library's `AdapterCompositionBlock.from_dict` (see `Setup::from_adapterhub_json`);
/// nesting bounded as the notation is.
pub(crate) fn from_adapterhub_json(v: &serde_json::Value) -> Result<Setup> {
    fn node(v: &serde_json::Value, depth: usize, items: &mut usize) -> Result<Setup> {
        let bad = |why: &str| Error::Invalid(format!("adapter_setup: {why}"));
        *items += 1;
        if depth > MAX_DEPTH || *items > MAX_ITEMS {
            return Err(bad(&format!(
                "more than {MAX_ITEMS} entries or deeper than {MAX_DEPTH} blocks"
            )));
        }
        let kind = v["type"]
            .as_str()
            .ok_or_else(|| bad("an entry without a \"type\""))?;
        let children = v["children"]
            .as_array()
            .ok_or_else(|| bad(&format!("a {kind} without \"children\"")))?;
        if kind == "single" {
            return match children.as_slice() {
                [serde_json::Value::String(n)] => Ok(Setup::Adapter(n.clone())),
                _ => Err(bad("a \"single\" entry holds one adapter name")),
            };
        }
        if !BLOCKS.contains(&kind) {
            return Err(bad(&format!(
                "unknown block `{}` (the blocks are {})",
                clip(kind),
                BLOCKS.join(", ")
            )));
        }
        // Through the notation's reader, so that both take and check blocks the same way.
        let mut text = format!("{kind}(");
        let mut parsed = Vec::new();
        for c in children {
            parsed.push(node(c, depth + 1, items)?);
        }
        for (i, c) in parsed.iter().enumerate() {
            if i > 0 {
                text.push_str(", ");
            }
            text.push_str(&c.to_string());
        }
        if let Some(kwargs) = v.get("kwargs").and_then(|k| k.as_object()) {
            for (k, value) in kwargs {
                if !KEYWORDS.contains(&k.as_str()) {
                    return Err(bad(&format!("unknown keyword `{}` of {kind}", clip(k))));
                }
                text.push_str(&format!(", {k}={}", python_literal(value)));
            }
        }
        text.push(')');
        parse(&text).map_err(|e| bad(&format!("{e} in `{}`", clip(&text))))
    }
    let setup = node(v, 0, &mut 0)?;
    // The library's top-level single adapter is a Stack of it.
    Ok(match setup {
        Setup::Adapter(n) => Setup::Stack(vec![Setup::Adapter(n)]),
        other => other,
    })
}

/// A JSON keyword value as Python writes it (lists of numbers, numbers, booleans, null).
fn python_literal(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Bool(true) => "True".into(),
        serde_json::Value::Bool(false) => "False".into(),
        serde_json::Value::Null => "None".into(),
        serde_json::Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(python_literal).collect();
            format!("[{}]", inner.join(", "))
        }
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:?}"),
            _ => n.to_string(),
        },
        // Strings and objects: written quoted, so the reader names them as wrong values.
        other => format!("'{}'", other.to_string().replace(['\\', '\''], "")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Setup {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        parse(s).expect_err(s).to_string()
    }

    fn a(n: &str) -> Setup {
        Setup::adapter(n)
    }

    #[test]
    fn nested_blocks_read_as_the_library_builds_them() {
        assert_eq!(
            p("Stack(a, Fuse(b, c))"),
            Setup::Stack(vec![a("a"), Setup::Fuse(vec![a("b"), a("c")])])
        );
        assert_eq!(p("Parallel(a, b)"), Setup::Parallel(vec![a("a"), a("b")]));
        assert_eq!(p("MultiTask(a, b)"), Setup::MultiTask(vec![a("a"), a("b")]));
        assert_eq!(
            p("BatchSplit(a, Stack(b, c), batch_sizes=[1, 2])"),
            Setup::BatchSplit {
                children: vec![a("a"), Setup::Stack(vec![a("b"), a("c")])],
                batch_sizes: vec![1, 2]
            }
        );
    }

    #[test]
    fn a_bare_name_alone_is_a_stack_of_it_as_set_active_adapters_makes_it() {
        assert_eq!(p("a"), Setup::Stack(vec![a("a")]));
        assert_eq!(p("  'my adapter' "), Setup::Stack(vec![a("my adapter")]));
        // A block's name is a block only when a `(` follows.
        assert_eq!(p("Stack"), Setup::Stack(vec![a("Stack")]));
        assert_eq!(
            p("Fuse(Stack, weights)"),
            Setup::Fuse(vec![a("Stack"), a("weights")])
        );
    }

    #[test]
    fn names_are_bare_words_or_quoted_with_escapes() {
        assert_eq!(
            p(r#"Stack(sst-2_v1, 'a b', "it's", 'x\'y', "q\"\\")"#),
            Setup::Stack(vec![
                a("sst-2_v1"),
                a("a b"),
                a("it's"),
                a("x'y"),
                a("q\"\\")
            ])
        );
        assert_eq!(p("Stack(ünïcode)"), Setup::Stack(vec![a("ünïcode")]));
    }

    #[test]
    fn blanks_anywhere_and_a_trailing_comma_are_accepted() {
        assert_eq!(
            p(" \tAverage (\n a ,b , weights = [ 1 , 3 , ] , ) \n"),
            Setup::Average {
                children: vec![a("a"), a("b")],
                weights: vec![0.25, 0.75]
            }
        );
    }

    #[test]
    fn average_weights_are_normalised_unless_normalize_weights_is_false() {
        let w = |s: &str| match p(s) {
            Setup::Average { weights, .. } => weights,
            other => panic!("{other:?}"),
        };
        assert_eq!(w("Average(a, b)"), vec![0.5, 0.5]);
        assert_eq!(w("Average(a, b, weights=None)"), vec![0.5, 0.5]);
        assert_eq!(w("Average(a, b, weights=[2, 6])"), vec![0.25, 0.75]);
        assert_eq!(
            w("Average(a, b, weights=[2, 6], normalize_weights=False)"),
            vec![2.0, 6.0]
        );
        assert_eq!(w("Average(a, b, weights=[1e-1, -2.5E+1])").len(), 2);
        assert!(err("Average(a, b, weights=[1, -1])").contains("normalize_weights=False"));
        assert_eq!(
            w("Average(a, b, weights=[1, -1], normalize_weights=False)"),
            vec![1.0, -1.0]
        );
        assert!(err("Average(a, b, weights=[1e999, 1])").contains("not a finite number"));
    }

    #[test]
    fn sizes_are_a_list_per_child_or_one_number_for_every_child() {
        assert_eq!(
            p("Split(a, b, splits=4)"),
            Setup::Split {
                children: vec![a("a"), a("b")],
                splits: vec![4, 4]
            }
        );
        assert_eq!(
            p("BatchSplit(a, b, batch_sizes=[0, 2])"),
            Setup::BatchSplit {
                children: vec![a("a"), a("b")],
                batch_sizes: vec![0, 2]
            }
        );
        // The library would give `b` an empty span; refused here with the count.
        let e = err("Split(a, b, splits=[4])");
        assert!(
            e.contains("column 20") && e.contains("2 children but 1 splits"),
            "{e}"
        );
        assert!(err("BatchSplit(a, b, batch_sizes=[1.5, 2])").contains("column 31"));
        assert!(err("BatchSplit(a, b, batch_sizes=[-1, 2])").contains("whole numbers"));
        assert!(err("BatchSplit(a, b, batch_sizes=[99999999999, 2])").contains("2147483647"));
        assert!(err("BatchSplit(a, b)").contains("BatchSplit needs batch_sizes="));
        assert!(err("Split(a, b, splits=True)").contains("not True"));
    }

    #[test]
    fn syntax_errors_name_the_column_and_what_was_expected() {
        assert_eq!(
            err("Stack(a, Fuse(b c))"),
            "at column 17: expected ',' or ')' after `b`, found `c`"
        );
        assert_eq!(
            err("Stack(a, b"),
            "at column 11: expected ',' or ')' after `b`; the Stack( at column 1 is not closed"
        );
        assert_eq!(
            err("Stack(a, "),
            "at column 10: expected an adapter name, a block or ')' after `a`; the Stack( at \
             column 1 is not closed"
        );
        assert!(err("Stack(a,, b)").starts_with("at column 9: expected an adapter name"));
        assert!(err("Stack(a) b").starts_with("at column 10: unexpected `b` after the setup"));
        assert!(err("Stack('a)").starts_with("at column 7: unterminated string"));
        assert!(err("").contains("the setup is empty"));
        assert!(err("Stack(a.b)").starts_with("at column 8: unexpected `.` after `a`"));
        assert!(err("Stack('a.b')").starts_with("at column 7: adapter name `a.b` holds `.`"));
        assert!(err("Stack('')").starts_with("at column 7: an adapter name cannot be empty"));
        assert!(err("Stack()").starts_with("at column 1: Stack needs at least one"));
        assert!(err("Stack(a, ü+)").starts_with("at column 11: expected ',' or ')' after `ü`"));
        assert!(err("Average(a, b, weights=[1 2])")
            .starts_with("at column 26: expected ',' or ']' in the list opened at column 23"));
    }

    #[test]
    fn unknown_blocks_are_listed_with_the_valid_ones() {
        let e = err("Stack(a, stack(b))");
        assert!(
            e.starts_with(
                "at column 10: unknown block `stack` (the blocks are Stack, Fuse, \
                               Average, Parallel, BatchSplit, Split, MultiTask); did you mean \
                               Stack?"
            ),
            "{e}"
        );
        assert!(err("Fusion(a, b)").contains("unknown block `Fusion`"));
    }

    #[test]
    fn keywords_are_checked_per_block_and_come_after_the_children() {
        assert_eq!(
            err("Stack(a, b, weights=[1, 2])"),
            "at column 13: unknown keyword `weights` (Stack takes no keyword arguments)"
        );
        assert_eq!(
            err("Average(a, b, weight=[1, 2])"),
            "at column 15: unknown keyword `weight` (Average takes weights, normalize_weights)"
        );
        assert!(err("Average(a, weights=[1], b)").contains("after the keyword `weights`"));
        assert!(err("Split(a, splits=1, splits=2)").contains("keyword `splits` given twice"));
        assert!(err("Average(a, b, normalize_weights=maybe)").contains("found `maybe`"));
        assert_eq!(
            p("Fuse(a, b, name='a,b')"),
            Setup::Fuse(vec![a("a"), a("b")])
        );
        assert!(err("Fuse(a, b, name='ab')").contains("needs the fusion `a,b`"));
        assert!(err("Parallel(a, b, batch_sizes=[1, 1])").contains("Parallel takes no keyword"));
    }

    #[test]
    fn display_writes_the_notation_and_reads_back_to_the_same_setup() {
        for s in [
            "Stack(a, Fuse(b, c))",
            "Parallel(a, Stack(b, c))",
            "Average(a, b, weights=[0.3, 0.7])",
            "Average(a, b, c)",
            "Average(a, b, weights=[3.0, -1.0], normalize_weights=False)",
            "BatchSplit(a, b, batch_sizes=[1, 2])",
            "Split(a, Average(b, c), splits=[4, 4])",
            "MultiTask(a, b)",
            "Stack('a b', \"it's\", 'both\\'\"', 'back\\\\slash')",
        ] {
            let setup = p(s);
            assert_eq!(setup.to_string(), s, "written as read");
            assert_eq!(p(&setup.to_string()), setup);
        }
        // Normalised weights print as stored and read back to the same numbers.
        for w in [
            "[1, 3]",
            "[0.1, 0.2, 0.3]",
            "[1e-300, 3e-300, 1]",
            "[7, 7, 7]",
        ] {
            let n = w.matches(',').count() + 1;
            let kids: Vec<String> = (0..n).map(|i| format!("x{i}")).collect();
            let s = format!("Average({}, weights={w})", kids.join(", "));
            let setup = p(&s);
            assert_eq!(p(&setup.to_string()), setup, "{s} → {setup}");
        }
        assert_eq!(p("x").to_string(), "Stack(x)");
    }

    #[test]
    fn nesting_depth_is_bounded_before_the_stack_can_overflow() {
        let deep = "Stack(".repeat(170_000); // 1 MB
        assert_eq!(
            err(&deep),
            format!(
                "at column {}: blocks nested deeper than {MAX_DEPTH}",
                6 * MAX_DEPTH + 1
            )
        );
        let ok = format!("{}a{}", "Stack(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
        let e = err(&"(".repeat(MAX_CHARS + 1));
        assert!(e.contains("at most 1048576"), "{e}");
    }

    #[test]
    fn names_and_blocks_are_bounded_in_number_and_length() {
        let many: Vec<String> = (0..MAX_ITEMS).map(|i| format!("a{i}")).collect();
        let e = err(&format!("Stack({})", many.join(",")));
        assert!(e.contains("more than 1000"), "{e}");
        let long = "x".repeat(MAX_NAME_CHARS + 1);
        assert!(err(&format!("Stack({long})")).contains("at most 255 characters"));
        assert!(err(&format!("Stack('{long}')")).contains("at most 255 characters"));
    }

    #[test]
    fn adapterhub_json_reads_back_as_the_library_from_dict() {
        for s in [
            "Stack(a, Fuse(b, c))",
            "Average(a, b, weights=[0.3, 0.7])",
            "BatchSplit(a, b, batch_sizes=[1, 2])",
            "Split(a, b, splits=[4, 4])",
            "MultiTask(a, Stack(b, c))",
            "Parallel(a, b)",
        ] {
            let setup = p(s);
            let back = from_adapterhub_json(&setup.to_adapterhub_json()).unwrap();
            assert_eq!(back, setup, "{s}");
        }
        let single = Setup::adapter("a").to_adapterhub_json();
        assert_eq!(
            from_adapterhub_json(&single).unwrap(),
            Setup::Stack(vec![a("a")])
        );
        let bad = serde_json::json!({"type": "Stack", "children": [{"type": "single"}]});
        assert!(from_adapterhub_json(&bad).is_err());
        let sneaky = serde_json::json!({"type": "Average", "children": [
            {"type": "single", "children": ["a"]}], "kwargs": {"weights": "[1]) , Stack(x"}});
        assert!(from_adapterhub_json(&sneaky).is_err());
    }
}
