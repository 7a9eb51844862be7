//! `application/x-www-form-urlencoded`: form bodies and query strings, read and written with
//! the `form_urlencoded` crate directly (serde_urlencoded, a serde layer over it, added its
//! own serializer and deserializer to the wasm for what is only ever a list of pairs).

/// Every `name=value` pair in order, percent-decoded (`+` is a space); bytes that are not
/// UTF-8 decode lossily, so reading never fails: each caller validates the values it takes.
pub fn pairs(query: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(query).into_owned().collect()
}

/// The pairs encoded (a space as `+`, everything but `*-._` and alphanumerics escaped).
pub fn encode<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        out.append_pair(name.as_ref(), value.as_ref());
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_read_lossily_in_order_and_write_with_plus_and_percent_escapes() {
        let read = pairs(b"a=1&b=x+y%2Fz&a=&c&%FF=%e2%82%ac");
        let expected = [
            ("a", "1"),
            ("b", "x y/z"),
            ("a", ""),
            ("c", ""),
            ("\u{fffd}", "\u{20ac}"),
        ];
        assert_eq!(read.len(), expected.len());
        for ((name, value), (n, v)) in read.iter().zip(expected) {
            assert_eq!((name.as_str(), value.as_str()), (n, v));
        }
        assert!(pairs(b"").is_empty());
        assert_eq!(
            encode(&[("q", "a b&c=d/é"), ("expand[]", "x*-._~")]),
            "q=a+b%26c%3Dd%2F%C3%A9&expand%5B%5D=x*-._%7E"
        );
    }
}
