//! Where a dialled number goes, for the enterprise's destination policy (toll fraud: premium,
//! satellite and far-away numbers cost far more than the flat rate) and its per-destination
//! rates.
//!
//! Numbers are classified by Google's libphonenumber metadata (the `phonenumber` crate), which
//! is maintained against the ITU's and national regulators' allocations; only what that
//! metadata does not name is written here: which calling codes belong to no country, and how its
//! number types fall into the classes a policy allows.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use phonenumber::metadata::DATABASE;
use phonenumber::Type;

use crate::{Money, NumberClass, PhoneNumber, ValidationError, MAX_RATE_PER_MINUTE};

/// The platform's own country: its numbering plan is mainland China's.
pub const HOME_COUNTRY: Country = Country(*b"CN");

/// A country or territory (ISO 3166-1 alpha-2) that has a numbering plan in the metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Country([u8; 2]);

impl Country {
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let upper = text.trim().to_ascii_uppercase();
        let known = upper.len() == 2 && upper.parse::<phonenumber::country::Id>().is_ok();
        match upper.as_bytes() {
            [a, b] if known => Ok(Country([*a, *b])),
            _ => Err(ValidationError::new(
                "country",
                format!("{text:?} is not an ISO 3166 country code with a numbering plan (e.g. GB, US)"),
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The classes a destination policy must name before they can be called, at home or abroad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SpecialClass {
    /// Premium-rate lines: the called party is paid per minute.
    Premium,
    /// Satellite networks (Inmarsat +870, GMSS +881).
    Satellite,
    /// Shared-cost lines (`400` at home, `+808`, the UK's 084).
    SharedCost,
    /// Numbers that are no place: international networks (+882, +883), personal numbers, VoIP
    /// ranges, pagers, universal access numbers.
    NonGeographic,
}

impl SpecialClass {
    pub const ALL: [SpecialClass; 4] = [
        SpecialClass::Premium,
        SpecialClass::Satellite,
        SpecialClass::SharedCost,
        SpecialClass::NonGeographic,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SpecialClass::Premium => "premium",
            SpecialClass::Satellite => "satellite",
            SpecialClass::SharedCost => "shared_cost",
            SpecialClass::NonGeographic => "non_geographic",
        }
    }

    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == text.trim())
            .ok_or_else(|| {
                ValidationError::new(
                    "class",
                    format!("{text:?} is not one of premium, satellite, shared_cost, non_geographic"),
                )
            })
    }
}

/// A home number by its use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomesticKind {
    Mobile,
    Landline,
    /// Toll-free service numbers (`800`).
    Service,
}

/// Where a number goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// An extension of the enterprise: no carrier, no destination.
    Extension,
    Domestic(DomesticKind),
    /// An ordinary (fixed, mobile or toll-free) number in another country.
    International {
        country: Country,
    },
    /// A special class, in a country (at home or abroad) or in none (`+881`, `+882`, ...).
    Special {
        class: SpecialClass,
        country: Option<Country>,
        calling_code: u16,
    },
    /// Not a number any network would complete: an unknown calling code, or digits the
    /// country's numbering plan does not allocate.
    Invalid,
}

impl Destination {
    /// Classifies a number already in the platform's normal form.
    pub fn of(number: &PhoneNumber) -> Destination {
        let Some(international) = number.international_digits() else {
            return Destination::Extension;
        };
        let Ok(parsed) = phonenumber::parse(None, format!("+{international}")) else {
            return Destination::Invalid;
        };
        // The parser drops what it takes for a national prefix or a carrier code after the
        // country code (`+44 0 909…`); such digits still reach the carrier, which may complete
        // them, while the blacklist and the rate table read them as dialled: never classify a
        // number other than the one dialled.
        if parsed.format().mode(phonenumber::Mode::E164).to_string() != format!("+{international}") {
            return Destination::Invalid;
        }
        let calling_code = parsed.code().value();
        let country = parsed.country().id().and_then(|id| Country::parse(id.as_ref()).ok());
        let special = |class| Destination::Special {
            class,
            country,
            calling_code,
        };
        if let Some(class) = non_geographic_class(&international) {
            return special(class);
        }
        let kind = parsed.number_type(&DATABASE);
        if matches!(
            number.class(),
            NumberClass::Mobile | NumberClass::Landline { .. } | NumberClass::Service
        ) {
            // Home numbers keep the legacy numbering rules (a new mobile range is callable
            // before the metadata knows it); the metadata only singles out special classes.
            return match (kind, number.class()) {
                (Type::PremiumRate, _) => special(SpecialClass::Premium),
                (Type::SharedCost, _) => special(SpecialClass::SharedCost),
                (_, NumberClass::Mobile) => Destination::Domestic(DomesticKind::Mobile),
                // The metadata says so too; kept should a newer one move `400` elsewhere.
                (_, NumberClass::Service) if number.digits().starts_with("400") => special(SpecialClass::SharedCost),
                (_, NumberClass::Service) => Destination::Domestic(DomesticKind::Service),
                _ => Destination::Domestic(DomesticKind::Landline),
            };
        }
        if !parsed.is_valid() {
            return Destination::Invalid;
        }
        match (kind, country) {
            (Type::PremiumRate, _) => special(SpecialClass::Premium),
            (Type::SharedCost, _) => special(SpecialClass::SharedCost),
            (Type::FixedLine | Type::Mobile | Type::FixedLineOrMobile | Type::TollFree, Some(country)) => {
                Destination::International { country }
            }
            (Type::PersonalNumber | Type::Voip | Type::Pager | Type::Uan | Type::Voicemail, _) => {
                special(SpecialClass::NonGeographic)
            }
            _ => Destination::Invalid,
        }
    }
}

