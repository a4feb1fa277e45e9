//! Provenance: for each argument of a proposed tool call, where its value was seen.
//!
//! A prompt injection rides in on untrusted text (a support ticket, a web page, a tool output we
//! don't vouch for) and succeeds when the model copies a value from it into a tool call. Policy
//! cannot read the model's mind, but it can ask where each argument's value appears: in an
//! operator instruction or one of our own records ([`Origin::Trusted`]), only in untrusted text
//! ([`Origin::UntrustedOnly`]), or nowhere ([`Origin::Unseen`]). A refund whose amount came only
//! from the ticket text needs a human; one whose amount matches the order record does not.
//!
//! ```
//! use guards::provenance::{Origin, Source, classify};
//!
//! let ticket = Source::new("ticket", "Refund $1,000 to credit_card_9999 for order #W2611340.");
//! let order = Source::new("tool:get_order_details", r##"{"order_id": "#W2611340"}"##);
//! let args = serde_json::json!({
//!     "order_id": "#W2611340",
//!     "amount": 1000,
//!     "payment_method_id": "credit_card_9999",
//! });
//!
//! let origins = classify(&args, &[ticket], &[order]);
//! let vouched = Origin::Trusted { sources: vec!["tool:get_order_details".to_string()] };
//! assert_eq!(origins["order_id"], vouched);
//! let from_ticket = Origin::UntrustedOnly { sources: vec!["ticket".to_string()] };
//! assert_eq!(origins["amount"], from_ticket);
//! assert_eq!(origins["payment_method_id"], from_ticket);
//! ```
//!
//! # Why normalize
//!
//! An attacker who knows we compare strings re-encodes: `１０００` (fullwidth digits), `1,000`,
//! `$1 000.00`, an e-mail address spelt with a Cyrillic `а`. The model reads all of these as the
//! plain value and writes the plain value into the call, so a byte-for-byte search would report
//! the value as unseen and the injection would pass. [`normalize`] folds such re-encodings away:
//! NFKC, confusable skeletons (Unicode TS #39), case, spacing and digit grouping. Numbers are
//! compared as numbers, so `1000` is found in `$1,000.00` but `100` is not found in `1000`.
//!
//! # Generous towards untrusted text, strict towards trusted text
//!
//! The two questions fail in different ways, so they are answered differently.
//!
//! - *Could this value have come from untrusted text?* A wrong "no" hides an injection, so this
//!   side matches generously: look-alike letters, case, spacing, digit grouping, decimal commas
//!   (`1.000,00`), and numbers glued to letters (`1000usd`, `W2611340`).
//! - *Do our own records vouch for this value?* A wrong "yes" launders an injected value, so this
//!   side matches strictly: the value must appear as written, up to case and spacing, and a
//!   number must stand on its own (the `9999` in `credit_card_9999` vouches for no amount).
//!
//! ```text
//! wrong: trusted if normalize(value) occurs in normalize(record)
//!        -> "jоhn@example.com" (Cyrillic о) passes as our customer's john@example.com
//! right: trusted if the value occurs in the record as written, up to case and spacing;
//!        look-alikes count only as evidence that the value came from untrusted text
//! ```
//!
//! # Trust by field and derivation
//!
//! Text is trusted as a whole only when it is the operator's own (the task's instructions). A
//! tool's output vouches through the fields it declares facts of its system of record
//! ([`agent_core::ToolSpec::facts`]: a price, an amount paid, a payment method id), and each fact
//! vouches only as a whole value: the `60` inside the street address `60 Elm St` (a field the
//! customer wrote) vouches for nothing, while an item's price of `60` does. Two more rules close
//! the laundering roads an outside review found:
//!
//! - A **pure tool** (a calculator) passes on its inputs' labels ([`ProvenanceIndex::add_derived`]):
//!   `calculate("30 + 30")` with numbers from the ticket yields an untrusted `60`.
//! - A value **this task's own write** carried never vouches for a later call
//!   ([`ProvenanceIndex::add_own_write`]), even when a later read shows it back as a record: the
//!   refund of `95` in an order's history is the agent's own doing, not evidence.
//!
//! The agent loop records what a task has seen as [`agent_core::Evidence`];
//! [`ProvenanceIndex::add_evidence`] takes each piece in order.
//!
//! # What provenance does not tell
//!
//! [`Origin::Trusted`] means "a fact or the operator's text holds this value", not "is the right
//! field": an amount equal to some item's price is trusted. Policy that cares which item must be
//! fed the facts of that item (the refund bot's resolver does: the price of the items a refund
//! names, less what was paid back). Object keys inside an argument are not checked, only values,
//! and numbers written in words ("one thousand") are not recognised.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Where an argument's value was seen.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "origin")]
pub enum Origin {
    /// Vouched for: the operator's own text holds it (as written, up to case and spacing, or for
    /// a number, as a number standing on its own), or it is the whole value of a fact a tool
    /// declared, or it was computed by a pure tool from such values only. Look-alike spellings
    /// never count here.
    Trusted {
        /// What vouched: `instructions`, `fact of tool:get_order_details`, `computed from facts
        /// by tool:calculate`.
        sources: Vec<String>,
    },
    /// Seen only in untrusted content, with the sources it was seen in (e.g. "ticket",
    /// "tool:read_ticket"), each once, in the order they were added.
    UntrustedOnly {
        /// Names of the untrusted sources the value was seen in.
        sources: Vec<String>,
    },
    /// Seen only in what this task itself wrote earlier (a write's arguments or output, or a
    /// read showing that write back): the task's own doing vouches for nothing.
    OwnWriteEcho {
        /// The writes it was seen in.
        sources: Vec<String>,
    },
    /// Seen nowhere (the model made it up), or too short or generic to tell: strings under three
    /// characters, the integers 0 to 9, booleans and null.
    Unseen,
}

