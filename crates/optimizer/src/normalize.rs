//! Error messages normalised so that those differing only in specifics (quoted text, paths,
//! ids, numbers) compare equal: the failure types of the dataset and the error table of the
//! analysis both group by it. Its own module so that `dataset` and `analysis` do not import
//! each other.

/// Makes error messages that differ only in specifics compare equal: quoted text → `<s>`,
/// paths → `<path>`, UUIDs and hex → `<id>`, numbers → `<n>`; whitespace collapsed, at most
/// 120 characters.
pub fn normalize_error(message: &str) -> String {
    let first_line = message.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut out = String::new();
    for word in first_line.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&normalize_word(word));
    }
    let out: String = out.chars().take(120).collect();
    out
}

fn normalize_word(word: &str) -> String {
    let trimmed = word.trim_matches(|c: char| ",.;:()[]{}".contains(c));
    let (lead, trail) = {
        let start = word.find(trimmed).unwrap_or(0);
        (&word[..start], &word[start + trimmed.len()..])
    };
    let quoted = |q: char| trimmed.len() >= 2 && trimmed.starts_with(q) && trimmed.ends_with(q);
    let replaced = if trimmed.is_empty() {
        return word.to_string();
    } else if quoted('\'') || quoted('"') || quoted('`') {
        "<s>".to_string()
    } else if trimmed.contains('/') && trimmed.len() > 1 {
        "<path>".to_string()
    } else if is_id(trimmed) {
        "<id>".to_string()
    } else if trimmed.chars().any(|c| c.is_ascii_digit()) {
        let mut s = String::new();
        let mut in_num = false;
        for c in trimmed.chars() {
            if c.is_ascii_digit() {
                if !in_num {
                    s.push_str("<n>");
                }
                in_num = true;
            } else {
                in_num = false;
                s.push(c);
            }
        }
        s
    } else {
        trimmed.to_string()
    };
    format!("{lead}{replaced}{trail}")
}

fn is_id(s: &str) -> bool {
    let hex = s.chars().filter(|c| c.is_ascii_hexdigit()).count();
    let dashes = s.chars().filter(|&c| c == '-').count();
    s.len() >= 8
        && hex + dashes == s.len()
        && s.chars().any(|c| c.is_ascii_digit())
        && s.chars().any(|c| c.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_specifics_away() {
        assert_eq!(
            normalize_error("File '/tmp/a.txt' not found (errno 2)"),
            "File <s> not found (errno <n>)"
        );
        assert_eq!(
            normalize_error("cannot open /var/log/x.log: denied"),
            "cannot open <path>: denied"
        );
        assert_eq!(
            normalize_error("run 0190a3b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b timed out after 30s\ntrace"),
            "run <id> timed out after <n>s"
        );
        assert_eq!(
            normalize_error("timeout 5000ms"),
            normalize_error("timeout 120ms")
        );
    }
}
