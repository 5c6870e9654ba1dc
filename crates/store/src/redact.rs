//! Database URLs made safe to print: every password form libpq and sqlx accept is masked.

/// Parameter names whose values are secrets, in a URL query or a key/value connection string.
fn is_secret_key(key: &str) -> bool {
    let key = key.trim().to_ascii_lowercase();
    key.contains("password") || key.contains("secret") || key == "sslkey" || key == "token"
}

/// A database URL or connection string safe to print: the password in URL userinfo
/// (`user:pass@`), in any query parameter naming a password (`?password=…`, `&sslpassword=…`),
/// and in key/value form (`host=db password=… dbname=x`, quoted or not) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", redact_url_rest(rest)),
        None if url.contains('=') => redact_key_values(url),
        None => url.to_string(),
    }
}

/// The URL without secret-looking query parameters other than `password` (e.g. `sslpassword`),
/// which sqlx does not support and would log in full as "unrecognized"; each is reported
/// here, masked.
pub(crate) fn without_unsupported_secrets(url: &str) -> String {
    // The query starts after the userinfo, which may hold an unencoded '?'.
    let query_from = url
        .split_once("://")
        .and_then(|(scheme, rest)| userinfo_end(rest).map(|at| scheme.len() + 3 + at))
        .unwrap_or(0);
    let Some(q) = url[query_from..].find('?').map(|i| query_from + i) else {
        return url.to_string();
    };
    let (base, query) = (&url[..q], &url[q + 1..]);
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let key = percent_decode(pair.split_once('=').map_or(*pair, |(k, _)| k));
            let drop = is_secret_key(&key) && !key.eq_ignore_ascii_case("password");
            if drop {
                tracing::warn!("ignoring unsupported connect parameter {key}=***");
            }
            !drop
        })
        .collect();
    if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

/// Where the userinfo of `rest` (a URL after `scheme://`) ends: the index of its `@`.
fn userinfo_end(rest: &str) -> Option<usize> {
    let query_at = rest.find(['?', '#']).unwrap_or(rest.len());
    // Usually the '@' comes before any query; a password may hold '@' or '/' unencoded, so
    // the last one.
    if let Some(at) = rest[..query_at].rfind('@') {
        return Some(at);
    }
    // A password holding an unencoded '?' or '#' (`user:pa?ss@db/x`): the split above fell
    // inside the userinfo. It then ends at the first later '@' followed by a host (and port)
    // and the end, a path, a query or a fragment. (This errs towards masking: in the rare
    // `db:5432?user=me@corp` the port and query are masked too.)
    if !rest[..query_at].contains(':') {
        return None;
    }
    rest[query_at..]
        .match_indices('@')
        .map(|(i, _)| query_at + i)
        .find(|&at| {
            let tail = &rest[at + 1..];
            let host = &tail[..tail.find(['/', '?', '#']).unwrap_or(tail.len())];
            !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-_:[],%".contains(c))
        })
}

fn redact_url_rest(rest: &str) -> String {
    let (mut out, after_userinfo) = match userinfo_end(rest) {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _password)) => (format!("{user}:***@"), &rest[at + 1..]),
            None => (rest[..=at].to_string(), &rest[at + 1..]),
        },
        None => (String::new(), rest),
    };
    let (before_query, query) = match after_userinfo.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (after_userinfo, None),
    };
    out.push_str(before_query);
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if is_secret_key(&percent_decode(key)) => format!("{key}=***"),
                _ => pair.to_string(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied(),
            bytes.get(i + 2).copied(),
        ) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// libpq key/value form: `key = value` pairs separated by whitespace; values may be single-quoted
