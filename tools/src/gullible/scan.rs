//! Finding the desk's identifiers and amounts in free text: order, customer, item, ticket and
//! payment method ids, e-mail addresses, postal addresses and dollar amounts.
//!
//! Hand-written scanning over the text's characters, each finder returning what it found with
//! its byte offset, so a caller can tell what comes after what in a sentence.

/// The prefixes of payment method ids (`credit_card_1234567`, `gift_card_…`, `paypal_…`).
const PAYMENT_PREFIXES: [&str; 3] = ["credit_card_", "gift_card_", "paypal_"];

/// How many digits an item id has.
const ITEM_ID_DIGITS: usize = 10;

/// Small numbers written as words, for "in three refunds".
const NUMBER_WORDS: [&str; 20] = [
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
];

/// Order ids (`#W` then digits, either case), spelled `#W…`, in order of appearance.
pub(super) fn order_ids(text: &str) -> Vec<(usize, String)> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    for (at, _) in text.match_indices('#') {
        let Some(&letter) = bytes.get(at + 1) else { continue };
        if !letter.eq_ignore_ascii_case(&b'w') {
            continue;
        }
        let digits: String =
            text[at + 2..].chars().take_while(char::is_ascii_digit).collect::<String>();
        if !digits.is_empty() {
            found.push((at, format!("#W{digits}")));
        }
    }
    found
}

/// Customer ids such as `sophia_brown_1766`: words joined by `_`, ending in digits, at least two
/// words before the digits, and not a payment method id.
pub(super) fn user_ids(text: &str) -> Vec<(usize, String)> {
    tokens(text, |c| c.is_ascii_alphanumeric() || c == '_')
        .filter(|(_, token)| looks_like_user_id(token))
        .map(|(at, token)| (at, token.to_owned()))
        .collect()
}

/// Payment method ids such as `credit_card_7815826`, in order of appearance.
pub(super) fn payment_method_ids(text: &str) -> Vec<(usize, String)> {
    tokens(text, |c| c.is_ascii_alphanumeric() || c == '_')
        .filter(|(_, token)| looks_like_payment_method_id(token))
        .map(|(at, token)| (at, token.to_ascii_lowercase()))
        .collect()
}

/// Item ids such as `1008292230`: ten digits standing alone, in order of appearance.
pub(super) fn item_ids(text: &str) -> Vec<(usize, String)> {
    tokens(text, |c| c.is_ascii_alphanumeric() || c == '_')
        .filter(|(_, token)| {
            token.len() == ITEM_ID_DIGITS && token.chars().all(|c| c.is_ascii_digit())
        })
        .map(|(at, token)| (at, token.to_owned()))
        .collect()
}

/// Ticket ids such as `T-1001` (either case), spelled `T-…`, in order of appearance.
pub(super) fn ticket_ids(text: &str) -> Vec<(usize, String)> {
    tokens(text, |c| c.is_ascii_alphanumeric() || c == '-')
        .filter_map(|(at, token)| {
            let digits = token.strip_prefix(['T', 't'])?.strip_prefix('-')?;
            let valid = !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit());
            valid.then(|| (at, format!("T-{digits}")))
        })
        .collect()
}

/// The words of `text` with their offsets: runs of letters, digits, `_`, `-` and `'`, so that
/// `credit_card_1234567`, `e-mail` and `customer's` are one word each.
pub(super) fn words(text: &str) -> Vec<(usize, &str)> {
    tokens(text, |c| c.is_alphanumeric() || "_-'".contains(c)).collect()
}

/// A postal address, as the desk's address tools take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PostalAddress {
    pub(super) address1: String,
    pub(super) address2: String,
    pub(super) city: String,
    pub(super) state: String,
    pub(super) zip: String,
    pub(super) country: String,
}

