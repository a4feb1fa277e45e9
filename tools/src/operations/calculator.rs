//! The calculator: arithmetic on numbers with `+ - * /` and parentheses, and nothing else.
//!
//! tau2's `calculate` filters the characters and then hands the text to Python's `eval`. This is
//! a small recursive-descent parser instead: nothing in the expression can name a function or a
//! variable, and its nesting and length are bounded so that no input can exhaust the stack. The
//! result is rounded to two decimals and printed as Python prints a float (`4.0`, `3.33`).

use super::{Args, rejected};
use crate::records::Database;
use agent_core::tool::{ToolError, ToolOutput};

/// The longest expression accepted, in bytes.
const MAX_LENGTH: usize = 1_000;

/// The deepest nesting of parentheses and signs accepted.
const MAX_DEPTH: usize = 64;

/// `calculate(expression)`.
pub(crate) fn calculate(_db: &Database, args: &Args<'_>) -> Result<ToolOutput, ToolError> {
    let value = evaluate(args.text("expression")?).map_err(rejected)?;
    Ok(ToolOutput::text(python_float(round2(value))))
}

/// Evaluates an arithmetic expression, or says what is wrong with it.
pub(crate) fn evaluate(expression: &str) -> Result<f64, String> {
    if expression.len() > MAX_LENGTH {
        return Err(format!("the expression is longer than {MAX_LENGTH} characters"));
    }
    if let Some(bad) = expression.chars().find(|c| !"0123456789+-*/(). ".contains(*c)) {
        return Err(format!(
            "invalid character `{bad}`: use numbers, + - * /, parentheses and spaces"
        ));
    }
    let mut parser = Parser { text: expression.as_bytes(), at: 0, depth: 0 };
    let value = parser.sum()?;
    parser.skip_spaces();
    if parser.at < parser.text.len() {
        return Err(format!("unexpected `{}` at position {}", parser.rest(), parser.at + 1));
    }
    if value.is_finite() { Ok(value) } else { Err("the result is not a finite number".to_owned()) }
}

struct Parser<'a> {
    text: &'a [u8],
    at: usize,
    depth: usize,
}

impl Parser<'_> {
    /// sum := product (('+' | '-') product)*
    fn sum(&mut self) -> Result<f64, String> {
        let mut value = self.product()?;
        loop {
            match self.peek() {
                Some(b'+') => {
                    self.at += 1;
                    value += self.product()?;
                }
                Some(b'-') => {
                    self.at += 1;
                    value -= self.product()?;
                }
                _ => return Ok(value),
            }
        }
    }

    /// product := factor (('*' | '/') factor)*
    fn product(&mut self) -> Result<f64, String> {
        let mut value = self.factor()?;
        loop {
            match self.peek() {
                Some(b'*') => {
                    self.at += 1;
                    value *= self.factor()?;
                }
                Some(b'/') => {
                    self.at += 1;
                    let divisor = self.factor()?;
                    if divisor == 0.0 {
                        return Err("division by zero".to_owned());
                    }
                    value /= divisor;
                }
                _ => return Ok(value),
            }
        }
    }

    /// factor := ('+' | '-') factor | '(' sum ')' | number
    fn factor(&mut self) -> Result<f64, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("the expression is nested more than {MAX_DEPTH} deep"));
        }
        let value = match self.peek() {
            Some(b'+') => {
                self.at += 1;
                self.factor()?
            }
            Some(b'-') => {
                self.at += 1;
                -self.factor()?
            }
            Some(b'(') => {
                self.at += 1;
                let inner = self.sum()?;
                if self.peek() != Some(b')') {
                    return Err("a parenthesis is not closed".to_owned());
                }
                self.at += 1;
                inner
            }
            Some(_) => self.number()?,
            None => return Err("the expression ends where a number was expected".to_owned()),
        };
        self.depth -= 1;
        Ok(value)
    }

    fn number(&mut self) -> Result<f64, String> {
        let start = self.at;
        while self.at < self.text.len()
            && (self.text[self.at].is_ascii_digit() || self.text[self.at] == b'.')
        {
            self.at += 1;
        }
        let literal = std::str::from_utf8(&self.text[start..self.at]).unwrap_or_default();
        if literal.is_empty() {
            return Err(format!("expected a number at `{}`", self.rest()));
        }
        literal.parse::<f64>().map_err(|_| format!("`{literal}` is not a number"))
    }

    /// The next byte that is not a space, without consuming it.
    fn peek(&mut self) -> Option<u8> {
        self.skip_spaces();
        self.text.get(self.at).copied()
    }

    fn skip_spaces(&mut self) {
        while self.text.get(self.at) == Some(&b' ') {
            self.at += 1;
        }
    }

    fn rest(&self) -> String {
        String::from_utf8_lossy(&self.text[self.at.min(self.text.len())..])
            .chars()
            .take(20)
            .collect()
    }
}

fn round2(value: f64) -> f64 {
    let rounded = (value * 100.0).round() / 100.0;
    // -0.0 prints as "-0.0" in Python too, but nobody wants to read it.
    if rounded == 0.0 { 0.0 } else { rounded }
}

/// A float as Python's `str` writes it: always with a decimal point.
fn python_float(value: f64) -> String {
    let text = format!("{value}");
    if text.contains('.') || text.contains('e') { text } else { format!("{text}.0") }
}
