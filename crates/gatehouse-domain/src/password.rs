//! The password rules, and the reason given when a password is refused.
//!
//! ESR's own rules (research/anchors.md §d): at least 12 characters, not one
//! of your previous 4 passwords, no commonly used passwords. NIST SP
//! 800-63B-4 adds: no composition rules, count Unicode code points after NFC
//! normalisation, compare the entire password against the blocklist, and say
//! why a password was refused. Reuse is checked by the caller, which holds
//! the previous hashes; everything else is here.

use unicode_normalization::UnicodeNormalization;

/// The length and strength limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Fewest code points (seed and ESR: 12).
    pub min_length: usize,
    /// Most code points: beyond this nothing is hashed (long-password DoS, CVE-2013-1443).
    pub max_length: usize,
    /// Lowest acceptable zxcvbn score (0–4); below it a password is "too easy to guess".
    pub min_strength: u8,
    /// How many previous passwords may not be reused (ESR: 4).
    pub history: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: 12,
            max_length: 256,
            min_strength: 3,
            history: 4,
        }
    }
}

/// Why a new password was refused. Each has the sentence shown on the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordRefusal {
    /// Nothing entered.
    Empty,
    /// Fewer than the minimum code points.
    TooShort(usize),
    /// More than the maximum code points.
    TooLong(usize),
    /// A commonly used password or an easily guessed pattern.
    TooCommon,
    /// Built from the person's username.
    Username,
    /// Built from the person's own name.
    Name,
    /// Built from the service's name, "NHS" or "ESR".
    ServiceName,
    /// One of the previous passwords.
    Reused(usize),
    /// Password and Confirm password differ.
    Mismatch,
}

impl PasswordRefusal {
    /// The sentence shown to the person.
    pub fn message(&self) -> String {
        match self {
            PasswordRefusal::Empty => "Enter a new password".to_owned(),
            PasswordRefusal::TooShort(min) => {
                format!("Your password must be at least {min} characters long")
            }
            PasswordRefusal::TooLong(max) => {
                format!("Your password must be {max} characters or fewer")
            }
            PasswordRefusal::TooCommon => "Your password is too easy to guess: it is a commonly \
                used password or follows a common pattern, like 'password1' or 'qwerty123456'. \
                Try three random words"
                .to_owned(),
            PasswordRefusal::Username => {
                "Your password must not be based on your username".to_owned()
            }
            PasswordRefusal::Name => "Your password must not be based on your name".to_owned(),
            PasswordRefusal::ServiceName => {
                "Your password must not be based on the name of this service, 'NHS' or 'ESR'"
                    .to_owned()
            }
            PasswordRefusal::Reused(n) => {
                format!("Your password must not be the same as any of your previous {n} passwords")
            }
            PasswordRefusal::Mismatch => "The passwords do not match".to_owned(),
        }
    }
}

/// What is known about the person and the service, to refuse guessable passwords.
#[derive(Debug, Clone, Default)]
pub struct PasswordContext {
    /// The account's username.
    pub username: String,
    /// The person's first and last names.
    pub names: Vec<String>,
    /// The service's name and other organisation words ("NHS", "ESR").
    pub service_words: Vec<String>,
}

/// A password in the form that is hashed: Unicode NFC.
///
/// Normalising means a password typed as `é` on one keyboard and as `e` +
/// combining accent on another is the same password. No other change is made:
/// no trimming, no case folding, no truncation.
pub fn normalise(input: &str) -> String {
    input.nfc().collect()
}

impl PasswordPolicy {
    /// Checks a new password (already [`normalise`]d) and its confirmation.
    pub fn check(
        &self,
        password: &str,
        confirmation: &str,
        context: &PasswordContext,
    ) -> Result<(), PasswordRefusal> {
        if password.is_empty() {
            return Err(PasswordRefusal::Empty);
        }
        let length = password.chars().count();
        if length < self.min_length {
            return Err(PasswordRefusal::TooShort(self.min_length));
        }
        if length > self.max_length {
            return Err(PasswordRefusal::TooLong(self.max_length));
        }
        if password != normalise(confirmation) {
            return Err(PasswordRefusal::Mismatch);
        }
        let folded = password.to_lowercase();
        let username = context.username.to_lowercase();
        let names: Vec<String> = context.names.iter().map(|n| n.to_lowercase()).collect();
        let service: Vec<String> = service_words(&context.service_words);
        let all_words: Vec<&str> = std::iter::once(username.as_str())
            .chain(names.iter().map(String::as_str))
            .chain(service.iter().map(String::as_str))
            .collect();
        if based_on(&folded, &[username.as_str()], &all_words) {
            return Err(PasswordRefusal::Username);
        }
        let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        if based_on(&folded, &name_refs, &all_words) {
            return Err(PasswordRefusal::Name);
        }
        let service_refs: Vec<&str> = service.iter().map(String::as_str).collect();
        if based_on(&folded, &service_refs, &all_words) {
            return Err(PasswordRefusal::ServiceName);
        }
        let inputs: Vec<&str> = all_words
            .iter()
            .copied()
            .filter(|w| !w.is_empty())
            .collect();
        let score: u8 = zxcvbn::zxcvbn(password, &inputs).score().into();
        if score < self.min_strength {
            return Err(PasswordRefusal::TooCommon);
        }
        Ok(())
    }

