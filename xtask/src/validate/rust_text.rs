//! The text of a Rust file that can hold a path: string literals and comments, line by line.
//! Code outside them (`global.db.clone()`) is not a path, whatever it looks like.

/// `(1-based line, text)` pieces of the string literals and comments in `source`, in order. A literal
/// or comment spanning lines gives one piece per line.
pub(crate) fn strings_and_comments(source: &str) -> Vec<(usize, String)> {
    let chars: Vec<char> = source.chars().collect();
    let mut pieces = Vec::new();
    let mut line = 1;
    let mut index = 0;
    let mut piece = String::new();
    // Pushes the current piece (when not empty) at `line`.
    let flush = |pieces: &mut Vec<(usize, String)>, piece: &mut String, line: usize| {
        if !piece.is_empty() {
            pieces.push((line, std::mem::take(piece)));
        }
    };
    while index < chars.len() {
        let c = chars[index];
        let next = chars.get(index + 1).copied();
        let previous_is_ident = index > 0 && (chars[index - 1].is_alphanumeric() || chars[index - 1] == '_');
        if c == '\n' {
            line += 1;
            index += 1;
        } else if c == '/' && next == Some('/') {
            // Line comment, to the end of the line.
            while index < chars.len() && chars[index] != '\n' {
                piece.push(chars[index]);
                index += 1;
            }
            flush(&mut pieces, &mut piece, line);
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while index < chars.len() {
                if chars[index] == '/' && chars.get(index + 1) == Some(&'*') {
                    depth += 1;
                    index += 2;
                    piece.push_str("/*");
                } else if chars[index] == '*' && chars.get(index + 1) == Some(&'/') {
                    depth -= 1;
                    index += 2;
                    piece.push_str("*/");
                    if depth == 0 {
                        break;
                    }
                } else if chars[index] == '\n' {
                    flush(&mut pieces, &mut piece, line);
                    line += 1;
                    index += 1;
                } else {
                    piece.push(chars[index]);
                    index += 1;
                }
            }
            flush(&mut pieces, &mut piece, line);
        } else if c == '"'
            || (matches!(c, 'r' | 'b' | 'c') && !previous_is_ident && starts_raw_or_prefixed(&chars, index))
        {
            // Skip a `b`/`c`/`r`/`br` prefix and count the raw string's hashes.
            let mut hashes = None;
            while chars[index] != '"' {
                if chars[index] == 'r' {
                    hashes = Some(0);
                } else if chars[index] == '#' {
                    hashes = hashes.map(|count| count + 1);
                }
                index += 1;
            }
            index += 1;
            while index < chars.len() {
                let c = chars[index];
                if hashes.is_none() && c == '\\' {
                    piece.push(c);
                    if let Some(&escaped) = chars.get(index + 1) {
                        if escaped == '\n' {
                            flush(&mut pieces, &mut piece, line);
                            line += 1;
                        } else {
                            piece.push(escaped);
                        }
                    }
                    index += 2;
                } else if c == '"' && closes(&chars, index, hashes.unwrap_or(0)) {
                    index += 1 + hashes.unwrap_or(0);
                    break;
                } else if c == '\n' {
                    flush(&mut pieces, &mut piece, line);
                    line += 1;
                    index += 1;
                } else {
                    piece.push(c);
                    index += 1;
                }
            }
            flush(&mut pieces, &mut piece, line);
        } else if c == '\'' {
            // A char literal ('x', '\n', '"') is skipped; a lifetime ('a) is code.
            if next == Some('\\') {
                index += 2;
                while index < chars.len() && chars[index] != '\'' {
                    index += 1;
                }
                index += 1;
            } else if chars.get(index + 2) == Some(&'\'') {
                index += 3;
            } else {
                index += 1;
            }
        } else {
            index += 1;
        }
    }
    pieces
}

/// Whether a literal starts at `index` with a prefix: `r"`, `r#"`, `b"`, `br"`, `br#"`, `c"`.
fn starts_raw_or_prefixed(chars: &[char], index: usize) -> bool {
    let mut cursor = index;
    if matches!(chars.get(cursor), Some('b' | 'c')) {
        cursor += 1;
    }
    if chars.get(cursor) == Some(&'r') {
        cursor += 1;
        while chars.get(cursor) == Some(&'#') {
            cursor += 1;
        }
    }
    cursor > index && chars.get(cursor) == Some(&'"')
}

/// Whether the quote at `index` is followed by `hashes` hashes (the end of a raw string).
fn closes(chars: &[char], index: usize, hashes: usize) -> bool {
    (1..=hashes).all(|offset| chars.get(index + offset) == Some(&'#'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(source: &str) -> Vec<(usize, String)> {
        strings_and_comments(source)
    }

    #[test]
    fn code_is_left_out_and_literals_and_comments_kept_with_their_lines() {
        let source = "let a = global.db.clone(); // see x.db\nlet b = \"one.db\";\n/* two\n three.db */\n";
        assert_eq!(
            texts(source),
            vec![
                (1, "// see x.db".to_owned()),
                (2, "one.db".to_owned()),
                (3, "/* two".to_owned()),
                (4, " three.db */".to_owned())
            ]
        );
    }

    #[test]
    fn raw_strings_escapes_chars_and_lifetimes() {
        let source =
            "fn f<'a>(x: &'a str) { let q = '\"'; let e = '\\''; let r = r#\"a \"b\" c\"#; let s = \"x\\\"y\"; }";
        assert_eq!(texts(source), vec![(1, "a \"b\" c".to_owned()), (1, "x\\\"y".to_owned())]);
        assert_eq!(
            texts("let v = b\"bytes.db\"; let raw = br\"r.db\";"),
            vec![(1, "bytes.db".into()), (1, "r.db".into())]
        );
        assert_eq!(texts("let error = bar\"x\";"), vec![(1, "x".to_owned())]);
    }

    #[test]
    fn multi_line_strings_give_one_piece_per_line() {
        assert_eq!(texts("let s = \"a\nb.db\";"), vec![(1, "a".to_owned()), (2, "b.db".to_owned())]);
    }
}
