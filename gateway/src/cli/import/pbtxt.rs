//! A small, tolerant reader of protobuf text format, enough for Triton's `config.pbtxt`: it parses
//! the whole syntax (fields, nested messages in `{}` or `<>`, lists in `[]`, strings, numbers,
//! enum names, `#` comments, optional `:` `,` `;`) into a generic tree without knowing the
//! schema, so unknown or future fields are carried along rather than refused. The importer reads
//! only a few top-level scalars from it.

use std::fmt;

/// One `name: value` (or `name { … }`) of a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub value: Value,
}

/// A field's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A quoted string, unescaped (adjacent strings are joined, as protobuf does).
    Text(String),
    /// A bare token: a number (`8`, `-1`, `1e-3`), `true`/`false`, or an enum name (`TYPE_FP32`).
    Bare(String),
    /// A nested message.
    Message(Vec<Field>),
    /// `[a, b, …]`.
    List(Vec<Value>),
}

/// Why a text could not be read, with the 1-based line it was found on.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Parses a protobuf text message (the top level of the file).
pub fn parse(text: &str) -> Result<Vec<Field>, ParseError> {
    let tokens = tokenize(text)?;
    let mut parser = Parser { tokens, at: 0 };
    let fields = parser.message(None)?;
    Ok(fields)
}

