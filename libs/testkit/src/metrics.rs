//! A service's `/metrics` as a test reads it.

use anyhow::Result;

/// One scrape of a service's `/metrics`.
pub struct Scrape(String);

/// Scrapes `{base_url}/metrics` (`base_url` as `http://host:port`).
pub async fn scrape(http: &reqwest::Client, base_url: &str) -> Result<Scrape> {
    let text = http
        .get(format!("{base_url}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(Scrape(text))
}

impl Scrape {
    /// A scrape of metrics in the OpenMetrics text format from elsewhere
    /// (a registry encoded in the test's own process).
    pub fn from_text(text: String) -> Self {
        Self(text)
    }

    /// The samples of the family `name` whose labels contain `labels` ("" for
    /// all of them), summed: 0 when there is none. Panics when the scrape
    /// does not declare the family at all, so that a renamed metric cannot
    /// make a check of "0" pass.
    pub fn sum(&self, name: &str, labels: &str) -> f64 {
        self.declared(name);
        self.series(name)
            .filter(|l| l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// The samples of the family `name` that carry every one of `labels`
    /// (name, value), summed: 0 when there is none. Panics as [`Scrape::sum`]
    /// does for a family the scrape does not declare.
    pub fn sum_where(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.declared(name);
        self.series(name)
            .filter(|l| {
                labels.iter().all(|(k, v)| {
                    let pair = format!("{k}=\"{v}\"");
                    l.contains(&format!("{{{pair}")) || l.contains(&format!(",{pair}"))
                })
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Every sample line of the family `name`, for an assertion's message.
    pub fn lines(&self, name: &str) -> String {
        self.series(name).collect::<Vec<_>>().join("\n")
    }

    /// Whether a `# TYPE` line declares the family of the sample name `name`.
    pub fn declares(&self, name: &str) -> bool {
        declares(&self.0, name)
    }

    /// Panics unless a `# TYPE` line declares the family of the sample name
    /// `name` (a counter's `_total`, a histogram's `_bucket`/`_sum`/`_count`).
    fn declared(&self, name: &str) {
        assert!(
            declares(&self.0, name),
            "the scrape declares no metric family for {name}: renamed or never registered?"
        );
    }

    fn series<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.lines().filter(move |l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
    }
}

/// Whether `text` has a `# TYPE` line for the family of sample name `name`.
fn declares(text: &str, name: &str) -> bool {
    const SUFFIXES: [&str; 6] = ["", "_total", "_bucket", "_sum", "_count", "_created"];
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .any(|family| {
            SUFFIXES
                .iter()
                .any(|suffix| name.strip_prefix(family) == Some(*suffix))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_is_declared_by_its_type_line_whatever_the_sample_suffix() {
        let text = "# TYPE orderflow_events_consumed counter\n# TYPE orderflow_handler_duration_seconds histogram\n# TYPE orderflow_keys_waiting_for_retry gauge\n";
        for name in [
            "orderflow_events_consumed_total",
            "orderflow_handler_duration_seconds_bucket",
            "orderflow_handler_duration_seconds_count",
            "orderflow_keys_waiting_for_retry",
        ] {
            assert!(declares(text, name), "{name}");
        }
        for name in [
            "orderflow_events_consumed_sum_total",
            "orderflow_events",
            "orderflow_other_total",
        ] {
            assert!(!declares(text, name), "{name}");
        }
        let scrape = Scrape(text.to_string());
        assert_eq!(scrape.sum("orderflow_keys_waiting_for_retry", ""), 0.0);
        let renamed = std::panic::catch_unwind(|| scrape.sum("orderflow_renamed_total", ""));
        assert!(renamed.is_err(), "a family that is not there is not 0");
    }
}
