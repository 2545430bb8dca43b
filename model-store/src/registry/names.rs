//! Naming rules for models, aliases and version selectors, checked before anything is written
//! so that every name in the registry is safe in a URL path, a file name and a metric label.

use crate::error::StoreError;

/// The selector that always means the highest version number; never stored as an alias.
pub(crate) const LATEST: &str = "latest";

/// What a version selector (`"3"`, `"v3"`, `"latest"`, an alias) asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Selector<'a> {
    /// A version number, from `"3"` or `"v3"`.
    Number(u32),
    /// The highest version number.
    Latest,
    /// Anything else: looked up as an alias.
    Alias(&'a str),
}

/// Parses a selector. Digits too large for a version number fall through to an alias lookup,
/// which cannot match (alias names are never all digits), so they end as `AliasNotFound`.
pub(crate) fn parse_selector(selector: &str) -> Selector<'_> {
    if selector == LATEST {
        return Selector::Latest;
    }
    let digits = selector.strip_prefix('v').unwrap_or(selector);
    if is_digits(digits)
        && let Ok(number) = digits.parse::<u32>()
    {
        return Selector::Number(number);
    }
    Selector::Alias(selector)
}

/// Model names: `[A-Za-z0-9][A-Za-z0-9_.-]{0,127}` without `..`. Public so that a caller can
/// refuse a bad name before it writes anything (e.g. before it opens or creates a store).
pub fn check_model_name(name: &str) -> Result<(), StoreError> {
    let refuse = |reason: &str| Err(StoreError::InvalidModelName { name: name.to_owned(), reason: reason.to_owned() });
    let Some(first) = name.bytes().next() else {
        return refuse("a model name cannot be empty");
    };
    if name.len() > 128 {
        return refuse("a model name has at most 128 characters");
    }
    if !first.is_ascii_alphanumeric() {
        return refuse("a model name starts with an ASCII letter or digit");
    }
    if let Some(bad) = name.chars().find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
        return refuse(&format!("{bad:?} is not allowed; use ASCII letters, digits, '_', '.' and '-'"));
    }
    if name.contains("..") {
        return refuse("a model name cannot contain \"..\"");
    }
    Ok(())
}

/// Alias names: `[a-z0-9][a-z0-9_-]{0,62}`, not all digits, not `v<digits>`, not `latest`
/// (those would be ambiguous with version selectors).
pub(crate) fn check_alias(alias: &str) -> Result<(), StoreError> {
    let refuse = |reason: &str| Err(StoreError::InvalidAlias { alias: alias.to_owned(), reason: reason.to_owned() });
    let Some(first) = alias.bytes().next() else {
        return refuse("an alias cannot be empty");
    };
    if alias.len() > 63 {
        return refuse("an alias has at most 63 characters");
    }
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return refuse("an alias starts with a lowercase ASCII letter or digit");
    }
    if let Some(bad) =
        alias.chars().find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-')))
    {
        return refuse(&format!("{bad:?} is not allowed; use lowercase ASCII letters, digits, '_' and '-'"));
    }
    if is_digits(alias) {
        return refuse("an all-digit alias would read as a version number");
    }
    if alias.strip_prefix('v').is_some_and(is_digits) {
        return refuse("\"v<digits>\" would read as a version number");
    }
    if alias == LATEST {
        return refuse("\"latest\" always means the highest version and cannot be set");
    }
    Ok(())
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse() {
        assert_eq!(parse_selector("3"), Selector::Number(3));
        assert_eq!(parse_selector("v12"), Selector::Number(12));
        assert_eq!(parse_selector("latest"), Selector::Latest);
        assert_eq!(parse_selector("champion"), Selector::Alias("champion"));
        assert_eq!(parse_selector("v"), Selector::Alias("v"));
        assert_eq!(parse_selector("V3"), Selector::Alias("V3"));
        assert_eq!(parse_selector("99999999999"), Selector::Alias("99999999999"));
    }

    #[test]
    fn model_names() {
        for good in ["mlp", "Fraud-Scorer_2.onnx", "a", &"x".repeat(128)] {
            assert!(check_model_name(good).is_ok(), "{good}");
        }
        for bad in ["", ".hidden", "-x", "a..b", "a/b", "../etc", "a b", "modèle", &"x".repeat(129)] {
            match check_model_name(bad) {
                Err(StoreError::InvalidModelName { name, reason }) => {
                    assert_eq!(name, bad);
                    assert!(!reason.is_empty());
                }
                other => panic!("{bad:?} was not refused: {other:?}"),
            }
        }
    }

    #[test]
    fn alias_names() {
        for good in ["champion", "backup-1", "a_b", "3d", "v1x", "version2", &"a".repeat(63)] {
            assert!(check_alias(good).is_ok(), "{good}");
        }
        for bad in ["", "Champion", "_x", "-x", "a.b", "12", "v7", "latest", "a b", &"a".repeat(64)] {
            match check_alias(bad) {
                Err(StoreError::InvalidAlias { alias, reason }) => {
                    assert_eq!(alias, bad);
                    assert!(!reason.is_empty());
                }
                other => panic!("{bad:?} was not refused: {other:?}"),
            }
        }
    }
}