/// The first top-level field `name` that is a scalar, as text (quoted or bare).
pub fn scalar<'a>(fields: &'a [Field], name: &str) -> Option<&'a str> {
    fields.iter().find(|field| field.name == name).and_then(|field| match &field.value {
        Value::Text(text) | Value::Bare(text) => Some(text.as_str()),
        Value::Message(_) | Value::List(_) => None,
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Punct(char),
}

#[derive(Debug)]
struct Parser {
    tokens: Vec<(Token, usize)>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(token, _)| token)
    }

    fn line(&self) -> usize {
        self.tokens.get(self.at).or_else(|| self.tokens.last()).map_or(1, |(_, line)| *line)
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError { line: self.line(), message: message.into() })
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).map(|(token, _)| token.clone());
        self.at += 1;
        token
    }

    /// Fields up to `close` (or the end of input when `None`).
    fn message(&mut self, close: Option<char>) -> Result<Vec<Field>, ParseError> {
        let mut fields = Vec::new();
        loop {
            match self.peek() {
                None if close.is_none() => return Ok(fields),
                None => return self.error(format!("missing `{}`", close.unwrap_or('}'))),
                Some(Token::Punct(c)) if Some(*c) == close => {
                    self.at += 1;
                    return Ok(fields);
                }
                Some(Token::Punct(',' | ';')) => self.at += 1,
                Some(Token::Punct('[')) => {
                    // An extension or `Any` field name: `[type.googleapis.com/x] { … }`.
                    self.at += 1;
                    let mut name = String::from("[");
                    loop {
                        match self.next() {
                            Some(Token::Punct(']')) => break,
                            Some(Token::Word(word)) => name.push_str(&word),
                            Some(Token::Punct(c)) => name.push(c),
                            _ => return self.error("unterminated `[` field name"),
                        }
                    }
                    name.push(']');
                    let value = self.field_value(&name)?;
                    fields.push(Field { name, value });
                }
                Some(Token::Word(_)) => {
                    let Some(Token::Word(name)) = self.next() else {
                        return self.error("expected a field name");
                    };
                    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                        self.at -= 1;
                        return self.error(format!("`{name}` is not a field name"));
                    }
                    let value = self.field_value(&name)?;
                    fields.push(Field { name, value });
                }
                Some(Token::Text(_)) => return self.error("expected a field name, found a string"),
                Some(Token::Punct(c)) => {
                    let c = *c;
                    return self.error(format!("unexpected `{c}`"));
                }
            }
        }
    }

    /// After a field name: `: scalar`, `: [ … ]`, or, with the `:` optional as for every
    /// message-valued field, `{ … }`, `< … >` and `[ { … }, … ]` (Triton writes `input [ … ]`).
    fn field_value(&mut self, name: &str) -> Result<Value, ParseError> {
        let colon = matches!(self.peek(), Some(Token::Punct(':')));
        if colon {
            self.at += 1;
        }
        match self.peek() {
            Some(Token::Punct('{' | '<' | '[')) => self.value(),
            Some(_) if colon => self.value(),
            _ => self.error(format!("expected `:` or `{{` after `{name}`")),
        }
    }

    fn value(&mut self) -> Result<Value, ParseError> {
        match self.next() {
            Some(Token::Punct('{')) => Ok(Value::Message(self.message(Some('}'))?)),
            Some(Token::Punct('<')) => Ok(Value::Message(self.message(Some('>'))?)),
            Some(Token::Punct('[')) => {
                let mut items = Vec::new();
                loop {
                    match self.peek() {
                        Some(Token::Punct(']')) => {
                            self.at += 1;
                            return Ok(Value::List(items));
                        }
                        Some(Token::Punct(',')) => self.at += 1,
                        None => return self.error("missing `]`"),
                        Some(_) => items.push(self.value()?),
                    }
                }
            }
            Some(Token::Text(first)) => {
                let mut text = first;
                while let Some(Token::Text(more)) = self.peek() {
                    text.push_str(more);
                    self.at += 1;
                }
                Ok(Value::Text(text))
            }
            Some(Token::Word(word)) => Ok(Value::Bare(word)),
            Some(Token::Punct(c)) => {
                self.at -= 1;
                self.error(format!("expected a value, found `{c}`"))
            }
            None => self.error("expected a value, found the end of the file"),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<(Token, usize)>, ParseError> {
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '#' => while chars.next_if(|&c| c != '\n').is_some() {},
            '{' | '}' | '[' | ']' | '<' | '>' | ':' | ',' | ';' => tokens.push((Token::Punct(c), line)),
            '"' | '\'' => {
                let start = line;
                let mut value = String::new();
                loop {
                    match chars.next() {
                        None | Some('\n') => {
                            return Err(ParseError { line: start, message: "unterminated string".into() });
                        }
                        Some(q) if q == c => break,
                        Some('\\') => match chars.next() {
                            Some('n') => value.push('\n'),
                            Some('t') => value.push('\t'),
                            Some('r') => value.push('\r'),
                            Some(other @ ('\\' | '"' | '\'')) => value.push(other),
                            // Octal, hex and the rest are kept as written: the importer only
                            // shows such text, never interprets it.
                            Some(other) => {
                                value.push('\\');
                                value.push(other);
                            }
                            None => return Err(ParseError { line: start, message: "unterminated string".into() }),
                        },
                        Some(other) => value.push(other),
                    }
                }
                tokens.push((Token::Text(value), start));
            }
            c if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '.' | '/') => {
                let mut word = String::from(c);
                while let Some(next) =
                    chars.next_if(|&n| n.is_ascii_alphanumeric() || matches!(n, '_' | '-' | '+' | '.' | '/'))
                {
                    word.push(next);
                }
                tokens.push((Token::Word(word), line));
            }
            other => return Err(ParseError { line, message: format!("unexpected character {other:?}") }),
        }
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
# A typical Triton config.
name: "mlp"
platform: "onnxruntime_onnx"
max_batch_size : 8
input [
  {
    name: "input"
    data_type: TYPE_FP32
    dims: [ 64 ]
  }
]
output [
  { name: "output", data_type: TYPE_FP32, dims: [ -1, 10 ] }
]
instance_group [ { count: 2 kind: KIND_CPU } ]
dynamic_batching { preferred_batch_size: [ 4, 8 ] max_queue_delay_microseconds: 100 }
parameters { key: "note" value: { string_value: 'it''s "quoted" \n' } };
version_policy: { latest { num_versions: 2 } }
optimization < execution_accelerators { cpu_execution_accelerator: [] } >
"#;

    #[test]
    fn reads_a_triton_config() {
        let fields = parse(CONFIG).expect("parses");
        assert_eq!(scalar(&fields, "name"), Some("mlp"));
        assert_eq!(scalar(&fields, "platform"), Some("onnxruntime_onnx"));
        assert_eq!(scalar(&fields, "max_batch_size"), Some("8"));
        assert_eq!(scalar(&fields, "backend"), None);
        assert_eq!(scalar(&fields, "input"), None, "a list is not a scalar");
        let Some(Field { value: Value::List(outputs), .. }) = fields.iter().find(|f| f.name == "output") else {
            panic!("output is a list: {fields:?}");
        };
        let Value::Message(output) = &outputs[0] else { panic!("a message") };
        assert_eq!(scalar(output, "data_type"), Some("TYPE_FP32"));
        assert_eq!(
            output.iter().find(|f| f.name == "dims").map(|f| &f.value),
            Some(&Value::List(vec![Value::Bare("-1".into()), Value::Bare("10".into())]))
        );
        let Some(Field { value: Value::Message(parameters), .. }) = fields.iter().find(|f| f.name == "parameters")
        else {
            panic!("parameters is a message");
        };
        let Some(Field { value: Value::Message(value), .. }) = parameters.iter().find(|f| f.name == "value") else {
            panic!("value is a message");
        };
        assert_eq!(scalar(value, "string_value"), Some("its \"quoted\" \n"), "adjacent strings join");
        assert!(fields.iter().any(|f| f.name == "optimization" && matches!(f.value, Value::Message(_))));
    }

    #[test]
    fn an_empty_file_or_comments_only_is_an_empty_message() {
        assert_eq!(parse("").expect("empty"), Vec::new());
        assert_eq!(parse("# nothing\n  \n").expect("comments"), Vec::new());
        let fields = parse("backend: \"onnxruntime\"").expect("one field");
        assert_eq!(scalar(&fields, "backend"), Some("onnxruntime"));
    }

    #[test]
    fn broken_text_is_refused_with_its_line() {
        for (text, line, needle) in [
            ("name: \"mlp\"\ninput [\n  { name: \"x\"\n", 3, "missing `}`"),
            ("name: \"mlp\n", 1, "unterminated string"),
            ("max_batch_size 8\n", 1, "expected `:` or `{` after `max_batch_size`"),
            ("a: 1\nb: }\n", 2, "expected a value, found `}`"),
            ("dims: [ 1, 2\n", 1, "missing `]`"),
            ("name: \"x\"\n\n$oops: 1\n", 3, "unexpected character '$'"),
            ("\"x\": 1", 1, "expected a field name, found a string"),
        ] {
            let err = parse(text).expect_err(text);
            assert_eq!(err.line, line, "{text:?}: {err}");
            assert!(err.message.contains(needle), "{text:?}: {err}");
        }
    }
}