impl Origin {
    /// Whether the value is vouched for.
    pub fn is_trusted(&self) -> bool {
        matches!(self, Self::Trusted { .. })
    }

    /// Whether the value was seen only in untrusted content.
    pub fn is_untrusted_only(&self) -> bool {
        matches!(self, Self::UntrustedOnly { .. })
    }
}

/// One piece of text and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source<'a> {
    /// Where the text came from, e.g. "ticket" or "tool:get_order_details".
    pub name: &'a str,
    /// The text itself.
    pub text: &'a str,
}

impl<'a> Source<'a> {
    /// A source named `name` with text `text`.
    pub fn new(name: &'a str, text: &'a str) -> Self {
        Self { name, text }
    }
}

/// Per top-level argument name, the origin of its value.
///
/// For an array or object value: [`Origin::UntrustedOnly`] if any leaf value inside is
/// untrusted-only; [`Origin::Trusted`] if all significant leaves are trusted; [`Origin::Unseen`]
/// otherwise. Arguments that are not a JSON object have no names, so the result is empty.
///
/// This prepares the sources on every call; to classify several calls against the same task,
/// build a [`ProvenanceIndex`] once.
pub fn classify(
    args: &Value,
    untrusted: &[Source<'_>],
    trusted: &[Source<'_>],
) -> BTreeMap<String, Origin> {
    ProvenanceIndex::new(untrusted, trusted).classify(args)
}

/// The normal form used for matching: NFKC, confusable skeleton, lowercase, whitespace collapsed,
/// digit-group separators removed between digits.
///
/// It is a matching key, not text to show: the skeleton writes `1` as `l` and `0` as `o`, the
/// letters they look like. Matching against untrusted text also uses a second key, skeletonized
/// from the lowercase instead of the uppercase, because a few look-alikes exist in one case only
/// (Cyrillic `В` looks like `B`, but `в` like no Latin letter).
///
/// ```
/// use guards::provenance::normalize;
///
/// assert_eq!(normalize("Modem １，０００"), "modem looo");
/// assert_eq!(normalize("JОHN@Example.com"), normalize("john@example.com")); // Cyrillic О
/// ```
pub fn normalize(text: &str) -> String {
    LooseKeys::of(text).from_uppercase
}

/// Untrusted and trusted texts of one task, normalized once so that each call is cheap to classify.
#[derive(Debug, Clone, Default)]
pub struct ProvenanceIndex {
    untrusted: Vec<UntrustedText>,
    trusted: Vec<TrustedText>,
    facts: Facts,
    own_writes: Facts,
}

/// Whole values, each vouched for by (or echoing) a named source.
#[derive(Debug, Clone, Default)]
struct Facts {
    texts: BTreeMap<String, Vec<String>>,
    numbers: BTreeMap<Decimal, Vec<String>>,
}

impl Facts {
    fn add(&mut self, value: &Value, source: &str) {
        let note = |sources: &mut Vec<String>| {
            if !sources.iter().any(|known| known == source) {
                sources.push(source.to_owned());
            }
        };
        match value {
            Value::Number(number) => {
                if let Some(number) = Decimal::from_json(number) {
                    note(self.numbers.entry(number).or_default());
                }
            }
            Value::String(text) => {
                note(self.texts.entry(exact_form(text)).or_default());
                if let Some(number) = Decimal::parse_amount(text) {
                    note(self.numbers.entry(number).or_default());
                }
            }
            _ => {}
        }
    }

    fn contains(&self, value: &Value) -> bool {
        match value {
            Value::Number(number) => {
                Decimal::from_json(number).is_some_and(|number| self.numbers.contains_key(&number))
            }
            Value::String(text) => self.texts.contains_key(&exact_form(text)),
            _ => false,
        }
    }

    fn number(&self, number: &Decimal) -> Option<&Vec<String>> {
        self.numbers.get(number)
    }

    fn text(&self, exact: &str) -> Option<&Vec<String>> {
        self.texts.get(exact)
    }
}

impl ProvenanceIndex {
    /// An index of the given untrusted and trusted sources.
    pub fn new(untrusted: &[Source<'_>], trusted: &[Source<'_>]) -> Self {
        let mut index = Self::default();
        for source in untrusted {
            index.add_untrusted(*source);
        }
        for source in trusted {
            index.add_trusted(*source);
        }
        index
    }

    /// Adds untrusted text, such as the ticket body or an untrusted tool's output.
    pub fn add_untrusted(&mut self, source: Source<'_>) {
        let numbers = numbers_anywhere(&plain_digits(source.text, DecimalMark::Point))
            .chain(numbers_with_decimal_comma(&plain_digits(source.text, DecimalMark::Comma)))
            .collect();
        self.untrusted.push(UntrustedText {
            name: source.name.to_string(),
            keys: LooseKeys::of(source.text),
            numbers,
        });
    }

    /// Adds the operator's own text, such as the task's instructions: a value it holds (as a
    /// token, or a number standing on its own) is vouched for.
    pub fn add_trusted(&mut self, source: Source<'_>) {
        let numbers = standalone_numbers(&plain_digits(source.text, DecimalMark::Point)).collect();
        self.trusted.push(TrustedText {
            name: source.name.to_string(),
            exact: exact_form(source.text),
            numbers,
        });
    }

    /// Adds values a tool declared facts of its system of record. Each vouches as a whole value
    /// (an amount equal to a price, an id equal to a payment method's id), never as a substring.
    /// A value this task's own earlier write carried is not taken as a fact, even when a read now
    /// shows it: a record the agent made itself proves nothing about the next call.
    pub fn add_facts(&mut self, source: &str, values: &[Value]) {
        let vouching = format!("fact of {source}");
        for value in values {
            if !self.own_writes.contains(value) {
                self.facts.add(value, &vouching);
            }
        }
    }

    /// Adds the values a write of this task carried (its arguments and output).
    pub fn add_own_write(&mut self, source: &str, values: &[Value]) {
        for value in values {
            self.own_writes.add(value, source);
        }
    }

    /// Adds the output of a pure tool called with `inputs`. Its labels are its inputs': computed
    /// from anything untrusted, it is untrusted (`30 + 30` with numbers from a ticket makes an
    /// untrusted 60); from vouched-for values only, it is vouched for; otherwise it vouches for
    /// nothing.
    pub fn add_derived(&mut self, source: &str, inputs: &Value, output: &str) {
        let mut verdict = Verdict::default();
        for leaf in input_leaves(inputs) {
            if let Some(sighting) = self.sight(&leaf) {
                verdict.add(sighting);
            }
        }
        match verdict.into_origin(&self.untrusted) {
            Origin::UntrustedOnly { sources } => {
                let name = format!("{source} (computed from untrusted {})", sources.join(", "));
                self.add_untrusted(Source::new(&name, output));
            }
            Origin::Trusted { .. } => {
                let vouching = format!("computed from facts by {source}");
                let text = Value::from(output.trim());
                self.facts.add(&text, &vouching);
                for number in standalone_numbers(&plain_digits(output, DecimalMark::Point)) {
                    self.facts.numbers.entry(number).or_default().push(vouching.clone());
                }
            }
            Origin::OwnWriteEcho { .. } | Origin::Unseen => {}
        }
    }

    /// Adds one piece of a task's evidence, whatever its kind.
    pub fn add_evidence(&mut self, evidence: &agent_core::Evidence) {
        use agent_core::Evidence;
        match evidence {
            Evidence::Operator(text) => self.add_trusted(Source::new(&text.source, &text.text)),
            Evidence::Untrusted(text) => self.add_untrusted(Source::new(&text.source, &text.text)),
            Evidence::Facts { source, values } => self.add_facts(source, values),
            Evidence::Derived { source, inputs, output } => {
                self.add_derived(source, inputs, output)
            }
            Evidence::OwnWrite { source, values } => self.add_own_write(source, values),
        }
    }

    /// Per top-level argument name, the origin of its value (see [`classify`]).
    pub fn classify(&self, args: &Value) -> BTreeMap<String, Origin> {
        let Value::Object(arguments) = args else { return BTreeMap::new() };
        arguments.iter().map(|(name, value)| (name.clone(), self.origin_of(value))).collect()
    }

    /// The origin of one value; for an array or object, of the leaves inside it (see [`classify`]).
    pub fn origin_of(&self, value: &Value) -> Origin {
        let mut verdict = Verdict::default();
        let mut pending = vec![value];
        // A loop rather than recursion, so that no nesting depth can overflow the stack.
        while let Some(value) = pending.pop() {
            match value {
                Value::Array(items) => pending.extend(items),
                Value::Object(fields) => pending.extend(fields.values()),
                leaf => {
                    if let Some(sighting) = self.sight(leaf) {
                        verdict.add(sighting);
                    }
                }
            }
        }
        verdict.into_origin(&self.untrusted)
    }

    /// Where a leaf value was seen, or `None` if it is too generic to tell.
    fn sight(&self, leaf: &Value) -> Option<Sighting> {
        match leaf {
            Value::Number(number) => self.sight_number(&Decimal::from_json(number)?),
            // A string may be an amount ("$1,000.00"): look for it both as text and as a number.
            Value::String(text) => Sighting::merge(
                self.sight_text(text),
                Decimal::parse_amount(text).and_then(|number| self.sight_number(&number)),
            ),
            Value::Bool(_) | Value::Null | Value::Array(_) | Value::Object(_) => None,
        }
    }

    fn sight_number(&self, number: &Decimal) -> Option<Sighting> {
        if number.is_generic() {
            return None;
        }
        let mut vouching: Vec<String> = self
            .trusted
            .iter()
            .filter(|text| text.numbers.contains(number))
            .map(|text| text.name.clone())
            .collect();
        vouching.extend(self.facts.number(number).into_iter().flatten().cloned());
        if !vouching.is_empty() {
            return Some(Sighting::trusted(vouching));
        }
        let untrusted = self.untrusted_matching(|text| text.numbers.contains(number));
        let echoes = self.own_writes.number(number).cloned().unwrap_or_default();
        Some(Sighting { untrusted, echoes, ..Sighting::default() })
    }

    fn sight_text(&self, value: &str) -> Option<Sighting> {
        let exact = exact_form(value);
        let keys = LooseKeys::of(value);
        if exact.chars().count() < MIN_SIGNIFICANT_CHARS || !keys.is_significant() {
            return None;
        }
        let mut vouching: Vec<String> = self
            .trusted
            .iter()
            .filter(|text| contains_token(&text.exact, &exact))
            .map(|text| text.name.clone())
            .collect();
        vouching.extend(self.facts.text(&exact).into_iter().flatten().cloned());
        if !vouching.is_empty() {
            return Some(Sighting::trusted(vouching));
        }
        let untrusted = self.untrusted_matching(|text| keys.occur_in(&text.keys));
        let echoes = self.own_writes.text(&exact).cloned().unwrap_or_default();
        Some(Sighting { untrusted, echoes, ..Sighting::default() })
    }

    fn untrusted_matching(&self, matches: impl Fn(&UntrustedText) -> bool) -> BTreeSet<usize> {
        let matching = self.untrusted.iter().enumerate().filter(|(_, text)| matches(text));
        matching.map(|(position, _)| position).collect()
    }
}

/// The leaves of a pure tool's inputs, with every number inside a string as a leaf of its own:
/// the labels of `"30 + 30"` are those of its two `30`s.
fn input_leaves(inputs: &Value) -> Vec<Value> {
    let mut leaves = Vec::new();
    let mut pending = vec![inputs];
    while let Some(value) = pending.pop() {
        match value {
            Value::Array(items) => pending.extend(items),
            Value::Object(fields) => pending.extend(fields.values()),
            Value::String(text) => {
                let plain = plain_digits(text, DecimalMark::Point);
                let numbers: Vec<Decimal> = numbers_anywhere(&plain).collect();
                if numbers.is_empty() {
                    leaves.push(value.clone());
                }
                leaves.extend(numbers.into_iter().map(|number| Value::from(number.0)));
            }
            leaf => leaves.push(leaf.clone()),
        }
    }
    leaves
}

/// Shorter strings ("a", "ok", "no") occur in nearly any text: too generic to tell.
const MIN_SIGNIFICANT_CHARS: usize = 3;

/// Characters that may separate groups of three digits: `1,000`, `1 000`, `1_000`, `1'000`.
/// No-break and thin spaces arrive here as plain spaces, after NFKC.
const DIGIT_GROUP_SEPARATORS: [char; 5] = [',', ' ', '_', '\'', '\u{2019}'];

/// Signs that may stand before or after an amount written as a string ("$1,000", "1000 €").
const CURRENCY_SIGNS: [char; 14] =
    ['$', '€', '£', '¥', '₹', '₽', '₩', '₪', '₫', '฿', '₺', '₴', '¢', '₦'];

/// The zero of every run of ten decimal digits that NFKC leaves alone (Arabic-Indic, Devanagari,
/// Thai, ...), from Unicode 14 general category Nd. NFKC already turns fullwidth and mathematical
/// digits into ASCII.
#[rustfmt::skip] // One entry a line would make 58 lines of table.
const DIGIT_ZEROS: [char; 58] = [
    '\u{660}', '\u{6F0}', '\u{7C0}', '\u{966}', '\u{9E6}', '\u{A66}', '\u{AE6}', '\u{B66}',
    '\u{BE6}', '\u{C66}', '\u{CE6}', '\u{D66}', '\u{DE6}', '\u{E50}', '\u{ED0}', '\u{F20}',
    '\u{1040}', '\u{1090}', '\u{17E0}', '\u{1810}', '\u{1946}', '\u{19D0}', '\u{1A80}', '\u{1A90}',
    '\u{1B50}', '\u{1BB0}', '\u{1C40}', '\u{1C50}', '\u{A620}', '\u{A8D0}', '\u{A900}', '\u{A9D0}',
    '\u{A9F0}', '\u{AA50}', '\u{ABF0}', '\u{104A0}', '\u{10D30}', '\u{11066}', '\u{110F0}',
    '\u{11136}', '\u{111D0}', '\u{112F0}', '\u{11450}', '\u{114D0}', '\u{11650}', '\u{116C0}',
    '\u{11730}', '\u{118E0}', '\u{11950}', '\u{11C50}', '\u{11D50}', '\u{11DA0}', '\u{16A60}',
    '\u{16AC0}', '\u{16B50}', '\u{1E140}', '\u{1E2F0}', '\u{1E950}',
];

/// Untrusted text, prepared for generous matching.
#[derive(Debug, Clone)]
struct UntrustedText {
    name: String,
    keys: LooseKeys,
    /// Every number in the text, read with a decimal point and, where that fits, a decimal comma.
    numbers: BTreeSet<Decimal>,
}

/// Trusted text, prepared for strict matching.
#[derive(Debug, Clone)]
struct TrustedText {
    name: String,
    /// The text as written, up to case and spacing.
    exact: String,
    /// The numbers that stand on their own in the text.
    numbers: BTreeSet<Decimal>,
}

/// Where one significant leaf value was seen.
#[derive(Debug, Default)]
struct Sighting {
    trusted: bool,
    /// What vouched for it, when it is trusted.
    vouching: Vec<String>,
    /// Positions in `ProvenanceIndex::untrusted`; left empty once the value is trusted.
    untrusted: BTreeSet<usize>,
    /// The task's own writes it was seen in.
    echoes: Vec<String>,
}

impl Sighting {
    fn trusted(vouching: Vec<String>) -> Self {
        Self { trusted: true, vouching, ..Self::default() }
    }

    /// One value looked for in two ways (as text and as a number): seen if either way saw it.
    fn merge(first: Option<Sighting>, second: Option<Sighting>) -> Option<Sighting> {
        match (first, second) {
            (Some(mut first), Some(second)) => {
                first.trusted |= second.trusted;
                first.vouching.extend(second.vouching);
                first.untrusted.extend(second.untrusted);
                first.echoes.extend(second.echoes);
                if first.trusted {
                    first.untrusted.clear();
                }
                Some(first)
            }
            (first, second) => first.or(second),
        }
    }
}

/// The sightings of all leaves of one argument, folded into its origin.
#[derive(Debug)]
struct Verdict {
    any_significant: bool,
    all_trusted: bool,
    vouching: Vec<String>,
    untrusted_only: BTreeSet<usize>,
    echoes: Vec<String>,
}

impl Default for Verdict {
    fn default() -> Self {
        Self {
            any_significant: false,
            all_trusted: true,
            vouching: Vec::new(),
            untrusted_only: BTreeSet::new(),
            echoes: Vec::new(),
        }
    }
}

impl Verdict {
    fn add(&mut self, sighting: Sighting) {
        self.any_significant = true;
        if sighting.trusted {
            for source in sighting.vouching {
                if !self.vouching.contains(&source) {
                    self.vouching.push(source);
                }
            }
        } else {
            self.all_trusted = false;
            self.untrusted_only.extend(sighting.untrusted);
            for source in sighting.echoes {
                if !self.echoes.contains(&source) {
                    self.echoes.push(source);
                }
            }
        }
    }

    fn into_origin(self, untrusted: &[UntrustedText]) -> Origin {
        if !self.untrusted_only.is_empty() {
            let mut sources: Vec<String> = Vec::new();
            for text in self.untrusted_only.iter().filter_map(|&position| untrusted.get(position)) {
                if !sources.contains(&text.name) {
                    sources.push(text.name.clone());
                }
            }
            return Origin::UntrustedOnly { sources };
        }
        if self.any_significant && self.all_trusted {
            Origin::Trusted { sources: self.vouching }
        } else if !self.echoes.is_empty() {
            Origin::OwnWriteEcho { sources: self.echoes }
        } else {
            Origin::Unseen
        }
    }
}

/// Two confusable skeletons of one text, for generous matching.
///
/// A skeleton is case-sensitive: `В` (Cyrillic) looks like `B` and `г` looks like `r`, but `в` and
/// `Г` look like no Latin letter. Folding case before the skeleton loses one half, folding after it
/// breaks case-insensitivity (`I` looks like `l`, `i` does not). So the skeleton is taken of the
/// uppercase and of the lowercase, and a value matches if either pair of keys does.
#[derive(Debug, Clone)]
struct LooseKeys {
    from_uppercase: String,
    from_lowercase: String,
}

impl LooseKeys {
    fn of(text: &str) -> Self {
        let plain = plain_digits(text, DecimalMark::Point);
        Self {
            from_uppercase: skeleton_key(&plain.to_uppercase()),
            from_lowercase: skeleton_key(&plain.to_lowercase()),
        }
    }

    fn is_significant(&self) -> bool {
        [&self.from_uppercase, &self.from_lowercase]
            .iter()
            .all(|key| key.chars().count() >= MIN_SIGNIFICANT_CHARS)
    }

    /// Whether these keys, as whole tokens, occur in `text`'s keys.
    fn occur_in(&self, text: &LooseKeys) -> bool {
        contains_token(&text.from_uppercase, &self.from_uppercase)
            || contains_token(&text.from_lowercase, &self.from_lowercase)
    }
}

fn skeleton_key(text: &str) -> String {
    collapse_whitespace(&unicode_security::skeleton(text).collect::<String>().to_lowercase())
}

/// The strict form: the text as written (canonically composed), up to case and spacing.
fn exact_form(text: &str) -> String {
    collapse_whitespace(&text.nfc().collect::<String>().to_lowercase())
}

/// Which of `.` and `,` marks decimals; the other may group digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DecimalMark {
    /// `1,000.50`
    Point,
    /// `1.000,50`, read by trading `.` and `,` before anything else.
    Comma,
}

/// NFKC, every decimal digit as ASCII, whitespace collapsed, digit grouping removed.
fn plain_digits(text: &str, decimal_mark: DecimalMark) -> String {
    let compatible = text.nfkc().map(|character| match character {
        '.' if decimal_mark == DecimalMark::Comma => ',',
        ',' if decimal_mark == DecimalMark::Comma => '.',
        '\u{66B}' => '.', // ARABIC DECIMAL SEPARATOR
        '\u{66C}' => ',', // ARABIC THOUSANDS SEPARATOR
        other => ascii_digit(other).unwrap_or(other),
    });
    remove_digit_grouping(&collapse_whitespace(&compatible.collect::<String>()))
}

/// The ASCII digit for a decimal digit of any script, or `None` if `character` is not one.
fn ascii_digit(character: char) -> Option<char> {
    if character.is_ascii() || !character.is_numeric() {
        return None;
    }
    let zero = DIGIT_ZEROS.iter().find(|&&zero| (zero..=nth_char(zero, 9)).contains(&character))?;
    char::from_digit(u32::from(character) - u32::from(*zero), 10)
}

fn nth_char(zero: char, offset: u32) -> char {
    char::from_u32(u32::from(zero) + offset).unwrap_or(zero)
}

/// Removes separators from properly grouped digits: `1,000,000` and `1 000` become `1000000` and
/// `1000`. A lead of one to three digits must be followed by groups of exactly three, so lists such
/// as `12,13,14` and long runs such as `6469567736 123` stay as they are.
fn remove_digit_grouping(text: &str) -> String {
    let characters: Vec<char> = text.chars().collect();
    let digit_at = |position: usize| characters.get(position).is_some_and(char::is_ascii_digit);
    let mut plain = String::with_capacity(text.len());
    let mut position = 0;
    while let Some(&character) = characters.get(position) {
        if !character.is_ascii_digit() {
            plain.push(character);
            position += 1;
            continue;
        }
        let lead_start = position;
        while digit_at(position) {
            position += 1;
        }
        plain.extend(&characters[lead_start..position]);
        let is_fraction =
            lead_start >= 2 && characters[lead_start - 1] == '.' && digit_at(lead_start - 2);
        let Some(&separator) = characters.get(position) else { continue };
        if is_fraction || position - lead_start > 3 || !DIGIT_GROUP_SEPARATORS.contains(&separator)
        {
            continue;
        }
        let group_at = |start: usize| (start..start + 3).all(digit_at) && !digit_at(start + 3);
        while characters.get(position) == Some(&separator) && group_at(position + 1) {
            plain.extend(&characters[position + 1..position + 4]);
            position += 4;
        }
    }
    plain
}

fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether `needle` occurs in `haystack` as whole tokens: where the needle begins (ends) with a
/// letter, digit or `_`, the haystack must not continue it, so `ann` is not found in `channel` nor
/// `card_9999` in `credit_card_9999`, but `example.com` is found in `ann@example.com`.
fn contains_token(haystack: &str, needle: &str) -> bool {
    let Some(first) = needle.chars().next() else { return false };
    let needs_start = is_token_char(first);
    let needs_end = needle.ends_with(is_token_char);
    let mut from = 0;
    while let Some(start) =
        haystack.get(from..).and_then(|rest| rest.find(needle)).map(|at| at + from)
    {
        let end = start + needle.len();
        let joined_before =
            haystack.get(..start).is_some_and(|before| before.ends_with(is_token_char));
        let joined_after =
            haystack.get(end..).is_some_and(|after| after.starts_with(is_token_char));
        let cut_from_a_token = (needs_start && joined_before) || (needs_end && joined_after);
        if !cut_from_a_token {
            return true;
        }
        // Matches may overlap: in "xa-a-a", "a-a" fails at 1 but succeeds at 3.
        from = start + first.len_utf8();
    }
    false
}

fn is_token_char(character: char) -> bool {
    character.is_alphanumeric() || character == '_' || is_combining_mark(character)
}

/// A non-negative decimal number in canonical form: no leading zeros, no trailing fractional zeros
/// ("1000", "49.99", "0.5"). The sign is dropped: a refund of -1000 still came from "1,000".
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Decimal(String);

impl Decimal {
    /// From ASCII digit strings; the fraction may be empty.
    fn new(integer: &str, fraction: &str) -> Self {
        let integer = match integer.trim_start_matches('0') {
            "" => "0",
            significant => significant,
        };
        match fraction.trim_end_matches('0') {
            "" => Self(integer.to_string()),
            fraction => Self(format!("{integer}.{fraction}")),
        }
    }

    fn from_json(number: &serde_json::Number) -> Option<Self> {
        // Not `number.to_string()`: that writes large and small floats with an exponent ("1e21"),
        // while `f64`'s `Display` writes every digit.
        let written = match (number.as_u64(), number.as_i64(), number.as_f64()) {
            (Some(unsigned), _, _) => unsigned.to_string(),
            (None, Some(signed), _) => signed.unsigned_abs().to_string(),
            (None, None, Some(float)) => float.abs().to_string(),
            (None, None, None) => return None,
        };
        Self::parse_plain(&written)
    }

    /// A string that is one amount, perhaps with a currency sign: "1000", "$1,000.00", "1 000 €".
    /// A leading zero ("02134") marks an identifier, not an amount.
    fn parse_amount(text: &str) -> Option<Self> {
        let plain = plain_digits(text, DecimalMark::Point);
        let trimmed = plain.trim_matches(|character: char| {
            character.is_whitespace() || CURRENCY_SIGNS.contains(&character)
        });
        let unsigned = trimmed.strip_prefix(['-', '+']).unwrap_or(trimmed);
        if unsigned.starts_with('0') && !unsigned.starts_with("0.") && unsigned != "0" {
            return None;
        }
        Self::parse_plain(unsigned)
    }

    /// Exactly `digits` or `digits.digits`, in ASCII.
    fn parse_plain(text: &str) -> Option<Self> {
        let (integer, fraction) = match text.split_once('.') {
            Some((_, "")) => return None,
            Some(parts) => parts,
            None => (text, ""),
        };
        let all_digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
        let well_formed = !integer.is_empty() && all_digits(integer) && all_digits(fraction);
        well_formed.then(|| Self::new(integer, fraction))
    }

    /// The integers 0 to 9 occur in nearly any text: too generic to tell.
    fn is_generic(&self) -> bool {
        self.0.len() == 1
    }
}

/// Every number in `text`, even one glued to letters (`1000usd`, `W2611340`): a maximal run of
/// digits, with its fraction if a point and digits follow. `1000` is not read inside `1000.5`.
fn numbers_anywhere(text: &str) -> impl Iterator<Item = Decimal> + '_ {
    let bytes = text.as_bytes();
    let digits_end = move |start: usize| {
        bytes
            .iter()
            .skip(start)
            .position(|byte| !byte.is_ascii_digit())
            .map_or(bytes.len(), |at| at + start)
    };
    let mut position = 0;
    std::iter::from_fn(move || {
        let start = position + bytes.get(position..)?.iter().position(u8::is_ascii_digit)?;
        let integer_end = digits_end(start);
        let has_fraction = bytes.get(integer_end) == Some(&b'.')
            && bytes.get(integer_end + 1).is_some_and(u8::is_ascii_digit);
        let end = if has_fraction { digits_end(integer_end + 1) } else { integer_end };
        position = end;
        // INVARIANT: `start`, `integer_end` and `end` sit next to ASCII bytes, so on char boundaries.
        let integer = text.get(start..integer_end)?;
        let fraction = if has_fraction { text.get(integer_end + 1..end)? } else { "" };
        Some(Decimal::new(integer, fraction))
    })
}

