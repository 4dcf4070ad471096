//! How a text log line writes fields, its own and its spans': as
//! `tracing`'s default does (`name=value`, the message bare), without the
//! fields that describe a span to a trace backend (`otel.*`, `messaging.*`).
//! A consumer's `process` span carries a dozen of those, formatted into the
//! span as it starts (and again as the relay's `send` span records its
//! partition and offset): 3–5 % of a consumer's CPU, and every line logged
//! inside such a span a paragraph. A text line keeps the order id, the
//! event type and the trace id, which find the rest (the trace in Jaeger);
//! JSON logs (`ORDERFLOW_LOG_FORMAT=json`, the chart's default) carry every
//! field.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::FormatFields;

/// The fields of a text log line.
pub(crate) struct LogFields;

impl<'w> FormatFields<'w> for LogFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = Visitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

/// Whether a field is for the trace backend only.
fn for_traces_only(name: &str) -> bool {
    ["otel.", "messaging.", "log."]
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

struct Visitor<'w> {
    writer: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let name = field.name();
        if self.result.is_err() || for_traces_only(name) {
            return;
        }
        let space = if self.first { "" } else { " " };
        self.first = false;
        self.result = if name == "message" {
            write!(self.writer, "{space}{value:?}")
        } else {
            let name = name.strip_prefix("r#").unwrap_or(name);
            write!(self.writer, "{space}{name}={value:?}")
        };
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_carries_its_spans_fields_for_people_not_those_for_traces_only() {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(LogFields)
                .compact()
                .with_ansi(false)
                .with_target(false)
                .without_time()
                .with_writer(move || writer.clone()),
        );
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "process",
                otel.kind = "consumer",
                messaging.system = "kafka",
                messaging.kafka.offset = 7,
                order.id = %"o-1",
                trace_id = tracing::field::Empty,
            );
            span.record("trace_id", "4bf9");
            let _entered = span.enter();
            tracing::info!(
                kind = "shipped",
                attempt = 2,
                "to customer: {}",
                "on its way"
            );
        });
        let text = String::from_utf8(lines.0.lock().expect("lock").clone()).expect("utf-8");
        assert_eq!(
            text.trim(),
            r#"INFO process: to customer: on its way kind="shipped" attempt=2 order.id=o-1 trace_id="4bf9""#
        );
    }
}