    /// The rules as a person reads them, for the reset page.
    pub fn requirements(&self) -> Vec<String> {
        vec![
            format!("be at least {} characters long", self.min_length),
            "not be a commonly used password, such as 'password1'".to_owned(),
            format!(
                "not be the same as any of your previous {} passwords",
                self.history
            ),
            "not be based on your username, your name, the name of this service, 'NHS' or 'ESR'"
                .to_owned(),
        ]
    }
}

/// Lower-cased service words, each word of a multi-word name, and the name run together.
fn service_words(words: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in words {
        let lower = w.to_lowercase();
        let joined: String = lower.chars().filter(|c| c.is_alphanumeric()).collect();
        if !joined.is_empty() {
            out.push(joined);
        }
        for part in lower.split(|c: char| !c.is_alphanumeric()) {
            if part.chars().count() >= 3 && !out.iter().any(|o| o == part) {
                out.push(part.to_owned());
            }
        }
    }
    out
}

/// Whether `password` is essentially one of `targets`, dressed up: it
/// contains a target, and once every known word is removed, fewer than six
/// letters remain (so `JaneSmith2024!` and `999jsmith01abc` are refused, but
/// a long passphrase that happens to contain "staff" is not).
fn based_on(password: &str, targets: &[&str], all_words: &[&str]) -> bool {
    let contains_target = targets
        .iter()
        .any(|t| t.chars().count() >= 3 && password.contains(t));
    if !contains_target {
        return false;
    }
    let mut rest = password.to_owned();
    let mut words: Vec<&str> = all_words
        .iter()
        .copied()
        .filter(|w| w.chars().count() >= 3)
        .collect();
    // Longest first, so "electronicstaffrecord" goes before "staff".
    words.sort_by_key(|w| std::cmp::Reverse(w.len()));
    for w in words {
        rest = rest.replace(w, "");
    }
    rest.chars().filter(|c| c.is_alphabetic()).count() < 6
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> PasswordContext {
        PasswordContext {
            username: "999JSMITH01".to_owned(),
            names: vec!["Jane".to_owned(), "Smith".to_owned()],
            service_words: vec![
                "Electronic Staff Record".to_owned(),
                "NHS".to_owned(),
                "ESR".to_owned(),
            ],
        }
    }

    fn check(p: &str) -> Result<(), PasswordRefusal> {
        PasswordPolicy::default().check(&normalise(p), p, &context())
    }

    #[test]
    fn long_random_passphrases_pass_without_composition_rules() {
        assert_eq!(check("correct horse battery staple"), Ok(()));
        assert_eq!(check("kettle-violin-marmalade"), Ok(()));
        assert_eq!(check("teapot sunrise harbour"), Ok(()));
    }

    #[test]
    fn length_is_counted_in_code_points() {
        assert_eq!(check("short"), Err(PasswordRefusal::TooShort(12)));
        // 11 code points of CJK is still too short, however many bytes it takes.
        assert_eq!(
            check("雪山花風月海空星光雨木"),
            Err(PasswordRefusal::TooShort(12))
        );
        let long = "x".repeat(257);
        assert_eq!(check(&long), Err(PasswordRefusal::TooLong(256)));
        assert_eq!(check(""), Err(PasswordRefusal::Empty));
    }

    #[test]
    fn common_passwords_are_refused_with_a_reason() {
        for p in [
            "password1234",
            "qwertyuiop123",
            "Password123!",
            "aaaaaaaaaaaaaaaa",
            "123456789012",
        ] {
            assert_eq!(check(p), Err(PasswordRefusal::TooCommon), "{p}");
        }
        assert!(PasswordRefusal::TooCommon.message().contains("password1"));
    }

    #[test]
    fn context_words_are_refused() {
        assert_eq!(check("999jsmith01abc"), Err(PasswordRefusal::Username));
        assert_eq!(check("JaneSmith2024!!"), Err(PasswordRefusal::Name));
        assert_eq!(check("NHS-ESR-2026-ok!"), Err(PasswordRefusal::ServiceName));
        assert_eq!(
            check("ElectronicStaffRecord1"),
            Err(PasswordRefusal::ServiceName)
        );
        // A real passphrase that merely contains a context word passes.
        assert_eq!(check("staffroom kettle bluebell"), Ok(()));
    }

    #[test]
    fn confirmation_must_match_after_normalisation() {
        let nfc = "caf\u{e9} violin marmalade";
        let nfd = "cafe\u{301} violin marmalade";
        assert_eq!(
            PasswordPolicy::default().check(&normalise(nfd), nfc, &context()),
            Ok(())
        );
        assert_eq!(
            check_pair("kettle-violin-marmalade", "kettle-violin-marmalad"),
            Err(PasswordRefusal::Mismatch)
        );
    }

    fn check_pair(p: &str, c: &str) -> Result<(), PasswordRefusal> {
        PasswordPolicy::default().check(&normalise(p), c, &context())
    }

    #[test]
    fn normalisation_is_nfc_and_nothing_else() {
        assert_eq!(normalise("e\u{301}"), "\u{e9}");
        assert_eq!(normalise("  spaces kept  "), "  spaces kept  ");
        assert_eq!(normalise("CaSe"), "CaSe");
    }

    #[test]
    fn requirements_are_written_out() {
        let r = PasswordPolicy::default().requirements();
        assert!(r[0].contains("12 characters"));
        assert!(r.iter().any(|x| x.contains("previous 4 passwords")));
    }
}
