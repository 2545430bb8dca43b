//! Problems of the file as written, each with its place: which key of which table (a model by its
//! name), where in the file (line and column), what was expected, and for an unknown key the
//! closest known one. A key that cannot be read is reported and left out, so one bad value does
//! not hide the file's other problems.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

/// Where each key of the file is: key path (`model.0.guard.p99_ms`) → (line, column), 1-based.
#[derive(Debug, Default)]
pub struct Places {
    at: BTreeMap<String, (usize, usize)>,
}

impl Places {
    /// The places of every key in `text` (none when it is not TOML: the parse error says where).
    pub fn of(text: &str) -> Places {
        let mut places = Places::default();
        if let Ok(table) = toml::de::DeTable::parse(text) {
            let lines = LineStarts::of(text);
            places.walk("", table.get_ref(), &lines);
        }
        places
    }

    fn walk(&mut self, prefix: &str, table: &toml::de::DeTable<'_>, lines: &LineStarts) {
        for (key, value) in table {
            let path = join(prefix, key.get_ref());
            self.at.insert(path.clone(), lines.line_col(key.span().start));
            match value.get_ref() {
                toml::de::DeValue::Table(inner) => self.walk(&path, inner, lines),
                toml::de::DeValue::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let toml::de::DeValue::Table(inner) = item.get_ref() {
                            self.walk(&join(&path, &i.to_string()), inner, lines);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// "line 7, column 1: " for a key the file holds; empty for one it does not (it came from
    /// the environment).
    fn prefix(&self, path: &str) -> String {
        match self.at.get(path) {
            Some((line, col)) => format!("line {line}, column {col}: "),
            None => String::new(),
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() { key.to_owned() } else { format!("{prefix}.{key}") }
}

struct LineStarts(Vec<usize>);

impl LineStarts {
    fn of(text: &str) -> LineStarts {
        LineStarts(std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect())
    }

    fn line_col(&self, offset: usize) -> (usize, usize) {
        let line = self.0.partition_point(|&start| start <= offset);
        (line, offset - self.0[line.saturating_sub(1)] + 1)
    }
}

/// A table of the file being checked: its key path, and how people call it
/// (`[server]`, `model "mlp" → guard`).
#[derive(Debug, Clone)]
pub struct Table<'a> {
    pub path: String,
    pub label: String,
    pub places: &'a Places,
}

impl<'a> Table<'a> {
    /// A top-level `[name]` table.
    pub fn top(places: &'a Places, name: &str) -> Table<'a> {
        Table { path: name.to_owned(), label: format!("[{name}]"), places }
    }

    /// The `index`-th `[[model]]` table, named by its `name` when it has one.
    pub fn model(places: &'a Places, index: usize, table: &toml::Table) -> Table<'a> {
        let label = match table.get("name").and_then(toml::Value::as_str) {
            Some(name) => format!("model \"{name}\""),
            None => format!("[[model]] #{}", index + 1),
        };
        Table { path: format!("model.{index}"), label, places }
    }

    /// A table inside this one.
    pub fn inner(&self, key: &str) -> Table<'a> {
        Table { path: join(&self.path, key), label: format!("{} → {key}", self.label), places: self.places }
    }

    /// "line 7, column 1: model "mlp" → guard → p99_ms: MESSAGE".
    fn problem(&self, key: &str, message: &str) -> String {
        let path = join(&self.path, key);
        format!("{}{} → {key}: {message}", self.places.prefix(&path), self.label)
    }

    /// Reads `table` as a `T`: every unknown key and every key whose value `T` cannot take is a
    /// problem (with its place) and is left out; what remains is read. `None` only if even that
    /// fails, which a struct of optional fields never does.
    pub fn read<T: DeserializeOwned>(&self, table: toml::Table, problems: &mut Vec<String>) -> Option<T> {
        match T::deserialize(toml::Value::Table(self.clean::<T>(table, problems))) {
            Ok(v) => Some(v),
            Err(e) => {
                problems.push(format!("{}: {}", self.label, plain(e.message())));
                None
            }
        }
    }

    /// `table` without the keys a `T` does not know or cannot take, each reported.
    pub fn clean<T: DeserializeOwned>(&self, mut table: toml::Table, problems: &mut Vec<String>) -> toml::Table {
        let known = fields::<T>();
        let unknown: Vec<String> = table.keys().filter(|k| !known.contains(&k.as_str())).cloned().collect();
        for key in unknown {
            table.remove(&key);
            let hint = match closest(&key, known) {
                Some(near) => format!("; did you mean `{near}`?"),
                None => format!("; expected one of {}", known.join(", ")),
            };
            problems.push(self.problem(&key, &format!("unknown key `{key}`{hint}")));
        }
        let keys: Vec<String> = table.keys().cloned().collect();
        for key in keys {
            let Some(value) = table.get(&key) else { continue };
            let alone = toml::Table::from_iter([(key.clone(), value.clone())]);
            if let Err(e) = T::deserialize(toml::Value::Table(alone)) {
                table.remove(&key);
                problems.push(self.problem(&key, &plain(e.message())));
            }
        }
        table
    }

    /// `table[key]` as a table, when it is one; a value of another type there is a problem (and
    /// is removed). `None` when the key is absent.
    pub fn take_table(&self, table: &mut toml::Table, key: &str, problems: &mut Vec<String>) -> Option<toml::Table> {
        match table.remove(key)? {
            toml::Value::Table(inner) => Some(inner),
            other => {
                problems.push(self.problem(key, &format!("expected a table, found {}", kind(&other))));
                None
            }
        }
    }
}

/// Serde's words for what was expected, in the words of a config file.
fn plain(message: &str) -> String {
    message
        .replace("expected f64", "expected a number")
        .replace("expected u64", "expected a whole number ≥ 0")
        .replace("expected a boolean", "expected true or false")
        .replace("expected a string", "expected a string in quotes")
        .replace("expected a sequence", "expected a list [ … ]")
        .replace("expected a map", "expected a table")
}

fn kind(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a number",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "a list",
        toml::Value::Table(_) => "a table",
    }
}

/// The known key nearest to `key` by edit distance, when near enough to be a typo.
pub fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (distance(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The field names a struct deserializes, as serde derives them: asked of the type itself, so
/// the list of known keys is never written twice.
pub fn fields<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Ask(Option<&'static [&'static str]>);
    #[derive(Debug)]
    struct Stop;
    impl fmt::Display for Stop {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("fields asked")
        }
    }
    impl std::error::Error for Stop {}
    impl de::Error for Stop {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Stop
        }
    }
    impl<'de> Deserializer<'de> for &mut Ask {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0 = Some(fields);
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let mut ask = Ask(None);
    let _ = T::deserialize(&mut ask);
    ask.0.unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_the_nearest_key_and_strangers_get_the_list() {
        let known = ["challengers", "champion", "shadows", "backup", "sticky_header"];
        assert_eq!(closest("chalengers", &known), Some("challengers"));
        assert_eq!(closest("backups", &known), Some("backup"));
        assert_eq!(closest("colour", &known), None);
    }

    #[test]
    fn keys_are_placed_by_line_and_column() {
        let places = Places::of("[server]\nlisten = 5\n\n[[model]]\nname = 'a'\n[model.guard]\n  p99_ms = 'x'\n");
        assert_eq!(places.at.get("server.listen"), Some(&(2, 1)));
        assert_eq!(places.at.get("model.0.guard.p99_ms"), Some(&(7, 3)));
    }
}