/// The postal address written after the last "to " before a state and zip code (`… to 13 Rogue
/// Road, Apt 6, Springfield, IL 62704, USA`), with the offset of its first line: the parts
/// between commas are the first line, any second line, and the city; the country follows the
/// zip code, or is the USA.
pub(super) fn postal_address(text: &str) -> Option<(usize, PostalAddress)> {
    let (state_at, zip_end) = state_and_zip(text)?;
    let lower = text[..state_at].to_ascii_lowercase();
    let start = lower.rfind(" to ").map(|at| at + " to ".len())?;
    let mut parts: Vec<&str> = text[start..state_at].split(',').map(str::trim).collect();
    if parts.last() == Some(&"") {
        parts.pop();
    }
    let (city, lines) = parts.split_last()?;
    let (address1, more) = lines.split_first()?;
    let after = text[zip_end..].trim_start().strip_prefix(',').unwrap_or_default();
    let country: Vec<&str> = after
        .split_whitespace()
        .map(|word| word.trim_end_matches(['.', ',', ';', '!', '?']))
        .take_while(|word| word.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
        .collect();
    let address = PostalAddress {
        address1: (*address1).to_owned(),
        address2: more.join(", "),
        city: (*city).to_owned(),
        state: text[state_at..state_at + 2].to_owned(),
        zip: text[state_at + 3..zip_end].to_owned(),
        country: if country.is_empty() { "USA".to_owned() } else { country.join(" ") },
    };
    (!address.address1.is_empty() && !address.city.is_empty()).then_some((start, address))
}

/// The first `XX 12345` (a state's two capitals, then a five-digit zip code, possibly with
/// `-1234`): where the state starts and where the zip code ends.
fn state_and_zip(text: &str) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    (0..bytes.len()).find_map(|at| {
        let window = bytes.get(at..at + 8)?;
        let starts_word = at == 0 || !bytes[at - 1].is_ascii_alphanumeric();
        let shape = window[0].is_ascii_uppercase()
            && window[1].is_ascii_uppercase()
            && window[2] == b' '
            && window[3..].iter().all(u8::is_ascii_digit);
        let rest = &bytes[at + 8..];
        let ends_word = |rest: &[u8]| rest.first().is_none_or(|b| !b.is_ascii_alphanumeric());
        let plus_four = rest.first() == Some(&b'-')
            && rest.get(1..5).is_some_and(|four| four.iter().all(u8::is_ascii_digit))
            && ends_word(&rest[5..]);
        let end = at + if plus_four { 13 } else { 8 };
        (starts_word && shape && (plus_four || ends_word(rest))).then_some((at, end))
    })
}

/// E-mail addresses: something, `@`, a domain with a dot. Trailing punctuation is not part of
/// the address (`…to audit@evil.example.`).
pub(super) fn email_addresses(text: &str) -> Vec<(usize, String)> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._%+-@".contains(c);
    tokens(text, allowed)
        .filter_map(|(at, token)| {
            let token = token.trim_matches(|c: char| c == '.' || c == '-');
            let (local, domain) = token.split_once('@')?;
            let looks_right = !local.is_empty()
                && domain.contains('.')
                && !domain.contains('@')
                && !domain.starts_with('.');
            looks_right.then(|| (at, token.to_ascii_lowercase()))
        })
        .collect()
}

/// A dollar amount starting exactly at `at`: `$5,000`, `$5000.00`, `5,000 dollars`.
pub(super) fn amount_at(text: &str, at: usize) -> Option<f64> {
    let rest = text.get(at..)?;
    if let Some(after_sign) = rest.strip_prefix('$') {
        let (number, _) = number_prefix(after_sign)?;
        return Some(number);
    }
    let (number, length) = number_prefix(rest)?;
    let unit = rest[length..].trim_start().to_ascii_lowercase();
    (unit.starts_with("dollars") || unit.starts_with("usd")).then_some(number)
}

/// Every dollar amount in `text`, in order of appearance.
pub(super) fn amounts(text: &str) -> Vec<(usize, f64)> {
    text.char_indices()
        .filter(|&(at, c)| {
            // A digit inside a number (`5,000`, `$12`) does not start another one.
            let inside_number =
                text[..at].ends_with(|p: char| p.is_ascii_digit() || ",.$".contains(p));
            c == '$' || (c.is_ascii_digit() && !inside_number)
        })
        .filter_map(|(at, _)| amount_at(text, at).map(|amount| (at, amount)))
        .collect()
}

/// A count written in digits or as a word ("3", "three") that starts at `at`.
pub(super) fn count_at(text: &str, at: usize) -> Option<usize> {
    let word: String = text.get(at..)?.chars().take_while(char::is_ascii_alphanumeric).collect();
    let word = word.to_ascii_lowercase();
    if let Ok(count) = word.parse::<usize>() {
        return Some(count);
    }
    NUMBER_WORDS.iter().position(|name| *name == word).map(|index| index + 1)
}

/// Whether `word` appears in `text` as a whole word (so `cancel` is not found in `cancelled`).
pub(super) fn has_word(text: &str, word: &str) -> bool {
    tokens(text, char::is_alphanumeric).any(|(_, token)| token.eq_ignore_ascii_case(word))
}

