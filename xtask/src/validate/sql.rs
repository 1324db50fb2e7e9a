//! Just enough of SQLite's SQL to read schema migrations: a tokenizer and a statement splitter that
//! knows trigger bodies. `ddl` replays the statements into a schema model.

/// One SQL token. Comments and whitespace are dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    /// A keyword, identifier or number; `quoted` for `"x"`, `` `x` `` and `[x]`.
    Word { text: String, quoted: bool },
    /// A string literal, without its quotes.
    Str(String),
    /// Any other character.
    Punct(char),
}

impl Token {
    /// Whether this is the unquoted keyword `keyword` (any case).
    pub(crate) fn is(&self, keyword: &str) -> bool {
        matches!(self, Token::Word { text, quoted: false } if text.eq_ignore_ascii_case(keyword))
    }

    /// The name this token denotes, when it is a word (lowercased unless quoted).
    pub(crate) fn name(&self) -> Option<String> {
        match self {
            Token::Word { text, quoted: false } => Some(text.to_lowercase()),
            Token::Word { text, quoted: true } => Some(text.clone()),
            _ => None,
        }
    }

    /// A comparable form: case-insensitive for keywords, exact for literals and quoted names.
    pub(crate) fn key(&self) -> String {
        match self {
            Token::Word { text, quoted: false } => text.to_lowercase(),
            Token::Word { text, quoted: true } => format!("\"{text}\""),
            Token::Str(text) => format!("'{text}'"),
            Token::Punct(c) => c.to_string(),
        }
    }
}

/// Tokens of `sql`, each with its 1-based line.
pub(crate) fn tokenize(sql: &str) -> Vec<(usize, Token)> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        let start_line = line;
        if c == '\n' {
            line += 1;
            index += 1;
        } else if c.is_whitespace() {
            index += 1;
        } else if c == '-' && chars.get(index + 1) == Some(&'-') {
            while index < chars.len() && chars[index] != '\n' {
                index += 1;
            }
        } else if c == '/' && chars.get(index + 1) == Some(&'*') {
            index += 2;
            while index < chars.len() && !(chars[index] == '*' && chars.get(index + 1) == Some(&'/')) {
                line += usize::from(chars[index] == '\n');
                index += 1;
            }
            index += 2;
        } else if matches!(c, '\'' | '"' | '`' | '[') {
            let close = if c == '[' { ']' } else { c };
            let mut text = String::new();
            index += 1;
            while index < chars.len() {
                if chars[index] == close {
                    // A doubled quote is an escaped quote (not inside brackets).
                    if close != ']' && chars.get(index + 1) == Some(&close) {
                        text.push(close);
                        index += 2;
                        continue;
                    }
                    break;
                }
                line += usize::from(chars[index] == '\n');
                text.push(chars[index]);
                index += 1;
            }
            index += 1;
            tokens.push((start_line, if c == '\'' { Token::Str(text) } else { Token::Word { text, quoted: true } }));
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let mut text = String::new();
            while index < chars.len() && (chars[index].is_alphanumeric() || chars[index] == '_' || chars[index] == '$')
            {
                text.push(chars[index]);
                index += 1;
            }
            tokens.push((start_line, Token::Word { text, quoted: false }));
        } else {
            tokens.push((start_line, Token::Punct(c)));
            index += 1;
        }
    }
    tokens
}

/// One statement: its tokens (without the closing `;`) and the line it starts on.
#[derive(Debug, Clone)]
pub(crate) struct Statement {
    pub(crate) line: usize,
    pub(crate) tokens: Vec<Token>,
}

/// Splits `sql` into statements. A trigger's body (`BEGIN …; …; END`) stays inside its statement.
pub(crate) fn statements(sql: &str) -> Vec<Statement> {
    let mut statements = Vec::new();
    let mut current: Vec<(usize, Token)> = Vec::new();
    let mut case_depth = 0usize;
    let mut trigger_ended = false;
    let is_trigger = |tokens: &[(usize, Token)]| {
        tokens.iter().take(3).any(|(_, token)| token.is("trigger"))
            && tokens.first().is_some_and(|(_, t)| t.is("create"))
    };
    for (line, token) in tokenize(sql) {
        if token == Token::Punct(';') {
            if is_trigger(&current) && !trigger_ended {
                current.push((line, token));
                continue;
            }
            if let Some((first_line, _)) = current.first() {
                let line = *first_line;
                statements.push(Statement { line, tokens: current.drain(..).map(|(_, token)| token).collect() });
            }
            case_depth = 0;
            trigger_ended = false;
            continue;
        }
        if is_trigger(&current) {
            if token.is("case") {
                case_depth += 1;
            } else if token.is("end") {
                if case_depth > 0 {
                    case_depth -= 1;
                } else {
                    trigger_ended = true;
                }
            }
        }
        current.push((line, token));
    }
    if let Some((line, _)) = current.first() {
        let line = *line;
        statements.push(Statement { line, tokens: current.into_iter().map(|(_, token)| token).collect() });
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_bodies_and_case_stay_in_their_statement() {
        let sql = "CREATE TABLE a (x INTEGER); -- note; not a statement\n\
                   CREATE TRIGGER t BEFORE DELETE ON a BEGIN SELECT CASE WHEN 1 THEN RAISE(ABORT, 'no; never') END; SELECT 1; END;\n\
                   INSERT INTO a VALUES (';');";
        let found = statements(sql);
        assert_eq!(found.len(), 3);
        assert_eq!(found[1].line, 2);
        assert_eq!(found[1].tokens.last(), Some(&Token::Word { text: "END".into(), quoted: false }));
    }
}
