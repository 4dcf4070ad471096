//! Live progress for people at a terminal (`orderflow load`, replays, the
//! chaos soak): a bar or a status line that redraws in place, on stderr.
//! When stderr is not a terminal (CI, a pipe, a log file) it draws nothing,
//! so logs stay readable.

use std::io::IsTerminal;

pub use indicatif::ProgressBar;

/// A bar of `len` steps with `template` (indicatif's syntax, e.g.
/// `"placing {bar:30} {pos}/{len}"`), or a hidden one off a terminal.
pub fn bar(len: u64, template: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// A status line redrawn ten times a second (`{msg}` in `template`).
pub fn status(template: &str) -> ProgressBar {
    let line = bar(0, template);
    line.enable_steady_tick(std::time::Duration::from_millis(100));
    line
}