/// The ITU's non-geographic services (E.164 "global services"), which the metadata validates
/// unevenly (it knows no `+979` ranges, nor most of `+882`), by the international form's
/// leading digits. `+882 13` (Emsat) and `+882 16` (Thuraya) are satellite networks inside the
/// international networks' code.
fn non_geographic_class(international: &str) -> Option<SpecialClass> {
    const CLASSES: [(&str, SpecialClass); 11] = [
        ("870", SpecialClass::Satellite),
        ("881", SpecialClass::Satellite),
        ("88213", SpecialClass::Satellite),
        ("88216", SpecialClass::Satellite),
        ("979", SpecialClass::Premium),
        ("808", SpecialClass::SharedCost),
        ("800", SpecialClass::NonGeographic),
        ("878", SpecialClass::NonGeographic),
        ("882", SpecialClass::NonGeographic),
        ("883", SpecialClass::NonGeographic),
        ("888", SpecialClass::NonGeographic),
    ];
    CLASSES
        .iter()
        .filter(|(prefix, _)| international.starts_with(prefix))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, class)| *class)
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Extension => f.write_str("an extension"),
            Destination::Domestic(DomesticKind::Mobile) => f.write_str("a domestic mobile"),
            Destination::Domestic(DomesticKind::Landline) => f.write_str("a domestic landline"),
            Destination::Domestic(DomesticKind::Service) => f.write_str("a domestic service number"),
            Destination::International { country } => write!(f, "an international number in {country}"),
            Destination::Special {
                class,
                country,
                calling_code,
            } => {
                let what = match class {
                    SpecialClass::Premium => "a premium-rate number",
                    SpecialClass::Satellite => "a satellite number",
                    SpecialClass::SharedCost => "a shared-cost number",
                    SpecialClass::NonGeographic => "a non-geographic number",
                };
                match country {
                    Some(country) => write!(f, "{what} in {country} (+{calling_code})"),
                    None => write!(f, "{what} (+{calling_code})"),
                }
            }
            Destination::Invalid => f.write_str("not a valid number in any numbering plan"),
        }
    }
}

/// What an enterprise may call beyond domestic mobiles, landlines and toll-free numbers. The
/// default allows nothing more.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestinationPolicy {
    countries: BTreeSet<Country>,
    all_countries: bool,
    classes: BTreeSet<SpecialClass>,
}

impl DestinationPolicy {
    /// From the operator's words: countries as ISO codes separated by commas (`*`: every
    /// country; empty: none), classes likewise (empty: none).
    pub fn parse(countries: &str, classes: &str) -> Result<Self, ValidationError> {
        let mut policy = DestinationPolicy::default();
        for word in words(countries) {
            if word == "*" {
                policy.all_countries = true;
            } else {
                let country = Country::parse(word).map_err(|e| ValidationError::new("allowed_countries", e.reason))?;
                policy.countries.insert(country);
            }
        }
        if policy.all_countries && !policy.countries.is_empty() {
            return Err(ValidationError::new(
                "allowed_countries",
                "\"*\" (every country) cannot be listed beside countries",
            ));
        }
        for word in words(classes) {
            let class = SpecialClass::parse(word).map_err(|e| ValidationError::new("allowed_classes", e.reason))?;
            policy.classes.insert(class);
        }
        Ok(policy)
    }

