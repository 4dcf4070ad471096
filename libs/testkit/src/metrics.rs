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
    /// The samples of the family `name` whose labels contain `labels` ("" for
    /// all of them), summed: 0 when there is none.
    pub fn sum(&self, name: &str, labels: &str) -> f64 {
        self.series(name)
            .filter(|l| l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// The samples of the family `name` that carry every one of `labels`
    /// (name, value), summed: 0 when there is none.
    pub fn sum_where(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
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

    fn series<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.lines().filter(move |l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
    }
}
