//! A real headless Chromium (Debian's) driven over WebDriver by fantoccini,
//! for the console tests: open a page, wait for what a person would see,
//! click, type, take screenshots. Screenshots go to
//! `<target dir>/console-screenshots/` (CI keeps them; they are not committed).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use orderflow_companions::Chromedriver;

/// The browser window: the size the screenshots have.
const WINDOW: (u32, u32) = (1440, 960);

pub struct Browser {
    pub client: Client,
    _driver: Chromedriver,
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium (`ORDERFLOW_CHROMIUM_BIN`,
    /// else Debian's `/usr/bin/chromium`).
    pub async fn start() -> Result<Self> {
        let driver = Chromedriver::start().await?;
        let binary =
            std::env::var("ORDERFLOW_CHROMIUM_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": binary,
                "args": [
                    "--headless=new",
                    // The sandbox needs user namespaces this machine's kernel refuses.
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--disable-extensions",
                    format!("--window-size={},{}", WINDOW.0, WINDOW.1),
                ],
            }),
        );
        let client = ClientBuilder::native()
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .with_context(|| format!("starting {binary} through chromedriver"))?;
        Ok(Self {
            client,
            _driver: driver,
        })
    }

    pub async fn goto(&self, url: &str) -> Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("opening {url}"))
    }

    /// Waits up to `within` for an element matching `css`.
    pub async fn wait_for(&self, css: &str, within: Duration) -> Result<Element> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await {
                return Ok(e);
            }
            if Instant::now() > deadline {
                self.screenshot("timeout").await.ok();
                bail!(
                    "nothing matched {css} within {within:?}; the page says: {}",
                    self.text("body").await.unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits up to `within` for `check` of the page's text of `css` to hold.
    pub async fn wait_text(
        &self,
        css: &str,
        within: Duration,
        check: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let deadline = Instant::now() + within;
        let mut last = String::new();
        loop {
            if let Ok(text) = self.text(css).await {
                if check(&text) {
                    return Ok(text);
                }
                last = text;
            }
            if Instant::now() > deadline {
                self.screenshot("timeout").await.ok();
                bail!("{css} never read as expected within {within:?}; last: {last:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> Result<String> {
        Ok(self.client.find(Locator::Css(css)).await?.text().await?)
    }

    /// Every element matching `css`, now.
    pub async fn all(&self, css: &str) -> Result<Vec<Element>> {
        Ok(self.client.find_all(Locator::Css(css)).await?)
    }

    pub async fn click(&self, css: &str) -> Result<()> {
        self.wait_for(css, Duration::from_secs(10))
            .await?
            .click()
            .await
            .with_context(|| format!("clicking {css}"))?;
        Ok(())
    }

    /// Replaces the value of the input `css` with `text`, as typed.
    pub async fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let input = self.wait_for(css, Duration::from_secs(10)).await?;
        input.clear().await?;
        input.send_keys(text).await?;
        Ok(())
    }

    /// Runs `script` in the page and returns its value.
    pub async fn eval(&self, script: &str) -> Result<serde_json::Value> {
        Ok(self.client.execute(script, vec![]).await?)
    }

    /// Saves a PNG of the window as `<name>.png` in the screenshots folder;
    /// returns its path.
    pub async fn screenshot(&self, name: &str) -> Result<PathBuf> {
        let png = self.client.screenshot().await?;
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png)?;
        Ok(path)
    }

    pub async fn close(self) -> Result<()> {
        self.client.close().await?;
        Ok(())
    }
}

/// `<target dir>/console-screenshots`: beside the test binary's `debug/`.
pub fn screenshots_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/debug/deps/console-… → target
    exe.ancestors()
        .nth(3)
        .map(|target| target.join("console-screenshots"))
        .unwrap_or_else(|| PathBuf::from("console-screenshots"))
}