/// The numbers in `plain`, read with a decimal comma. `plain` comes from [`plain_digits`] with
/// [`DecimalMark::Comma`], so `1.000,50` arrives as `1000.50` and `49,99` as `49.99`. A `.` that
/// grouped no thousands (`100.5` arrives as `100,5`) means the number was not written with a
/// decimal comma: it yields nothing here, so that `100` is not read inside `100.5`.
fn numbers_with_decimal_comma(plain: &str) -> impl Iterator<Item = Decimal> + '_ {
    plain
        .split(|character: char| {
            !(character.is_ascii_digit() || character == '.' || character == ',')
        })
        .map(|token| token.trim_matches(['.', ',']))
        .filter(|token| !token.contains(','))
        .filter_map(Decimal::parse_plain)
}

/// The numbers that stand on their own in `text`: a word made only of a number, perhaps signed or
/// ending a sentence. `9999` in `credit_card_9999`, `2611340` in `#W2611340` and the parts of
/// `2024-10-05` do not stand on their own; `1000` in `"total":1000,` and `$1000.00` does.
fn standalone_numbers(text: &str) -> impl Iterator<Item = Decimal> + '_ {
    let is_word_char = |character: char| {
        character.is_alphanumeric() || ['_', '.', '-', '+', '#', '/', '@'].contains(&character)
    };
    text.split(move |character: char| !is_word_char(character)).filter_map(|word| {
        let unsigned = word.strip_prefix(['-', '+']).unwrap_or(word);
        Decimal::parse_plain(unsigned.strip_suffix('.').unwrap_or(unsigned))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(found: impl Iterator<Item = Decimal>) -> Vec<String> {
        found.map(|number| number.0).collect()
    }

    #[test]
    fn digit_grouping_is_removed_only_where_it_groups_thousands() {
        let cases = [
            ("1,000", "1000"),
            ("$1,000,000.50", "$1000000.50"),
            ("1 000 dollars", "1000 dollars"),
            ("1_000 and 1'000", "1000 and 1000"),
            ("items 12,13,14", "items 12,13,14"),
            ("6469567736 123", "6469567736 123"),
            ("0.123,456", "0.123,456"),
            ("1,0000", "1,0000"),
        ];
        for (text, expected) in cases {
            assert_eq!(remove_digit_grouping(text), expected, "{text}");
        }
    }

    #[test]
    fn digits_of_other_scripts_become_ascii() {
        assert_eq!(plain_digits("١٬٠٠٠", DecimalMark::Point), "1000");
        assert_eq!(plain_digits("१२३४", DecimalMark::Point), "1234");
        assert_eq!(plain_digits("１，０００", DecimalMark::Point), "1000");
        assert_eq!(plain_digits("1.000,50", DecimalMark::Comma), "1000.50");
    }

    #[test]
    fn numbers_anywhere_reads_glued_numbers_but_not_inside_longer_ones() {
        assert_eq!(
            numbers(numbers_anywhere("W2611340 1000usd 100.50 007")),
            ["2611340", "1000", "100.5", "7"]
        );
        assert_eq!(numbers(numbers_anywhere("version 1.2.3.")), ["1.2", "3"]);
    }

    #[test]
    fn numbers_with_decimal_comma_skip_numbers_written_with_a_decimal_point() {
        let read = |text: &str| {
            numbers(numbers_with_decimal_comma(&plain_digits(text, DecimalMark::Comma)))
        };
        assert_eq!(read("1.000,50 € or 49,99. Total 1.000"), ["1000.5", "49.99", "1000"]);
        assert_eq!(read("100.5 and $1,000.00 and 12,13,14"), Vec::<String>::new());
    }

    #[test]
    fn standalone_numbers_skip_numbers_inside_identifiers() {
        let text = r##"{"total":1000,"card":"credit_card_9999","order":"#W2611340"} on 2024-10-05, $49.90."##;
        assert_eq!(numbers(standalone_numbers(text)), ["1000", "49.9"]);
    }

    #[test]
    fn amounts_parse_with_currency_signs_but_not_identifiers() {
        assert_eq!(Decimal::parse_amount("$1,000.00"), Some(Decimal::new("1000", "")));
        assert_eq!(Decimal::parse_amount("1 000 €"), Some(Decimal::new("1000", "")));
        assert_eq!(Decimal::parse_amount("0.50"), Some(Decimal::new("0", "5")));
        assert_eq!(Decimal::parse_amount("02134"), None);
        assert_eq!(Decimal::parse_amount("#1000"), None);
        assert_eq!(Decimal::parse_amount("12a"), None);
    }

    #[test]
    fn json_floats_are_written_without_exponent() {
        let large: serde_json::Number = serde_json::from_str("1e21").unwrap();
        assert_eq!(Decimal::from_json(&large), Some(Decimal::new("1000000000000000000000", "")));
        let small: serde_json::Number = serde_json::from_str("-0.000001").unwrap();
        assert_eq!(Decimal::from_json(&small), Some(Decimal::new("0", "000001")));
    }

    #[test]
    fn tokens_must_not_be_continued_by_the_haystack() {
        assert!(!contains_token("a channel", "ann"));
        assert!(contains_token("ann, hi", "ann"));
        assert!(!contains_token("credit_card_9999", "card_9999"));
        assert!(contains_token("write to ann@example.com.", "example.com"));
        assert!(contains_token("xa-a-a", "a-a"));
        assert!(!contains_token("anything", ""));
    }
}
