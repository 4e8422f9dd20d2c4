//! Generated usernames, in ESR's shape: employer number, first initial,
//! surname, two digits, upper case (`999JSMITH01`).

use unicode_normalization::UnicodeNormalization;

use crate::account::{USERNAME_MAX, Username};

/// Latin letters that do not decompose into a base letter plus accents.
fn fold_special(c: char) -> Option<&'static str> {
    Some(match c {
        'ß' => "SS",
        'æ' | 'Æ' => "AE",
        'œ' | 'Œ' => "OE",
        'ø' | 'Ø' => "O",
        'ł' | 'Ł' => "L",
        'đ' | 'Đ' | 'ð' | 'Ð' => "D",
        'þ' | 'Þ' => "TH",
        'ı' => "I",
        _ => return None,
    })
}

/// A name reduced to upper-case ASCII letters: accents dropped (`Zoë` →
/// `ZOE`), punctuation and spaces removed (`O'Brien-Smith` → `OBRIENSMITH`),
/// letters from other scripts left out.
pub fn fold_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.nfd() {
        if let Some(s) = fold_special(c) {
            out.push_str(s);
        } else if c.is_ascii_alphabetic() {
            out.push(c.to_ascii_uppercase());
        }
    }
    out
}

/// The part of a generated username before its digits: `999JSMITH`.
///
/// The surname is cut short so that the username, with up to three digits,
/// stays within the username length limit. A name with no Latin letters
/// contributes `X`, so every person still gets a username.
pub fn stem(employer_code: &str, first_name: &str, last_name: &str) -> String {
    let initial = fold_name(first_name)
        .chars()
        .next()
        .unwrap_or('X')
        .to_string();
    let mut surname = fold_name(last_name);
    if surname.is_empty() {
        surname.push('X');
    }
    let room = USERNAME_MAX.saturating_sub(employer_code.len() + initial.len() + 3);
    surname.truncate(room.clamp(1, 20));
    format!("{employer_code}{initial}{surname}")
}

/// The first username from `stem` followed by `01`, `02` … `99`, then `100` …
/// `999`, that `is_taken` says is free. `None` only if all 999 are taken.
pub fn generate(stem: &str, mut is_taken: impl FnMut(&str) -> bool) -> Option<Username> {
    (1..=999).find_map(|n| {
        let candidate = format!("{stem}{n:02}");
        if is_taken(&candidate) {
            None
        } else {
            Username::parse(&candidate).ok()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[test]
    fn usernames_follow_the_esr_example() {
        let s = stem("999", "John", "Smith");
        assert_eq!(s, "999JSMITH");
        assert_eq!(
            generate(&s, |_| false).map(|u| u.to_string()),
            Some("999JSMITH01".to_owned())
        );
        let taken: HashSet<&str> = ["999JSMITH01", "999JSMITH02"].into();
        assert_eq!(
            generate(&s, |c| taken.contains(c)).map(|u| u.to_string()),
            Some("999JSMITH03".to_owned())
        );
    }

    #[test]
    fn names_are_folded_to_ascii_letters() {
        assert_eq!(stem("432", "Zoë", "O'Brien-SSmith"), "432ZOBRIENSSMITH");
        assert_eq!(stem("432", "Łukasz", "Nowak"), "432LNOWAK");
        assert_eq!(stem("432", "李", "王"), "432XX");
        assert_eq!(stem("1", "a", &"b".repeat(100)).len(), 1 + 1 + 20);
    }

    #[test]
    fn more_than_99_namesakes_get_three_digits() {
        let s = stem("999", "John", "Smith");
        let u = generate(&s, |c| c.len() == s.len() + 2).map(|u| u.to_string());
        assert_eq!(u, Some("999JSMITH100".to_owned()));
        assert_eq!(generate(&s, |_| true), None);
    }

    proptest! {
        #[test]
        fn any_name_gives_a_valid_username(code in "[0-9]{1,6}", first in "\\PC{0,40}", last in "\\PC{0,80}") {
            let s = stem(&code, &first, &last);
            let u = generate(&s, |_| false);
            prop_assert!(u.is_some(), "stem {s:?} gave no username");
            let u = u.expect("checked");
            prop_assert!(u.as_str().len() <= USERNAME_MAX);
            prop_assert!(u.as_str().starts_with(&code));
            prop_assert!(u.as_str().ends_with("01"));
            prop_assert!(u.as_str().chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
        }
    }
}