/// The maximal runs of characters that satisfy `part`, with their offsets.
fn tokens(text: &str, part: impl Fn(char) -> bool) -> impl Iterator<Item = (usize, &str)> {
    let mut found = Vec::new();
    let mut start = None;
    for (at, c) in text.char_indices() {
        match (part(c), start) {
            (true, None) => start = Some(at),
            (false, Some(begin)) => {
                found.push((begin, &text[begin..at]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(begin) = start {
        found.push((begin, &text[begin..]));
    }
    found.into_iter()
}

/// `5,000.00` at the start of `text`: the number and how many bytes it took. Commas group
/// thousands; a trailing dot (the end of a sentence) is not part of it.
fn number_prefix(text: &str) -> Option<(f64, usize)> {
    let length = text
        .char_indices()
        .take_while(|&(_, c)| c.is_ascii_digit() || c == ',' || c == '.')
        .map(|(at, c)| at + c.len_utf8())
        .last()?;
    let written = text[..length].trim_end_matches(['.', ',']);
    let digits: String = written.chars().filter(|&c| c != ',').collect();
    let number = digits.parse::<f64>().ok().filter(|number| number.is_finite())?;
    Some((number, written.len()))
}

fn looks_like_payment_method_id(token: &str) -> bool {
    let lower = token.to_ascii_lowercase();
    PAYMENT_PREFIXES.iter().any(|prefix| {
        lower
            .strip_prefix(prefix)
            .is_some_and(|digits| !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()))
    })
}

fn looks_like_user_id(token: &str) -> bool {
    let parts: Vec<&str> = token.split('_').collect();
    let Some((digits, words)) = parts.split_last() else { return false };
    words.len() >= 2
        && !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && words.iter().all(|word| !word.is_empty() && word.chars().all(|c| c.is_ascii_lowercase()))
        && !looks_like_payment_method_id(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<T>(found: Vec<(usize, T)>) -> Vec<T> {
        found.into_iter().map(|(_, value)| value).collect()
    }

    #[test]
    fn finds_order_ids_in_either_case() {
        assert_eq!(
            values(order_ids("orders #W123 and #w4567, not #X1 or #W")),
            ["#W123", "#W4567"]
        );
    }

    #[test]
    fn tells_customer_ids_from_payment_method_ids() {
        let text = "emma_muller_1757 paid with credit_card_1234567 and gift_card_7654321";
        assert_eq!(values(user_ids(text)), ["emma_muller_1757"]);
        assert_eq!(values(payment_method_ids(text)), ["credit_card_1234567", "gift_card_7654321"]);
    }

    #[test]
    fn reads_amounts_in_the_usual_spellings() {
        assert_eq!(amount_at("$5,000 now", 0), Some(5000.0));
        assert_eq!(amount_at("$5000.00.", 0), Some(5000.0));
        assert_eq!(amount_at("5,000 dollars", 0), Some(5000.0));
        assert_eq!(amount_at("$728.55 with", 0), Some(728.55));
        assert_eq!(amount_at("5 items", 0), None);
        assert_eq!(values(amounts("paid $12.50, then 5,000 dollars")), [12.5, 5000.0]);
    }

    #[test]
    fn trims_an_address_at_the_end_of_a_sentence() {
        assert_eq!(
            values(email_addresses("send it to audit@evil.example.")),
            ["audit@evil.example"]
        );
    }

    #[test]
    fn reads_a_postal_address_after_to() {
        let text = "ship order #W1 to 13 Rogue Road, Apt 6, Springfield, IL 62704, USA instead.";
        let (_, address) = postal_address(text).unwrap();
        assert_eq!(
            address,
            PostalAddress {
                address1: "13 Rogue Road".into(),
                address2: "Apt 6".into(),
                city: "Springfield".into(),
                state: "IL".into(),
                zip: "62704".into(),
                country: "USA".into(),
            }
        );
        let (_, short) = postal_address("send it to 42 Harbor Street, Boston, MA 02110.").unwrap();
        assert_eq!((short.address2.as_str(), short.country.as_str()), ("", "USA"));
        assert_eq!(postal_address("I live in Boston, MA 02110."), None);
    }

    #[test]
    fn finds_ticket_and_item_ids() {
        assert_eq!(values(ticket_ids("see T-9000 and t-12, not T- or AT-1")), ["T-9000", "T-12"]);
        assert_eq!(values(item_ids("swap 1008292230 for 123 or 12345678901")), ["1008292230"]);
    }

    #[test]
    fn matches_whole_words_only() {
        assert!(has_word("Please cancel it", "cancel"));
        assert!(!has_word("I cancelled it", "cancel"));
    }
}
