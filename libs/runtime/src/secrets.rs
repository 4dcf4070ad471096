//! Secrets never reach a message: passwords in URLs, credentials in query
//! strings and in `ORDERFLOW_KAFKA_PROPERTIES` are replaced by `***` in
//! `--print-config`, logs and errors.

use serde_json::Value;

const HIDDEN: &str = "***";

/// Whether a setting or parameter named `name` holds a secret.
fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "credential",
        "basic_auth",
        "api_key",
        "apikey",
        "private",
    ]
    .iter()
    .any(|s| name.contains(s))
}

/// A URL with its password, and the values of secret-looking query
/// parameters, replaced.
pub fn redact(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        // Not a URL: it may still hold `user:pass@`; cut it out.
        return match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}://{HIDDEN}@{}", &url[..scheme], &url[at + 1..])
            }
            _ => url.to_string(),
        };
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some(HIDDEN));
    }
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| {
            let v = if is_secret_name(&k) {
                HIDDEN.to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    if !pairs.is_empty() {
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

/// `key=value,key=value` librdkafka properties with secret values replaced
/// (`sasl.password`, `ssl.key.password`, `sasl.oauthbearer.client.secret`…).
pub fn redact_properties(properties: &str) -> String {
    properties
        .split(',')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_secret_name(k) => format!("{k}={HIDDEN}"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A configuration as JSON, every secret in it replaced: URL settings
/// (`*_url`), Kafka properties and any setting whose name says secret.
pub fn redact_config(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(s) if s.is_empty() => {}
                    Value::String(s) if is_secret_name(key) => *s = HIDDEN.into(),
                    Value::String(s) if key == "kafka_properties" => *s = redact_properties(s),
                    Value::String(s) if key.ends_with("_url") || key.ends_with("_server") => {
                        *s = redact(s)
                    }
                    other => redact_config(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_config),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_a_message() {
        assert_eq!(
            redact("postgres://orderflow:s3cret@db:5432/inventory"),
            "postgres://orderflow:***@db:5432/inventory"
        );
        assert_eq!(redact("sqlite://.data/x.db"), "sqlite://.data/x.db");
        assert_eq!(
            redact("https://hooks.example.com/x?channel=ops&token=abc"),
            "https://hooks.example.com/x?channel=ops&token=***"
        );
        assert_eq!(redact("not a url u:pw@host"), "not a url u:pw@host");
        assert_eq!(redact("postgres://u:p@ss@h/db"), "postgres://u:***@h/db");
    }

    #[test]
    fn kafka_secrets_are_hidden_and_the_rest_kept() {
        assert_eq!(
            redact_properties("security.protocol=SASL_SSL,sasl.username=order,sasl.password=pw,ssl.key.password=k"),
            "security.protocol=SASL_SSL,sasl.username=order,sasl.password=***,ssl.key.password=***"
        );
    }

    #[test]
    fn a_printed_configuration_holds_no_secret() {
        let mut config = serde_json::json!({
            "database_url": "postgres://u:s3cret@h/db",
            "kafka_properties": "sasl.password=s3cret",
            "schema_registry_url": "https://key:s3cret@registry",
            "schema_registry_basic_auth": "key:s3cret",
            "webhook_url": "https://x/hook?token=s3cret",
            "database_max_connections": 20,
            "empty_password": "",
        });
        redact_config(&mut config);
        let printed = config.to_string();
        assert!(!printed.contains("s3cret"), "{printed}");
        assert_eq!(config["database_max_connections"], 20);
        assert_eq!(
            config["empty_password"], "",
            "an unset secret stays visibly unset"
        );
    }
}