    /// The countries as [`DestinationPolicy::parse`] reads them (`*`, or codes in order).
    pub fn countries_text(&self) -> String {
        if self.all_countries {
            return "*".to_owned();
        }
        join(self.countries.iter().map(Country::as_str))
    }

    pub fn classes_text(&self) -> String {
        join(self.classes.iter().map(|c| c.as_str()))
    }

    fn allows_country(&self, country: Country) -> bool {
        country == HOME_COUNTRY || self.all_countries || self.countries.contains(&country)
    }

    /// Whether a call to `destination` is allowed. A special class abroad needs both its class
    /// and its country; one that belongs to no country needs its class.
    pub fn permits(&self, destination: &Destination) -> bool {
        match destination {
            Destination::Extension | Destination::Domestic(_) => true,
            Destination::International { country } => self.allows_country(*country),
            Destination::Special { class, country, .. } => {
                self.classes.contains(class) && country.is_none_or(|c| self.allows_country(c))
            }
            Destination::Invalid => false,
        }
    }
}

fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|w| !w.is_empty())
}

fn join<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.collect::<Vec<_>>().join(",")
}

/// The most prefixes one enterprise's rate table holds: a full international rate deck has a
/// few thousand.
pub const MAX_DESTINATION_RATES: usize = 20_000;
/// E.164 numbers have at most 15 digits.
const MAX_PREFIX_DIGITS: usize = 15;

/// Prices per minute by international prefix (`44`, `4420`, `1900`), the longest matching
/// prefix winning; a number no prefix matches is billed at the enterprise's rate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestinationRates(BTreeMap<String, Money>);

impl DestinationRates {
    /// Builds the table from (prefix, price) pairs; a prefix may start with `+`.
    pub fn new<'a>(entries: impl IntoIterator<Item = (&'a str, Money)>) -> Result<Self, ValidationError> {
        let err = |why: String| ValidationError::new("destination_rates", why);
        let mut table = BTreeMap::new();
        for (prefix, rate) in entries {
            let digits = prefix.trim().strip_prefix('+').unwrap_or(prefix.trim());
            if digits.is_empty() || digits.len() > MAX_PREFIX_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err(format!(
                    "{prefix:?} is not an international prefix (1-{MAX_PREFIX_DIGITS} digits, e.g. 44 or +4420)"
                )));
            }
            // No calling code starts with 0: `0044…` is the dialled form, which would never match.
            if digits.starts_with('0') {
                return Err(err(format!(
                    "{prefix:?}: write the country code without 00 or the trunk 0 (44 for 0044, 8610 for 010)"
                )));
            }
            if rate < Money::ZERO || rate > MAX_RATE_PER_MINUTE {
                return Err(err(format!(
                    "the rate for {digits} must be between 0 and {MAX_RATE_PER_MINUTE}"
                )));
            }
            if table.insert(digits.to_owned(), rate).is_some() {
                return Err(err(format!("prefix {digits} is listed twice")));
            }
            if table.len() > MAX_DESTINATION_RATES {
                return Err(err(format!("more than {MAX_DESTINATION_RATES} prefixes")));
            }
        }
        Ok(Self(table))
    }

    /// From `PREFIX=PRICE` pairs separated by commas (`44=0.30,+1900=2.50`); empty: no table.
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let mut entries = Vec::new();
        for word in words(text) {
            let (prefix, rate) = word
                .split_once('=')
                .ok_or_else(|| ValidationError::new("destination_rates", format!("{word:?} is not PREFIX=PRICE")))?;
            let rate: Money = rate.trim().parse().map_err(|e: ValidationError| {
                ValidationError::new("destination_rates", format!("{word:?}: {}", e.reason))
            })?;
            entries.push((prefix, rate));
        }
        Self::new(entries)
    }

    /// The price per minute of the longest prefix of `number`'s international form.
    pub fn rate_for(&self, number: &PhoneNumber) -> Option<Money> {
        let international = number.international_digits()?;
        (1..=international.len().min(MAX_PREFIX_DIGITS))
            .rev()
            .find_map(|len| self.0.get(&international[..len]).copied())
    }
}

impl fmt::Display for DestinationRates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pairs: Vec<String> = self.0.iter().map(|(prefix, rate)| format!("{prefix}={rate}")).collect();
        f.write_str(&pairs.join(","))
    }
}

/// Loads the numbering metadata (about 0.1 s) so the first call placed does not wait for it.
pub fn load_metadata() {
    let _ = &*DATABASE;
}

#[cfg(test)]
#[path = "destination_test.rs"]
mod tests;
