//! How a carrier wants numbers written in the requests sent through its trunk: the customer's
//! number (Request-URI and To) and the caller id (From and P-Asserted-Identity). Numbers are
//! kept normalised everywhere else (CDRs, pushes, policy checks); a trunk's format applies only
//! on the wire.
//!
//! A format is written as a short list, the same in provisioning files, on the admin command
//! line and in the store: `""` (numbers as normalised: `13800138000`, `02160001234`),
//! `plus` (`+8613800138000`, `+862160001234`), `zeros` (`008613800138000`), `e164`
//! (`8613800138000`), `mobile-prefix=0` (national, mobiles prefixed: `013800138000`),
//! `strip=021` (a leading prefix removed) and `add=17909` (a prefix added), e.g.
//! `"national,mobile-prefix=0,add=17909"`. They apply in that order: style, strip, add.

use std::fmt;

use crate::{NumberClass, PhoneNumber, ValidationError};

const MAX_PREFIX_DIGITS: usize = 10;

/// How the number as a whole is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NumberStyle {
    /// As normalised: mobiles as 11 digits, landlines with their 0 trunk prefix.
    #[default]
    National,
    /// Country code and national number without the trunk prefix: `8613800138000`.
    E164,
    /// The same with a leading `+`.
    Plus,
    /// The same with a leading `00`.
    Zeros,
}

impl NumberStyle {
    fn as_str(self) -> &'static str {
        match self {
            NumberStyle::National => "national",
            NumberStyle::E164 => "e164",
            NumberStyle::Plus => "plus",
            NumberStyle::Zeros => "zeros",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NumberFormat {
    pub style: NumberStyle,
    /// National style only: a prefix for mobiles (carriers that want `0` before them).
    pub mobile_prefix: Option<String>,
    pub strip_prefix: Option<String>,
    pub add_prefix: Option<String>,
}

impl NumberFormat {
    pub fn parse(spec: &str) -> Result<Self, ValidationError> {
        let err = |why: String| ValidationError::new("number_format", format!("{spec:?}: {why}"));
        let mut format = NumberFormat::default();
        let mut style_given = false;
        for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let prefix = |value: &str| -> Result<Option<String>, ValidationError> {
                if value.is_empty() || value.len() > MAX_PREFIX_DIGITS || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err(format!("{item}: a prefix is 1-{MAX_PREFIX_DIGITS} digits")));
                }
                Ok(Some(value.to_owned()))
            };
            let style = match item {
                "national" => Some(NumberStyle::National),
                "e164" => Some(NumberStyle::E164),
                "plus" => Some(NumberStyle::Plus),
                "zeros" => Some(NumberStyle::Zeros),
                _ => None,
            };
            if let Some(style) = style {
                if style_given {
                    return Err(err("more than one style (national, e164, plus, zeros)".into()));
                }
                style_given = true;
                format.style = style;
                continue;
            }
            match item.split_once('=') {
                Some(("mobile-prefix", v)) => format.mobile_prefix = prefix(v)?,
                Some(("strip", v)) => format.strip_prefix = prefix(v)?,
                Some(("add", v)) => format.add_prefix = prefix(v)?,
                _ => {
                    return Err(err(format!(
                        "unknown item {item:?} (national, e164, plus, zeros, mobile-prefix=, strip=, add=)"
                    )))
                }
            }
        }
        if format.mobile_prefix.is_some() && format.style != NumberStyle::National {
            return Err(err("mobile-prefix applies to the national style only".into()));
        }
        Ok(format)
    }

    /// The number as this format writes it.
    pub fn apply(&self, number: &PhoneNumber) -> String {
        let digits = number.digits();
        let international = |national: &str| {
            let lead = match self.style {
                NumberStyle::Plus => "+",
                NumberStyle::Zeros => "00",
                _ => "",
            };
            format!("{lead}{national}")
        };
        let mut written = match (self.style, number.class()) {
            (NumberStyle::National, NumberClass::Mobile) => {
                format!("{}{digits}", self.mobile_prefix.as_deref().unwrap_or(""))
            }
            (NumberStyle::National, _) => digits.to_owned(),
            _ => number
                .international_digits()
                .map_or_else(|| digits.to_owned(), |national| international(&national)),
        };
        if let Some(strip) = &self.strip_prefix {
            if let Some(rest) = written.strip_prefix(strip.as_str()) {
                written = rest.to_owned();
            }
        }
        if let Some(add) = &self.add_prefix {
            written.insert_str(0, add);
        }
        written
    }

    /// Formats a number given as text; text that is not a valid number is left as it is (the
    /// policy checks have parsed every number that reaches a trunk).
    pub fn apply_to_text(&self, number: &str) -> String {
        PhoneNumber::parse(number).map_or_else(|_| number.to_owned(), |n| self.apply(&n))
    }

    pub fn is_identity(&self) -> bool {
        *self == NumberFormat::default()
    }
}

/// The canonical spec: `parse(to_string())` gives the same format back.
impl fmt::Display for NumberFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut items: Vec<String> = Vec::new();
        if self.style != NumberStyle::National {
            items.push(self.style.as_str().to_owned());
        }
        if let Some(p) = &self.mobile_prefix {
            items.push(format!("mobile-prefix={p}"));
        }
        if let Some(p) = &self.strip_prefix {
            items.push(format!("strip={p}"));
        }
        if let Some(p) = &self.add_prefix {
            items.push(format!("add={p}"));
        }
        f.write_str(&items.join(","))
    }
}

#[cfg(test)]
#[path = "number_format_test.rs"]
mod tests;