/// with `\'` and `\\` escapes.
fn redact_key_values(conn: &str) -> String {
    let chars: Vec<char> = conn.chars().collect();
    let mut out = String::with_capacity(conn.len());
    let mut i = 0;
    while i < chars.len() {
        // Copy whitespace, then read a key up to '='.
        while i < chars.len() && chars[i].is_whitespace() {
            out.push(chars[i]);
            i += 1;
        }
        let key_start = i;
        while i < chars.len() && chars[i] != '=' && !chars[i].is_whitespace() {
            i += 1;
        }
        let key: String = chars[key_start..i].iter().collect();
        out.push_str(&key);
        while i < chars.len() && chars[i].is_whitespace() {
            out.push(chars[i]);
            i += 1;
        }
        if i >= chars.len() || chars[i] != '=' {
            continue;
        }
        out.push('=');
        i += 1;
        while i < chars.len() && chars[i].is_whitespace() {
            out.push(chars[i]);
            i += 1;
        }
        let value_start = i;
        if i < chars.len() && chars[i] == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i = (i + 1).min(chars.len());
        } else {
            while i < chars.len() && !chars[i].is_whitespace() {
                i += 1;
            }
        }
        if is_secret_key(&key) {
            out.push_str("***");
        } else {
            out.extend(&chars[value_start..i]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{redact_url, without_unsupported_secrets};

    #[test]
    fn unsupported_secret_parameters_never_reach_the_driver() {
        assert_eq!(
            without_unsupported_secrets(
                "postgres://h/db?sslpassword=s3&sslmode=require&password=p"
            ),
            "postgres://h/db?sslmode=require&password=p"
        );
        assert_eq!(
            without_unsupported_secrets("postgres://h/db?sslpassword=s3"),
            "postgres://h/db"
        );
        // A '?' in the password is not the query.
        assert_eq!(
            without_unsupported_secrets("postgres://u:s3?c@h/db?sslpassword=s3&sslmode=require"),
            "postgres://u:s3?c@h/db?sslmode=require"
        );
        assert_eq!(
            without_unsupported_secrets("postgres://u:s3?c@h/db"),
            "postgres://u:s3?c@h/db"
        );
    }

    /// Every form a password can take in a DATABASE_URL; the secret never survives.
    #[test]
    fn masks_every_password_form() {
        for (url, expected) in [
            (
                "postgres://u:s3cret@db:5432/x?sslmode=require",
                "postgres://u:***@db:5432/x?sslmode=require",
            ),
            ("postgres://u@db/x", "postgres://u@db/x"),
            ("sqlite://a/b.db", "sqlite://a/b.db"),
            (
                "postgres://db/x?user=u&password=s3cret&sslmode=require",
                "postgres://db/x?user=u&password=***&sslmode=require",
            ),
            (
                "postgresql://db?PassWord=s3cret",
                "postgresql://db?PassWord=***",
            ),
            (
                "postgres://db/x?sslpassword=s3cret",
                "postgres://db/x?sslpassword=***",
            ),
            (
                "postgres://db/x?pass%77ord=s3cret",
                "postgres://db/x?pass%77ord=***",
            ),
            (
                "postgres://u:s3cret@db/x?password=s3cret",
                "postgres://u:***@db/x?password=***",
            ),
            ("postgres://u:s3c@ret@db/x", "postgres://u:***@db/x"),
            ("postgres://u:s3c/ret@db/x", "postgres://u:***@db/x"),
            // Unencoded '?' and '#' in the password (libpq would refuse to parse such a URL,
            // and the error that prints it must not show it).
            ("postgres://u:s3c?ret@db/x", "postgres://u:***@db/x"),
            (
                "postgres://u:s3c#ret@db:5432/x",
                "postgres://u:***@db:5432/x",
            ),
            (
                "postgres://u:s3?c#r@e@t@db/x?sslmode=require",
                "postgres://u:***@db/x?sslmode=require",
            ),
            ("postgres://u:s3?@db", "postgres://u:***@db"),
            (
                "postgres://u:s3c?ret@db/x?password=s3cret",
                "postgres://u:***@db/x?password=***",
            ),
            // An '@' in a query value is not userinfo.
            (
                "postgres://u:s3cret@db/x?application_name=a@b",
                "postgres://u:***@db/x?application_name=a@b",
            ),
            (
                "postgres://db/x?application_name=a@b",
                "postgres://db/x?application_name=a@b",
            ),
            (
                "host=db password=s3cret dbname=x",
                "host=db password=*** dbname=x",
            ),
            (
                "host=db password = 's3 cr\\'et' dbname=x",
                "host=db password = *** dbname=x",
            ),
            ("password=s3cret", "password=***"),
            ("host=db user=u", "host=db user=u"),
        ] {
            let shown = redact_url(url);
            assert_eq!(shown, expected, "{url}");
            assert!(!shown.contains("s3"), "{shown}");
        }
    }
}
