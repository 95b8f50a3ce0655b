//! Money as the API returns it (a JSON number, at most 2 decimals), compared exactly.
//!
//! The workspace enables serde_json's `arbitrary_precision`, so a [`Number`] keeps the text the
//! server sent; it is converted to integer cents here, independently of the services' own money
//! type, so a bug shared with that type cannot hide.

use serde_json::Number;

/// The amount in cents: `"600"` → 60000, `"199.99"` → 19999, `"0.5"` → 50.
///
/// Panics (failing the test) on anything that is not a plain decimal with at most 2 decimals,
/// because the API promises exactly that shape (SPEC §2, Money).
pub fn cents(n: &Number) -> i64 {
    let text = n.to_string();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.as_str()),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let plain = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    assert!(
        !whole.is_empty() && plain(whole) && plain(frac) && frac.len() <= 2,
        "money {text:?} is not a plain decimal with at most 2 decimal places"
    );
    let whole: i64 = whole
        .parse()
        .unwrap_or_else(|e| panic!("money {text:?}: {e}"));
    let frac: i64 = format!("{frac:0<2}")
        .parse()
        .unwrap_or_else(|e| panic!("money {text:?}: {e}"));
    let value = whole * 100 + frac;
    if negative { -value } else { value }
}

#[cfg(test)]
mod tests {
    use super::cents;
    use serde_json::Number;

    fn n(text: &str) -> Number {
        serde_json::from_str(text).expect("a JSON number")
    }

    #[test]
    fn whole_and_decimal_amounts_become_cents() {
        assert_eq!(cents(&n("600")), 60_000);
        assert_eq!(cents(&n("199.99")), 19_999);
        assert_eq!(cents(&n("0.5")), 50);
        assert_eq!(cents(&n("0")), 0);
        assert_eq!(cents(&n("-1.25")), -125);
    }

    #[test]
    #[should_panic(expected = "at most 2 decimal places")]
    fn three_decimals_are_rejected() {
        cents(&n("1.234"));
    }

    #[test]
    #[should_panic(expected = "at most 2 decimal places")]
    fn exponents_are_rejected() {
        cents(&n("6e2"));
    }
}
